"""Many dashboard readers at once: throughput and latency of the compare request under load.

    .venv/bin/python bench/readers.py [--steps 1000000] [--readers 16] [--seconds 30]

Builds the workload of `bench/compare.py` (3 runs × 4 metrics × --steps steps on a fresh
PostgreSQL database), starts `parityscope serve`, warms it with one request, then runs --readers
client threads that each send the dashboard's compare request (`include=overlay`) back to back
for --seconds. Prints requests per second and the p50, p90 and p99 latency. `bench/compare.py
--readers N` runs the same measurement on its own database after its single-client figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import httpx
from harness import drop_postgres, fresh_postgres, running_server

__all__ = ["concurrent_readers"]


def concurrent_readers(base: str, token: str, params: dict, readers: int, seconds: float) -> dict[str, float]:
    """Run ``readers`` threads asking ``GET /api/v1/compare`` with ``params`` for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def reader() -> None:
        with httpx.Client(base_url=base, timeout=300,
                          headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = http.get("/api/v1/compare", params=params)
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        errors.append(f"{response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    threads = [threading.Thread(target=reader) for _ in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "readers": readers,
        "requests": len(latencies),
        "seconds": wall,
        "throughput": len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p90": cuts[89],
        "p99": cuts[98],
        "load": os.getloadavg()[0],
    }


def report(result: dict[str, float]) -> str:
    return (
        f"{result['readers']:.0f} concurrent dashboard readers: {result['requests']:.0f} requests in "
        f"{result['seconds']:.1f} s = {result['throughput']:.1f} requests/s; latency p50 "
        f"{result['p50'] * 1000:.0f} ms, p90 {result['p90'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms"
        f" (load average {result['load']:.1f})"
    )


def main() -> None:
    from compare import build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-points", type=int, default=2000)
    args = parser.parse_args()
    database = f"ps_bench_readers_{os.getpid()}"
    url = fresh_postgres(database)
    try:
        print(f"building 3 runs × 4 metrics × {args.steps:,} steps ...", flush=True)
        token, (ref, replica, candidate) = build(url, args.steps)
        with running_server(url) as base:
            params = {"reference": f"{ref},{replica}", "candidates": str(candidate),
                      "max_points": args.max_points, "include": "overlay"}
            httpx.get(f"{base}/api/v1/compare", params=params,
                      headers={"Authorization": f"Bearer {token}"}, timeout=300).raise_for_status()
            print(report(concurrent_readers(base, token, params, args.readers, args.seconds)))
    finally:
        drop_postgres(database)


if __name__ == "__main__":
    main()
