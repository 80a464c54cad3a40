"""Share links: /api/v1/shares (make, list, revoke) and /api/v1/s/{token} (read)."""

from __future__ import annotations

from datetime import timedelta

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from backend.db import Database
from backend.models import ShareLinkRow, utcnow
from backend.storage.tokens import hash_secret
from tests.conftest import ProjectFixture, make_project

METRICS = ("clamp_log_ratio_new_old_indicator", "kl_new_old", "entropy", "reward")


def _run(client: TestClient, project: ProjectFixture, name: str, steps: range, offset: float = 0.0) -> int:
    r = client.post(
        f"/api/v1/projects/{project.slug}/runs",
        json={"name": name, "config": {"seed": 1, "logprobs_mode": "processed_logprobs"}},
        headers=project.auth(),
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    _points(client, project, run_id, steps, offset)
    return run_id


def _points(client: TestClient, project: ProjectFixture, run_id: int, steps: range, offset: float = 0.0) -> None:
    values = {m: [0.1 + offset + 0.001 * (s % 7) for s in steps] for m in METRICS}
    r = client.post(
        f"/api/v1/runs/{run_id}/metrics",
        content=orjson.dumps({"steps": list(steps), "values": values}),
        headers=project.auth() | {"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text


def _share(client: TestClient, project: ProjectFixture, view: dict, **body) -> dict:
    r = client.post("/api/v1/shares", json={"view": view, **body}, headers=project.auth())
    assert r.status_code == 201, r.text
    return r.json()


def _open(client: TestClient, url: str, **params) -> dict:
    r = client.get(f"/api/v1{url}", params=params)  # no Authorization: the link is the credential
    assert r.status_code == 200, r.text
    return r.json()


def test_a_link_restores_the_view_and_stores_only_a_hash(
    client: TestClient, database: Database, project: ProjectFixture
) -> None:
    ref = _run(client, project, "reference", range(50))
    cand = _run(client, project, "candidate", range(50), offset=0.5)
    view = {
        "reference": [ref],
        "candidates": [cand],
        "metrics": ["kl", "reward"],
        "smoothing": 0.6,
        "mode": "diff",
        "log_y": True,
        "x_range": [5, 40],
        "max_points": 500,
    }
    made = _share(client, project, view, expires_in_hours=24)
    assert made["url"] == f"/s/{made['token']}" and made["token"].startswith("pss_")
    assert made["frozen"] is False and made["runs"] == [ref, cand]
    assert made["expires_at"] is not None
    with database.session() as session:
        row = session.scalar(select(ShareLinkRow).where(ShareLinkRow.id == made["id"]))
        assert row.token_hash == hash_secret(made["token"])
        assert made["token"] not in orjson.dumps(
            {"view": row.view, "runs": row.run_ids, "hash": row.token_hash}
        ).decode()
    opened = _open(client, f"/s/{made['token']}")
    assert opened["share"]["view"] == view
    assert opened["share"]["frozen"] is False
    comparison = opened["data"]["comparison"]
    assert list(comparison["metrics"]) == ["kl", "reward"]
    assert comparison["settings"]["smoothing"] == 0.6 and comparison["settings"]["max_points"] == 500
    assert set(comparison["runs"]) == {str(ref), str(cand)}
    # A live link may be redrawn with another smoothing; the runs and metrics stay the link's.
    resmoothed = _open(client, f"/s/{made['token']}", smoothing=0.0)
    assert resmoothed["data"]["comparison"]["settings"]["smoothing"] == 0.0
    statuses = _open(client, f"/s/{made['token']}/runs")
    assert [(r["id"], r["status"], r["last_step"]) for r in statuses] == [(ref, "running", 49), (cand, "running", 49)]
    # The link opens its own view only: it is no API token for anything else.
    other = _run(client, project, "not shared", range(5))
    as_bearer = {"Authorization": f"Bearer {made['token']}"}
    assert client.get(f"/api/v1/runs/{other}", headers=as_bearer).status_code == 401
    assert client.get(f"/api/v1/runs/{ref}/metrics", headers=as_bearer).status_code == 401
    assert str(other) not in _open(client, f"/s/{made['token']}")["data"]["comparison"]["runs"]
    # Listing shows the link without its secret.
    (listed,) = client.get(f"/api/v1/projects/{project.slug}/shares", headers=project.auth()).json()
    assert listed["id"] == made["id"] and listed["token"] is None and listed["url"] is None
    # A view on relative wall time keeps its axis; one on steps is stored as before.
    timed = _share(client, project, view | {"x_axis": "time", "x_range": [10.5, 80.0]})
    assert _open(client, f"/s/{timed['token']}")["share"]["view"] == view | {"x_axis": "time", "x_range": [10.5, 80.0]}
    stepped = _share(client, project, view | {"x_axis": "step"})
    assert _open(client, f"/s/{stepped['token']}")["share"]["view"] == view


def test_a_frozen_link_ignores_points_posted_later(client: TestClient, project: ProjectFixture) -> None:
    ref = _run(client, project, "reference", range(30))
    cand = _run(client, project, "candidate", range(30))
    client.post("/api/v1/notes", json={"runs": [ref, cand], "step": 10, "text": "before"}, headers=project.auth())
    view = {"reference": [ref], "candidates": [cand]}
    frozen = _share(client, project, view, frozen=True)
    live = _share(client, project, view)
    _points(client, project, cand, range(30, 60), offset=3.0)
    client.post("/api/v1/notes", json={"runs": [ref, cand], "step": 40, "text": "after"}, headers=project.auth())

    def last_x(opened: dict) -> int:
        series = opened["data"]["comparison"]["metrics"]["reward"]["series"]
        return max(s["x"][-1] for s in series)

    then = _open(client, frozen["url"])
    now = _open(client, live["url"])
    assert then["share"]["frozen"] is True
    assert last_x(then) == 29 and last_x(now) == 59
    assert [n["text"] for n in then["data"]["notes"]] == ["before"]
    assert [n["text"] for n in now["data"]["notes"]] == ["before", "after"]
    assert then["data"]["comparison"]["runs"][str(cand)]["last_step"] == 29
    r = client.get(f"/api/v1{frozen['url']}", params={"smoothing": 0.5})
    assert r.status_code == 422 and "frozen" in r.json()["detail"]


def test_revoked_expired_and_unknown_links_are_refused(
    client: TestClient, database: Database, project: ProjectFixture
) -> None:
    ref = _run(client, project, "reference", range(10))
    revoked = _share(client, project, {"reference": [ref]})
    expired = _share(client, project, {"reference": [ref]}, expires_in_hours=1)
    r = client.delete(f"/api/v1/shares/{revoked['id']}", headers=project.auth())
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    for path in (revoked["url"], revoked["url"] + "/runs"):
        r = client.get(f"/api/v1{path}")
        assert r.status_code == 410 and "revoked" in r.json()["detail"]
    with database.session() as session:
        session.execute(
            update(ShareLinkRow)
            .where(ShareLinkRow.id == expired["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    r = client.get(f"/api/v1{expired['url']}")
    assert r.status_code == 410 and "expired" in r.json()["detail"]
    assert client.get("/api/v1/s/pss_nothing-like-this").status_code == 404
    assert client.get("/api/v1/s/" + "x" * 200).status_code == 422
    # Revoking again keeps the first revocation; unknown ids are 404.
    again = client.delete(f"/api/v1/shares/{revoked['id']}", headers=project.auth()).json()
    assert again["revoked_at"] == r_json_revoked(client, project, revoked["id"])
    assert client.delete("/api/v1/shares/99999", headers=project.auth()).status_code == 404


def r_json_revoked(client: TestClient, project: ProjectFixture, share_id: int) -> str:
    links = client.get(f"/api/v1/projects/{project.slug}/shares", headers=project.auth()).json()
    return next(link["revoked_at"] for link in links if link["id"] == share_id)


def test_bad_share_requests_store_nothing(client: TestClient, database: Database, project: ProjectFixture) -> None:
    ref = _run(client, project, "reference", range(10))
    cand = _run(client, project, "candidate", range(10))
    other = make_project(database, "other")
    foreign = client.post(f"/api/v1/projects/{other.slug}/runs", json={"name": "theirs"}, headers=other.auth()).json()["id"]
    good = {"reference": [ref], "candidates": [cand]}
    cases = [
        ({"view": {"candidates": [cand]}}, 422, "reference"),
        ({"view": {"reference": []}}, 422, "reference"),
        ({"view": {"reference": [ref], "candidates": [ref]}}, 422, "both a reference and a candidate"),
        ({"view": {"reference": [ref, ref]}}, 422, "more than once"),
        ({"view": good | {"smoothing": 1.0}}, 422, "smoothing"),
        ({"view": good | {"mode": "sideways"}}, 422, "mode"),
        ({"view": good | {"x_range": [10, 5]}}, 422, "x_range"),
        ({"view": good | {"x_range": [1]}}, 422, "x_range"),
        ({"view": good | {"x_axis": "wall"}}, 422, "x_axis"),
        ({"view": good | {"max_points": 5}}, 422, "max_points"),
        ({"view": good | {"metrics": []}}, 422, "metrics"),
        ({"view": good | {"metrics": ["no_such_metric"]}}, 422, "no_such_metric"),
        ({"view": good | {"colour": "red"}}, 422, "colour"),
        ({"view": good, "expires_in_hours": 0}, 422, "expires_in_hours"),
        ({"view": good, "frozen": "yes please"}, 422, "frozen"),
        ({"view": {"reference": [ref], "candidates": [99999]}}, 404, "99999"),
        ({"view": {"reference": [ref], "candidates": [foreign]}}, 403, "authorization"),
    ]
    for body, status, word in cases:
        r = client.post("/api/v1/shares", json=body, headers=project.auth())
        assert r.status_code == status, (body, r.text)
        assert word in r.json()["detail"], (body, r.json())
    assert client.post("/api/v1/shares", json={"view": good}).status_code == 401
    assert client.post("/api/v1/shares", json={"view": good}, headers=project.auth("read")).status_code == 403
    assert client.post("/api/v1/shares", json={"view": good}, headers=other.auth()).status_code == 403
    assert client.get(f"/api/v1/projects/{project.slug}/shares", headers=project.auth("read")).status_code == 403
    with database.session() as session:
        assert session.scalars(select(ShareLinkRow)).all() == []
    made = _share(client, project, good)
    assert client.delete(f"/api/v1/shares/{made['id']}", headers=other.auth()).status_code == 403
    assert client.delete(f"/api/v1/shares/{made['id']}").status_code == 401
    r = client.get(f"/api/v1{made['url']}", params={"smoothing": 2})
    assert r.status_code == 422 and "smoothing" in r.json()["detail"]


def test_a_comparison_lists_its_own_links(client: TestClient, project: ProjectFixture) -> None:
    ref = _run(client, project, "reference", range(30))
    cand = _run(client, project, "candidate", range(30), offset=0.5)
    other = _run(client, project, "other", range(30), offset=0.2)
    first = _share(client, project, {"reference": [ref], "candidates": [cand]}, frozen=True)
    second = _share(client, project, {"reference": [ref], "candidates": [cand], "smoothing": 0.5}, expires_in_hours=24)
    _share(client, project, {"reference": [ref], "candidates": [other]})  # another comparison
    client.delete(f"/api/v1/shares/{first['id']}", headers=project.auth()).raise_for_status()

    r = client.get("/api/v1/shares", params={"reference": ref, "candidates": cand}, headers=project.auth())
    assert r.status_code == 200, r.text
    links = r.json()
    # Both links of this comparison, newest first; the first one revoked; no secrets.
    assert [link["id"] for link in links] == [second["id"], first["id"]]
    assert [link["frozen"] for link in links] == [False, True]
    assert links[0]["expires_at"] is not None and links[0]["revoked_at"] is None
    assert links[1]["revoked_at"] is not None
    assert all(link["token"] is None and link["url"] is None for link in links)
    # Run order does not make another comparison.
    two = _share(client, project, {"reference": [ref], "candidates": [cand, other]})
    swapped = client.get("/api/v1/shares", params={"reference": ref, "candidates": f"{other},{cand}"}, headers=project.auth())
    assert [link["id"] for link in swapped.json()] == [two["id"]]


def test_listing_a_comparisons_links_needs_a_write_token_and_good_ids(
    client: TestClient, database: Database, project: ProjectFixture
) -> None:
    ref = _run(client, project, "reference", range(10))
    assert client.get("/api/v1/shares", params={"reference": ref}).status_code == 401
    assert client.get("/api/v1/shares", params={"reference": ref}, headers=project.auth("read")).status_code == 403
    r = client.get("/api/v1/shares", params={"reference": "x"}, headers=project.auth())
    assert r.status_code == 422 and "reference" in r.json()["detail"]
    r = client.get("/api/v1/shares", params={"reference": 999999}, headers=project.auth())
    assert r.status_code == 404
    r = client.get("/api/v1/shares", params={"reference": ref, "candidates": ref}, headers=project.auth())
    assert r.status_code == 422 and "also a reference" in r.json()["detail"]
    assert client.get("/api/v1/shares", params={"reference": ref}, headers=project.auth()).json() == []
    theirs = make_project(database, "theirs")
    assert client.get("/api/v1/shares", params={"reference": ref}, headers=theirs.auth()).status_code == 403
