"""Server time and payload size of one compare request, next to a naive full read.

    .venv/bin/python bench/compare.py [--steps 100000] [--repeats 15] [--max-points 2000]

Builds 3 runs × 4 metrics × --steps steps on a fresh PostgreSQL database (a reference, a
replica and a candidate that drifts), starts `parityscope serve`, and times
`GET /api/v1/compare` as the dashboard asks for it (p50 over --repeats, after a first, cold
request that fills the series cache), the full response with every section, and the naive way to draw the
same chart: reading every point of the same 12 series through `GET /api/v1/runs/{id}/metrics`.
Payload sizes are reported as sent (gzip when the client accepts it) and uncompressed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx
import numpy as np
from harness import PG, drop_postgres, fresh_postgres, running_server
from readers import concurrent_readers, report

from backend.db import Database, make_engine
from backend.domain import PointBatch, Scope
from backend.storage.metrics import MetricStore
from backend.storage.projects import ProjectStore
from backend.storage.runs import RunStore
from backend.storage.tokens import TokenStore

__all__ = ["PG", "build", "fresh_postgres"]

METRICS = ["clamp_log_ratio_new_old_indicator", "kl_new_old", "entropy", "reward"]


def series(rng: np.random.Generator, n: int, metric: int, drift: float) -> np.ndarray:
    steps = np.arange(n)
    base = [0.02, 1e-3, 1.5 - 0.5 * steps / n, 0.2 + 0.6 * steps / n][metric]
    scale = [0.003, 1e-4, 0.02, 0.03][metric]
    shift = drift * (steps > n // 10) * [0.1, 5e-3, 0.0, -0.1][metric]
    # Trainers compute these metrics in float32 tensors and log their float32 values.
    return (base + shift + rng.normal(0, scale, n)).astype(np.float32).astype(np.float64)


def build(url: str, n_steps: int) -> tuple[str, list[int]]:
    database = Database(make_engine(url))
    run_ids = []
    with database.session() as session:
        project = ProjectStore(session).create("bench", "Bench")
        token = TokenStore(session).issue(Scope.READ, project.id).secret
    for index, (name, drift) in enumerate([("reference", 0), ("reference-replica", 0), ("candidate", 1)]):
        rng = np.random.default_rng(index)
        with database.session() as session:
            run, _ = RunStore(session).create(
                project.id, name, {"seed": 1, "logprobs_mode": "raw" if drift else "processed"}, []
            )
            run_ids.append(run.id)
        steps = list(range(n_steps))
        for metric, key in enumerate(METRICS):
            batch = PointBatch()
            batch.extend(key, steps, series(rng, n_steps, metric, drift).tolist(), [float(s) for s in steps])
            with database.session() as session:
                MetricStore(session).ingest(run.id, batch)
    database.engine.dispose()
    return token, run_ids


def timed(http: httpx.Client, path: str, params: dict | None = None) -> tuple[float, int, int]:
    started = time.perf_counter()
    response = http.get(path, params=params)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    sent = int(response.headers.get("content-length") or len(response.content))
    return elapsed, sent, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--max-points", type=int, default=2000)
    parser.add_argument("--naive-repeats", type=int, default=None,
                        help="repeats of the naive full read (default repeats / 3, at least 3; 0 skips it)")
    parser.add_argument("--readers", type=int, default=0,
                        help="then run this many concurrent dashboard readers (bench/readers.py)")
    parser.add_argument("--reader-seconds", type=float, default=30.0)
    args = parser.parse_args()

    # One database per invocation: others may be running the same script on the same server.
    database = f"ps_bench_compare_{os.getpid()}"
    url = fresh_postgres(database)
    print(f"building 3 runs × 4 metrics × {args.steps:,} steps ...", flush=True)
    started = time.perf_counter()
    token, (ref, replica, candidate) = build(url, args.steps)
    print(f"built in {time.perf_counter() - started:.1f} s (ingest with summaries)", flush=True)
    try:
        measure(url, token, ref, replica, candidate, args)
    finally:
        drop_postgres(database)


def measure(url: str, token: str, ref: int, replica: int, candidate: int, args: argparse.Namespace) -> None:

    with running_server(url) as base:
        http = httpx.Client(base_url=base, timeout=300,
                            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"})
        params = {"reference": f"{ref},{replica}", "candidates": str(candidate),
                  "max_points": args.max_points}
        # What the dashboard asks for: the overlay figures, diagnosis and config diff.
        dashboard = params | {"include": "overlay"}
        cold = timed(http, "/api/v1/compare", dashboard)  # first request after start
        compare_runs = [timed(http, "/api/v1/compare", dashboard) for _ in range(args.repeats)]
        full_runs = [timed(http, "/api/v1/compare", params) for _ in range(max(3, args.repeats // 3))]

        def naive() -> tuple[float, int, int]:
            total = [0.0, 0, 0]
            for run_id in (ref, replica, candidate):
                t, sent, raw = timed(http, f"/api/v1/runs/{run_id}/metrics", {"keys": ",".join(METRICS)})
                total = [total[0] + t, total[1] + sent, total[2] + raw]
            return total[0], total[1], total[2]

        if args.readers:
            print(report(concurrent_readers(base, token, dashboard, args.readers, args.reader_seconds)),
                  flush=True)

        naive_repeats = max(3, args.repeats // 3) if args.naive_repeats is None else args.naive_repeats
        naive_runs = []
        if naive_repeats:
            naive()  # warm-up
            naive_runs = [naive() for _ in range(naive_repeats)]

    def p50(samples: list[tuple[float, int, int]]) -> tuple[float, int, int]:
        return (statistics.median(s[0] for s in samples), samples[0][1], samples[0][2])

    c_time, c_sent, c_raw = p50(compare_runs)
    f_time, f_sent, f_raw = p50(full_runs)
    n_time, n_sent, n_raw = p50(naive_runs) if naive_runs else (float("nan"), 0, 0)
    print(f"compare, dashboard view (include=overlay)  p50 {c_time * 1000:8.1f} ms   sent {c_sent / 1000:8.1f} KB"
          f"   uncompressed {c_raw / 1000:8.1f} KB   (targets: ≤ 150 ms, ≤ 400 KB)")
    print(f"compare, every section                     p50 {f_time * 1000:8.1f} ms   sent {f_sent / 1000:8.1f} KB"
          f"   uncompressed {f_raw / 1000:8.1f} KB")
    print(f"compare, dashboard view, first request after start {cold[0] * 1000:8.1f} ms   (target: ≤ 1.5 s)")
    print(f"naive full read of the 12 series           p50 {n_time * 1000:8.1f} ms   sent {n_sent / 1000:8.1f} KB"
          f"   uncompressed {n_raw / 1000:8.1f} KB")
    if naive_runs:
        print(f"ratio compare / naive: time {c_time / n_time:.3f}, bytes sent {c_sent / n_sent:.4f}")
    print(f"compare, dashboard view: p90 {statistics.quantiles([s[0] for s in compare_runs], n=10)[-1] * 1000:.1f} ms,"
          f" max {max(s[0] for s in compare_runs) * 1000:.1f} ms; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
