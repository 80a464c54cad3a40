"""Bad input across every endpoint family: each a 4xx with a message, nothing stored, the server
still up afterwards (docs/RELIABILITY.md, "Bad inputs")."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.db import Database
from backend.models import Base
from tests.conftest import ProjectFixture
from tests.tiny_job import TINY_WORKLOAD

P = "/api/v1/projects/alpha"
R = "/api/v1/runs/{run}"
ML = "/api/2.0/mlflow"
JOB = {"workload": dict(TINY_WORKLOAD), "reference": {"engine": "torch"}, "candidates": [{"engine": "torch", "label": "c"}]}
VIEW = {"reference": ["{run}"], "candidates": []}
RAW = object()  # marks a case whose body is sent as raw bytes

# (method, path, JSON body or (RAW, bytes), query params)
CASES: list[tuple[str, str, Any, dict | None]] = [
    # projects
    ("POST", "/api/v1/projects", {"slug": "Bad Slug!", "name": "x"}, None),
    ("POST", "/api/v1/projects", {"slug": "ok"}, None),
    ("POST", "/api/v1/projects", {"slug": "ok", "name": "x", "extra": 1}, None),
    ("POST", "/api/v1/projects", (RAW, b"{not json"), None),
    ("POST", "/api/v1/projects", [], None),
    ("POST", "/api/v1/projects", {"slug": "s" * 65, "name": "x"}, None),
    # runs
    ("POST", f"{P}/runs", {"name": ""}, None),
    ("POST", f"{P}/runs", {"name": "n" * 501}, None),
    ("POST", f"{P}/runs", {"name": "r", "tags": "a"}, None),
    ("POST", f"{P}/runs", {"name": "r", "tags": ["t" * 101]}, None),
    ("POST", f"{P}/runs", {"name": "r", "tags": [f"t{i}" for i in range(101)]}, None),
    ("POST", f"{P}/runs", {"name": "r", "config": [1, 2]}, None),
    ("POST", f"{P}/runs", {"name": "r", "config": {"lr": 2**64}}, None),
    ("POST", f"{P}/runs", (RAW, b'{"name": "r", "config": {"lr": NaN}}'), None),
    ("POST", f"{P}/runs", {"name": "r", "engine": {"x": "y" * 20_000}}, None),
    ("POST", f"{P}/runs", {"name": "r", "external_id": ""}, None),
    ("PATCH", R, {"status": "exploded"}, None),
    ("PATCH", R, {"config": {"a": 2**60}}, None),
    ("GET", f"{P}/runs", None, {"limit": "0"}),
    ("GET", f"{P}/runs", None, {"limit": "100000"}),
    ("GET", f"{P}/runs", None, {"q": "q" * 201}),
    ("GET", f"{P}/runs", None, {"status": "bogus"}),
    ("GET", f"{P}/runs", None, {"cursor": "not-a-cursor"}),
    # metrics
    ("POST", f"{R}/metrics", (RAW, b"{"), None),
    ("POST", f"{R}/metrics", {"rows": []}, None),
    ("POST", f"{R}/metrics", {"points": [{"step": -1, "values": {"a": 1.0}}]}, None),
    ("POST", f"{R}/metrics", {"points": [{"step": 2**53 + 1, "values": {"a": 1.0}}]}, None),
    ("POST", f"{R}/metrics", {"points": [{"step": 1.5, "values": {"a": 1.0}}]}, None),
    ("POST", f"{R}/metrics", {"points": [{"step": 0, "values": {"": 1.0}}]}, None),
    ("POST", f"{R}/metrics", {"points": [{"step": 0, "values": {"k" * 251: 1.0}}]}, None),
    ("POST", f"{R}/metrics", {"points": [{"step": 0, "values": {"a\nb": 1.0}}]}, None),
    ("POST", f"{R}/metrics", {"points": [{"step": 0, "values": [1.0]}]}, None),
    ("POST", f"{R}/metrics", {"steps": [0, 1], "values": {"a": [1.0]}}, None),
    ("POST", f"{R}/metrics", {"steps": [0], "values": {"a": [1.0]}, "times": [1.0, 2.0]}, None),
    ("POST", f"{R}/metrics", {"steps": [0], "values": {"a": ["abc"]}}, None),
    ("POST", f"{R}/metrics", {"steps": [0], "values": {"a": [True]}}, None),
    ("POST", f"{R}/metrics", {"steps": list(range(200_001)), "values": {"a": [1.0] * 200_001}}, None),
    ("GET", f"{R}/metrics", None, {"start": "5", "end": "1"}),
    ("GET", f"{R}/metrics", None, {"keys": ",,,"}),
    ("GET", f"{R}/metrics", None, {"start": "-1"}),
    ("GET", f"{R}/metrics", None, {"end": str(10**30)}),
    # compare and saved comparisons
    ("GET", "/api/v1/compare", None, {}),
    ("GET", "/api/v1/compare", None, {"reference": "abc"}),
    ("GET", "/api/v1/compare", None, {"reference": "{run}", "divergence_k": str(10**30)}),
    ("GET", "/api/v1/compare", None, {"reference": "{run}", "max_points": "5"}),
    ("GET", "/api/v1/compare", None, {"reference": "{run}", "smoothing": "2"}),
    ("GET", "/api/v1/compare", None, {"reference": "{run}", "band_k": "-1"}),
    ("GET", "/api/v1/compare", None, {"reference": "{run}", "include": "bogus"}),
    ("POST", "/api/v1/comparisons", {"name": "", "reference": ["{run}"]}, None),
    ("POST", "/api/v1/comparisons", {"name": "c", "reference": ["{run}", "{run}"]}, None),
    # notes
    ("POST", "/api/v1/notes", {"runs": ["{run}"], "step": 0, "text": ""}, None),
    ("POST", "/api/v1/notes", {"runs": ["{run}"], "step": -1, "text": "x"}, None),
    ("POST", "/api/v1/notes", {"runs": [], "step": 0, "text": "x"}, None),
    ("GET", "/api/v1/notes", None, {"runs": "abc"}),
    # shares
    ("POST", "/api/v1/shares", {}, None),
    ("POST", "/api/v1/shares", {"view": {**VIEW, "smoothing": 1.5}}, None),
    ("POST", "/api/v1/shares", {"view": VIEW, "expires_in_hours": 0}, None),
    ("POST", "/api/v1/shares", {"view": {**VIEW, "x_range": [5, 1]}}, None),
    ("GET", "/api/v1/s/nope", None, None),
    # jobs and legs
    ("POST", "/api/v1/jobs", {k: v for k, v in JOB.items() if k != "workload"}, None),
    ("POST", "/api/v1/jobs", {**JOB, "workload": {**TINY_WORKLOAD, "steps": 10**12}}, None),
    ("POST", "/api/v1/jobs", {**JOB, "candidates": []}, None),
    ("POST", "/api/v1/jobs", {**JOB, "reference": {"engine": "not an engine!"}}, None),
    ("POST", "/api/v1/legs/claim", {"worker": "w", "engines": []}, None),
    ("POST", "/api/v1/legs/1/heartbeat", {"worker": "w", "attempt": 1, "lease_seconds": 0}, None),
    ("POST", "/api/v1/legs/1/fail", {"worker": "w", "attempt": 1, "error": ""}, None),
    # registry
    ("POST", f"{P}/aliases", {"alias": "", "canonical": "kl"}, None),
    ("POST", f"{P}/aliases", {"alias": "my_kl", "canonical": "Not Canonical"}, None),
    ("POST", f"{P}/config-rules", {"key": "", "layer": "semantic"}, None),
    ("POST", f"{P}/config-rules", {"key": "lr", "layer": "nowhere"}, None),
    # imports
    ("POST", f"{P}/imports", (RAW, b"a,b\n1,2\n"), {"format": "bogus"}),
    ("POST", f"{P}/imports", (RAW, b"\xff\xfe\x00garbage"), {"format": "csv", "run_name": "x"}),
    ("POST", f"{P}/imports", (RAW, b"[1, 2]\n"), {"format": "jsonl", "run_name": "x"}),
    ("POST", f"{P}/imports", (RAW, b'{"_step": 0, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"), {"format": "jsonl", "run_name": "x"}),
    # MLflow
    ("POST", f"{ML}/experiments/create", {}, None),
    ("POST", f"{ML}/runs/create", {"experiment_id": "not-a-number"}, None),
    ("POST", f"{ML}/runs/log-batch", {"run_id": "x", "metrics": [{"key": "a", "value": 1, "timestamp": 0}] * 1001}, None),
    ("POST", f"{ML}/runs/search", {"experiment_ids": ["1"], "order_by": [""]}, None),
    ("POST", f"{ML}/runs/search", {"experiment_ids": ["1"], "max_results": 0}, None),
    ("POST", f"{ML}/runs/search", {"experiment_ids": ["1"], "filter": "metrics.a >>> 3"}, None),
    ("GET", f"{ML}/metrics/get-history", None, {"run_id": "x"}),
    ("POST", f"{ML}/runs/log-metric", (RAW, b"{"), None),
    # dashboard summaries
    ("GET", f"{P}/run-summaries", None, {"limit": "0"}),
    ("GET", f"{P}/run-summaries", None, {"points": "1"}),
]


def _fill(value: Any, run: int) -> Any:
    if isinstance(value, str):
        return run if value == "{run}" else value.replace("{run}", str(run))
    if isinstance(value, list):
        return [_fill(v, run) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, run) for k, v in value.items()}
    return value


def _row_counts(database: Database) -> dict[str, int]:
    with database.session() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def test_the_battery_has_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60


def test_bad_inputs_are_4xx_with_a_message_and_store_nothing(
    client: TestClient, database: Database, project: ProjectFixture, run_id: int
) -> None:
    client.post(f"/api/v1/runs/{run_id}/metrics", json={"steps": [0, 1], "values": {"a": [1.0, 2.0]}}, headers=project.auth())
    before = _row_counts(database)
    failures = []
    for method, path, body, params in CASES:
        url = _fill(path, run_id)
        query = _fill(params, run_id)
        headers = project.auth("admin")
        if isinstance(body, tuple) and body[0] is RAW:
            r = client.request(method, url, content=body[1], params=query, headers={**headers, "content-type": "application/json"})
        else:
            r = client.request(method, url, json=_fill(body, run_id), params=query, headers=headers)
        try:
            payload = r.json()
        except ValueError:
            payload = {}
        message = payload.get("detail") or payload.get("message") if isinstance(payload, dict) else None
        if not (400 <= r.status_code < 500) or r.status_code in (401, 403) or not isinstance(message, str) or not message:
            failures.append(f"{method} {url} {query}: {r.status_code} {r.text[:200]}")
    assert failures == [], "\n".join(failures)
    assert _row_counts(database) == before
    assert client.get("/healthz").status_code == 200
    r = client.get(f"/api/v1/runs/{run_id}/metrics", headers=project.auth())
    assert r.status_code == 200 and r.json()["a"]["values"] == [1.0, 2.0]


@pytest.mark.parametrize("family", ["runs", "metrics", "mlflow"])
def test_bad_input_answers_keep_the_security_headers(client: TestClient, project: ProjectFixture, run_id: int, family: str) -> None:
    path = {"runs": f"/api/v1/projects/{project.slug}/runs", "metrics": f"/api/v1/runs/{run_id}/metrics", "mlflow": f"{ML}/runs/search"}[family]
    r = client.post(path, content=b"{", headers={**project.auth(), "content-type": "application/json"})
    assert 400 <= r.status_code < 500
    assert r.headers["x-content-type-options"] == "nosniff" and "content-security-policy" in r.headers
