"""GET /api/v1/projects/{slug}/run-summaries: the runs table with a sparkline per run."""

from __future__ import annotations

import orjson
from fastapi.testclient import TestClient

from backend.db import Database
from tests.conftest import ProjectFixture, make_project


def _run(client: TestClient, project: ProjectFixture, name: str, **body) -> int:
    r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": name, **body}, headers=project.auth())
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _metrics(client: TestClient, project: ProjectFixture, run_id: int, body: dict) -> None:
    r = client.post(
        f"/api/v1/runs/{run_id}/metrics",
        content=orjson.dumps(body),
        headers=project.auth() | {"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text


def _summaries(client: TestClient, project: ProjectFixture, **params) -> dict:
    r = client.get(f"/api/v1/projects/{project.slug}/run-summaries", params=params, headers=project.auth("read"))
    assert r.status_code == 200, r.text
    return r.json()


def test_summaries_carry_the_columns_and_a_sampled_reward_sparkline(
    client: TestClient, project: ProjectFixture
) -> None:
    engine = {"name": "torch", "version": "2.13", "settings": {"logprobs_mode": "raw"}}
    run_id = _run(client, project, "v1-initial", engine=engine, label="V1 candidate", tags=["gspo", "v1"])
    steps = list(range(1000))
    # PipelineRL logs reward under an ``rl/`` prefix; the alias table finds it.
    _metrics(client, project, run_id, {"steps": steps, "values": {"rl/reward": [s / 1000 for s in steps], "kl_new_old": [0.0] * 1000}})
    (summary,) = _summaries(client, project, points=11)["runs"]
    assert summary["name"] == "v1-initial" and summary["status"] == "running"
    assert summary["engine"] == engine and summary["label"] == "V1 candidate"
    assert summary["tags"] == ["gspo", "v1"] and summary["last_step"] == 999
    spark = summary["sparkline"]
    assert spark["metric"] == "reward" and spark["key"] == "rl/reward"
    # Eleven evenly spaced steps from the first to the last logged one, values as logged.
    assert spark["x"] == [0, 100, 200, 300, 400, 500, 599, 699, 799, 899, 999]
    assert spark["y"] == [s / 1000 for s in spark["x"]]
    assert "config" not in summary


def test_sparkline_of_sparse_logging_and_nan_and_missing_metric(
    client: TestClient, project: ProjectFixture
) -> None:
    sparse = _run(client, project, "sparse")
    _metrics(client, project, sparse, {"steps": [0, 500, 1000], "values": {"reward": [1.0, "NaN", 3.0]}})
    silent = _run(client, project, "no reward")
    _metrics(client, project, silent, {"steps": [0, 1], "values": {"entropy": [1.0, 2.0]}})
    empty = _run(client, project, "no points")
    by_name = {r["name"]: r for r in _summaries(client, project, points=20)["runs"]}
    # Twenty targets over three logged points sample each point once; NaN stays NaN.
    assert by_name["sparse"]["sparkline"]["x"] == [0, 500, 1000]
    assert by_name["sparse"]["sparkline"]["y"] == [1.0, "NaN", 3.0]
    for name in ("no reward", "no points"):
        assert by_name[name]["sparkline"] == {"metric": "reward", "key": None, "x": [], "y": []}
    entropy = _summaries(client, project, metric="entropy")["runs"]
    assert {r["name"]: r["sparkline"]["y"] for r in entropy}["no reward"] == [1.0, 2.0]
    assert silent and empty


def test_filters_and_cursor_paging_over_many_runs(client: TestClient, project: ProjectFixture) -> None:
    for i in range(25):
        _run(client, project, f"run-{i:02d}", tags=["even" if i % 2 == 0 else "odd"])
    seen: list[str] = []
    cursor = None
    while True:
        page = _summaries(client, project, limit=10, **({"cursor": cursor} if cursor else {}))
        seen += [r["name"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"run-{i:02d}" for i in reversed(range(25))]
    odd = _summaries(client, project, tag="odd", q="run-1")["runs"]
    assert [r["name"] for r in odd] == ["run-19", "run-17", "run-15", "run-13", "run-11"]
    assert _summaries(client, project, status="finished")["runs"] == []


def test_bad_summary_requests(client: TestClient, database: Database, project: ProjectFixture) -> None:
    base = f"/api/v1/projects/{project.slug}/run-summaries"
    read = project.auth("read")
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"points": 1}, "points"),
        ({"status": "paused"}, "status"),
        ({"cursor": "abc"}, "cursor"),
        ({"metric": ""}, "metric"),
    ):
        r = client.get(base, params=params, headers=read)
        assert r.status_code == 422, (params, r.text)
        assert field in r.json()["detail"]
    assert client.get("/api/v1/projects/nope/run-summaries", headers=read).status_code == 404
    assert client.get(base).status_code == 401
    other = make_project(database, "other")
    assert client.get(base, headers=other.auth("read")).status_code == 403
