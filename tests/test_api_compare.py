"""GET /api/v1/compare and saved comparisons, through HTTP on both databases."""

from __future__ import annotations

import math

import orjson
import pytest
from fastapi.testclient import TestClient

from backend.db import Database
from tests.compare.synthetic_runs import PLANTED_STEP, demo_runs
from tests.conftest import ProjectFixture, make_project


def _wire(values) -> list:
    return [v if math.isfinite(v) else ("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))
            for v in values.tolist()]


def post_run(client: TestClient, project: ProjectFixture, run) -> int:
    created = client.post(
        f"/api/v1/projects/{project.slug}/runs",
        json={"name": run.name, "label": run.label, "config": dict(run.config), "engine": dict(run.engine)},
        headers=project.auth(),
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    for key, (steps, values) in run.series.items():
        r = client.post(
            f"/api/v1/runs/{run_id}/metrics",
            content=orjson.dumps({"steps": steps.tolist(), "values": {key: _wire(values)}}),
            headers=project.auth() | {"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
    return run_id


@pytest.fixture
def demo_ids(client: TestClient, project: ProjectFixture) -> dict[str, int]:
    return {name: post_run(client, project, run) for name, run in demo_runs().items()}


def test_compare_finds_the_demo_story(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    r = client.get(
        "/api/v1/compare",
        params={
            "reference": f"{demo_ids['reference']},{demo_ids['reference-replica']}",
            "candidates": f"{demo_ids['v1-initial']},{demo_ids['v1-fixed']}",
        },
        headers=project.auth("read"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["metrics"]) == ["clip_rate", "kl", "entropy", "reward"]
    initial, fixed = str(demo_ids["v1-initial"]), str(demo_ids["v1-fixed"])
    for metric in ("clip_rate", "kl"):
        m = body["metrics"][metric]
        assert m["band"]["source"] == "replicas"
        assert m["resolved"][initial] == f"rl/{'clamp_log_ratio_new_old_indicator' if metric == 'clip_rate' else 'kl_new_old'}"
        step = m["candidates"][initial]["first_divergence_step"]
        assert step is not None and PLANTED_STEP <= step <= PLANTED_STEP + 5
        assert m["candidates"][fixed]["first_divergence_step"] is None
    assert body["diagnosis"][initial]["starting_layer"] == "semantic"
    assert body["diagnosis"][fixed]["starting_layer"] is None or body["diagnosis"][fixed]["starting_layer"] != "semantic"
    layers = {d["key"].rsplit(".", 1)[-1]: d["layer"] for d in body["config_diff"][initial]}
    assert layers["logprobs_mode"] == "semantic"
    assert layers["prefix_caching"] == "inference-path"
    overlay = body["figures"]["clip_rate"]["overlay"]
    assert {"data", "layout"} <= set(overlay)
    assert body["runs"][initial]["role"] == "candidate"


def test_compare_downsamples_and_smooths(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    params = {"reference": demo_ids["reference"], "candidates": demo_ids["v1-fixed"], "metrics": "reward",
              "max_points": 50, "smoothing": 0.9}
    body = client.get("/api/v1/compare", params=params, headers=project.auth("read")).json()
    series = body["metrics"]["reward"]["series"]
    assert all(len(s["x"]) <= 50 and s["downsampled"] for s in series)
    assert body["metrics"]["reward"]["band"]["source"] == "within-run"
    assert body["settings"]["smoothing"] == 0.9


def test_saved_comparison_round_trip(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    body = {"name": "V0 vs V1", "reference": [demo_ids["reference"], demo_ids["reference-replica"]],
            "candidates": [demo_ids["v1-initial"]], "options": {"smoothing": 0.6}}
    r = client.post("/api/v1/comparisons", json=body, headers=project.auth())
    assert r.status_code == 201, r.text
    saved = client.get(f"/api/v1/comparisons/{r.json()['id']}", headers=project.auth("read")).json()
    assert saved["reference"] == body["reference"] and saved["options"] == {"smoothing": 0.6}
    listed = client.get(f"/api/v1/projects/{project.slug}/comparisons", headers=project.auth("read")).json()
    assert [c["name"] for c in listed] == ["V0 vs V1"]
    assert client.post("/api/v1/comparisons", json=body, headers=project.auth("read")).status_code == 403
    # A run given twice is refused, as by GET /api/v1/compare, and nothing is saved.
    twice = dict(body, reference=[demo_ids["reference"], demo_ids["reference"]])
    r = client.post("/api/v1/comparisons", json=twice, headers=project.auth())
    assert r.status_code == 422 and "reference" in r.json()["detail"], r.text
    assert len(client.get(f"/api/v1/projects/{project.slug}/comparisons", headers=project.auth("read")).json()) == 1


def test_comparison_options_nested_too_deep_are_refused(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    options: dict = {"leaf": 1}
    for _ in range(300):
        options = {"a": options}
    body = {"name": "deep", "reference": [run_id], "options": options}
    r = client.post("/api/v1/comparisons", json=body, headers=project.auth())
    assert r.status_code == 422 and r.json()["detail"].startswith("options"), r.text
    assert client.get(f"/api/v1/projects/{project.slug}/comparisons", headers=project.auth()).json() == []


def test_project_aliases_and_rules_feed_the_comparison(client: TestClient, project: ProjectFixture) -> None:
    ids = []
    for i, lr in enumerate((1e-3, 1e-3)):
        run = client.post(f"/api/v1/projects/{project.slug}/runs",
                          json={"name": f"r{i}", "config": {"my_knob": i, "lr": lr}}, headers=project.auth()).json()
        client.post(f"/api/v1/runs/{run['id']}/metrics",
                    json={"steps": list(range(30)), "values": {"house/clip": [0.1] * 30}}, headers=project.auth())
        ids.append(run["id"])
    r = client.post(f"/api/v1/projects/{project.slug}/aliases", json={"alias": "house/clip", "canonical": "clip_rate"},
                    headers=project.auth())
    assert r.status_code == 201 and r.json()["project"] == {"clip_rate": ["house/clip"]}
    r = client.post(f"/api/v1/projects/{project.slug}/config-rules", json={"key": "my_knob", "layer": "objective"},
                    headers=project.auth())
    assert r.status_code == 201
    body = client.get("/api/v1/compare", params={"reference": ids[0], "candidates": ids[1], "metrics": "clip_rate"},
                      headers=project.auth("read")).json()
    assert body["metrics"]["clip_rate"]["resolved"][str(ids[1])] == "house/clip"
    assert [(d["key"], d["layer"]) for d in body["config_diff"][str(ids[1])]] == [("my_knob", "objective")]
    classified = client.get(f"/api/v1/projects/{project.slug}/config-rules/classify",
                            params={"keys": "my_knob,vllm_config.vllm_kwargs.logprobs-mode"},
                            headers=project.auth("read")).json()
    assert [c["layer"] for c in classified] == ["objective", "semantic"]
    r = client.post(f"/api/v1/projects/{project.slug}/config-rules", json={"key": "x", "layer": "vibes"},
                    headers=project.auth())
    assert r.status_code == 422 and "layer" in r.json()["detail"]
    r = client.post(f"/api/v1/projects/{project.slug}/aliases", json={"alias": "a", "canonical": "Clip Rate"},
                    headers=project.auth())
    assert r.status_code == 422 and "canonical" in r.json()["detail"]


def test_bad_compare_requests(client: TestClient, database: Database, project: ProjectFixture, demo_ids) -> None:
    auth = project.auth("read")
    ref = demo_ids["reference"]
    cand = demo_ids["v1-initial"]

    def status(params: dict) -> tuple[int, str]:
        r = client.get("/api/v1/compare", params=params, headers=auth)
        return r.status_code, r.json().get("detail", "")

    assert status({"reference": "999999"}) == (404, "run 999999 not found")
    code, detail = status({"reference": "abc"})
    assert code == 422 and "reference" in detail
    code, detail = status({"reference": ref, "candidates": cand, "max_points": 0})
    assert code == 422 and "max_points" in detail
    code, detail = status({"reference": ref, "candidates": cand, "max_points": 10**9})
    assert code == 422 and "max_points" in detail
    code, detail = status({"reference": ref, "candidates": cand, "metrics": "no_such_metric"})
    assert code == 422 and "no_such_metric" in detail
    code, detail = status({"reference": ref, "candidates": cand, "smoothing": 1.0})
    assert code == 422 and "smoothing" in detail
    code, detail = status({"reference": ref, "candidates": ref})
    assert code == 422 and "also a reference" in detail

    other = make_project(database, "other")
    foreign = client.post(f"/api/v1/projects/{other.slug}/runs", json={"name": "theirs"}, headers=other.auth()).json()
    # With this project's token the other project's run is off limits...
    code, _ = status({"reference": ref, "candidates": foreign["id"]})
    assert code == 403
    # ...and even an admin cannot mix projects in one comparison.
    r = client.get("/api/v1/compare", params={"reference": ref, "candidates": foreign["id"]}, headers=project.auth("admin"))
    assert r.status_code == 422 and "one project" in r.json()["detail"]
    assert client.get("/api/v1/compare", params={"reference": ref}).status_code == 401


def test_include_trims_data_arrays(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    params = {"reference": f"{demo_ids['reference']},{demo_ids['reference-replica']}",
              "candidates": demo_ids["v1-initial"], "metrics": "kl"}
    full = client.get("/api/v1/compare", params=params, headers=project.auth("read")).json()
    lean = client.get("/api/v1/compare", params=params | {"include": "overlay"}, headers=project.auth("read")).json()
    assert set(full["figures"]["kl"]) == {"overlay", "diff"}
    assert set(lean["figures"]["kl"]) == {"overlay"}
    assert lean["figures"]["kl"]["overlay"] == full["figures"]["kl"]["overlay"]
    assert "y" not in lean["metrics"]["kl"]["series"][0] and "y" in full["metrics"]["kl"]["series"][0]
    cand = str(demo_ids["v1-initial"])
    # Summaries stay: the divergence step and the diagnosis do not depend on the sections.
    assert lean["metrics"]["kl"]["candidates"][cand]["first_divergence_step"] == \
        full["metrics"]["kl"]["candidates"][cand]["first_divergence_step"]
    assert lean["diagnosis"] == full["diagnosis"]
    r = client.get("/api/v1/compare", params=params | {"include": "overlay,pictures"}, headers=project.auth("read"))
    assert r.status_code == 422 and "pictures" in r.json()["detail"]


def test_compare_is_gzipped_for_clients_that_accept_it(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    r = client.get("/api/v1/compare", params={"reference": demo_ids["reference"]},
                   headers=project.auth("read") | {"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert r.json()["references"] == [demo_ids["reference"]]


def test_cache_follows_new_points(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    params = {"reference": demo_ids["reference"], "metrics": "reward", "include": "series"}
    before = client.get("/api/v1/compare", params=params, headers=project.auth("read")).json()
    last = before["metrics"]["reward"]["series"][0]["x"][-1]
    r = client.post(f"/api/v1/runs/{demo_ids['reference']}/metrics",
                    json={"steps": [last + 1], "values": {"rl/reward": [0.5]}}, headers=project.auth())
    assert r.status_code == 200
    after = client.get("/api/v1/compare", params=params, headers=project.auth("read")).json()
    assert after["metrics"]["reward"]["series"][0]["x"][-1] == last + 1


def test_run_ids_that_are_not_ascii_digits_are_refused(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    # '²' and '٣' pass str.isdigit(); only the first is refused by int(), and neither is a run id.
    for raw in ("²", f"{run_id},٣"):
        r = client.get("/api/v1/compare", params={"reference": raw}, headers=project.auth("read"))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "reference"
        r = client.get("/api/v1/notes", params={"runs": raw}, headers=project.auth("read"))
        assert r.status_code == 422 and r.json()["field"] == "runs"


def test_partial_compares_what_is_valid_and_names_the_rest(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    auth = project.auth("read")
    ref, replica, cand = demo_ids["reference"], demo_ids["reference-replica"], demo_ids["v1-initial"]
    params = {
        "reference": f"{ref},{replica},999998",
        "candidates": f"{cand},999999",
        "metrics": "kl,no_such_metric,reward",
        "include": "overlay",
    }
    # Strict by default, as documented for API clients: the first unknown run fails the request...
    strict = client.get("/api/v1/compare", params=params, headers=auth)
    assert strict.status_code == 404 and strict.json()["detail"] == "run 999998 not found"
    # ...and the dashboard's partial request draws the valid runs and metrics and names the others.
    r = client.get("/api/v1/compare", params=params | {"partial": "true"}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["references"] == [ref, replica] and body["candidates"] == [cand]
    assert list(body["metrics"]) == ["kl", "reward"] and set(body["figures"]) == {"kl", "reward"}
    assert body["missing"] == [
        {"kind": "run", "id": 999998, "role": "reference", "detail": "run 999998 not found"},
        {"kind": "run", "id": 999999, "role": "candidate", "detail": "run 999999 not found"},
        {"kind": "metric", "name": "no_such_metric", "detail": "unknown metric 'no_such_metric': no run has it"},
    ]
    assert body["project"] == project.slug
    # Nothing missing: an empty list. Strict responses carry no `missing` at all.
    clean = client.get("/api/v1/compare", params={"reference": ref, "partial": "true", "include": "overlay"}, headers=auth)
    assert clean.status_code == 200 and clean.json()["missing"] == []
    assert "missing" not in client.get("/api/v1/compare", params={"reference": ref, "include": "overlay"}, headers=auth).json()


def test_partial_still_refuses_what_cannot_be_compared(client: TestClient, project: ProjectFixture, demo_ids) -> None:
    auth = project.auth("read")
    ref, cand = demo_ids["reference"], demo_ids["v1-initial"]

    def status(params: dict) -> tuple[int, str]:
        r = client.get("/api/v1/compare", params=params | {"partial": "true"}, headers=auth)
        return r.status_code, r.json().get("detail", "")

    # No known reference: nothing to compare against.
    assert status({"reference": "999998", "candidates": cand}) == (404, "run 999998 not found")
    # An impossible selection keeps its 422 and its reason.
    assert status({"reference": ref, "candidates": ref}) == (422, f"candidates: run {ref} is also a reference")
    code, detail = status({"reference": ref, "smoothing": 2})
    assert code == 422 and "smoothing" in detail
    r = client.get("/api/v1/compare", params={"reference": ref, "partial": "maybe"}, headers=auth)
    assert r.status_code == 422
    assert client.get("/api/v1/compare", params={"reference": ref, "partial": "true"}).status_code == 401
