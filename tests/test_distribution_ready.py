"""The schema is ready to distribute metric points by run (docs/SCALING.md).

Citus co-locates and routes a query on a distributed table by its distribution column, and
PostgreSQL prunes partitions by the partition key; both need every statement on a per-run table
to say which run (or runs) it touches, and every primary key to start with ``run_id``. A per-run
table is any table with ``run_id`` in its primary key, so a table added later is checked too.

The API's ingest, read, compare, sparkline and MLflow paths run on PostgreSQL with every
statement captured at the driver (psycopg's cursor, which both SQLAlchemy and the storage layer's
raw COPY and merge statements go through). Each statement that writes a per-run table names
``run_id`` among its columns; each one that reads one is explained with sequential scans
disabled, and every scan of a per-run table must find its rows through an index condition on
``run_id``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from backend.db import Database
from backend.models import Base
from tests.conftest import ProjectFixture, fresh_database_url

PER_RUN_TABLES = sorted(
    table.name for table in Base.metadata.tables.values() if "run_id" in table.primary_key.columns
)
_MENTIONS = re.compile(r"\b(" + "|".join(PER_RUN_TABLES) + r")\b")
_WRITES = re.compile(r"\b(?:INSERT\s+INTO|COPY)\s+(" + "|".join(PER_RUN_TABLES) + r")\s*\(([^)]*)\)", re.I)
_MODIFIES = re.compile(r"\b(?:UPDATE|DELETE\s+FROM)\s+(" + "|".join(PER_RUN_TABLES) + r")\b", re.I)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database_url("postgresql", request, tmp_path)


def test_per_run_primary_keys_start_with_run_id(database: Database) -> None:
    assert "metric_point" in PER_RUN_TABLES
    live = inspect(database.engine)
    for name in PER_RUN_TABLES:
        # The migrated database, not only the models, is what gets distributed.
        assert live.get_pk_constraint(name)["constrained_columns"][0] == "run_id", name
        assert Base.metadata.tables[name].primary_key.columns.keys()[0] == "run_id", name


def _scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


def _index_conditions(node: dict[str, Any]) -> str:
    # A bitmap heap scan finds its rows through the bitmap index scans below it.
    conditions = [node.get("Index Cond", "")]
    conditions += [n.get("Index Cond", "") for n in _scans(node) if n["Node Type"] == "Bitmap Index Scan"]
    return " ".join(conditions)


def _exercise(client: TestClient, project: ProjectFixture) -> None:
    auth, read = project.auth(), project.auth("read")
    runs = []
    for name in ("ref", "replica", "cand"):
        r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": name}, headers=auth)
        assert r.status_code == 201, r.text
        runs.append(r.json()["id"])
    steps = list(range(300))
    for offset, run_id in enumerate(runs):
        body = {"steps": steps, "values": {key: [0.01 * (s % 17) + offset * 0.001 for s in steps]
                                           for key in ("rl/reward", "kl_new_old", "entropy")}}
        for _ in range(2):  # an append, then the same steps again: the replace path
            r = client.post(f"/api/v1/runs/{run_id}/metrics", content=orjson.dumps(body),
                            headers=auth | {"content-type": "application/json"})
            assert r.status_code == 200, r.text
    ref, replica, cand = runs
    for params in ({}, {"keys": "entropy", "start": 10, "end": 20}):
        assert client.get(f"/api/v1/runs/{ref}/metrics", params=params, headers=read).status_code == 200
    assert client.get(f"/api/v1/runs/{ref}/keys", headers=read).status_code == 200
    for include in ("overlay", None):
        params = {"reference": f"{ref},{replica}", "candidates": cand} | ({"include": include} if include else {})
        r = client.get("/api/v1/compare", params=params, headers=read)
        assert r.status_code == 200, r.text
    r = client.get(f"/api/v1/projects/{project.slug}/run-summaries", params={"metric": "reward"}, headers=read)
    assert r.status_code == 200 and r.json()["runs"][0]["sparkline"]["x"], r.text
    mlflow = "/api/2.0/mlflow"
    r = client.post(f"{mlflow}/runs/log-batch", headers=auth, json={
        "run_id": str(ref), "metrics": [{"key": "entropy", "value": 1.0, "timestamp": 0, "step": 5}]})
    assert r.status_code == 200, r.text
    r = client.get(f"{mlflow}/metrics/get-history", params={"run_id": str(ref), "metric_key": "entropy"},
                   headers=read)
    assert r.status_code == 200 and r.json()["metrics"], r.text
    r = client.post(f"{mlflow}/runs/search", json={"experiment_ids": [str(project.id)]}, headers=read)
    assert r.status_code == 200 and r.json()["runs"][0]["data"]["metrics"], r.text


def test_every_statement_on_per_run_tables_filters_by_run(
    client: TestClient, database: Database, project: ProjectFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: list[tuple[str, Any]] = []
    execute, copy = psycopg.Cursor.execute, psycopg.Cursor.copy

    def capturing_execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(query, str) and _MENTIONS.search(query):
            captured.append((query, params))
        return execute(self, query, params, **kwargs)

    def capturing_copy(self, statement, params=None, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(statement, str) and _MENTIONS.search(statement):
            captured.append((statement, params))
        return copy(self, statement, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", capturing_execute)
    monkeypatch.setattr(psycopg.Cursor, "copy", capturing_copy)
    try:
        _exercise(client, project)
    finally:
        monkeypatch.undo()

    writes = reads = 0
    with database.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            for statement, parameters in captured:
                written = _WRITES.search(statement)
                if written or _MODIFIES.search(statement):
                    # Rows written carry their run (INSERT, COPY); an UPDATE or DELETE is read
                    # like a query below. The merge's source is a temporary table of this batch.
                    if written:
                        assert "run_id" in written.group(2), statement
                        writes += 1
                        continue
                cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters or None)
                plan = cursor.fetchone()[0][0]["Plan"]
                scans = [n for n in _scans(plan)
                         if n.get("Relation Name") in PER_RUN_TABLES and n["Node Type"] != "ModifyTable"]
                assert scans, statement
                for node in scans:
                    assert node["Node Type"] in {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}, \
                        (node["Node Type"], statement)
                    assert "run_id" in _index_conditions(node), (node, statement)
                reads += 1
            raw.rollback()
    # The append (COPY), the replace (merge), the MLflow batch, and every read path were seen.
    assert writes >= 3 and reads >= 8, (writes, reads)


def test_an_append_to_a_run_newer_than_the_statistics_reads_only_its_batch(
    client: TestClient, database: Database, project: ProjectFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run created after the last ANALYZE is outside the statistics, so the planner estimates
    its points at about one row. Every statement of an append must still find only the rows near
    the batch by index, not read the run's points whole (docs/SCALING.md, "Single-node limits")."""
    auth = project.auth()
    keys = ("rl/reward", "kl_new_old", "entropy")

    def post(run_id: int, lo: int) -> None:
        steps = list(range(lo, lo + 1000))
        body = {"steps": steps, "values": {key: [0.001 * (s % 13) for s in steps] for key in keys}}
        r = client.post(f"/api/v1/runs/{run_id}/metrics", content=orjson.dumps(body),
                        headers=auth | {"content-type": "application/json"})
        assert r.status_code == 200, r.text

    def new_run(name: str) -> int:
        r = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": name}, headers=auth)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    known = new_run("known")
    for lo in range(0, 5000, 1000):
        post(known, lo)
    with database.engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE metric_point")
        connection.exec_driver_sql("ANALYZE metric_summary")
        connection.commit()
    fresh = new_run("fresh")
    for lo in range(0, 20_000, 1000):
        post(fresh, lo)

    # The fresh run, outside the statistics, and the known one, inside them: an EXISTS probe of
    # a run the statistics hold was planned as a sequential scan that stops at the first match,
    # its rows read showing only as removed by the filter.
    execute = psycopg.Cursor.execute

    def statements_of_a_post(run_id: int, lo: int) -> list[tuple[str, Any]]:
        captured: list[tuple[str, Any]] = []

        def capturing_execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
            if isinstance(query, str) and _MENTIONS.search(query):
                captured.append((query, params))
            return execute(self, query, params, **kwargs)

        monkeypatch.setattr(psycopg.Cursor, "execute", capturing_execute)
        try:
            post(run_id, lo)
        finally:
            monkeypatch.undo()
        return captured

    for run_id, lo in ((fresh, 20_000), (known, 5000)):
        captured = statements_of_a_post(run_id, lo)

        batch = 1000 * len(keys)
        explained = 0
        with database.engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cursor:
                for statement, parameters in captured:
                    if _WRITES.search(statement) or _MODIFIES.search(statement):
                        continue
                    cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters or None)
                    plan = cursor.fetchone()[0][0]["Plan"]
                    for node in _scans(plan):
                        if node.get("Relation Name") in ("metric_point", "metric_summary"):
                            assert node["Node Type"] != "Seq Scan", (statement, node)
                            read = (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
                            # The batch's points and at most a bucket more per key; the runs hold
                            # 5× and 21× as many.
                            assert read <= batch + 64 * len(keys), (read, statement)
                    explained += 1
                raw.rollback()
        # At least the probe of keys and stored steps that every append makes.
        assert explained >= 1, captured
