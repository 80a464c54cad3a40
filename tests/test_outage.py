"""A database that cannot be reached is a 503 with Retry-After on every endpoint; errors of any
kind are JSON, carry the security headers and keep the connection (backend/api/errors.py)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from backend.api.security import CONTENT_SECURITY_POLICY
from backend.app import create_app
from backend.db import Database, make_engine
from backend.settings import Settings
from tests.conftest import LiveServer, ProjectFixture, free_port

AUTH = {"Authorization": "Bearer pst_whatever"}

ENDPOINTS = [
    ("GET", "/api/v1/projects", None),
    ("POST", "/api/v1/projects", {"slug": "a", "name": "A"}),
    ("GET", "/api/v1/projects/alpha/runs", None),
    ("POST", "/api/v1/projects/alpha/runs", {"name": "r"}),
    ("GET", "/api/v1/runs/1", None),
    ("PATCH", "/api/v1/runs/1", {"name": "x"}),
    ("GET", "/api/v1/runs/1/metrics", None),
    ("POST", "/api/v1/runs/1/metrics", {"steps": [0], "values": {"a": [1.0]}}),
    ("GET", "/api/v1/runs/1/keys", None),
    ("GET", "/api/v1/compare?reference=1", None),
    ("GET", "/api/v1/jobs/1", None),
    ("POST", "/api/v1/legs/claim", {"worker": "w", "engines": ["torch"]}),
    ("GET", "/api/v1/projects/alpha/run-summaries", None),
    ("DELETE", "/api/v1/shares/1", None),
    ("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=x", None),
    ("POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": ["1"]}),
    ("POST", "/api/2.0/mlflow/runs/log-metric", {"run_id": "a", "key": "k", "value": 1.0, "timestamp": 0}),
]


@pytest.fixture
def unreachable_settings() -> Settings:
    # A real PostgreSQL URL on a port where nothing listens: every connection is refused.
    return Settings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
        public_reads=False,
        retry_after_seconds=3,
    )


@pytest.fixture
def unreachable(unreachable_settings: Settings) -> Iterator[TestClient]:
    database = Database(make_engine(unreachable_settings.database_url, statement_timeout=5, connect_timeout=2))
    with TestClient(create_app(unreachable_settings, database)) as client:
        yield client
    database.engine.dispose()


def _assert_security_headers(headers: object) -> None:
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY  # type: ignore[index]
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]
    assert headers["x-frame-options"] == "DENY"  # type: ignore[index]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_an_unreachable_database_is_503_with_retry_after(
    unreachable: TestClient, method: str, path: str, body: dict | None
) -> None:
    r = unreachable.request(method, path, json=body, headers=AUTH)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "3"
    assert r.headers["content-type"] == "application/json"
    _assert_security_headers(r.headers)
    if path.startswith("/api/2.0/mlflow"):
        assert r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert r.json()["message"].startswith("database: temporarily unavailable")
    else:
        assert r.json()["detail"].startswith("database: temporarily unavailable")


def test_healthz_answers_while_readyz_reports_the_database(unreachable: TestClient) -> None:
    assert unreachable.get("/healthz").status_code == 200
    r = unreachable.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "3"
    assert r.json()["detail"].startswith("database")


def test_readyz_is_200_with_a_database(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready", "database": "ok"}


def _raw(connection: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, dict, bytes]:
    payload = None if body is None else json.dumps(body).encode()
    headers = {**AUTH, "content-type": "application/json"}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def test_the_connection_stays_usable_through_an_outage(unreachable_settings: Settings) -> None:
    database = Database(make_engine(unreachable_settings.database_url, connect_timeout=2))
    server = LiveServer(unreachable_settings, database)
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
        connection.connect()
        socket_before = connection.sock
        statuses = [
            _raw(connection, "GET", "/api/v1/runs/1")[0],
            _raw(connection, "POST", "/api/v1/runs/1/metrics", {"steps": [0], "values": {"a": [1.0]}})[0],
            _raw(connection, "POST", "/api/2.0/mlflow/runs/search", {"experiment_ids": ["1"]})[0],
            _raw(connection, "GET", "/healthz")[0],
        ]
        assert statuses == [503, 503, 503, 200]
        # One keep-alive connection carried all four: the server closed nothing.
        assert connection.sock is socket_before
        connection.close()
    finally:
        server.stop()
        database.engine.dispose()


def test_an_unexpected_error_is_json_with_headers_on_a_kept_connection(settings: Settings, database: Database) -> None:
    app = create_app(settings, database)

    @app.get("/test-only/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    server = LiveServer(settings, database)
    server.app = app
    server.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
        status, headers, body = _raw(connection, "GET", "/test-only/boom")
        assert status == 500
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["detail"].startswith("internal error")
        assert "a bug" not in body.decode()
        _assert_security_headers(headers)
        assert headers.get("connection") != "close"
        status, _, _ = _raw(connection, "GET", "/healthz")
        assert status == 200
        connection.close()
    finally:
        server.stop()


def test_a_database_terminated_mid_test_is_503_then_recovers(
    settings: Settings, database: Database, project: ProjectFixture, client: TestClient
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("terminating backends is a PostgreSQL operation")
    import psycopg

    from tests.conftest import PG_ADMIN_DSN

    dbname = settings.database_url.rsplit("/", 1)[-1]
    auth = project.auth()
    assert client.get(f"/api/v1/projects/{project.slug}/runs", headers=auth).status_code == 200
    # Connections refused while the database is closed to new ones, then every pooled one killed.
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        try:
            r = client.get(f"/api/v1/projects/{project.slug}/runs", headers=auth)
            assert r.status_code == 503, r.text
            assert "retry-after" in r.headers
            r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "during"}, headers=auth)
            assert r.status_code == 503, r.text
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    # Recovery without a restart.
    r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "after"}, headers=auth)
    assert r.status_code == 201, r.text
    names = [run["name"] for run in client.get(f"/api/v1/projects/{project.slug}/runs", headers=auth).json()["runs"]]
    assert names == ["after"]


def test_the_statement_timeout_cancels_a_slow_statement_as_an_outage(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("statement_timeout is PostgreSQL's; SQLite's setting bounds its lock wait")
    from sqlalchemy import text

    from backend.api.errors import is_outage

    engine = make_engine(database_url, statement_timeout=0.2)
    try:
        with engine.connect() as conn, pytest.raises(Exception) as cancelled:
            conn.execute(text("SELECT pg_sleep(2)"))
        assert "statement timeout" in str(cancelled.value)
        assert is_outage(cancelled.value)
    finally:
        engine.dispose()


def test_a_locked_sqlite_database_is_503_then_recovers(tmp_path, sqlite_template) -> None:  # noqa: ANN001
    # SQLite's outage: another process holds the write lock longer than a statement may wait.
    import shutil
    import sqlite3

    from tests.conftest import make_project

    path = tmp_path / "locked.db"
    shutil.copyfile(sqlite_template, path)
    settings = Settings(database_url=f"sqlite:///{path}", public_reads=False, retry_after_seconds=1)
    database = Database(make_engine(settings.database_url, statement_timeout=0.3))
    project = make_project(database)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with TestClient(create_app(settings, database)) as client:
            holder.execute("BEGIN EXCLUSIVE")
            r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "blocked"}, headers=project.auth())
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1"
            assert r.json()["detail"].startswith("database: temporarily unavailable")
            holder.execute("ROLLBACK")
            r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "after"}, headers=project.auth())
            assert r.status_code == 201, r.text
            runs = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"]
            assert [run["name"] for run in runs] == ["after"]
    finally:
        holder.close()
        database.engine.dispose()
