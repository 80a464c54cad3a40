"""Single-node limits: ingest with many points already stored, size per point, compare at 10M steps.

    PARITYSCOPE_BENCH_PG=postgresql://postgres@127.0.0.1:5499 \\
        .venv/bin/python bench/scale.py [--stored 100000000] [--long-steps 10000000]

Meant for a PostgreSQL instance of its own (it fills the database with --stored points; see
docs/SCALING.md for the settings used). In order:

1. sustained ingest through `parityscope serve` into an empty `metric_point`: one client posting
   --ingest points in requests of 10,000 values (10 keys × 1,000 steps);
2. a bulk fill to --stored points, made by the server itself (generate_series) with the primary
   key built afterwards: 3 runs of one metric × --long-steps steps (a reference, a replica and a
   drifting candidate) and runs of 10 keys × 100,000 steps for the rest. This is how the stored
   data is made, not something measured against a target;
3. table, index and total size per point and per 100M points;
4. the same sustained ingest again, now on top of the stored points (new runs, as trainers do);
5. the dashboard's compare request (`include=overlay`, the reward panel) on the three long runs:
   cold (first after a server start) and warm (median of --repeats).
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import numpy as np
import orjson
import psycopg
from harness import PG, fresh_postgres, project_token, running_server

from backend.domain import Scope

DATABASE = "ps_bench_scale"
FILL_STEPS = 100_000
FILL_KEYS = [f"fill/metric_{k}" for k in range(10)]
INGEST_KEYS = [f"ingest/metric_{k}" for k in range(10)]


def ingest(http: httpx.Client, slug: str, points: int, label: str) -> float:
    """Post ``points`` to new runs, 10,000 values a request; print windows and return points/s."""
    steps_per_request = 1_000
    requests_per_run = 100  # 1M points a run
    rng = np.random.default_rng(0)
    bodies = []
    for index in range(points // (steps_per_request * len(INGEST_KEYS))):
        lo = (index % requests_per_run) * steps_per_request
        steps = list(range(lo, lo + steps_per_request))
        values = rng.normal(size=(len(INGEST_KEYS), steps_per_request)).astype(np.float32).astype(float)
        bodies.append(orjson.dumps({"steps": steps, "values": dict(zip(INGEST_KEYS, values.tolist(), strict=True))}))
    run_id = 0
    windows: list[float] = []
    started = window_start = time.perf_counter()
    for index, body in enumerate(bodies):
        if index % requests_per_run == 0:
            run_id = http.post(f"/api/v1/projects/{slug}/runs", json={"name": f"{label}-{index}"}).json()["id"]
        http.post(f"/api/v1/runs/{run_id}/metrics", content=body).raise_for_status()
        if (index + 1) % 50 == 0:
            now = time.perf_counter()
            windows.append(50 * 10_000 / (now - window_start))
            window_start = now
    rate = len(bodies) * 10_000 / (time.perf_counter() - started)
    print(f"  ingest {label}: {len(bodies) * 10_000:,} points, {rate:,.0f} points/s overall; per 500,000-point "
          f"window min {min(windows):,.0f}, median {statistics.median(windows):,.0f}, max {max(windows):,.0f}",
          flush=True)
    return rate


def fill(raw_url: str, slug: str, stored: int, long_steps: int) -> list[int]:
    """Fill metric_point to ``stored`` points server-side; returns the three long runs' ids."""
    fill_runs = max(0, (stored - 3 * long_steps) // (FILL_STEPS * len(FILL_KEYS)))
    with psycopg.connect(raw_url, autocommit=True) as conn:
        project = conn.execute("SELECT id FROM project WHERE slug = %s", (slug,)).fetchone()[0]

        def new_run(name: str, config: str) -> int:
            return conn.execute(
                "INSERT INTO run (project_id, name, label, status, config, engine, tags, last_step, created_at, "
                "updated_at) VALUES (%s, %s, '', 'finished', %s::json, '{}'::json, '[]'::json, 0, now(), now()) "
                "RETURNING id", (project, name, config)).fetchone()[0]

        def key(name: str) -> int:
            conn.execute("INSERT INTO metric_key (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
            return conn.execute("SELECT id FROM metric_key WHERE name = %s", (name,)).fetchone()[0]

        long_runs = [new_run(name, f'{{"seed": 1, "logprobs_mode": "{mode}"}}') for name, mode in
                     (("reference", "processed"), ("reference-replica", "processed"), ("candidate", "raw"))]
        fill_ids = [new_run(f"fill-{i}", "{}") for i in range(fill_runs)]
        reward = key("reward")
        fill_keys = [key(k) for k in FILL_KEYS]
        started = time.perf_counter()
        with conn.transaction():
            # Truncated in this transaction: with wal_level=minimal the load skips the WAL.
            conn.execute("TRUNCATE metric_point")
            conn.execute("ALTER TABLE metric_point DROP CONSTRAINT metric_point_pkey")
            for index, run_id in enumerate(long_runs):
                drift = "+ CASE WHEN s > %(n)s / 10 THEN 0.02 ELSE 0 END" if index == 2 else ""
                conn.execute(
                    "INSERT INTO metric_point SELECT %(run)s, %(key)s, s, "
                    f"(0.5 + 0.3 * (1 - exp(-s / (%(n)s / 5.0))) + 0.05 * (random() - 0.5) {drift})::float4, s "
                    "FROM generate_series(0, %(n)s - 1) s", {"run": run_id, "key": reward, "n": long_steps})
            for run_id in fill_ids:
                conn.execute(
                    "INSERT INTO metric_point SELECT %s, k, s, random()::float4, s "
                    "FROM unnest(%s::int[]) k, generate_series(0, %s - 1) s", (run_id, fill_keys, FILL_STEPS))
            loaded = time.perf_counter()
            conn.execute("ALTER TABLE metric_point ADD CONSTRAINT metric_point_pkey PRIMARY KEY (run_id, key_id, step)")
        indexed = time.perf_counter()
        conn.execute("UPDATE run SET last_step = %s, updated_at = now() WHERE id = ANY(%s)",
                     (long_steps - 1, long_runs))
        conn.execute("UPDATE run SET last_step = %s, updated_at = now() WHERE id = ANY(%s)", (FILL_STEPS - 1, fill_ids))
        conn.execute("VACUUM ANALYZE metric_point")
        print(f"  fill: {3 * long_steps + fill_runs * FILL_STEPS * len(FILL_KEYS):,} points in "
              f"{loaded - started:.0f} s, primary key built in {indexed - loaded:.0f} s, vacuum "
              f"{time.perf_counter() - indexed:.0f} s", flush=True)
    return long_runs


def sizes(raw_url: str) -> None:
    with psycopg.connect(raw_url) as conn:
        points, table, index, total = conn.execute(
            "SELECT (SELECT count(*) FROM metric_point), pg_relation_size('metric_point'), "
            "pg_indexes_size('metric_point'), pg_total_relation_size('metric_point')").fetchone()
    per = 100_000_000 / points
    print(f"  sizes at {points:,} points: table {table / 2**30:.2f} GiB ({table / points:.1f} B/point), "
          f"primary key {index / 2**30:.2f} GiB ({index / points:.1f} B/point), total {total / 2**30:.2f} GiB "
          f"({total / points:.1f} B/point); per 100M points: table {table * per / 2**30:.2f} GiB, "
          f"index {index * per / 2**30:.2f} GiB, total {total * per / 2**30:.2f} GiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=100_000_000)
    parser.add_argument("--long-steps", type=int, default=10_000_000)
    parser.add_argument("--ingest", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    url = fresh_postgres(DATABASE)
    raw_url = f"{PG}/{DATABASE}"
    token = project_token(url, "bench", Scope.WRITE)
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    with running_server(url) as base, httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        empty_rate = ingest(http, "bench", args.ingest, "empty table")
    long_runs = fill(raw_url, "bench", args.stored, args.long_steps)
    sizes(raw_url)
    with running_server(url) as base, httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        path = "/api/v1/compare"
        params = {"reference": f"{long_runs[0]},{long_runs[1]}", "candidates": long_runs[2],
                  "metrics": "reward", "include": "overlay"}
        started = time.perf_counter()
        http.get(path, params=params).raise_for_status()
        cold = time.perf_counter() - started
        warm = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            http.get(path, params=params).raise_for_status()
            warm.append(time.perf_counter() - started)
        print(f"  compare, 3 runs × 1 metric × {args.long_steps:,} steps, include=overlay: cold {cold:.2f} s, "
              f"warm median {statistics.median(warm):.2f} s {[round(w, 2) for w in warm]}", flush=True)
        full_rate = ingest(http, "bench", args.ingest, "on top of the stored points")
    sizes(raw_url)
    print(f"ingest with the points stored / into an empty table: {full_rate / empty_rate:.2f}")


if __name__ == "__main__":
    main()
