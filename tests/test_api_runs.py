from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.db import Database
from backend.settings import Settings
from backend.storage.runs import RunStore
from tests.conftest import ProjectFixture, make_project


def _create(client: TestClient, project: ProjectFixture, **body) -> dict:
    body.setdefault("name", "run")
    r = client.post(f"/api/v1/projects/{project.slug}/runs", json=body, headers=project.auth())
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_create_and_get_run(client: TestClient, project: ProjectFixture) -> None:
    config = {"vllm_config": {"vllm_kwargs": {"logprobs-mode": "processed_logprobs"}}, "seed": 3}
    run = _create(client, project, name="v0-reference", config=config, tags=["gspo", "v0"])
    assert run["status"] == "running" and run["project"] == "alpha"
    got = client.get(f"/api/v1/runs/{run['id']}", headers=project.auth("read")).json()
    assert got["config"] == config and got["tags"] == ["gspo", "v0"]


def test_external_id_resumes_the_same_run(client: TestClient, project: ProjectFixture) -> None:
    first = client.post(
        f"/api/v1/projects/{project.slug}/runs",
        json={"name": "trainer", "external_id": "job-42"},
        headers=project.auth(),
    )
    again = client.post(
        f"/api/v1/projects/{project.slug}/runs",
        json={"name": "trainer (restarted)", "external_id": "job-42"},
        headers=project.auth(),
    )
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert again.json()["name"] == "trainer"


def test_list_filters_and_pages(client: TestClient, project: ProjectFixture) -> None:
    for i in range(7):
        _create(client, project, name=f"run-{i}", tags=["even" if i % 2 == 0 else "odd"])
    auth = project.auth("read")
    base = f"/api/v1/projects/{project.slug}/runs"
    names = [r["name"] for r in client.get(base, headers=auth).json()["runs"]]
    assert names == [f"run-{i}" for i in reversed(range(7))]
    odd = client.get(base, params={"tag": "odd"}, headers=auth).json()["runs"]
    assert sorted(r["name"] for r in odd) == ["run-1", "run-3", "run-5"]
    assert [r["name"] for r in client.get(base, params={"q": "RUN-6"}, headers=auth).json()["runs"]] == ["run-6"]
    # A literal '%' in the text filter matches nothing rather than everything.
    assert client.get(base, params={"q": "%"}, headers=auth).json()["runs"] == []

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(base, params=params, headers=auth).json()
        seen += [r["name"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names


def test_status_filter_and_patch(client: TestClient, project: ProjectFixture) -> None:
    run = _create(client, project, name="a", config={"rl": {"epsilon_low": 3e-4}, "seed": 1})
    _create(client, project, name="b")
    r = client.patch(
        f"/api/v1/runs/{run['id']}",
        json={"status": "finished", "tags": ["done"], "config": {"rl": {"epsilon_high": 4e-4}}},
        headers=project.auth(),
    )
    assert r.status_code == 200, r.text
    assert r.json()["config"] == {"rl": {"epsilon_low": 3e-4, "epsilon_high": 4e-4}, "seed": 1}
    finished = client.get(
        f"/api/v1/projects/{project.slug}/runs", params={"status": "finished"}, headers=project.auth("read")
    ).json()["runs"]
    assert [x["name"] for x in finished] == ["a"]


def test_bad_run_input(client: TestClient, project: ProjectFixture) -> None:
    base = f"/api/v1/projects/{project.slug}/runs"
    r = client.post(base, json={"name": ""}, headers=project.auth())
    assert r.status_code == 422 and "name" in r.json()["detail"]
    r = client.post(base, json={"name": "x", "config": [1, 2]}, headers=project.auth())
    assert r.status_code == 422 and "config" in r.json()["detail"]
    r = client.post(base, json={"name": "x", "tags": ["ok", ""]}, headers=project.auth())
    assert r.status_code == 422 and "tags" in r.json()["detail"]
    r = client.post(base, json={"name": "x", "colour": "red"}, headers=project.auth())
    assert r.status_code == 422 and "colour" in r.json()["detail"]
    r = client.get(base, params={"status": "paused"}, headers=project.auth("read"))
    assert r.status_code == 422 and "status" in r.json()["detail"]
    r = client.get(base, params={"cursor": "zzz"}, headers=project.auth("read"))
    assert r.status_code == 422 and "cursor" in r.json()["detail"]
    # Nothing was stored by the rejected requests.
    assert client.get(base, headers=project.auth("read")).json()["runs"] == []


def test_unknown_run_and_project(client: TestClient, project: ProjectFixture) -> None:
    assert client.get("/api/v1/runs/999", headers=project.auth("read")).status_code == 404
    r = client.post("/api/v1/projects/nope/runs", json={"name": "x"}, headers=project.auth())
    assert r.status_code == 404 and "nope" in r.json()["detail"]


@pytest.mark.parametrize("huge", [2**31, 2**63, 10**30])
def test_ids_beyond_the_id_range_are_not_found(
    client: TestClient, project: ProjectFixture, run_id: int, huge: int
) -> None:
    # An id beyond 32 bits (PostgreSQL's integer) or 64 bits (SQLite's driver) names nothing:
    # 404 as for any unknown id, not the database's "integer out of range".
    auth = project.auth()
    requests = [
        client.get(f"/api/v1/runs/{huge}", headers=auth),
        client.patch(f"/api/v1/runs/{huge}", json={"name": "x"}, headers=auth),
        client.get(f"/api/v1/runs/{huge}/metrics", headers=auth),
        client.post(f"/api/v1/runs/{huge}/metrics", json={"steps": [0], "values": {"a": [1.0]}}, headers=auth),
        client.get("/api/v1/compare", params={"reference": str(huge)}, headers=auth),
        client.delete(f"/api/v1/notes/{huge}", headers=auth),
        client.delete(f"/api/v1/shares/{huge}", headers=auth),
        client.get(f"/api/v1/jobs/{huge}", headers=auth),
        client.post(f"/api/v1/legs/{huge}/fail", json={"worker": "w", "attempt": 1, "error": "e"}, headers=auth),
        client.post("/api/v1/notes", json={"runs": [huge], "step": 0, "text": "x"}, headers=auth),
    ]
    for r in requests:
        assert r.status_code == 404, (r.request.url, r.text)
        assert str(huge) in r.json()["detail"]


@pytest.mark.parametrize("path", ["runs", "run-summaries"])
def test_a_cursor_past_the_end_is_an_empty_page_and_a_malformed_one_a_422(
    client: TestClient, project: ProjectFixture, path: str
) -> None:
    """Cursors are run ids: one below every run's id (or of a run since deleted) gives an empty
    page with no next cursor; anything that is not a run id is a 422 naming ``cursor``."""
    base, auth = f"/api/v1/projects/{project.slug}/{path}", project.auth("read")
    ids = [_create(client, project, name=f"c{i}")["id"] for i in range(3)]
    first = client.get(base, params={"limit": 2}, headers=auth).json()
    assert [r["id"] for r in first["runs"]] == ids[:0:-1] and first["next_cursor"] == str(ids[1])
    last = client.get(base, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth).json()
    assert [r["id"] for r in last["runs"]] == [ids[0]] and last["next_cursor"] is None
    for past_the_end in (str(ids[0]), "1", "0", "000"):
        r = client.get(base, params={"cursor": past_the_end}, headers=auth)
        assert r.status_code == 200, (past_the_end, r.text)
        assert r.json()["runs"] == [] and r.json()["next_cursor"] is None, past_the_end
    # The largest row id (32 bits) is well formed: every run lies before it.
    r = client.get(base, params={"cursor": str(2**31 - 1)}, headers=auth)
    assert r.status_code == 200 and [x["id"] for x in r.json()["runs"]] == ids[::-1]
    for malformed in ("zzz", "-1", "+5", " 5", "5.0", "1_0", "\u0661\u0662", str(2**31), str(2**32),
                      str(2**63), str(2**64), str(10**30), "9" * 5000):
        r = client.get(base, params={"cursor": malformed}, headers=auth)
        assert r.status_code == 422, (malformed[:40], r.text)
        assert r.json()["field"] == "cursor" and r.json()["detail"].startswith("cursor:"), r.text


def test_mlflow_page_tokens_past_the_end_give_an_empty_page(
    client: TestClient, project: ProjectFixture, run_id: int
) -> None:
    auth = project.auth()
    client.post(f"/api/v1/runs/{run_id}/metrics", json={"steps": [0, 1], "values": {"a": [1.0, 2.0]}}, headers=auth)
    history = "/api/2.0/mlflow/metrics/get-history"
    r = client.get(history, params={"run_id": run_id, "metric_key": "a", "page_token": "2", "max_results": 1}, headers=auth)
    assert r.status_code == 200 and r.json() == {"metrics": []}, r.text
    r = client.get(history, params={"run_id": run_id, "metric_key": "a", "page_token": "x"}, headers=auth)
    assert r.status_code == 400 and "page_token" in r.json()["message"], r.text
    experiment = client.get(
        "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": project.slug}, headers=auth
    ).json()["experiment"]["experiment_id"]
    search = {"experiment_ids": [experiment]}
    assert len(client.post("/api/2.0/mlflow/runs/search", json=search, headers=auth).json()["runs"]) == 1
    r = client.post("/api/2.0/mlflow/runs/search", json=search | {"page_token": "1000000"}, headers=auth)
    assert r.status_code == 200 and r.json() == {"runs": []}, r.text
    r = client.post("/api/2.0/mlflow/runs/search", json=search | {"page_token": str(10**30)}, headers=auth)
    assert r.status_code == 200 and r.json() == {"runs": []}, r.text


def test_cursors_beyond_64_bits_are_a_4xx(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    huge = 10**30
    auth = project.auth()
    r = client.get(f"/api/v1/projects/{project.slug}/runs", params={"cursor": str(huge)}, headers=auth)
    assert r.status_code == 422, r.text
    r = client.get("/api/2.0/mlflow/metrics/get-history", params={"run_id": run_id, "metric_key": "a", "page_token": str(huge)}, headers=auth)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text


def test_text_the_database_refuses_is_a_4xx_and_stores_nothing(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    # PostgreSQL text cannot hold NUL; psycopg refuses it before sending, with no sqlstate.
    # SQLite stores it. Either way: never a 500, and a refusal leaves nothing behind.
    auth = project.auth()
    before = client.get(f"/api/v1/projects/{project.slug}/runs", headers=auth).json()["runs"]
    for body in ({"name": "x\u0000y"}, {"name": "x", "label": "a\u0000"}, {"name": "x", "external_id": "a\u0000"}):
        r = client.post(f"/api/v1/projects/{project.slug}/runs", json=body, headers=auth)
        assert r.status_code in (201, 422), r.text
        if r.status_code == 422:
            assert "NUL" in r.json()["detail"]
            assert client.get(f"/api/v1/projects/{project.slug}/runs", headers=auth).json()["runs"] == before
        before = client.get(f"/api/v1/projects/{project.slug}/runs", headers=auth).json()["runs"]
    r = client.post("/api/v1/notes", json={"runs": [run_id], "step": 0, "text": "a\u0000b"}, headers=auth)
    assert r.status_code in (201, 422), r.text
    r = client.get(f"/api/v1/projects/{project.slug}/runs", params={"q": "a\u0000"}, headers=auth)
    assert r.status_code in (200, 422), r.text


def test_a_failed_unit_of_work_keeps_no_run_it_created(database: Database, project: ProjectFixture) -> None:
    # RunStore.create inserts under a savepoint. On SQLite the savepoint must sit inside the
    # request's transaction: standing alone, its RELEASE committed the run for good.
    for external_id in (None, "slurm-1"):
        with pytest.raises(RuntimeError), database.session() as session:
            session.execute(text("SELECT 1"))
            RunStore(session).create(project.id, name="doomed", config={}, tags=[], external_id=external_id)
            raise RuntimeError("the request failed after creating its run")
    with database.session() as session:
        assert RunStore(session).list(project.id).runs == []
        run, created = RunStore(session).create(project.id, name="kept", config={}, tags=[], external_id="slurm-1")
        assert created
    with database.session() as session:
        again, created = RunStore(session).create(project.id, name="kept", config={}, tags=[], external_id="slurm-1")
        assert not created and again.id == run.id


def _nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_config_nested_too_deep_is_refused_and_the_run_list_keeps_working(
    client: TestClient, project: ProjectFixture, run_id: int
) -> None:
    # Deeper than the response serializer goes, such a config was stored with a 500 and then
    # broke every read of the run and of the project's run list.
    auth = project.auth()
    r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "deep", "config": _nested(300)}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"].startswith("config"), r.text
    r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "deep", "engine": _nested(300)}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"].startswith("engine"), r.text
    r = client.patch(f"/api/v1/runs/{run_id}", json={"config": _nested(300)}, headers=auth)
    assert r.status_code == 422 and r.json()["detail"].startswith("config"), r.text
    r = client.patch(f"/api/v1/runs/{run_id}", json={"config": _nested(64)}, headers=auth)
    assert r.status_code == 200, r.text
    runs = client.get(f"/api/v1/projects/{project.slug}/runs", headers=auth)
    assert runs.status_code == 200 and [r["id"] for r in runs.json()["runs"]] == [run_id]


def test_token_scopes(client: TestClient, database: Database, project: ProjectFixture) -> None:
    run = _create(client, project, name="mine")
    other = make_project(database, "other")
    base = f"/api/v1/projects/{project.slug}/runs"
    # Read token cannot write.
    r = client.post(base, json={"name": "x"}, headers=project.auth("read"))
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    # Another project's tokens can neither read nor write here.
    assert client.get(f"/api/v1/runs/{run['id']}", headers=other.auth("read")).status_code == 403
    assert client.patch(f"/api/v1/runs/{run['id']}", json={"name": "y"}, headers=other.auth()).status_code == 403
    assert client.post(base, json={"name": "x"}, headers=other.auth()).status_code == 403
    # No token: 401.
    assert client.get(f"/api/v1/runs/{run['id']}").status_code == 401
    assert client.post(base, json={"name": "x"}).status_code == 401
    # Admin may do anything.
    assert client.get(f"/api/v1/runs/{run['id']}", headers=project.auth("admin")).status_code == 200


def test_public_reads(database_url: str, database: Database, project: ProjectFixture) -> None:
    from backend.app import create_app

    with TestClient(create_app(Settings(database_url=database_url, public_reads=True), database)) as c:
        run = c.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "x"}, headers=project.auth()).json()
        assert c.get(f"/api/v1/runs/{run['id']}").status_code == 200
        assert c.get("/api/v1/projects").status_code == 200
        # Writes still need a token.
        assert c.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "y"}).status_code == 401


def test_public_reads_default_follows_the_backend() -> None:
    assert Settings(database_url="sqlite:///x.db").reads_are_public is True
    assert Settings(database_url="postgresql+psycopg://h/db").reads_are_public is False
    assert Settings(database_url="postgresql+psycopg://h/db", public_reads=True).reads_are_public is True
