"""What keeping the series summaries costs at ingest: merging appends against recomputing.

    .venv/bin/python bench/summaries.py [--runs 5] [--keys 10] [--steps 10000] [--per-request 10000]

In-process on a fresh PostgreSQL database (the HTTP server's costs left out), ingests the same
batches as bench/ingest.py through ``MetricStore.ingest`` into two runs at a time, alternating
request by request, and which of the two goes first, so machine load weighs on both alike: one
run keeps its summaries the way ingestion does (an append-only batch is merged from its own
values), the other is forced onto the exact recompute that replacements take (the touched
buckets' points read back, every coarser level from the rows below). Prints each way's share of
the ingest time and their ratio, and checks that both runs end with the same summary rows. Needs
PostgreSQL at 127.0.0.1:5432 (override with PARITYSCOPE_BENCH_PG).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from harness import drop_postgres, fresh_postgres

from backend.db import Database, make_engine
from backend.domain import PointBatch
from backend.series_summary import LEVELS
from backend.storage.metrics import MetricStore
from backend.storage.projects import ProjectStore
from backend.storage.runs import RunStore
from backend.storage.summaries import SummaryStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--per-request", type=int, default=10_000)
    args = parser.parse_args()
    steps_per_request = args.per_request // args.keys

    name = f"ps_bench_summaries_{os.getpid()}"
    database = Database(make_engine(fresh_postgres(name)))
    with database.session() as session:
        project = ProjectStore(session).create("bench", "Bench")
        runs = RunStore(session)
        pairs = [(runs.create(project.id, f"merge-{r}", {}, [])[0].id,
                  runs.create(project.id, f"recompute-{r}", {}, [])[0].id) for r in range(args.runs + 1)]

    spent = {"merge": 0.0, "recompute": 0.0}
    ingest = {"merge": 0.0, "recompute": 0.0}
    mode = ["merge"]
    refresh = SummaryStore.refresh

    def timed(self, run_id, key_ids, steps, values=None, *, appended=False):
        started = time.perf_counter()
        refresh(self, run_id, key_ids, steps, values, appended=appended and mode[0] == "merge")
        spent[mode[0]] += time.perf_counter() - started

    SummaryStore.refresh = timed
    for r, pair in enumerate(pairs):
        for lo in range(0, args.steps, steps_per_request):
            steps = list(range(lo, min(lo + steps_per_request, args.steps)))
            batch = PointBatch()
            for k in range(args.keys):
                batch.extend(f"metric_{k}", steps, [math.sin(s * 0.001 + k) * (r + 1) for s in steps],
                             [1.0] * len(steps))
            batch.columns()
            ways = list(zip(pair, ("merge", "recompute"), strict=True))
            for run_id, way in ways if lo // steps_per_request % 2 else ways[::-1]:
                mode[0] = way
                started = time.perf_counter()
                with database.session() as session:
                    MetricStore(session).ingest(run_id, batch)
                ingest[way] += time.perf_counter() - started
        if r == 0:  # the first pair warms the code paths and the connection pool, untimed
            spent.update(dict.fromkeys(spent, 0.0))
            ingest.update(dict.fromkeys(ingest, 0.0))
    SummaryStore.refresh = refresh
    pairs = pairs[1:]

    # Both ways must have left the same rows (the mean up to rounding).
    with database.session() as session:
        for merged_run, recomputed_run in pairs:
            keys = MetricStore(session).key_ids([f"metric_{k}" for k in range(args.keys)], create=False)
            store = SummaryStore(session)
            for key_id in keys.values():
                ids = np.asarray([key_id])
                for level in LEVELS:
                    a = store.read_window(merged_run, ids, 0, args.steps - 1, level)[key_id]
                    b = store.read_window(recomputed_run, ids, 0, args.steps - 1, level)[key_id]
                    assert np.array_equal(a.count, b.count) and np.array_equal(a.min_step, b.min_step)
                    assert np.allclose(a.mean_value, b.mean_value, rtol=1e-12, equal_nan=True)
    database.engine.dispose()
    drop_postgres(name)

    points = args.runs * args.keys * args.steps
    print(f"points per way:       {points:,} in requests of {args.per_request:,} values")
    for way in ("merge", "recompute"):
        print(f"{way:10} ingest {ingest[way]:6.2f} s, of which summaries {spent[way]:5.2f} s"
              f" ({spent[way] / ingest[way]:4.0%}, {spent[way] / points * 1e6:.2f} s per million points)")
    print(f"ratio summaries merge / recompute: {spent['merge'] / spent['recompute']:.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
