"""Two writers posting the same run, key and steps at the same moment both succeed."""

from __future__ import annotations

import threading

from backend.db import Database
from backend.domain import PointBatch
from backend.storage.metrics import MetricStore
from backend.storage.runs import RunStore
from tests.conftest import ProjectFixture


def test_concurrent_writers_to_the_same_steps(database: Database, project: ProjectFixture) -> None:
    with database.session() as session:
        run, _ = RunStore(session).create(project.id, "race", {}, [])
    errors: list[BaseException] = []
    results = []
    for attempt in range(3):
        barrier = threading.Barrier(2)

        def write(value: float, attempt: int = attempt, barrier: threading.Barrier = barrier) -> None:
            batch = PointBatch()
            steps = list(range(attempt * 500, attempt * 500 + 500))
            batch.extend("reward", steps, [value] * 500, [1.0] * 500)
            try:
                with database.session() as session:
                    barrier.wait(timeout=10)
                    results.append(MetricStore(session).ingest(run.id, batch))
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(float(v),)) for v in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
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
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        try:
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
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    barrier = threading.Barrier(writers)
    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert statuses == [200] * (writers * rounds)
    with httpx.Client(base_url=live_server, headers=auth, timeout=60) as http:
        summary = http.get(f"/api/v1/runs/{run}/keys").json()
    assert [k["key"] for k in summary] == keys
    # Every key has exactly one point per step any writer posted: the same count for all keys.
    assert len({k["count"] for k in summary}) == 1
