"""Concurrent writers of one run: both succeed, every point once, summaries exact, and the
run's ingest lock taken only by writes that change something."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.db import Database
from backend.domain import PointBatch, Run
from backend.storage.metrics import MetricStore, lock_run_points
from backend.storage.runs import RunStore
from backend.storage.summaries import SummaryStore
from tests.conftest import ProjectFixture


def advisory_waits(database: Database, waiting: threading.Thread) -> int:
    """How many sessions wait for an advisory lock, once one does or ``waiting`` has ended
    (polled for up to 10 s)."""
    from sqlalchemy import text

    with database.engine.connect() as probe:
        for _ in range(200):
            lock_waits = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            ).scalar_one()
            # pg_stat_activity is read once per transaction: end it so the next read is fresh.
            probe.rollback()
            if lock_waits or not waiting.is_alive():
                break
            time.sleep(0.05)
    return int(lock_waits)


def run_together(calls: list[tuple[Callable[..., None], tuple]]) -> None:
    """Run each ``(function, args)`` in a thread of its own, all at once; fail with the first
    exception any of them raised."""
    errors: list[BaseException] = []

    def guarded(function: Callable[..., None], args: tuple) -> None:
        try:
            function(*args)
        except BaseException as exc:  # noqa: BLE001 - raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def test_concurrent_writers_to_the_same_steps(database: Database, project: ProjectFixture) -> None:
    with database.session() as session:
        run, _ = RunStore(session).create(project.id, "race", {}, [])
    results = []
    for attempt in range(3):
        barrier = threading.Barrier(2)

        def write(value: float, attempt: int = attempt, barrier: threading.Barrier = barrier) -> None:
            batch = PointBatch()
            steps = list(range(attempt * 500, attempt * 500 + 500))
            batch.extend("reward", steps, [value] * 500, [1.0] * 500)
            with database.session() as session:
                barrier.wait(timeout=10)
                results.append(MetricStore(session).ingest(run.id, batch))

        run_together([(write, (float(v),)) for v in (1, 2)])
    # Each round: one writer inserted 500 points, the other replaced the same 500.
    assert sorted(r.replaced for r in results) == [0, 0, 0, 500, 500, 500]
    with database.session() as session:
        steps, values = MetricStore(session).read_arrays(run.id, ["reward"])["reward"]
    assert steps.tolist() == list(range(1500))
    assert set(values.tolist()) <= {1.0, 2.0}


def test_overlapping_writers_with_shuffled_keys_never_fail(live_server: str, project: ProjectFixture) -> None:
    # Each writer posts the same run and steps with its keys in its own order: rows are merged
    # in key-id-then-step order, so no two requests wait on each other in a cycle (and a
    # deadlock that still occurs is retried inside the server, never answered 500).
    import random

    import httpx

    auth = project.auth()
    with httpx.Client(base_url=live_server, headers=auth, timeout=60) as http:
        run = http.post(f"/api/v1/projects/{project.slug}/runs", json={"name": "overlap"}).json()["id"]
    keys = [f"k{i:02d}" for i in range(24)]
    writers, rounds, width = 8, 4, 300
    statuses: list[int] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=live_server, headers=auth, timeout=60) as http:
            for round_ in range(rounds):
                barrier.wait(timeout=30)
                start = round_ * width // 2 + rng.randrange(0, width // 2)  # overlapping ranges
                steps = list(range(start, start + width))
                order = keys[:]
                rng.shuffle(order)
                points = [
                    {"step": s, "values": {k: float(seed) for k in order}} for s in rng.sample(steps, len(steps))
                ]
                statuses.append(http.post(f"/api/v1/runs/{run}/metrics", json={"points": points}).status_code)

    barrier = threading.Barrier(writers)
    run_together([(write, (seed,)) for seed in range(writers)])
    assert statuses == [200] * (writers * rounds)
    with httpx.Client(base_url=live_server, headers=auth, timeout=60) as http:
        summary = http.get(f"/api/v1/runs/{run}/keys").json()
    assert [k["key"] for k in summary] == keys
    # Every key has exactly one point per step any writer posted: the same count for all keys.
    assert len({k["count"] for k in summary}) == 1


def _summary_rows(session) -> list[tuple]:
    """Every summary row, its mean last: a bucket kept by merging appends may hold a mean that
    differs from a recompute's in the last bits (compare with ``_same_summaries``)."""
    from sqlalchemy import text

    rows = session.execute(text("SELECT * FROM metric_summary ORDER BY run_id, key_id, level, bucket")).mappings()
    return [(*(v for k, v in row.items() if k != "mean_value"), row["mean_value"]) for row in rows]


def _same_summaries(got: list[tuple], expected: list[tuple]) -> bool:
    if [row[:-1] for row in got] != [row[:-1] for row in expected]:
        return False
    means = np.array([row[-1] for row in got], dtype=float)
    return bool(np.allclose(means, np.array([row[-1] for row in expected], dtype=float), rtol=1e-12, atol=0,
                            equal_nan=True))


def _points(session, run_id: int) -> dict[tuple[str, int], tuple[float | None, float | None]]:
    from sqlalchemy import text

    rows = session.execute(
        text(
            "SELECT k.name, p.step, p.value, p.wall_time FROM metric_point AS p"
            " JOIN metric_key AS k ON k.id = p.key_id WHERE p.run_id = :run"
        ),
        {"run": run_id},
    ).all()
    # NaN (PostgreSQL) and NULL (SQLite) both as None, so equal points compare equal.
    return {
        (name, step): (None if value is None or value != value else value, wall_time)
        for name, step, value, wall_time in rows
    }


def test_reposting_points_as_stored_changes_nothing(database: Database, project: ProjectFixture) -> None:
    # A point posted again as it is stored (same value and, when the post gives one, same wall
    # time) is left untouched and counted as replaced; any difference is written.
    from sqlalchemy import text

    with database.session() as session:
        run, _ = RunStore(session).create(project.id, "again", {}, [])

    def batch(untimed: list[float], timed: list[float], times: list[float]) -> PointBatch:
        b = PointBatch()
        b.extend("untimed", list(range(100)), untimed, [float("nan")] * 100)
        b.extend("timed", list(range(100)), timed, times)
        return b

    untimed = [float(i) for i in range(100)]
    timed = [float("nan") if i % 2 else i * 0.5 for i in range(100)]
    times = [1000.0 + i for i in range(100)]
    with database.session() as session:
        assert MetricStore(session).ingest(run.id, batch(untimed, timed, times)).replaced == 0
    with database.session() as session:
        before = _points(session, run.id)
        postgres = session.get_bind().dialect.name == "postgresql"
        versions = (
            session.execute(text("SELECT step, key_id, xmin::text FROM metric_point ORDER BY 1, 2")).all()
            if postgres
            else None
        )
    with database.session() as session:
        result = MetricStore(session).ingest(run.id, batch(untimed, timed, times))
    assert (result.accepted, result.replaced) == (200, 200)
    with database.session() as session:
        assert _points(session, run.id) == before  # the receipt times of the untimed points too
        if postgres:  # not even a new row version
            assert session.execute(
                text("SELECT step, key_id, xmin::text FROM metric_point ORDER BY 1, 2")
            ).all() == versions

    # One value changed, one wall time changed, and an untimed point re-posted: only the first
    # two are written.
    untimed2, timed2, times2 = untimed[:], timed[:], times[:]
    untimed2[7] = 70.0
    times2[8] = 5000.0
    with database.session() as session:
        result = MetricStore(session).ingest(run.id, batch(untimed2, timed2, times2))
    assert (result.accepted, result.replaced) == (200, 200)
    with database.session() as session:
        after = _points(session, run.id)
        store = SummaryStore(session)
        summaries = _summary_rows(session)
        store.rebuild(run.id)
        assert _same_summaries(_summary_rows(session), summaries)  # the summaries follow the changed value
    changed = {point for point in after if after[point] != before[point]}
    assert changed == {("untimed", 7), ("timed", 8)}
    assert after[("untimed", 7)][0] == 70.0
    assert after[("timed", 8)] == (4.0, 5000.0)


def test_a_wrapping_batch_reposted_as_stored_is_not_rewritten(database: Database, project: ProjectFixture) -> None:
    # Steps 4,800-4,999 then 0-299 of a key, stored already: their one range, 0-4,999, is ten
    # times the batch, but cut at the gap it is two ranges of the batch's own size, so the
    # stored points are compared and none is written again.
    if database.engine.dialect.name != "postgresql":
        pytest.skip("row versions (xmin) are PostgreSQL's")
    from sqlalchemy import text

    with database.session() as session:
        run, _ = RunStore(session).create(project.id, "wrap", {}, [])
    everything = PointBatch()
    everything.extend("loss", list(range(5000)), [s * 0.25 for s in range(5000)], [10.0 + s for s in range(5000)])
    with database.session() as session:
        MetricStore(session).ingest(run.id, everything)
    versions = "SELECT step, xmin::text FROM metric_point WHERE run_id = :run ORDER BY step"
    with database.session() as session:
        before = session.execute(text(versions), {"run": run.id}).all()
    steps = [*range(4800, 5000), *range(300)]
    wrapping = PointBatch()
    wrapping.extend("loss", steps, [s * 0.25 for s in steps], [10.0 + s for s in steps])
    with database.session() as session:
        assert MetricStore(session).ingest(run.id, wrapping).replaced == 500
    with database.session() as session:
        assert session.execute(text(versions), {"run": run.id}).all() == before


def test_ingest_lock_orders_writers_of_a_run(database: Database, project: ProjectFixture) -> None:
    # On PostgreSQL a write of new points waits for the run's ingest lock; a post of points
    # stored as they are takes no lock and returns at once.
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the ingest lock is PostgreSQL's; SQLite's write lock orders whole transactions")

    with database.session() as session:
        run, _ = RunStore(session).create(project.id, "locked", {}, [])
    first = PointBatch()
    first.extend("loss", list(range(100)), [float(i) for i in range(100)], [1.0] * 100)
    with database.session() as session:
        MetricStore(session).ingest(run.id, first)

    results: dict[str, object] = {}

    def write(name: str, batch: PointBatch) -> None:
        try:
            with database.session() as session:
                results[name] = MetricStore(session).ingest(run.id, batch)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            results[name] = exc

    new = PointBatch()
    new.extend("loss", list(range(50, 150)), [-1.0] * 100, [2.0] * 100)
    with database.session() as holder:
        lock_run_points(holder, run.id)
        waiting = threading.Thread(target=write, args=("new", new))
        waiting.start()
        lock_waits = advisory_waits(database, waiting)
        assert lock_waits == 1 and waiting.is_alive() and "new" not in results
        again = threading.Thread(target=write, args=("again", first))
        again.start()
        again.join(timeout=30)
        assert not again.is_alive()
        assert results["again"].replaced == 100  # type: ignore[union-attr]
        assert waiting.is_alive()
    waiting.join(timeout=30)
    assert results["new"].replaced == 50  # type: ignore[union-attr]
    with database.session() as session:
        steps, values = MetricStore(session).read_arrays(run.id, ["loss"])["loss"]
        assert steps.tolist() == list(range(150))
        assert values.tolist() == [float(i) for i in range(50)] + [-1.0] * 100
        summaries = _summary_rows(session)
        SummaryStore(session).rebuild(run.id)
        assert _same_summaries(_summary_rows(session), summaries)


def test_a_writer_that_waited_for_the_lock_leaves_what_the_holder_stored(
    database: Database, project: ProjectFixture
) -> None:
    # Two writers of one run post overlapping steps with the same values. The second waits for
    # the first's ingest lock; once it has it, it looks again and writes only the points the
    # first did not store: the overlap keeps the first writer's row versions.
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the ingest lock is PostgreSQL's; SQLite's write lock orders whole transactions")
    from sqlalchemy import text

    with database.session() as session:
        run, _ = RunStore(session).create(project.id, "overlap", {}, [])

    def batch(lo: int, hi: int) -> PointBatch:
        points = PointBatch()
        for key in ("loss", "kl"):
            points.extend(key, list(range(lo, hi)), [s * 0.5 for s in range(lo, hi)], [1000.0 + s for s in range(lo, hi)])
        return points

    with database.session() as session:  # the keys exist, so neither writer waits to add them
        MetricStore(session).ingest(run.id, batch(0, 10))
    results: dict[str, object] = {}

    def write() -> None:
        try:
            with database.session() as session:
                results["second"] = MetricStore(session).ingest(run.id, batch(150, 250))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            results["second"] = exc

    versions = (
        "SELECT key_id, step, xmin::text FROM metric_point WHERE run_id = :run AND step BETWEEN 100 AND 199"
        " ORDER BY 1, 2"
    )
    with database.session() as holder:
        lock_run_points(holder, run.id)
        assert MetricStore(holder).ingest(run.id, batch(100, 200)).replaced == 0
        waiting = threading.Thread(target=write)
        waiting.start()
        lock_waits = advisory_waits(database, waiting)
        assert lock_waits == 1 and waiting.is_alive()
    waiting.join(timeout=30)
    with database.session() as session:
        stored = session.execute(text(versions), {"run": run.id}).all()
    assert len(stored) == 200 and len({xmin for _, _, xmin in stored}) == 1  # all the first writer's
    assert results["second"].replaced == 100  # type: ignore[union-attr]
    with database.session() as session:
        for key in ("loss", "kl"):
            steps, values = MetricStore(session).read_arrays(run.id, [key])[key]
            expected = [*range(10), *range(100, 250)]
            assert steps.tolist() == expected
            assert values.tolist() == [s * 0.5 for s in expected]
        summaries = _summary_rows(session)
        SummaryStore(session).rebuild(run.id)
        assert _same_summaries(_summary_rows(session), summaries)


def _values_at(database: Database, run_id: int, key: str) -> dict[int, float]:
    with database.session() as session:
        steps, values = MetricStore(session).read_arrays(run_id, [key])[key]
    return dict(zip(steps.tolist(), values.tolist(), strict=True))


def _loss(points: dict[int, float]) -> PointBatch:
    """A batch of key ``loss`` at these steps and values, without wall times."""
    batch = PointBatch()
    batch.extend("loss", list(points), list(points.values()), [float("nan")] * len(points))
    return batch


def _run_of_ones(database: Database, project: ProjectFixture, name: str) -> Run:
    """A new run whose ``loss`` holds 1.0 at steps 0-9 (PostgreSQL only: the tests using it are
    about the ingest lock)."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the ingest lock is PostgreSQL's; SQLite's write lock orders whole transactions")
    with database.session() as session:
        run, _ = RunStore(session).create(project.id, name, {}, [])
    with database.session() as session:
        MetricStore(session).ingest(run.id, _loss({s: 1.0 for s in range(10)}))
    return run


def test_a_point_left_out_as_stored_is_written_when_another_writer_changed_it_meanwhile(
    database: Database, project: ProjectFixture
) -> None:
    # Steps 0-9 hold 1.0. The holder of the ingest lock changes steps 5 and 6 to 2.0; a second
    # writer posts 5 → 1.0 and 6 → 3.0 and waits. Its first read saw step 5 as posted and left
    # it out; once it holds the lock it must judge its whole batch again, so the run ends as if
    # the two had written one after the other: 5 → 1.0 and 6 → 3.0, not a mix of the two.
    run = _run_of_ones(database, project, "mixed")
    results: dict[str, object] = {}

    def write() -> None:
        try:
            with database.session() as session:
                results["second"] = MetricStore(session).ingest(run.id, _loss({5: 1.0, 6: 3.0}))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            results["second"] = exc

    with database.session() as holder:
        lock_run_points(holder, run.id)
        MetricStore(holder).ingest(run.id, _loss({5: 2.0, 6: 2.0}))
        waiting = threading.Thread(target=write)
        waiting.start()
        assert advisory_waits(database, waiting) == 1 and waiting.is_alive()
    waiting.join(timeout=30)
    assert results["second"].replaced == 2  # type: ignore[union-attr]
    stored = _values_at(database, run.id, "loss")
    assert (stored[5], stored[6]) == (1.0, 3.0)
    with database.session() as session:
        summaries = _summary_rows(session)
        SummaryStore(session).rebuild(run.id)
        assert _same_summaries(_summary_rows(session), summaries)


def test_a_writer_that_commits_between_the_read_and_the_lock_is_seen(
    database: Database, project: ProjectFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same race without a wait: the other writer commits after the second writer's first
    # read and before it takes the lock, which it then gets at once. The run row's version
    # tells it that somebody wrote meanwhile, and it judges its batch again.
    run = _run_of_ones(database, project, "window")
    first_read = MetricStore._to_write
    reads = []

    def read_then_let_the_other_writer_commit(self, run_id, points, clash):  # type: ignore[no-untyped-def]
        found = first_read(self, run_id, points, clash)
        reads.append(clash)
        if len(reads) == 1:
            other = threading.Thread(target=lambda: _ingest_in_own_session(database, run.id, _loss({5: 2.0, 6: 2.0})))
            other.start()
            other.join(timeout=30)
        return found

    monkeypatch.setattr(MetricStore, "_to_write", read_then_let_the_other_writer_commit)
    with database.session() as session:
        result = MetricStore(session).ingest(run.id, _loss({5: 1.0, 6: 3.0}))
    stored = _values_at(database, run.id, "loss")
    assert (stored[5], stored[6]) == (1.0, 3.0)
    assert result.replaced == 2
    assert len(reads) == 3  # the second writer's first read, the other writer's, the second look


def _ingest_in_own_session(database: Database, run_id: int, points: PointBatch) -> None:
    with database.session() as session:
        MetricStore(session).ingest(run_id, points)


def test_concurrent_overlapping_writers_leave_exact_summaries(database: Database, project: ProjectFixture) -> None:
    # Writers with different values on overlapping steps, keys in their own orders: each
    # refresh sees the points committed before it, so the stored summaries equal a rebuild
    # from the final points.
    import random

    with database.session() as session:
        run, _ = RunStore(session).create(project.id, "overlap-summaries", {}, [])
    keys = [f"k{i}" for i in range(4)]
    writers = 6
    barrier = threading.Barrier(writers)

    def write(seed: int) -> None:
        rng = random.Random(seed)
        barrier.wait(timeout=30)
        for round_ in range(3):
            start = rng.randrange(0, 300)
            batch = PointBatch()
            order = keys[:]
            rng.shuffle(order)
            for key in order:
                steps = list(range(start, start + 200))
                batch.extend(key, steps, [seed * 1000.0 + round_ + s for s in steps], [1.0] * 200)
            with database.session() as session:
                MetricStore(session).ingest(run.id, batch)

    run_together([(write, (seed,)) for seed in range(writers)])
    with database.session() as session:
        points = _points(session, run.id)
        assert all(value % 1000.0 - step in (0.0, 1.0, 2.0) for (_, step), (value, _) in points.items())
        summaries = _summary_rows(session)
        assert summaries
        SummaryStore(session).rebuild(run.id)
        assert _same_summaries(_summary_rows(session), summaries)


def test_writers_of_different_steps_in_the_same_buckets_leave_exact_summaries(
    database: Database, project: ProjectFixture
) -> None:
    # No two writers share a point, so no row lock orders them, but every summary bucket holds
    # points of all of them: only the ingest lock (or SQLite's write lock) makes each refresh
    # see the points the others committed.
    with database.session() as session:
        run, _ = RunStore(session).create(project.id, "interleaved", {}, [])
    writers, rounds = 6, 4
    barrier = threading.Barrier(writers)

    def write(seed: int) -> None:
        for round_ in range(rounds):
            barrier.wait(timeout=30)
            steps = list(range(seed, 2400, writers))
            batch = PointBatch()
            for key in ("a", "b"):
                batch.extend(key, steps, [float(round_ * 10_000 + s) for s in steps], [1.0] * len(steps))
            with database.session() as session:
                MetricStore(session).ingest(run.id, batch)

    run_together([(write, (seed,)) for seed in range(writers)])
    with database.session() as session:
        steps, values = MetricStore(session).read_arrays(run.id, ["a"])["a"]
        assert steps.tolist() == list(range(2400))
        assert values.tolist() == [float((rounds - 1) * 10_000 + s) for s in range(2400)]
        summaries = _summary_rows(session)
        SummaryStore(session).rebuild(run.id)
        assert _same_summaries(_summary_rows(session), summaries)


def test_mlflow_batches_and_native_posts_to_one_run_never_deadlock(
    live_server: str, project: ProjectFixture
) -> None:
    # An MLflow log-batch locks the run's row and then ingests; a native post takes the ingest
    # lock and updates the run's row last. Both take the ingest lock first, so neither waits
    # for the other in a cycle: every request is answered 200, every point stored.
    import httpx

    auth = project.auth()
    with httpx.Client(base_url=live_server, headers=auth, timeout=60) as http:
        r = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
        assert r.status_code == 200, r.text
        run = r.json()["run"]["info"]["run_id"]
    writers, rounds, width = 4, 6, 50
    statuses: list[int] = []
    barrier = threading.Barrier(2 * writers)

    def native(seed: int) -> None:
        with httpx.Client(base_url=live_server, headers=auth, timeout=60) as http:
            for round_ in range(rounds):
                barrier.wait(timeout=30)
                first = (round_ * writers + seed) * width
                body = {"steps": list(range(first, first + width)), "values": {"native": [1.0] * width}}
                statuses.append(http.post(f"/api/v1/runs/{run}/metrics", json=body).status_code)

    def mlflow(seed: int) -> None:
        with httpx.Client(base_url=live_server, headers=auth, timeout=60) as http:
            for round_ in range(rounds):
                barrier.wait(timeout=30)
                first = (round_ * writers + seed) * width
                metrics = [
                    {"key": "mlflow", "value": 2.0, "timestamp": 1000, "step": s}
                    for s in range(first, first + width)
                ]
                body = {"run_id": run, "metrics": metrics, "tags": [{"key": f"w{seed}", "value": str(round_)}]}
                statuses.append(http.post("/api/2.0/mlflow/runs/log-batch", json=body).status_code)

    run_together([(write, (s,)) for write in (native, mlflow) for s in range(writers)])
    assert statuses == [200] * (2 * writers * rounds)
    with httpx.Client(base_url=live_server, headers=auth, timeout=60) as http:
        counts = {k["key"]: k["count"] for k in http.get(f"/api/v1/runs/{run}/keys").json()}
    assert counts == {"native": writers * rounds * width, "mlflow": writers * rounds * width}


def test_every_route_adds_new_keys_before_it_takes_the_ingest_lock(
    client: TestClient, database: Database, project: ProjectFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A native post adds a new key (its row uncommitted) and then waits for the run's ingest
    # lock. An MLflow log-batch or an import that took the lock first and then added the same
    # key would wait for that row while holding the lock: a cycle. So every route adds new keys
    # first; checked on the statements each one sends.
    if database.engine.dialect.name != "postgresql":
        pytest.skip("the ingest lock is PostgreSQL's; SQLite's write lock orders whole transactions")
    import psycopg

    auth = project.auth()
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def recording(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(query if isinstance(query, str) else str(query))
        return execute(self, query, params, **kwargs)

    def order_of(post: Callable[[], object]) -> tuple[int, int]:
        sent.clear()
        monkeypatch.setattr(psycopg.Cursor, "execute", recording)
        try:
            post()
        finally:
            monkeypatch.undo()
        adds = [i for i, q in enumerate(sent) if "INSERT INTO metric_key" in q]
        locks = [i for i, q in enumerate(sent) if "pg_advisory_xact_lock" in q or "pg_try_advisory_xact_lock" in q]
        assert adds and locks, sent
        return adds[0], locks[0]

    r = client.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, headers=auth)
    assert r.status_code == 200, r.text
    run = r.json()["run"]["info"]["run_id"]

    def log_batch() -> None:
        metrics = [{"key": "brand_new_mlflow", "value": 1.0, "timestamp": 1000, "step": 0}]
        r = client.post("/api/2.0/mlflow/runs/log-batch", json={"run_id": run, "metrics": metrics}, headers=auth)
        assert r.status_code == 200, r.text

    def native() -> None:
        r = client.post(f"/api/v1/runs/{run}/metrics", json={"steps": [1], "values": {"brand_new_native": [1.0]}},
                        headers=auth)
        assert r.status_code == 200, r.text

    def importer(body: bytes, expected: int) -> Callable[[], None]:
        def post() -> None:
            r = client.post(f"/api/v1/projects/{project.slug}/imports",
                            params={"format": "jsonl", "run_name": "imported", "update": "true"},
                            content=body, headers=auth)
            assert r.status_code == expected, r.text
        return post

    first_import = importer(b'{"_step": 0, "brand_new_import": 0.5}\n', 201)
    # An update of the run the first import created, with a key new to it.
    second_import = importer(b'{"_step": 1, "another_new_key": 0.5}\n', 200)
    for post in (log_batch, native, first_import, second_import):
        added, locked = order_of(post)
        assert added < locked, post.__name__
