"""Ingestion throughput through the HTTP API against raw PostgreSQL COPY, in one run.

    .venv/bin/python bench/ingest.py [--runs 10] [--keys 10] [--steps 10000] [--per-request 10000]

Starts `parityscope serve` on a fresh PostgreSQL database, posts runs × keys × steps points in
requests of --per-request values from one client, then COPYs the same rows with psycopg into a
bare table with the same primary key, and prints both rates and their ratio. Needs PostgreSQL at
127.0.0.1:5432 (override with PARITYSCOPE_BENCH_PG).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import httpx
import numpy as np
import orjson
import psycopg
from harness import drop_postgres, fresh_postgres, project_token, running_server

from backend.domain import Scope
from backend.storage.metrics import binary_copy_payload


def value(run: int, key: int, step: int) -> float:
    return math.sin(step * 0.001 + key) * (run + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--per-request", type=int, default=10_000)
    args = parser.parse_args()
    total = args.runs * args.keys * args.steps
    steps_per_request = args.per_request // args.keys
    keys = [f"metric_{k}" for k in range(args.keys)]

    # Databases of this invocation only: others may run benchmarks on the same server.
    ingest_db, copy_db = f"ps_bench_ingest_{os.getpid()}", f"ps_bench_copy_{os.getpid()}"
    url = fresh_postgres(ingest_db)
    token = project_token(url, "bench", Scope.WRITE)

    # Request bodies are serialised before the clock starts: the client's JSON encoding is not
    # the server's cost.
    bodies: list[tuple[int, bytes]] = []
    with running_server(url) as base:
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}",
                                                   "content-type": "application/json"}, timeout=120)
        run_ids = [http.post("/api/v1/projects/bench/runs", json={"name": f"run-{r}"}).json()["id"]
                   for r in range(args.runs)]
        now = time.time()
        for r, run_id in enumerate(run_ids):
            for lo in range(0, args.steps, steps_per_request):
                steps = list(range(lo, min(lo + steps_per_request, args.steps)))
                body = {"steps": steps, "times": [now + s for s in steps],
                        "values": {k: [value(r, i, s) for s in steps] for i, k in enumerate(keys)}}
                bodies.append((run_id, orjson.dumps(body)))
        # Warm the server's connection pool and code paths on a throwaway run.
        warm = http.post("/api/v1/projects/bench/runs", json={"name": "warm"}).json()["id"]
        http.post(f"/api/v1/runs/{warm}/metrics", content=bodies[0][1]).raise_for_status()

        started = time.perf_counter()
        accepted = 0
        for run_id, body in bodies:
            response = http.post(f"/api/v1/runs/{run_id}/metrics", content=body)
            response.raise_for_status()
            accepted += response.json()["accepted"]
        api_seconds = time.perf_counter() - started
        assert accepted == total, (accepted, total)

    # Baselines: the same rows by raw COPY into a bare table with the same key, same process:
    # psycopg's row writer (text format), and a binary stream built with numpy (the server's own
    # technique, so the strongest baseline). The ratio is taken against the faster of the two.
    raw_url = fresh_postgres(copy_db).replace("postgresql+psycopg://", "postgresql://")
    rows = [
        (r + 1, k + 1, s, value(r, k, s), now + s)
        for r in range(args.runs) for k in range(args.keys) for s in range(args.steps)
    ]
    columns = [np.asarray(c) for c in zip(*rows, strict=True)]
    with psycopg.connect(raw_url) as conn:
        timings = {}
        for fmt in ("text", "binary"):
            conn.execute("DROP TABLE IF EXISTS points")
            conn.execute("CREATE TABLE points (run_id int, key_id int, step bigint, value float8, "
                         "wall_time float8, PRIMARY KEY (run_id, key_id, step))")
            conn.commit()
            started = time.perf_counter()
            for lo in range(0, len(rows), args.per_request):
                hi = lo + args.per_request
                with conn.cursor() as cur:
                    if fmt == "text":
                        with cur.copy("COPY points FROM STDIN") as copy:
                            for row in rows[lo:hi]:
                                copy.write_row(row)
                    else:
                        payload = binary_copy_payload(*(c[lo:hi] for c in columns))
                        with cur.copy("COPY points (run_id, key_id, step, value, wall_time) "
                                      "FROM STDIN (FORMAT BINARY)") as copy:
                            copy.write(payload)
                conn.commit()
            timings[fmt] = time.perf_counter() - started
    copy_seconds = min(timings.values())

    api_rate = total / api_seconds
    copy_rate = total / copy_seconds
    print(f"points:               {total:,} in {len(bodies)} requests of {args.per_request:,} values")
    print(f"HTTP API (1 client):  {api_seconds:7.2f} s  {api_rate:12,.0f} points/s")
    for fmt, seconds in timings.items():
        print(f"raw COPY ({fmt:6}):     {seconds:7.2f} s  {total / seconds:12,.0f} points/s")
    print(f"ratio API / fastest raw COPY: {api_rate / copy_rate:.2f}  (target >= 0.40)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    drop_postgres(ingest_db)
    drop_postgres(copy_db)


if __name__ == "__main__":
    main()
