"""Series summaries kept at ingest, and compare requests over long windows that read them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from backend.db import Database
from backend.domain import PointBatch
from backend.models import MetricKeyRow, MetricSummaryRow, RunRow
from backend.series_summary import LEVELS, NO_STEP, BucketStats, point_buckets
from backend.storage.metrics import MetricStore
from backend.storage.projects import ProjectStore
from backend.storage.runs import RunStore
from backend.storage.summaries import SummaryStore
from tests.conftest import ProjectFixture
from tests.test_cli import run_cli


def post(client: TestClient, project: ProjectFixture, run_id: int, steps, values: dict):
    body = {"steps": [int(s) for s in steps], "values": {
        key: [float(v) if np.isfinite(v) else ("NaN" if np.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))
              for v in column]
        for key, column in values.items()
    }}
    response = client.post(
        f"/api/v1/runs/{run_id}/metrics",
        content=orjson.dumps(body),
        headers=project.auth() | {"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def new_run(client: TestClient, project: ProjectFixture, name: str) -> int:
    response = client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": name, "config": {"seed": 1}},
                           headers=project.auth())
    assert response.status_code == 201, response.text
    return response.json()["id"]


def stored_levels(database: Database, run_id: int, key: str) -> dict[int, dict[str, np.ndarray]]:
    with database.session() as session:
        key_id = session.execute(select(MetricKeyRow.id).where(MetricKeyRow.name == key)).scalar_one()
        rows = session.execute(
            select(MetricSummaryRow).where(MetricSummaryRow.run_id == run_id, MetricSummaryRow.key_id == key_id)
            .order_by(MetricSummaryRow.level, MetricSummaryRow.bucket)
        ).scalars().all()
        out: dict[int, dict[str, list]] = {}
        for row in rows:
            level = out.setdefault(row.level, {})
            for name in ("bucket", "first_step", "last_step", "count", "finite_count", "first_value",
                         "last_value", "min_value", "min_step", "max_value", "max_step", "mean_value",
                         "nan_step"):
                value = getattr(row, name)
                if value is None:
                    value = NO_STEP if name.endswith("_step") else np.nan
                level.setdefault(name, []).append(value)
        return {level: {n: np.asarray(v) for n, v in cols.items()} for level, cols in out.items()}


def assert_summaries_match_points(database: Database, run_id: int, key: str) -> None:
    with database.session() as session:
        steps, values = MetricStore(session).read_arrays(run_id, [key])[key]
    stored = stored_levels(database, run_id, key)
    assert sorted(stored) == list(LEVELS)
    for level in LEVELS:
        expected = point_buckets(steps, values, steps >> level)
        got = stored[level]
        for name in ("bucket", "first_step", "last_step", "count", "finite_count", "min_step", "max_step",
                     "nan_step"):
            assert np.array_equal(got[name], getattr(expected, name)), (level, name)
        for name in ("first_value", "last_value", "min_value", "max_value"):
            assert np.array_equal(got[name], getattr(expected, name), equal_nan=True), (level, name)
        assert np.allclose(got["mean_value"], expected.mean_value, rtol=1e-9, equal_nan=True), level


def test_summaries_follow_appends_and_replacements(
    client: TestClient, database: Database, project: ProjectFixture, run_id: int
) -> None:
    rng = np.random.default_rng(0)
    steps = np.arange(0, 3000, dtype=np.int64)
    values = rng.normal(0, 1, steps.size)
    values[[5, 700, 2999]] = [np.nan, np.inf, -np.inf]
    # Appends in three requests, the last one out of order (earlier steps after later ones).
    post(client, project, run_id, steps[:1000], {"reward": values[:1000]})
    post(client, project, run_id, steps[2000:], {"reward": values[2000:]})
    post(client, project, run_id, steps[1000:2000], {"reward": values[1000:2000]})
    assert_summaries_match_points(database, run_id, "reward")
    # Replacements: a spike that becomes a bucket's maximum, a former minimum raised, a NaN
    # replaced, steps spread over several coarse buckets, and new sparse steps far beyond.
    low = int(np.nanargmin(values[20:64])) + 20
    replaced_steps = np.array([low, 5, 17, 1500, 2500, 70_000, 200_003])
    replaced = np.array([50.0, 0.5, 1e6, -3.0, np.nan, 1.0, 2.0])
    result = post(client, project, run_id, replaced_steps, {"reward": replaced})
    assert result["replaced"] == 5
    assert_summaries_match_points(database, run_id, "reward")


def test_long_appends_and_interleaved_steps_keep_exact_summaries(
    client: TestClient, database: Database, project: ProjectFixture, run_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL an append-only batch COPYs the rows of the buckets between its first and
    # last one per key and level and merges only those two; a batch whose steps interleave with
    # stored ones makes that COPY meet stored rows, and every row is merged instead.
    merged: list[int] = []
    upsert = SummaryStore._upsert_merging
    monkeypatch.setattr(SummaryStore, "_upsert_merging",
                        lambda self, run, keys, *rest: merged.append(keys.size) or upsert(self, run, keys, *rest))
    rng = np.random.default_rng(7)
    steps = np.arange(0, 8000, dtype=np.int64)
    values = rng.normal(0, 1, steps.size)
    values[320:352] = np.nan  # two whole finest buckets of NaN: NULL min, max and mean
    values[1000] = np.inf
    postgresql = database.engine.dialect.name == "postgresql"

    even = steps[:4000:2]
    post(client, project, run_id, even, {"reward": values[even], "kl": values[even] * 2})
    assert_summaries_match_points(database, run_id, "reward")
    assert_summaries_match_points(database, run_id, "kl")
    if postgresql:
        # Per key, the first and last bucket of the four levels narrower than the 4,000 steps
        # and the one bucket of each of the three wider ones: 2 × (4 × 2 + 3).
        assert merged == [22]
    merged.clear()

    odd = steps[1:4000:2]
    result = post(client, project, run_id, odd, {"reward": values[odd], "kl": values[odd] * 2})
    assert result["replaced"] == 0
    assert_summaries_match_points(database, run_id, "reward")
    assert_summaries_match_points(database, run_id, "kl")
    if postgresql:
        # Every row of the batch, after the COPY of the inner ones met the stored rows.
        assert merged == [2 * (250 + 63 + 16 + 4 + 1 + 1 + 1)]
    merged.clear()

    post(client, project, run_id, steps[4000:], {"reward": values[4000:], "kl": values[4000:] * 2})
    assert_summaries_match_points(database, run_id, "reward")
    assert_summaries_match_points(database, run_id, "kl")
    if postgresql:
        assert merged and merged[0] <= 28


def test_compare_over_a_long_window_reads_summaries_and_draws_spikes_and_the_last_point(
    client: TestClient, database: Database, project: ProjectFixture
) -> None:
    rng = np.random.default_rng(1)
    steps = np.arange(0, 60_000, 40, dtype=np.int64)  # 1,500 points over 60,000 steps
    ids = []
    for index, name in enumerate(["ref", "replica", "candidate"]):
        reward = 0.5 + rng.normal(0, 0.01, steps.size)
        if index == 2:
            reward[steps >= 30_000] += 0.2
            reward[100] = 9.0  # one spike
        ids.append(new_run(client, project, name))
        post(client, project, ids[-1], steps, {"reward": reward})
    response = client.get(
        "/api/v1/compare",
        params={"reference": f"{ids[0]},{ids[1]}", "candidates": str(ids[2]), "metrics": "reward",
                "max_points": 200, "include": "series"},
        headers=project.auth("read"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["settings"]["resolution"] == "summaries"
    metric = body["metrics"]["reward"]
    candidate = next(run for run in metric["series"] if run["run_id"] == ids[2])
    assert candidate["downsampled"]
    xs = candidate["x"]
    assert len(xs) <= 200
    assert xs[-1] == int(steps[-1]) and xs[0] == 0
    assert 9.0 in candidate["y"]
    divergence = metric["candidates"][str(ids[2])]
    # One pixel is a 99th of the window (steps 0 to 59,960): 606 steps wide.
    assert abs(divergence["first_divergence_step"] - 30_000) <= 606
    (marker,) = metric["markers"]
    assert marker["bucket_steps"] == 606 and "means of 606 steps above the band" in marker["summary"]
    # A zoomed window is compared point by point.
    zoomed = client.get(
        "/api/v1/compare",
        params={"reference": f"{ids[0]},{ids[1]}", "candidates": str(ids[2]), "metrics": "reward",
                "start": 29_000, "end": 31_000, "include": "series"},
        headers=project.auth("read"),
    ).json()
    assert zoomed["settings"]["resolution"] == "points"
    zoomed_candidate = next(run for run in zoomed["metrics"]["reward"]["series"] if run["run_id"] == ids[2])
    assert zoomed_candidate["x"] == list(range(29_000, 31_001, 40))


def test_compare_of_twenty_runs(client: TestClient, project: ProjectFixture) -> None:
    rng = np.random.default_rng(2)
    steps = np.arange(0, 40_000, 50, dtype=np.int64)
    ids = []
    for index in range(20):
        ids.append(new_run(client, project, f"run-{index}"))
        post(client, project, ids[-1], steps, {"reward": rng.normal(0, 1, steps.size),
                                               "entropy": rng.normal(1, 0.1, steps.size)})
    for extra in ({}, {"start": 0, "end": 1000}):
        response = client.get(
            "/api/v1/compare",
            params={"reference": ",".join(map(str, ids[:2])), "candidates": ",".join(map(str, ids[2:])),
                    "include": "overlay", **extra},
            headers=project.auth("read"),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["runs"]) == 20
        for name in ("reward", "entropy"):
            assert len(body["figures"][name]["overlay"]["data"]) >= 20
        assert len(body["diagnosis"]) == 18


def test_a_long_window_with_bad_bounds_is_refused(client: TestClient, project: ProjectFixture) -> None:
    ids = [new_run(client, project, name) for name in ("ref", "candidate")]
    steps = np.arange(0, 40_000, 100, dtype=np.int64)
    for run in ids:
        post(client, project, run, steps, {"reward": np.ones(steps.size)})
    response = client.get(
        "/api/v1/compare",
        params={"reference": str(ids[0]), "candidates": str(ids[1]), "start": 30_000, "end": 10},
        headers=project.auth("read"),
    )
    assert response.status_code == 422 and "start" in response.json()["detail"], response.text


def all_summary_rows(database: Database, run_id: int) -> list[tuple]:
    with database.session() as session:
        rows = session.execute(
            select(MetricSummaryRow).where(MetricSummaryRow.run_id == run_id)
            .order_by(MetricSummaryRow.key_id, MetricSummaryRow.level, MetricSummaryRow.bucket)
        ).scalars().all()
        names = [c.name for c in MetricSummaryRow.__table__.columns]
        # NaN compares unequal to itself; its repr does not. The mean is kept apart: a merged
        # bucket's count-weighted mean may differ from a recompute's in the last bits.
        return [
            (tuple(repr(getattr(row, n)) for n in names if n != "mean_value"), row.mean_value) for row in rows
        ]


def assert_same_rows(got: list[tuple], expected: list[tuple], context: object) -> None:
    assert [exact for exact, _ in got] == [exact for exact, _ in expected], context
    means = np.array([mean for _, mean in got], dtype=float)
    expected_means = np.array([mean for _, mean in expected], dtype=float)
    assert np.allclose(means, expected_means, rtol=1e-12, atol=0, equal_nan=True), context


def test_bulk_rebuild_equals_the_summaries_kept_at_ingest(
    client: TestClient, database: Database, project: ProjectFixture, run_id: int
) -> None:
    rng = np.random.default_rng(3)
    # Appends in several requests, points far apart (empty coarsest buckets in between),
    # a replacement, NaN and infinities, two keys with different extents.
    batches = [np.arange(0, 3000), np.arange(3000, 5000, 3), np.arange(70_000, 71_000),
               np.arange(10_000_000, 10_000_500), np.arange(2000, 2600)]
    for steps in batches:
        values = rng.normal(0, 1, steps.size)
        values[::97] = np.nan
        values[5::211] = np.inf
        values[7::307] = -np.inf
        post(client, project, run_id, steps, {"loss": values, "reward": values[::-1] * 2})
    post(client, project, run_id, np.arange(140_000, 140_010), {"reward": np.ones(10)})
    kept = all_summary_rows(database, run_id)
    assert len(kept) > 100
    with database.session() as session:
        # A row no point backs: the rebuild must drop it, not keep it.
        session.add(MetricSummaryRow(run_id=run_id, key_id=1, level=LEVELS[0], bucket=99_999_999, first_step=0,
                                     last_step=0, count=1, finite_count=1))
    for window_buckets, flush_points in ((1, 1), (1, 1_000_000), (16, 1_000_000), (200, 5)):
        with database.session() as session:
            read = SummaryStore(session).rebuild(run_id, window_buckets=window_buckets, flush_points=flush_points)
        assert read == sum(s.size for s in batches[:4]) * 2 + 10
        assert_same_rows(all_summary_rows(database, run_id), kept, (window_buckets, flush_points))
    assert_summaries_match_points(database, run_id, "loss")
    assert_summaries_match_points(database, run_id, "reward")


def test_the_rebuild_command_restores_summaries_a_bulk_load_lacks(
    client: TestClient, database: Database, database_url: str, project: ProjectFixture, run_id: int
) -> None:
    other = new_run(client, project, "other")
    steps = np.arange(0, 5000)
    post(client, project, run_id, steps, {"loss": np.sin(steps / 50.0)})
    post(client, project, other, steps, {"loss": np.cos(steps / 50.0)})
    kept = {r: all_summary_rows(database, r) for r in (run_id, other)}
    with database.session() as session:
        session.execute(delete(MetricSummaryRow))
    result = run_cli("db", "rebuild-summaries", "--run", str(run_id), url=database_url)
    assert "summaries of 1 run(s) rebuilt from 5000 points" in result.stdout
    assert_same_rows(all_summary_rows(database, run_id), kept[run_id], run_id)
    assert all_summary_rows(database, other) == []
    run_cli("db", "rebuild-summaries", url=database_url)
    for r in (run_id, other):
        assert_same_rows(all_summary_rows(database, r), kept[r], r)
    refused = run_cli("db", "rebuild-summaries", "--run", "999999", url=database_url, check=False)
    assert refused.returncode == 1 and "--run: no run 999999" in refused.stderr


# -- summaries kept by merging appends equal a recompute from the final points -----------------

_KEYS = ("reward", "kl", "entropy")
# A few repeated values make ties for the minimum and maximum common; NaN and ±inf are there
# often enough to be first, last, minimum, maximum or a whole bucket.
_VALUES = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 2.5, math.nan, math.inf, -math.inf]),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, allow_subnormal=False),
)


@st.composite
def _batches(draw: st.DrawFn) -> list[dict[str, tuple[list[int], list[float]]]]:
    """Batches of points per key: ranges that start anywhere (inside buckets, before earlier
    batches, far beyond them at coarse levels), strided ranges that interleave with other
    batches, and re-posts of steps already written (replacements) mixed with new ones."""
    batches: list[dict[str, tuple[list[int], list[float]]]] = []
    written: dict[str, set[int]] = {key: set() for key in _KEYS}
    for _ in range(draw(st.integers(1, 7))):
        batch = {}
        for key in draw(st.lists(st.sampled_from(_KEYS), min_size=1, max_size=3, unique=True)):
            if written[key] and draw(st.integers(0, 4)) == 0:
                old = sorted(written[key])
                steps = draw(st.lists(st.sampled_from(old), min_size=1, max_size=20, unique=True))
                steps += draw(st.lists(st.integers(0, 5000), max_size=5, unique=True))
                steps = sorted(set(steps))
            else:
                start = draw(st.one_of(st.integers(0, 3000), st.integers(0, 300_000)))
                stride = draw(st.sampled_from([1, 1, 1, 2, 3, 17, 64, 1000]))
                steps = [start + stride * i for i in range(draw(st.integers(1, 150)))]
            values = draw(st.lists(_VALUES, min_size=len(steps), max_size=len(steps)))
            batch[key] = (steps, values)
            written[key].update(steps)
        batches.append(batch)
    return batches


def _stored_rows(database: Database, run: int) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    names = [f.name for f in dataclasses.fields(BucketStats)]
    with database.session() as session:
        found = session.execute(
            select(MetricKeyRow.name, MetricSummaryRow)
            .join(MetricKeyRow, MetricKeyRow.id == MetricSummaryRow.key_id)
            .where(MetricSummaryRow.run_id == run)
            .order_by(MetricKeyRow.name, MetricSummaryRow.level, MetricSummaryRow.bucket)
        ).all()
        out: dict[tuple[str, int], dict[str, list]] = {}
        for key, row in found:
            columns = out.setdefault((key, row.level), {})
            for name in names:
                value = getattr(row, name)
                if value is None:
                    value = NO_STEP if name.endswith("_step") else np.nan
                columns.setdefault(name, []).append(value)
    return {where: {n: np.asarray(v) for n, v in columns.items()} for where, columns in out.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=_batches())
def test_summaries_of_any_appends_and_replacements_equal_a_recompute(
    database: Database, batches: list[dict[str, tuple[list[int], list[float]]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with database.session() as session:
        slug = f"p{session.execute(select(func.count()).select_from(RunRow)).scalar_one()}"
        project = ProjectStore(session).create(slug, slug)
        run = RunStore(session).create(project.id, "run", {}, [])[0].id
    # Points are read back only to recompute buckets after a replacement: always when a point
    # changed its value, never when every point was new. A re-post of a value as stored may be
    # left unwritten (then nothing is read) or written again (then its buckets are recomputed).
    reads = []
    read_points = SummaryStore._read_points
    monkeypatch.setattr(SummaryStore, "_read_points", lambda self, *a: reads.append(1) or read_points(self, *a))
    stored_bits: dict[tuple[str, int], int] = {}
    for batch in batches:
        points = PointBatch()
        changed = repeated = 0
        for key, (steps, values) in batch.items():
            points.extend(key, steps, values, [1.0] * len(steps))
            for step, value in zip(steps, values, strict=True):
                bits = int(np.float64(value).view(np.int64))
                before = stored_bits.get((key, step))
                changed += before is not None and before != bits
                repeated += before == bits
                stored_bits[(key, step)] = bits
        reads.clear()
        with database.session() as session:
            result = MetricStore(session).ingest(run, points)
        assert result.replaced == changed + repeated
        if changed:
            assert reads
        elif not repeated:
            assert not reads
    with database.session() as session:
        series = MetricStore(session).read_arrays(run)
    stored = _stored_rows(database, run)
    assert set(stored) == {(key, level) for key in series for level in LEVELS}
    for key, (steps, values) in series.items():
        finite = values[np.isfinite(values)]
        scale = float(np.abs(finite).max()) if finite.size else 1.0
        for level in LEVELS:
            expected, got = point_buckets(steps, values, steps >> level), stored[(key, level)]
            for name in ("bucket", "first_step", "last_step", "count", "finite_count", "min_step",
                         "max_step", "nan_step"):
                assert np.array_equal(got[name], getattr(expected, name)), (key, level, name)
            for name in ("first_value", "last_value", "min_value", "max_value"):
                assert np.array_equal(got[name], getattr(expected, name), equal_nan=True), (key, level, name)
            # Merged means differ from a one-pass mean by rounding only.
            assert np.allclose(got["mean_value"], expected.mean_value, rtol=1e-12, atol=1e-12 * scale,
                               equal_nan=True), (key, level)
