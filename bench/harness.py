"""What every benchmark needs: a fresh database, a project with a token, and a real server.

Benchmarks time `parityscope serve` as a separate process, as users run it, never the app
in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.db import Database, make_engine, upgrade  # noqa: E402
from backend.domain import Scope  # noqa: E402
from backend.storage.projects import ProjectStore  # noqa: E402
from backend.storage.tokens import TokenStore  # noqa: E402
from tests.conftest import free_port, wait_for_http  # noqa: E402

PG = os.environ.get("PARITYSCOPE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")


def fresh_postgres(name: str) -> str:
    """Create (or re-create) database ``name``, migrate it, and return its SQLAlchemy URL."""
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    upgrade(url)
    return url


def drop_postgres(name: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def project_token(url: str, slug: str, scope: Scope) -> str:
    """Create project ``slug`` on a migrated database and return a token of ``scope`` for it."""
    database = Database(make_engine(url))
    with database.session() as session:
        project = ProjectStore(session).create(slug, slug.title())
        token = TokenStore(session).issue(scope, project.id).secret
    database.engine.dispose()
    return token


@contextmanager
def running_server(database_url: str, workers: int = 1) -> Iterator[str]:
    """`parityscope serve` with ``workers`` processes on a free port for the duration; yields
    its base URL."""
    port = free_port()
    env = os.environ | {"PARITYSCOPE_DATABASE_URL": database_url, "PARITYSCOPE_WORKERS": str(workers)}
    server = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthz", timeout=120.0)  # a loaded machine starts slowly
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.returncode not in (0, -15) and server.stderr is not None:
            print(server.stderr.read().decode(), file=sys.stderr)
