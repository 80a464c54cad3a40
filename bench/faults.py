"""Faults under load: PostgreSQL stopped and started, the API killed with SIGKILL, mid-load, and
a worker killed with SIGKILL mid-leg.

    .venv/bin/python bench/faults.py [--writers 8] [--points 20000] [--keys 10] [--per-request 2000]
                                     [--leg-steps 80] [--phases database,api,worker]

Runs against a PostgreSQL instance of its own (initdb into a temporary directory, on a free
port, as the ``postgres`` user when run as root), never a shared one, since it stops it.
Writers post their own runs through `parityscope serve` and retry as the client does: after a
503 or 429 they wait Retry-After, after a refused connection half a second, and send the same
body again. Phase 1 stops PostgreSQL for --outage seconds mid-load; phase 2 kills the API with
SIGKILL mid-load and starts it again on the same port. It prints the statuses seen while the
database was down (only 503 is acceptable) and checks every run's points by count and checksum.

Phase 3 submits a paired job of two torch legs and starts `parityscope worker` as a process of
its own with a 2 s lease; once the first leg has posted a few steps the worker is killed with
SIGKILL, its lease expires, and a second worker claims the leg again and finishes the job. The
same job is then run once more without a fault, as the control. Every leg's run must hold one
point per step and key, the killed leg must have been claimed twice, and each run's per-key
count and sum must equal the control's (the legs are seeded, so a re-run posts the same values).
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
from tests.tiny_job import TINY_WORKLOAD, V1_INITIAL
from workers.job_loop import job_connection

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


def worker_process(url: str, token: str, name: str, checkpoints: Path, *extra: str) -> subprocess.Popen:
    """`parityscope worker` for the torch engine, with a short lease and a flush after every step."""
    env = os.environ | {"PARITYSCOPE_CHECKPOINT_DIR": str(checkpoints)}
    checkpoints.mkdir(parents=True, exist_ok=True)
    log = open(checkpoints.parent / f"worker-{name}.log", "w")  # noqa: SIM115 - the process's own
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "worker", "--url", url, "--token", token, "--name", name,
         "--engines", "torch", "--lease-seconds", "2", "--poll-seconds", "0.2", "--flush-steps", "1",
         "--no-progress", *extra],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )


def worker_log(checkpoints: Path, name: str) -> str:
    path = checkpoints.parent / f"worker-{name}.log"
    return path.read_text()[-3000:] if path.exists() else ""


def wait_for_job(api, job_id: int, worker: subprocess.Popen, timeout: float = 600) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while (state := api.job(job_id))["status"] not in ("finished", "failed"):
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode} before job {job_id} ended")
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not end in {timeout:.0f} s: {state['status']}")
        time.sleep(0.2)
    return state


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def worker_phase(server_url: str, token: str, database_url: str, steps: int, checkpoints: Path) -> bool:
    """A worker killed with SIGKILL mid-leg; the leg's lease expires and another worker finishes."""
    job_body = {
        "workload": {**TINY_WORKLOAD, "steps": steps},
        "reference": {"engine": "torch", "settings": {}, "label": "reference"},
        "candidates": [{"engine": "torch", "settings": V1_INITIAL, "label": "v1-initial"}],
    }
    api = job_connection(server_url, token)
    http = httpx.Client(base_url=server_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    started = time.monotonic()
    job = api.submit(job_body)
    doomed = worker_process(server_url, token, "doomed", checkpoints, "--once")
    posted = 0
    try:
        # The warm-started checkpoint is built on the first claim; then the leg posts step by step.
        deadline = time.monotonic() + 600
        while posted < 3:
            if doomed.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the first worker posted no steps:\n{worker_log(checkpoints, 'doomed')}")
            leg = api.job(job["id"])["legs"][0]
            if leg["run_id"] is not None:
                keys = {k["key"]: k["count"] for k in http.get(f"/api/v1/runs/{leg['run_id']}/keys").json()}
                posted = keys.get("reward", 0)
            time.sleep(0.05)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    killed = api.job(job["id"])["legs"][0]
    rescuer = worker_process(server_url, token, "rescuer", checkpoints)
    try:
        state = wait_for_job(api, job["id"], rescuer)
        recovered_s = time.monotonic() - started
        control = wait_for_job(api, api.submit(job_body)["id"], rescuer)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}:\n{worker_log(checkpoints, 'rescuer')}") from None
    finally:
        stop_worker(rescuer)
    legs = state["legs"]
    runs = [leg["run_id"] for leg in legs] + [leg["run_id"] for leg in control["legs"]]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT p.run_id, k.name, count(*), count(DISTINCT p.step), min(p.step), max(p.step),"
            " sum(p.value) FILTER (WHERE p.value <> 'NaN'), count(*) FILTER (WHERE p.value = 'NaN')"
            " FROM metric_point p JOIN metric_key k ON k.id = p.key_id"
            " WHERE p.run_id = ANY(%s) GROUP BY p.run_id, k.name",
            (runs,),
        ).fetchall()
    series = {(run, key): (n, distinct, lo, hi, total, nans) for run, key, n, distinct, lo, hi, total, nans in rows}
    one_per_step = bool(series) and all(
        n == distinct == steps and (lo, hi) == (0, steps - 1) for n, distinct, lo, hi, _, _ in series.values()
    )
    same_as_control = True
    for leg, twin in zip(legs, control["legs"], strict=True):
        mine = {key: v for (run, key), v in series.items() if run == leg["run_id"]}
        theirs = {key: v for (run, key), v in series.items() if run == twin["run_id"]}
        same_as_control &= bool(mine) and mine.keys() == theirs.keys() and all(
            mine[key][0] == theirs[key][0] and mine[key][5] == theirs[key][5]
            and math.isclose(mine[key][4] or 0.0, theirs[key][4] or 0.0, rel_tol=1e-9, abs_tol=1e-12)
            for key in mine
        )
    requeued = legs[0]
    claims_ok = (
        killed["worker"] == "doomed" and killed["status"] == "running"
        and requeued["attempts"] == 2 and requeued["worker"] == "rescuer" and requeued["run_id"] == killed["run_id"]
        and all(leg["attempts"] == 1 for leg in legs[1:])
    )
    print(
        {
            "phase": "worker killed mid-leg",
            "legs": len(legs),
            "steps_per_leg": steps,
            "steps_posted_before_kill": posted,
            "job_status": state["status"],
            "killed_leg_attempts": requeued["attempts"],
            "finished_by": requeued["worker"],
            "seconds_to_finish_after_submit": round(recovered_s, 1),
            "series_checked": len(series),
            "one_point_per_step": one_per_step,
            "count_and_checksum_equal_to_control": same_as_control,
        },
        flush=True,
    )
    http.close()
    api.close()
    return state["status"] == "finished" and claims_ok and one_per_step and same_as_control


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--points", type=int, default=20_000, help="points per writer and phase")
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--per-request", type=int, default=2_000)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--leg-steps", type=int, default=80, help="steps of each leg in the worker phase")
    parser.add_argument("--phases", default="database,api,worker", help="which faults, comma-separated")
    args = parser.parse_args()
    phases = set(args.phases.split(","))

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

        for name, phase in (("database", "database stopped"), ("api", "API killed")):
            if name in phases:
                ok &= run_phase(phase)
        if "worker" in phases:
            ok &= worker_phase(server.url, token, url, args.leg_steps, pg.dir / "checkpoints")
        raise SystemExit(0 if ok else 1)
    finally:
        if server is not None:
            server.stop()
        pg.destroy()


if __name__ == "__main__":
    main()
