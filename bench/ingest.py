"""Ingestion throughput through the HTTP API against raw PostgreSQL COPY, in one run.

    .venv/bin/python bench/ingest.py [--runs 10] [--keys 10] [--steps 10000] [--per-request 10000]

Starts `parityscope serve` on a fresh PostgreSQL database, posts runs × keys × steps points in
requests of --per-request values from one client, then COPYs the same rows with psycopg into a
bare table with the same primary key (in the API's own batches, and in whole-series batches),
and prints the rates and the ratios. Needs PostgreSQL at 127.0.0.1:5432 (override with
PARITYSCOPE_BENCH_PG).
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

    # Baselines: the same rows by raw COPY into a bare table with the same key, same process,
    # each batch committed as the API commits each request:
    # - "same batches": a binary stream built with numpy (the server's own technique) of exactly
    #   the rows of each request, in the order the server writes them (key, then step). This is
    #   the work the API does in the database, and the target's baseline;
    # - "series": the binary stream again, but the rows ordered run, key, step and cut into
    #   batches of the same size, so each batch is one whole series and every row lands at the
    #   right edge of the primary key, which PostgreSQL inserts faster than rows spread over ten
    #   keys. It is the stronger baseline and is printed too;
    # - "text": psycopg's row writer, in series order.
    raw_url = fresh_postgres(copy_db).replace("postgresql+psycopg://", "postgresql://")
    series_rows = [
        (r + 1, k + 1, s, value(r, k, s), now + s)
        for r in range(args.runs) for k in range(args.keys) for s in range(args.steps)
    ]
    series_batches = [series_rows[lo:lo + args.per_request] for lo in range(0, len(series_rows), args.per_request)]
    request_batches = [
        [(r + 1, k + 1, s, value(r, k, s), now + s)
         for k in range(args.keys) for s in range(lo, min(lo + steps_per_request, args.steps))]
        for r in range(args.runs) for lo in range(0, args.steps, steps_per_request)
    ]
    plans = {"text": series_batches, "binary, series": series_batches, "binary, same batches": request_batches}
    timings = {}
    with psycopg.connect(raw_url) as conn:
        for name, batches in plans.items():
            payloads = [binary_copy_payload(*(np.asarray(c) for c in zip(*batch, strict=True))) for batch in batches]
            conn.execute("DROP TABLE IF EXISTS points")
            conn.execute("CREATE TABLE points (run_id int, key_id int, step bigint, value float8, "
                         "wall_time float8, PRIMARY KEY (run_id, key_id, step))")
            conn.commit()
            started = time.perf_counter()
            for batch, payload in zip(batches, payloads, strict=True):
                with conn.cursor() as cur:
                    if name == "text":
                        with cur.copy("COPY points FROM STDIN") as copy:
                            for row in batch:
                                copy.write_row(row)
                    else:
                        with cur.copy("COPY points (run_id, key_id, step, value, wall_time) "
                                      "FROM STDIN (FORMAT BINARY)") as copy:
                            copy.write(payload)
                conn.commit()
            timings[name] = time.perf_counter() - started

    print(f"points: {total:,} in {len(bodies)} requests of {args.per_request:,} values")
    print(f"HTTP API (1 client):            {api_seconds:7.2f} s  {total / api_seconds:12,.0f} points/s")
    for name, seconds in timings.items():
        print(f"raw COPY ({name + '):':22}{seconds:7.2f} s  {total / seconds:12,.0f} points/s")
    print(f"ratio API / raw COPY of the same batches: {timings['binary, same batches'] / api_seconds:.2f}"
          "  (target >= 0.40)")
    print(f"ratio API / fastest raw COPY:             {min(timings.values()) / api_seconds:.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    drop_postgres(ingest_db)
    drop_postgres(copy_db)


if __name__ == "__main__":
    main()
