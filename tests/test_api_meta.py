"""GET /api/v1/meta: the defaults and bounds the pages read, as Python declares them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from backend.compare.aliases import DEFAULT_METRICS, PARITY_METRICS
from backend.compare.registry import LAYERS, UNCLASSIFIED
from backend.comparing import MAX_RUNS_PER_COMPARISON
from parityscope.jobspec import ENGINE_NAMES


def test_meta_serves_the_declared_constants_without_a_token(client: TestClient) -> None:
    r = client.get("/api/v1/meta")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["compare"]["default_metrics"] == list(DEFAULT_METRICS)
    assert body["compare"]["parity_metrics"] == list(PARITY_METRICS)
    assert body["compare"]["max_points"] == {"default": 2000, "min": 10, "max": 20000}
    assert body["compare"]["max_runs"] == MAX_RUNS_PER_COMPARISON
    assert (body["compare"]["band_k"], body["compare"]["divergence_k"]) == (3.0, 5)
    assert body["layers"] == [*LAYERS, UNCLASSIFIED]
    assert body["engines"] == list(ENGINE_NAMES)


def test_meta_is_read_only(client: TestClient) -> None:
    assert client.post("/api/v1/meta", json={}).status_code == 405


def test_the_compare_defaults_are_the_ones_meta_serves(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    params = {p["name"]: p["schema"].get("default") for p in schema["paths"]["/api/v1/compare"]["get"]["parameters"]}
    compare = client.get("/api/v1/meta").json()["compare"]
    assert params["max_points"] == compare["max_points"]["default"]
    assert params["band_k"] == compare["band_k"]
    assert params["divergence_k"] == compare["divergence_k"]
    assert params["smoothing"] == compare["smoothing"]


def test_one_comparison_holds_at_most_max_runs_in_all(client: TestClient, project) -> None:  # type: ignore[no-untyped-def]
    half = MAX_RUNS_PER_COMPARISON // 2 + 1
    reference = ",".join(str(i) for i in range(1, half + 1))
    candidates = ",".join(str(i) for i in range(half + 1, 2 * half + 1))
    r = client.get("/api/v1/compare", params={"reference": reference, "candidates": candidates},
                   headers=project.auth("read"))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "runs" and str(MAX_RUNS_PER_COMPARISON) in r.json()["detail"]
    too_many = ",".join(str(i) for i in range(1, MAX_RUNS_PER_COMPARISON + 2))
    r = client.get("/api/v1/notes", params={"runs": too_many}, headers=project.auth("read"))
    assert r.status_code == 422 and r.json()["field"] == "runs", r.text
    r = client.post("/api/v1/comparisons", headers=project.auth(),
                    json={"name": "big", "reference": list(range(1, half + 1)),
                          "candidates": list(range(half + 1, 2 * half + 1))})
    assert r.status_code == 422, r.text
