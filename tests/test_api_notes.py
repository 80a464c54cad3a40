"""/api/v1/notes: a note pinned at a step of a comparison, for everyone who opens it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from backend.db import Database
from tests.conftest import ProjectFixture, make_project


def _run(client: TestClient, project: ProjectFixture, name: str) -> int:
    r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": name}, headers=project.auth())
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_note_belongs_to_its_run_set_in_any_order(client: TestClient, project: ProjectFixture) -> None:
    a, b, c = (_run(client, project, n) for n in ("ref", "v1", "v1-fixed"))
    r = client.post(
        "/api/v1/notes",
        json={"runs": [b, a], "step": 120, "text": "<b>weights</b> updated here", "author": "ana"},
        headers=project.auth(),
    )
    assert r.status_code == 201, r.text
    note = r.json()
    assert note["runs"] == sorted([a, b]) and note["step"] == 120 and note["author"] == "ana"
    assert note["text"] == "<b>weights</b> updated here" and note["source"] == "person"
    # Same runs in another order: the same comparison. A different run set: not.
    same = client.get("/api/v1/notes", params={"runs": f"{a},{b}"}, headers=project.auth("read")).json()
    assert [n["id"] for n in same] == [note["id"]]
    other = client.get("/api/v1/notes", params={"runs": f"{a},{b},{c}"}, headers=project.auth("read")).json()
    assert other == []
    # Notes come back by step.
    client.post("/api/v1/notes", json={"runs": [a, b], "step": 5, "text": "early"}, headers=project.auth())
    steps = [n["step"] for n in client.get("/api/v1/notes", params={"runs": f"{b},{a}"}, headers=project.auth("read")).json()]
    assert steps == [5, 120]


def test_deleting_a_note(client: TestClient, project: ProjectFixture) -> None:
    a = _run(client, project, "ref")
    note = client.post("/api/v1/notes", json={"runs": [a], "step": 1, "text": "x"}, headers=project.auth()).json()
    assert client.delete(f"/api/v1/notes/{note['id']}", headers=project.auth("read")).status_code == 403
    assert client.delete(f"/api/v1/notes/{note['id']}", headers=project.auth()).status_code == 204
    assert client.delete(f"/api/v1/notes/{note['id']}", headers=project.auth()).status_code == 404
    assert client.get("/api/v1/notes", params={"runs": str(a)}, headers=project.auth("read")).json() == []


def test_bad_notes_are_refused_and_nothing_is_stored(
    client: TestClient, database: Database, project: ProjectFixture
) -> None:
    a, b = _run(client, project, "ref"), _run(client, project, "cand")
    other = make_project(database, "other")
    foreign = client.post(f"/api/v1/projects/{other.slug}/runs", json={"name": "theirs"}, headers=other.auth()).json()["id"]
    cases = [
        ({"runs": [], "step": 1, "text": "x"}, 422, "runs"),
        ({"runs": [a, a], "step": 1, "text": "x"}, 422, "runs"),
        ({"runs": [a], "step": -1, "text": "x"}, 422, "step"),
        ({"runs": [a], "step": 1, "text": ""}, 422, "text"),
        ({"runs": [a], "step": 1, "text": "   "}, 422, "text"),
        ({"runs": [a], "step": 1, "text": "x" * 2001}, 422, "text"),
        ({"runs": [a], "step": 1, "text": "x", "colour": "red"}, 422, "colour"),
        ({"runs": [a, 99999], "step": 1, "text": "x"}, 404, "99999"),
        ({"runs": [a, foreign], "step": 1, "text": "x"}, 403, "no access to this project"),
    ]
    for body, status, word in cases:
        r = client.post("/api/v1/notes", json=body, headers=project.auth())
        assert r.status_code == status, (body, r.text)
        assert word in r.json()["detail"], (body, r.json())
    # Read tokens, other projects' tokens and no token cannot write.
    assert client.post("/api/v1/notes", json={"runs": [a], "step": 1, "text": "x"}, headers=project.auth("read")).status_code == 403
    assert client.post("/api/v1/notes", json={"runs": [a], "step": 1, "text": "x"}, headers=other.auth()).status_code == 403
    assert client.post("/api/v1/notes", json={"runs": [a], "step": 1, "text": "x"}).status_code == 401
    for runs, word in (("", "runs"), ("1,x", "runs"), (f"{a},{a}", "runs")):
        r = client.get("/api/v1/notes", params={"runs": runs}, headers=project.auth("read"))
        assert r.status_code == 422 and word in r.json()["detail"], (runs, r.text)
    assert client.get("/api/v1/notes", params={"runs": str(a)}, headers=other.auth("read")).status_code == 403
    assert client.get("/api/v1/notes", params={"runs": "99999"}, headers=project.auth("read")).status_code == 404
    assert client.get("/api/v1/notes", params={"runs": f"{a},{b}"}, headers=project.auth("read")).json() == []
    assert client.get("/api/v1/notes", params={"runs": str(a)}, headers=project.auth("read")).json() == []
