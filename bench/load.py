"""Concurrent writers against `parityscope serve` on PostgreSQL: no 5xx, every point once.

    .venv/bin/python bench/load.py [--writers 32] [--points 50000] [--keys 10] [--per-request 5000]
                                   [--scenario both] [--waits] [--server-workers 1]

Two scenarios, each on a fresh database:
  distinct  every writer posts its own run;
  shared    every writer posts the same run and the same steps (overlapping ranges), each with
            its keys in its own shuffled order and its requests in a shuffled order.
A value is a function of (key, step) only, so whichever writer wins a (key, step) the stored
value is known: afterwards the run's points are counted and summed in the database and
compared with what was posted. Prints request latency p50/p99 and the status codes seen, and
with --waits where the server's database sessions spent the load: pg_stat_activity sampled every
20 ms, each sample of a session of the bench's database counted by state and wait event
(``idle in transaction`` is a request's Python work between statements; ``Lock/advisory``,
``Lock/transactionid`` and ``Lock/tuple`` are waits for other writers).
Needs PostgreSQL at 127.0.0.1:5432 (override with PARITYSCOPE_BENCH_PG).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import threading
import time
from collections import Counter

import httpx
import numpy as np
import orjson
import psycopg
from harness import PG, drop_postgres, fresh_postgres, project_token, running_server

from backend.domain import Scope


def value(key: int, step: int) -> float:
    return math.sin(step * 0.001 + key) + key


def requests_for(writer: int, args: argparse.Namespace, shared: bool) -> list[dict]:
    """A writer's request bodies: ``points`` values in all, --per-request values each."""
    steps_total = args.points // args.keys
    per_request_steps = max(1, args.per_request // args.keys)
    rng = random.Random(writer)
    # Shared: every writer covers the same steps, from its own offset, so ranges overlap.
    offset = rng.randrange(steps_total) if shared else 0
    steps = [(offset + i) % steps_total for i in range(steps_total)]
    bodies = []
    for first in range(0, steps_total, per_request_steps):
        chunk = steps[first : first + per_request_steps]
        keys = list(range(args.keys))
        if shared:
            rng.shuffle(keys)
        points = [{"step": s, "values": {f"k{k}": value(k, s) for k in keys}} for s in chunk]
        bodies.append({"points": points})
    if shared:
        rng.shuffle(bodies)
    return bodies


class WaitSampler(threading.Thread):
    """Counts the states and wait events of database ``name``'s sessions until stopped."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True)
        self.name_ = name
        self.stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.samples = 0

    def run(self) -> None:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            while not self.stop.wait(0.02):
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event, left(query, 24) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    (self.name_,),
                ).fetchall()
                self.samples += 1
                for state, wait_type, wait, query in rows:
                    if state == "active":
                        label = f"active {wait_type}/{wait}" if wait_type else "active on CPU"
                        if wait_type == "Lock":  # and in which statement
                            label += f" in {' '.join(query.split())!r}"
                    else:
                        label = state or "unknown"
                    self.counts[label] += 1

    def shares(self) -> dict[str, float]:
        """Average number of sessions in each state over the load (sums to the mean number of
        open sessions)."""
        return {
            label: round(n / max(1, self.samples), 2)
            for label, n in self.counts.most_common()
            if label != "idle"
        }


def run_scenario(args: argparse.Namespace, shared: bool) -> dict:
    # Unique per process, so two benches on one PostgreSQL never share a database.
    name = f"bench_load_{'shared' if shared else 'distinct'}_{os.getpid()}"
    url = fresh_postgres(name)
    token = project_token(url, "load", Scope.WRITE)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    try:
        with running_server(url, workers=args.server_workers) as base:
            auth = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=base, headers=auth, timeout=120) as http:
                run_ids = [
                    http.post("/api/v1/projects/load/runs", json={"name": f"w{i}"}).json()["id"]
                    for i in range(1 if shared else args.writers)
                ]
            # Bodies are serialised before the clock starts, as in bench/ingest.py: the clients'
            # JSON encoding (32 threads of this process, on the server's cores) is not the
            # server's latency.
            bodies = {w: [orjson.dumps(b) for b in requests_for(w, args, shared)] for w in range(args.writers)}
            barrier = threading.Barrier(args.writers)

            def writer(w: int) -> None:
                run = run_ids[0] if shared else run_ids[w]
                with httpx.Client(base_url=base, headers=auth, timeout=120) as http:
                    barrier.wait()
                    for body in bodies[w]:
                        started = time.perf_counter()
                        r = http.post(f"/api/v1/runs/{run}/metrics", content=body,
                                      headers={"content-type": "application/json"})
                        elapsed = time.perf_counter() - started
                        with lock:
                            latencies.append(elapsed)
                            statuses[r.status_code] += 1

            sampler = WaitSampler(name) if args.waits else None
            if sampler is not None:
                sampler.start()
            started = time.perf_counter()
            threads = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            if sampler is not None:
                sampler.stop.set()
                sampler.join()
        steps_total = args.points // args.keys
        per_run = steps_total * args.keys
        expected_sum = sum(value(k, s) for k in range(args.keys) for s in range(steps_total))
        with psycopg.connect(f"{PG}/{name}") as conn:
            rows = conn.execute(
                "SELECT run_id, count(*), sum(value) FROM metric_point GROUP BY run_id ORDER BY run_id"
            ).fetchall()
        exact = len(rows) == len(run_ids) and all(
            count == per_run and abs(total - expected_sum) < 1e-6 * max(1.0, abs(expected_sum))
            for _, count, total in rows
        )
        lat = np.asarray(latencies)
        return {
            "scenario": "shared" if shared else "distinct",
            "server_workers": args.server_workers,
            "writers": args.writers,
            "points_per_writer": steps_total * args.keys,
            "requests": int(lat.size),
            "statuses": dict(statuses),
            "server_errors": sum(n for s, n in statuses.items() if s >= 500),
            "p50_s": round(float(np.percentile(lat, 50)), 3),
            "p99_s": round(float(np.percentile(lat, 99)), 3),
            "wall_s": round(wall, 1),
            "points_per_s": round(args.writers * steps_total * args.keys / wall),
            "stored_exactly_once": exact,
            "load_average": [round(v, 2) for v in os.getloadavg()],
            **({"sessions_by_wait": sampler.shares()} if sampler is not None else {}),
        }
    finally:
        drop_postgres(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--points", type=int, default=50_000, help="points per writer")
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--per-request", type=int, default=5_000)
    parser.add_argument("--scenario", choices=["distinct", "shared", "both"], default="both")
    parser.add_argument("--waits", action="store_true", help="sample pg_stat_activity during the load")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="server processes (PARITYSCOPE_WORKERS; docker-compose.yml runs 4)")
    args = parser.parse_args()
    scenarios = {"distinct": [False], "shared": [True], "both": [False, True]}[args.scenario]
    failed = False
    for shared in scenarios:
        result = run_scenario(args, shared)
        print(result, flush=True)
        failed |= result["server_errors"] > 0 or not result["stored_exactly_once"]
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
