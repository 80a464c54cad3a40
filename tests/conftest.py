"""Test databases: every test gets its own, copied from one migrated template per backend.

PostgreSQL tests use ``CREATE DATABASE … TEMPLATE``; SQLite tests copy a migrated file. With
``CI=true`` an unreachable PostgreSQL fails the run instead of skipping its half.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.db import Database, make_engine, upgrade
from backend.domain import Scope
from backend.settings import Settings
from backend.storage.projects import ProjectStore
from backend.storage.tokens import TokenStore

PG_ADMIN_DSN = os.environ.get("PARITYSCOPE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{dbname}"


def _pg_admin() -> psycopg.Connection:
    return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def pg_template(worker_id: str) -> Iterator[str]:
    try:
        conn = _pg_admin()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI and is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    name = f"ps_template_{worker_id}_{os.getpid()}"
    with conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(_pg_url(name))
    make_engine(_pg_url(name)).dispose()
    yield name
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


def fresh_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("pg_template")
    name = f"ps_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    try:
        yield _pg_url(name)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database on each backend in turn."""
    yield from fresh_database_url(request.param, request, tmp_path)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Private reads unless a test says otherwise, so token checks are exercised on both backends.
    return Settings(database_url=database_url, public_reads=False, artifact_root=str(tmp_path / "artifacts"))


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database(make_engine(settings.database_url))
    yield db
    db.engine.dispose()


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database)) as test_client:
        yield test_client


@dataclass
class ProjectFixture:
    slug: str
    id: int
    write: str
    read: str
    admin: str

    def auth(self, scope: str = "write") -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, scope)}"}


def make_project(database: Database, slug: str = "alpha") -> ProjectFixture:
    with database.session() as session:
        project = ProjectStore(session).create(slug, slug.title())
        tokens = TokenStore(session)
        write = tokens.issue(Scope.WRITE, project.id).secret
        read = tokens.issue(Scope.READ, project.id).secret
        admin = tokens.issue(Scope.ADMIN, None).secret
    return ProjectFixture(slug=slug, id=project.id, write=write, read=read, admin=admin)


@pytest.fixture
def project(database: Database) -> ProjectFixture:
    """A project with a write, a read and an admin token."""
    return make_project(database)


@pytest.fixture
def run_id(client: TestClient, project: ProjectFixture) -> int:
    response = client.post(
        f"/api/v1/projects/{project.slug}/runs",
        json={"name": "reference", "config": {"seed": 1}},
        headers=project.auth(),
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


class LiveServer:
    """The app served by uvicorn over real HTTP in a background thread, on a fixed port so a
    test can stop it (the server goes away) and start it again (it comes back at the same URL)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.app = create_app(settings, database)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._thread = None

    def start(self) -> None:
        import threading
        import time

        import uvicorn

        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            self._server = None
            self._thread = None


@pytest.fixture
def live_server_control(settings: Settings, database: Database) -> Iterator[LiveServer]:
    """A started ``LiveServer`` over the test's database; ``stop()``/``start()`` simulate an outage."""
    server = LiveServer(settings, database)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_server(live_server_control: LiveServer) -> str:
    """Base URL of the app served over real HTTP on 127.0.0.1 (no trailing slash)."""
    return live_server_control.url
