"""Faults under load: PostgreSQL stopped and started, the API killed with SIGKILL, mid-load.

    .venv/bin/python bench/faults.py [--writers 8] [--points 20000] [--keys 10] [--per-request 2000]

Runs against a PostgreSQL instance of its own (initdb into a temporary directory, on a free
port, as the ``postgres`` user when run as root), never a shared one, since it stops it.
Writers post their own runs through `parityscope serve` and retry as the client does: after a
503 or 429 they wait Retry-After, after a refused connection half a second, and send the same
body again. Phase 1 stops PostgreSQL for --outage seconds mid-load; phase 2 kills the API with
SIGKILL mid-load and starts it again on the same port. It prints the statuses seen while the
database was down (only 503 is acceptable) and checks every run's points by count and checksum.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
from harness import ROOT, project_token

from backend.db import upgrade
from backend.domain import Scope
from tests.conftest import free_port, wait_for_http

BIN = next(Path("/usr/lib/postgresql").glob("*/bin"))


def value(key: int, step: int) -> float:
    return math.cos(step * 0.01 + key) + key


class PrivatePostgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ps-faults-"))
        self.port = free_port()
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _run(self, *command: str) -> None:
        full = ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else list(command)
        subprocess.run(full, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """`parityscope serve` on a fixed port, so that after a kill it comes back at the same URL."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = os.environ | {
            "PARITYSCOPE_DATABASE_URL": database_url,
            "PARITYSCOPE_DB_CONNECT_TIMEOUT_SECONDS": "2",
            "PARITYSCOPE_RETRY_AFTER_SECONDS": "1",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(self.port)],
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_http(self.url + "/healthz", timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--points", type=int, default=20_000, help="points per writer and phase")
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--per-request", type=int, default=2_000)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL stays down")
    args = parser.parse_args()

    pg = PrivatePostgres()
    server = None
    try:
        pg.start()
        with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE faults")
        url = pg.url("faults")
        upgrade(url.replace("postgresql://", "postgresql+psycopg://"))
        token = project_token(url.replace("postgresql://", "postgresql+psycopg://"), "faults", Scope.WRITE)
        server = Server(url)
        server.start()
        auth = {"Authorization": f"Bearer {token}"}
        ok = True
        def run_phase(phase: str) -> bool:
            with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
                runs = [
                    http.post("/api/v1/projects/faults/runs", json={"name": f"{phase} {w}"}).json()["id"]
                    for w in range(args.writers)
                ]
            steps_total = args.points // args.keys
            per_request = max(1, args.per_request // args.keys)
            statuses: Counter[int] = Counter()
            during_outage: Counter[str] = Counter()
            outage = threading.Event()
            lock = threading.Lock()

            def writer(w: int) -> None:
                with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
                    for first in range(0, steps_total, per_request):
                        steps = list(range(first, min(first + per_request, steps_total)))
                        body = {"steps": steps, "values": {f"k{k}": [value(k, s) for s in steps] for k in range(args.keys)}}
                        while True:
                            try:
                                r = http.post(f"/api/v1/runs/{runs[w]}/metrics", json=body)
                            except httpx.TransportError as exc:
                                with lock:
                                    if outage.is_set():
                                        during_outage[type(exc).__name__] += 1
                                time.sleep(0.5)
                                continue
                            with lock:
                                statuses[r.status_code] += 1
                                if outage.is_set():
                                    during_outage[str(r.status_code)] += 1
                            if r.status_code in (429, 503):
                                time.sleep(float(r.headers.get("retry-after", "1")))
                                continue
                            break
                        time.sleep(0.1)  # keep the load running across the fault

            threads = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
            for t in threads:
                t.start()
            # The fault strikes a third of the way through the load.
            total_requests = args.writers * math.ceil(steps_total / per_request)
            while statuses[200] < total_requests // 3:
                time.sleep(0.05)
            outage.set()
            if phase == "database stopped":
                pg.stop()
                time.sleep(args.outage)
                pg.start()
            else:
                server.kill()
                time.sleep(1.0)
                server.start()
            outage.clear()
            for t in threads:
                t.join()
            expected = steps_total * args.keys
            checksum = sum(value(k, s) for k in range(args.keys) for s in range(steps_total))
            with psycopg.connect(url) as conn:
                rows = conn.execute(
                    "SELECT run_id, count(*), sum(value) FROM metric_point WHERE run_id = ANY(%s) GROUP BY run_id",
                    (runs,),
                ).fetchall()
            exact = len(rows) == len(runs) and all(
                n == expected and abs(total - checksum) < 1e-6 * abs(checksum) for _, n, total in rows
            )
            server_errors = {s: n for s, n in statuses.items() if s >= 500 and s != 503}
            only_503 = all(k == "503" for k in during_outage) if phase == "database stopped" else True
            print(
                {
                    "phase": phase,
                    "writers": args.writers,
                    "points_per_writer": expected,
                    "statuses": dict(statuses),
                    "seen_during_fault": dict(during_outage),
                    "server_errors_other_than_503": server_errors,
                    "stored_exactly_once": exact,
                },
                flush=True,
            )
            return exact and not server_errors and only_503

        for phase in ("database stopped", "API killed"):
            ok &= run_phase(phase)
        raise SystemExit(0 if ok else 1)
    finally:
        if server is not None:
            server.stop()
        pg.destroy()


if __name__ == "__main__":
    main()
