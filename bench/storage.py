"""Storage per point: row-per-point `metric_point` on both databases, against a chunked layout.

    .venv/bin/python bench/storage.py [--runs 4] [--keys 4] [--steps 250000] [--replaces 500]

Row-per-point is what ParityScope stores: one `metric_point` row per (run, key, step) with its
value and wall time, primary key (run_id, key_id, step). The chunked layout is a prototype here
only: one row per (run, key, block of 1,024 steps) holding the block's step offsets (uint16),
values and wall times (float8) packed into bytea, primary key (run_id, key_id, block), the
layout of TimescaleDB's compressed chunks or a Parquet row group reduced to its core.

On PostgreSQL (PARITYSCOPE_BENCH_PG, default 127.0.0.1:5432), with the same points in both:
- ingest: binary COPY of each run in 10,000-value batches, as the API does on append (chunked:
  COPY into a temporary table and a merge that extends a block a previous batch left partial);
- exact per-step replace: --replaces single (key, step) points rewritten at random, one
  transaction each (row: INSERT … ON CONFLICT; chunked: read the block, change it, write it back);
- cold read: every series of one run read into numpy by a new connection (row: the packed
  `string_agg` read the server uses; chunked: the blocks in order, concatenated); the database's
  own buffers may be warm, so this is the cost of a compare request's cold series cache;
- size: table + indexes after VACUUM.
On SQLite, bytes per point of `metric_point` from the file size (same points, page size 4096).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import struct
import tempfile
import time

import numpy as np
import psycopg
from harness import drop_postgres, fresh_postgres

from backend.storage.metrics import binary_copy_payload

BLOCK = 1024
DATABASE = "ps_bench_storage"


def series(run: int, key: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(run * 100 + key)
    x = np.arange(steps, dtype=np.int64)
    y = (np.cumsum(rng.normal(size=steps)) * 1e-3).astype(np.float32).astype(np.float64)  # as trainers log
    return x, y, 1.7e9 + x * 0.5


def chunk_rows(run: int, key: int, x: np.ndarray, y: np.ndarray, t: np.ndarray):  # type: ignore[no-untyped-def]
    blocks = x // BLOCK
    bounds = np.flatnonzero(np.diff(blocks)) + 1
    for bx, by, bt in zip(np.split(x, bounds), np.split(y, bounds), np.split(t, bounds), strict=True):
        yield (run, key, int(bx[0] // BLOCK), (bx % BLOCK).astype("<u2").tobytes(),
               by.astype("<f8").tobytes(), bt.astype("<f8").tobytes())


def chunk_copy_payload(rows) -> bytes:  # type: ignore[no-untyped-def]
    out = [b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)]
    for run, key, block, offsets, values, times in rows:
        out.append(struct.pack(">hiiiiiq", 6, 4, run, 4, key, 8, block))
        for blob in (offsets, values, times):
            out.append(struct.pack(">i", len(blob)) + blob)
    out.append(struct.pack(">h", -1))
    return b"".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--steps", type=int, default=250_000)
    parser.add_argument("--replaces", type=int, default=500)
    args = parser.parse_args()
    points = args.runs * args.keys * args.steps
    data = {(r, k): series(r, k, args.steps) for r in range(1, args.runs + 1) for k in range(1, args.keys + 1)}

    url = fresh_postgres(DATABASE).replace("postgresql+psycopg://", "postgresql://")
    results: dict[str, dict[str, float]] = {"row per point": {}, "chunked": {}}
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE metric_chunk (run_id int, key_id int, block bigint, offsets bytea, "
                     "vals bytea, times bytea, PRIMARY KEY (run_id, key_id, block))")
        conn.execute("CREATE TEMP TABLE chunk_in (LIKE metric_chunk)")
        conn.commit()
        # Ingest: per run, 10,000-value batches (the API's request size), each its own COPY.
        for layout in results:
            started = time.perf_counter()
            for (run, key), (x, y, t) in data.items():
                for lo in range(0, args.steps, 10_000):
                    sl = slice(lo, lo + 10_000)
                    with conn.cursor() as cur:
                        if layout == "row per point":
                            payload = binary_copy_payload(run, np.full(len(x[sl]), key), x[sl], y[sl], t[sl])
                            statement = "COPY metric_point (run_id, key_id, step, value, wall_time) FROM STDIN (FORMAT BINARY)"
                        else:
                            # A batch may end inside a block that the next one continues, so
                            # blocks are merged: appended steps extend the stored block.
                            payload = chunk_copy_payload(chunk_rows(run, key, x[sl], y[sl], t[sl]))
                            statement = "COPY chunk_in FROM STDIN (FORMAT BINARY)"
                            cur.execute("TRUNCATE chunk_in")
                        with cur.copy(statement) as copy:
                            copy.write(payload)
                        if layout == "chunked":
                            cur.execute("INSERT INTO metric_chunk SELECT * FROM chunk_in ON CONFLICT (run_id, key_id, block) "
                                        "DO UPDATE SET offsets = metric_chunk.offsets || EXCLUDED.offsets, "
                                        "vals = metric_chunk.vals || EXCLUDED.vals, times = metric_chunk.times || EXCLUDED.times")
                    conn.commit()
            results[layout]["ingest s"] = time.perf_counter() - started
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE metric_point")
        conn.execute("VACUUM ANALYZE metric_chunk")
        conn.autocommit = False
        for layout, table in (("row per point", "metric_point"), ("chunked", "metric_chunk")):
            results[layout]["bytes/point"] = conn.execute(
                f"SELECT pg_total_relation_size('{table}')").fetchone()[0] / points
        conn.commit()

        # Exact per-step replace, one transaction per point.
        rng = np.random.default_rng(7)
        picks = [(int(rng.integers(1, args.runs + 1)), int(rng.integers(1, args.keys + 1)),
                  int(rng.integers(0, args.steps)), float(rng.normal())) for _ in range(args.replaces)]
        for layout in results:
            times = []
            for run, key, step, value in picks:
                started = time.perf_counter()
                if layout == "row per point":
                    conn.execute("INSERT INTO metric_point VALUES (%s, %s, %s, %s, 0) ON CONFLICT (run_id, key_id, step) "
                                 "DO UPDATE SET value = EXCLUDED.value, wall_time = EXCLUDED.wall_time",
                                 (run, key, step, value))
                else:
                    offsets, vals = conn.execute(
                        "SELECT offsets, vals FROM metric_chunk WHERE run_id = %s AND key_id = %s AND block = %s "
                        "FOR UPDATE", (run, key, step // BLOCK)).fetchone()
                    where = np.flatnonzero(np.frombuffer(offsets, "<u2") == step % BLOCK)[0]
                    changed = np.frombuffer(vals, "<f8").copy()
                    changed[where] = value
                    conn.execute("UPDATE metric_chunk SET vals = %s WHERE run_id = %s AND key_id = %s AND block = %s",
                                 (changed.tobytes(), run, key, step // BLOCK))
                conn.commit()
                times.append(time.perf_counter() - started)
            results[layout]["replace ms"] = statistics.median(times) * 1000

    # Cold read of one run's series on a new connection, three times each, alternating.
    reads: dict[str, list[float]] = {layout: [] for layout in results}
    for _ in range(3):
        for layout in results:
            with psycopg.connect(url) as conn:
                started = time.perf_counter()
                got = 0
                with conn.cursor(binary=True) as cur:
                    if layout == "row per point":
                        cur.execute("SELECT key_id, string_agg(int8send(step), ''::bytea), string_agg(float8send(value), ''::bytea) "
                                    "FROM (SELECT key_id, step, value FROM metric_point WHERE run_id = 1 "
                                    "ORDER BY key_id, step) o GROUP BY key_id")
                        for _, steps_blob, values_blob in cur:
                            got += len(np.frombuffer(steps_blob, ">i8").astype(np.int64))
                            np.frombuffer(values_blob, ">f8").astype(np.float64)
                    else:
                        cur.execute("SELECT key_id, block, offsets, vals FROM metric_chunk WHERE run_id = 1 "
                                    "ORDER BY key_id, block")
                        rows = cur.fetchall()
                        keys = np.array([r[0] for r in rows])
                        for key in np.unique(keys):
                            mine = [r for r in rows if r[0] == key]
                            x = np.concatenate([np.frombuffer(r[2], "<u2").astype(np.int64) + r[1] * BLOCK for r in mine])
                            np.concatenate([np.frombuffer(r[3], "<f8") for r in mine])
                            got += len(x)
                assert got == args.keys * args.steps, got
                reads[layout].append(time.perf_counter() - started)
    for layout in results:
        results[layout]["read ms"] = statistics.median(reads[layout]) * 1000
    drop_postgres(DATABASE)

    # SQLite: the same points through the schema's own table.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "points.db")
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE metric_point (run_id INTEGER NOT NULL, key_id INTEGER NOT NULL, step BIGINT NOT NULL, "
                   "value FLOAT, wall_time FLOAT, PRIMARY KEY (run_id, key_id, step))")
        for (run, key), (x, y, t) in data.items():
            db.executemany("INSERT INTO metric_point VALUES (?, ?, ?, ?, ?)",
                           zip([run] * len(x), [key] * len(x), x.tolist(), y.tolist(), t.tolist(), strict=True))
        db.commit()
        db.execute("VACUUM")
        db.close()
        sqlite_bytes = os.path.getsize(path) / points

    row, chunk = results["row per point"], results["chunked"]
    print(f"{points:,} points: {args.runs} runs × {args.keys} keys × {args.steps:,} steps")
    print(f"{'':24}{'row per point':>16}{'chunked':>12}{'chunked/row':>14}")
    print(f"{'ingest (COPY), s':24}{row['ingest s']:16.2f}{chunk['ingest s']:12.2f}{chunk['ingest s'] / row['ingest s']:14.2f}")
    print(f"{'  points/s':24}{points / row['ingest s']:16,.0f}{points / chunk['ingest s']:12,.0f}")
    print(f"{'replace 1 point, ms':24}{row['replace ms']:16.2f}{chunk['replace ms']:12.2f}{chunk['replace ms'] / row['replace ms']:14.2f}")
    print(f"{'cold read 1 run, ms':24}{row['read ms']:16.0f}{chunk['read ms']:12.0f}{chunk['read ms'] / row['read ms']:14.2f}")
    print(f"{'bytes/point (PG)':24}{row['bytes/point']:16.1f}{chunk['bytes/point']:12.1f}{chunk['bytes/point'] / row['bytes/point']:14.2f}")
    print(f"{'bytes/point (SQLite)':24}{sqlite_bytes:16.1f}")


if __name__ == "__main__":
    main()
