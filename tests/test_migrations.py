"""Migrations build the schema from empty, match the models, and gate the server."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from backend.db import check_schema, head_revision, make_engine, prepare_database, upgrade
from backend.errors import SchemaOutOfDate
from backend.models import Base


def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"


def test_upgrade_from_empty_sqlite(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= {
        "project", "api_token", "run", "metric_key", "metric_point", "alembic_version",
    }
    check_schema(engine, url)


def test_stale_postgresql_is_refused_with_the_upgrade_command(request, tmp_path) -> None:
    from tests.conftest import fresh_database_url

    gen = fresh_database_url("postgresql", request, tmp_path)
    url = next(gen)
    try:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'old'")
        with pytest.raises(SchemaOutOfDate, match="parityscope db upgrade"):
            prepare_database(url)
        engine.dispose()
    finally:
        gen.close()


def test_sqlite_is_migrated_on_first_use(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'first.db'}"
    engine = prepare_database(url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision(url)
