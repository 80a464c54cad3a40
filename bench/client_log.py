"""Cost of one ``log`` call of the Python client, against a plain dict copy and append.

    .venv/bin/python bench/client_log.py [--calls 200000] [--keys 10] [--repeats 5]

Starts `parityscope serve` on a fresh SQLite file in a temporary directory, creates a project and
a write token, then times --calls calls of ``run.log({10 keys}, step=i)`` and of the module-level
``parityscope.log({10 keys})`` (what ``import parityscope as wandb`` scripts call) while the
client's background thread sends the points to that server, as in training. The baseline, timed in the same
process on the same values, is what any non-blocking logger must at least do: copy the dict and
append it with the step and the time to a queue. Prints the per-call cost of both (best and median
of --repeats), their ratio, and how long the thread then took to get every point to the server.
"""

from __future__ import annotations

import argparse
import collections
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import running_server  # noqa: E402

import parityscope  # noqa: E402
from backend.db import Database, make_engine, upgrade  # noqa: E402
from backend.domain import Scope  # noqa: E402
from backend.storage.projects import ProjectStore  # noqa: E402
from backend.storage.tokens import TokenStore  # noqa: E402
from parityscope.client import init  # noqa: E402


def per_call_ns(fn, calls: int, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn(calls)
        out.append((time.perf_counter_ns() - start) / calls)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    keys = [f"metric_{k}" for k in range(args.keys)]
    values = {k: math.sin(i) for i, k in enumerate(keys)}

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        database = Database(make_engine(url))
        with database.session() as session:
            project = ProjectStore(session).create("bench", "Client bench")
            token = TokenStore(session).issue(Scope.WRITE, project.id).secret
        database.engine.dispose()
        with running_server(url) as base:
            run = init("bench", "log-cost", url=base, token=token, spool_dir=Path(tmp) / "spool")
            step = 0

            def log_calls(n: int) -> None:
                nonlocal step
                log = run.log
                for _ in range(n):
                    log(values, step=step)
                    step += 1

            def module_log_calls(n: int) -> None:
                log = parityscope.log
                for _ in range(n):
                    log(values)

            queue: collections.deque = collections.deque()

            def baseline_calls(n: int) -> None:
                append, now = queue.append, time.time
                for i in range(n):
                    append((i, dict(values), now()))
                queue.clear()

            baseline = per_call_ns(baseline_calls, args.calls, args.repeats)
            logged = per_call_ns(log_calls, args.calls, args.repeats)
            module_logged = per_call_ns(module_log_calls, args.calls, args.repeats)
            start = time.perf_counter()
            delivered = run.flush(timeout=600)
            drain = time.perf_counter() - start
            run.finish()

    points = 2 * args.calls * args.repeats * args.keys
    print(f"calls per repeat: {args.calls}, keys per call: {args.keys}, repeats: {args.repeats}")
    print(f"baseline (dict copy + append): best {min(baseline) / 1000:.2f} µs, median {statistics.median(baseline) / 1000:.2f} µs")
    print(f"run.log:                       best {min(logged) / 1000:.2f} µs, median {statistics.median(logged) / 1000:.2f} µs")
    print(f"parityscope.log:               best {min(module_logged) / 1000:.2f} µs, median {statistics.median(module_logged) / 1000:.2f} µs")
    print(f"ratio log/baseline (medians):  {statistics.median(logged) / statistics.median(baseline):.2f}")
    print(f"ratio parityscope.log/baseline (medians): {statistics.median(module_logged) / statistics.median(baseline):.2f}")
    print(f"after the loop: {points} points on the server {drain:.2f} s later (delivered={delivered})")


if __name__ == "__main__":
    main()
