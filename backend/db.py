"""Engine and sessions, and the schema check against the Alembic migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from backend.errors import SchemaOutOfDate

UPGRADE_COMMAND = "parityscope db upgrade"


def driver_connection(session: Session) -> Any:
    """The DB-API connection under ``session``'s transaction (a ``psycopg.Connection`` on
    PostgreSQL, a ``sqlite3.Connection`` on SQLite), for COPY and the hot statements that
    SQLAlchemy's handling would slow down."""
    return session.connection().connection.driver_connection


def migrations_dir() -> Path:
    """The migrations folder: bundled in a wheel, or the repository's own in a checkout."""
    bundled = Path(__file__).parent / "_bundled" / "migrations"
    if bundled.is_dir():
        return bundled
    return Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, statement_timeout: float | None = None, connect_timeout: int = 5) -> Engine:
    """An engine whose connection attempts give up after ``connect_timeout`` seconds and, with
    ``statement_timeout``, whose statements after that many seconds, so an outage answers 503
    in bounded time instead of holding requests (docs/RELIABILITY.md). Migrations run without
    a statement timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": statement_timeout or 30.0})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "savepoint")
        def _begin_before_savepoint(conn: Connection, _name: str) -> None:
            # pysqlite opens a transaction only before its first DML statement. A SAVEPOINT
            # outside a transaction starts one of its own that RELEASE commits, so a request
            # that failed after it (a run created, then a bad tag) would keep what it wrote.
            if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                conn.exec_driver_sql("BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    connect_args: dict[str, object] = {"connect_timeout": connect_timeout}
    if statement_timeout is not None:
        connect_args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
    return create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=statement_timeout or 30.0,
        connect_args=connect_args,
    )


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine, url: str) -> None:
    """Raise ``SchemaOutOfDate`` naming the upgrade command when the database lags the code."""
    current = current_revision(engine)
    head = head_revision(url)
    if current != head:
        raise SchemaOutOfDate(
            f"database schema is at revision {current or 'none'}, the code needs {head}; "
            f"run `{UPGRADE_COMMAND}` (with PARITYSCOPE_DATABASE_URL set) first"
        )


def prepare_database(url: str, *, statement_timeout: float | None = None, connect_timeout: int = 5) -> Engine:
    """Open the database; migrate SQLite in place (embedded use), refuse a stale PostgreSQL."""
    if url.startswith("sqlite"):
        upgrade(url)
    engine = make_engine(url, statement_timeout=statement_timeout, connect_timeout=connect_timeout)
    check_schema(engine, url)
    return engine


class Database:
    """Owns the engine and the session factory for one app instance."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any error, always close."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Run a trivial query; raises the driver's error when the database cannot answer."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
