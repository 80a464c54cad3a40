"""Per-field limits and values the server could store but not serve back (backend/limits.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.limits import (
    MAX_CONFIG_BYTES,
    MAX_ENGINE_BYTES,
    MAX_KEYS_PER_REQUEST,
    MAX_KEYS_PER_RUN,
)
from tests.conftest import ProjectFixture


def _runs(client: TestClient, project: ProjectFixture) -> list[dict]:
    r = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth())
    assert r.status_code == 200, r.text
    return r.json()["runs"]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b'{"name": "r", "config": {"lr": 18446744073709551616}}', "2**53"),
        (b'{"name": "r", "config": {"lr": 9007199254740993}}', "2**53"),
        (b'{"name": "r", "config": {"lr": -9007199254740993}}', "2**53"),
        (b'{"name": "r", "config": {"lr": NaN}}', "not a JSON number"),
        (b'{"name": "r", "config": {"lr": [Infinity]}}', "not a JSON number"),
        (b'{"name": "r", "config": {"a": "x\\u0000y"}}', "NUL"),
        (b'{"name": "r", "engine": {"v": -Infinity}}', "not a JSON number"),
        (b'{"name": "r", "config": ' + b'{"a": ' * 70 + b"1" + b"}" * 70 + b"}", "nested"),
    ],
)
def test_unservable_config_values_are_refused_at_the_door(
    client: TestClient, project: ProjectFixture, raw: bytes, needle: str
) -> None:
    headers = {**project.auth(), "content-type": "application/json"}
    r = client.post(f"/api/v1/projects/{project.slug}/runs", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]
    assert _runs(client, project) == []


def test_a_config_at_2_53_is_stored_and_served_back(client: TestClient, project: ProjectFixture) -> None:
    r = client.post(
        f"/api/v1/projects/{project.slug}/runs",
        json={"name": "r", "config": {"big": 2**53, "small": -(2**53)}},
        headers=project.auth(),
    )
    assert r.status_code == 201, r.text
    assert _runs(client, project)[0]["config"] == {"big": 2**53, "small": -(2**53)}


def test_patching_a_config_beyond_2_53_is_refused(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    r = client.patch(f"/api/v1/runs/{run_id}", json={"config": {"lr": 2**64}}, headers=project.auth())
    assert r.status_code == 422 and "config" in r.json()["detail"], r.text
    assert client.get(f"/api/v1/runs/{run_id}", headers=project.auth()).json()["config"] == {"seed": 1}


@pytest.mark.parametrize(
    ("field", "limit"), [("config", MAX_CONFIG_BYTES), ("engine", MAX_ENGINE_BYTES)]
)
def test_json_fields_have_their_own_size_limit(
    client: TestClient, project: ProjectFixture, field: str, limit: int
) -> None:
    body = {"name": "r", field: {"blob": "x" * limit}}
    r = client.post(f"/api/v1/projects/{project.slug}/runs", json=body, headers=project.auth())
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"{field}:") and str(limit) in r.json()["detail"]
    assert _runs(client, project) == []
    body = {"name": "r", field: {"blob": "x" * (limit - 100)}}
    assert client.post(f"/api/v1/projects/{project.slug}/runs", json=body, headers=project.auth()).status_code == 201


def test_too_many_keys_in_one_request_is_413_naming_keys(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    values = {f"k{i}": [1.0] for i in range(MAX_KEYS_PER_REQUEST + 1)}
    r = client.post(f"/api/v1/runs/{run_id}/metrics", json={"steps": [0], "values": values}, headers=project.auth())
    assert r.status_code == 413, r.text
    assert r.json()["detail"].startswith("keys:") and r.json()["field"] == "keys"
    assert client.get(f"/api/v1/runs/{run_id}/keys", headers=project.auth()).json() == []


def test_65536_keys_in_one_request_is_refused_not_a_500(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    # PostgreSQL binds at most 65,535 parameters in one statement: the limit comes first.
    points = [{"step": 0, "values": {f"k{i}": 1.0 for i in range(65_536)}}]
    r = client.post(f"/api/v1/runs/{run_id}/metrics", json={"points": points}, headers=project.auth())
    assert r.status_code == 413 and "keys" in r.json()["detail"], r.text


def test_keys_accumulated_in_a_run_are_bounded(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    auth = project.auth()
    half = MAX_KEYS_PER_RUN // 2
    for offset in (0, half):
        values = {f"k{offset + i}": [1.0] for i in range(min(half, MAX_KEYS_PER_REQUEST))}
        if len(values) < half:
            pytest.skip("the per-request limit is below half the per-run limit")
        r = client.post(f"/api/v1/runs/{run_id}/metrics", json={"steps": [0], "values": values}, headers=auth)
        assert r.status_code == 200, r.text
    # Old keys again are fine; one new key past the limit is not.
    r = client.post(f"/api/v1/runs/{run_id}/metrics", json={"steps": [1], "values": {"k0": [2.0]}}, headers=auth)
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/runs/{run_id}/metrics", json={"steps": [1], "values": {"new": [2.0]}}, headers=auth)
    assert r.status_code == 413, r.text
    assert str(MAX_KEYS_PER_RUN) in r.json()["detail"] and r.json()["field"] == "keys"
    keys = client.get(f"/api/v1/runs/{run_id}/keys", headers=auth).json()
    assert len(keys) == MAX_KEYS_PER_RUN and "new" not in {k["key"] for k in keys}


@pytest.mark.parametrize(
    "params",
    [
        {"divergence_k": str(10**30)},
        {"divergence_k": "0"},
        {"start": str(10**20)},
        {"end": str(2**53 + 1)},
        {"max_points": str(10**12)},
        {"max_points": "1"},
        {"band_k": "nan"},
        {"band_k": "inf"},
        {"band_k": "1e300"},
        {"smoothing": "1.5"},
    ],
)
def test_compare_query_values_are_bounded(
    client: TestClient, project: ProjectFixture, run_id: int, params: dict[str, str]
) -> None:
    r = client.get("/api/v1/compare", params={"reference": str(run_id), **params}, headers=project.auth())
    assert r.status_code == 422, r.text
    assert next(iter(params)) in r.json()["detail"]


@pytest.mark.parametrize("params", [{"start": str(10**20)}, {"end": str(10**30)}])
def test_series_query_values_are_bounded(
    client: TestClient, project: ProjectFixture, run_id: int, params: dict[str, str]
) -> None:
    r = client.get(f"/api/v1/runs/{run_id}/metrics", params=params, headers=project.auth())
    assert r.status_code == 422 and next(iter(params)) in r.json()["detail"], r.text


@pytest.mark.parametrize("order_by", [[""], ["   "]])
def test_mlflow_search_with_an_empty_order_by_is_400(
    client: TestClient, project: ProjectFixture, run_id: int, order_by: list[str]
) -> None:
    r = client.post(
        "/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [str(project.id)], "order_by": order_by},
        headers=project.auth("read"),
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE" and "order_by" in r.json()["message"]


def test_a_deeply_nested_jsonl_import_is_422(client: TestClient, project: ProjectFixture) -> None:
    line = b'{"_step": 0, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    r = client.post(
        f"/api/v1/projects/{project.slug}/imports",
        params={"format": "jsonl", "run_name": "deep"},
        content=line,
        headers=project.auth(),
    )
    assert r.status_code == 422, r.text
    assert "line 1" in r.json()["detail"] or "JSONL" in r.json()["detail"]
    assert _runs(client, project) == []


@pytest.mark.parametrize(
    "path", ["/api/v1/projects", "/api/v1/projects/alpha/runs", "/api/v1/jobs", "/api/v1/notes", "/api/v1/runs/1/metrics"]
)
def test_json_nested_beyond_the_parser_is_422(client: TestClient, project: ProjectFixture, run_id: int, path: str) -> None:
    deep = b'{"name": "r", "config": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    headers = {**project.auth("admin"), "content-type": "application/json"}
    r = client.post(path, content=deep, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("body:")


def test_json_nested_beyond_the_parser_is_mlflows_malformed_request(client: TestClient, project: ProjectFixture) -> None:
    deep = b'{"experiment_ids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    headers = {**project.auth(), "content-type": "application/json"}
    r = client.post("/api/2.0/mlflow/runs/search", content=deep, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "MALFORMED_REQUEST"
