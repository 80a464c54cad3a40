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
