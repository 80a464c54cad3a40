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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_summaries_are_built_for_points_stored_before_the_summary_table(request, tmp_path, backend) -> None:
    from sqlalchemy import func, select, text

    from backend.db import Database
    from backend.models import MetricSummaryRow
    from backend.series_summary import LEVELS, point_buckets
    from backend.storage.metrics import MetricStore

    if backend == "sqlite":
        url, gen = f"sqlite:///{tmp_path / 'old.db'}", None
        upgrade(url, "0001")
    else:
        from tests.conftest import _pg_admin, _pg_url

        name = f"ps_test_backfill_{tmp_path.name[-20:]}".lower().replace("-", "_")
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        url, gen = _pg_url(name), name
        upgrade(url, "0001")
    try:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO project (id, slug, name, created_at) VALUES (1, 'p', 'P', CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO metric_key (id, name) VALUES (1, 'reward')"))
            conn.execute(
                text("INSERT INTO metric_point (run_id, key_id, step, value, wall_time) VALUES (7, 1, :s, :v, 0)"),
                [{"s": s, "v": float(s % 97)} for s in range(0, 5000, 3)],
            )
        engine.dispose()
        upgrade(url)
        database = Database(make_engine(url))
        with database.session() as session:
            steps, values = MetricStore(session).read_arrays(7, ["reward"])["reward"]
            for level in LEVELS:
                stored = session.execute(
                    select(func.count(), func.sum(MetricSummaryRow.count), func.max(MetricSummaryRow.max_value))
                    .where(MetricSummaryRow.run_id == 7, MetricSummaryRow.level == level)
                ).one()
                expected = point_buckets(steps, values, steps >> level)
                assert tuple(stored) == (len(expected), steps.size, 96.0)
        database.engine.dispose()
    finally:
        if gen is not None:
            with _pg_admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{gen}" WITH (FORCE)')
