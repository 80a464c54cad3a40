from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import ProjectFixture, make_project


def test_admin_creates_project(client: TestClient, project: ProjectFixture) -> None:
    r = client.post("/api/v1/projects", json={"slug": "beta", "name": "Beta"}, headers=project.auth("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["slug"] == "beta"
    listed = client.get("/api/v1/projects", headers=project.auth("admin")).json()
    assert [p["slug"] for p in listed] == ["alpha", "beta"]


def test_project_creation_needs_admin(client: TestClient, project: ProjectFixture) -> None:
    assert client.post("/api/v1/projects", json={"slug": "x", "name": "X"}).status_code == 401
    r = client.post("/api/v1/projects", json={"slug": "x", "name": "X"}, headers=project.auth("write"))
    assert r.status_code == 403
    assert "admin" in r.json()["detail"]


def test_bad_and_duplicate_slug(client: TestClient, project: ProjectFixture) -> None:
    admin = project.auth("admin")
    r = client.post("/api/v1/projects", json={"slug": "Bad Slug!", "name": "X"}, headers=admin)
    assert r.status_code == 422 and "slug" in r.json()["detail"]
    r = client.post("/api/v1/projects", json={"slug": "alpha", "name": "Again"}, headers=admin)
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = client.post("/api/v1/projects", json={"name": "no slug"}, headers=admin)
    assert r.status_code == 422 and "slug" in r.json()["detail"]


def test_project_token_lists_only_its_project(client: TestClient, database, project: ProjectFixture) -> None:
    other = make_project(database, "gamma")
    listed = client.get("/api/v1/projects", headers=other.auth("read")).json()
    assert [p["slug"] for p in listed] == ["gamma"]


def test_listing_without_token_on_private_deployment(client: TestClient, project: ProjectFixture) -> None:
    assert client.get("/api/v1/projects").status_code == 401
    r = client.get("/api/v1/projects", headers={"Authorization": "Bearer pst_nope"})
    assert r.status_code == 401 and "unknown" in r.json()["detail"]
    r = client.get("/api/v1/projects", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_racing_creations_of_one_slug_get_201_and_409_never_500(live_server: str, project: ProjectFixture) -> None:
    import threading

    import httpx

    statuses: list[int] = []
    for attempt in range(5):
        barrier = threading.Barrier(4)

        def create(slug: str = f"race-{attempt}", barrier: threading.Barrier = barrier) -> None:
            with httpx.Client(base_url=live_server, headers=project.auth("admin")) as http:
                barrier.wait(timeout=10)
                statuses.append(http.post("/api/v1/projects", json={"slug": slug, "name": "Race"}).status_code)

        threads = [threading.Thread(target=create) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(set(statuses)) in ([201, 409], [201])
    assert statuses.count(201) == 5
