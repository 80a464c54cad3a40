"""``parityscope demo``: the paired demo job end to end on one machine.

It goes through the same doors a real deployment uses: the API served over HTTP (uvicorn in a
thread), the job submitted with a project write token, and a worker that claims the legs over
HTTP and posts their metrics. Only the worker runs in this process instead of on a GPU host, and
its engine is the built-in torch engine on CPU, emulating the vLLM V0 → V1 migration with the
real mechanisms (DESIGN.md §6). GPU workers run the same job with ``vllm-v0``/``vllm-v1`` legs.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backend.db import Database
from backend.domain import Scope
from backend.errors import NotFound, ParityScopeError
from backend.settings import Settings
from backend.storage.projects import ProjectStore
from backend.storage.tokens import TokenStore

__all__ = ["DEMO_PROJECT", "BackgroundServer", "DemoResult", "demo_job", "run_demo"]

DEMO_PROJECT = "demo"


class DemoFailed(ParityScopeError):
    pass


def demo_job(steps: int | None = None) -> dict[str, Any]:
    """The demo job body from the worker package's demo legs (DESIGN.md §6, issue 3 §6)."""
    from workers.demo import DEMO_LEGS, DEMO_WORKLOAD

    workload = dict(DEMO_WORKLOAD)
    if steps is not None:
        workload["steps"] = steps
    references = [leg for leg in DEMO_LEGS if leg.role == "reference"]
    candidates = [leg for leg in DEMO_LEGS if leg.role != "reference"]
    first = references[0]
    if any(leg.settings != first.settings or leg.engine != first.engine for leg in references):
        raise DemoFailed("demo: the reference legs must share engine and settings to be replicas")
    return {
        "project": DEMO_PROJECT,
        "workload": workload,
        "reference": {"engine": first.engine, "settings": first.settings.to_dict(),
                      "label": first.label, "replicas": len(references)},
        "candidates": [{"engine": leg.engine, "settings": leg.settings.to_dict(), "label": leg.label}
                       for leg in candidates],
    }


class BackgroundServer:
    """The app served by uvicorn in a daemon thread."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="parityscope-server", daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        config = self.server.config
        try:
            with socket.create_server((config.host, config.port)):
                pass
        except OSError as exc:
            raise DemoFailed(f"port: the server could not start on {self.url}: {exc.strerror}",
                             field="port") from None
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise DemoFailed(f"port: the server could not start on {self.url} (is the port in use?)",
                                 field="port")
            if time.monotonic() > deadline:
                raise DemoFailed(f"port: the server did not start on {self.url} within {timeout} s")
            time.sleep(0.05)
        return self

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C stops it)."""
        try:
            while self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass(frozen=True)
class DemoResult:
    job: dict[str, Any]
    token: str
    url: str
    compare_path: str
    seconds: float
    summary: list[dict[str, Any]]
    ladder_job: dict[str, Any] | None = None


def _demo_token(database: Database) -> str:
    with database.session() as session:
        projects = ProjectStore(session)
        try:
            project = projects.get_by_slug(DEMO_PROJECT)
        except NotFound:
            project = projects.create(DEMO_PROJECT, "Demo: vLLM V0 → V1 parity (torch engine on CPU)")
        return TokenStore(session).issue(Scope.WRITE, project.id, label="demo").secret


def _mean(values: list[Any]) -> float:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def run_demo(
    settings: Settings,
    database: Database,
    server: BackgroundServer,
    *,
    steps: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Submit the demo job to the running ``server`` and work its legs in this process."""
    from workers.job_loop import Worker, job_connection

    started = time.perf_counter()
    token = _demo_token(database)
    api = job_connection(server.url, token)
    try:
        job = api.submit(demo_job(steps))
        echo(f"job {job['id']}: {len(job['legs'])} legs of {job['workload']['steps']} steps on the torch engine "
             f"({', '.join(leg['label'] for leg in job['legs'])})")
        worker = Worker(server.url, token, name="demo-worker", engines=["torch"], poll_seconds=0.2,
                        progress=progress, log=echo)
        try:
            worker.run(stop=lambda: api.job(job["id"])["status"] in ("finished", "failed"))
        finally:
            worker.close()
        job = api.job(job["id"])
        if job["status"] != "finished":
            errors = "; ".join(f"{leg['label']}: {(leg['error'] or '').splitlines()[0] if leg['error'] else leg['status']}"
                               for leg in job["legs"] if leg["status"] != "finished")
            raise DemoFailed(f"demo: job {job['id']} {job['status']}: {errors}")
        summary = []
        for leg in job["legs"]:
            series = api.metrics(leg["run_id"], ["clamp_log_ratio_new_old_indicator", "kl_new_old", "reward"])
            summary.append({
                "label": leg["label"],
                "run_id": leg["run_id"],
                "clip_rate": _mean(series["clamp_log_ratio_new_old_indicator"]["values"]),
                "kl": _mean(series["kl_new_old"]["values"]),
                "reward_first": series["reward"]["values"][0],
                "reward_last": series["reward"]["values"][-1],
            })
        ladder_job = _demo_ladder(api, server.url, token, job, progress, echo)
    finally:
        api.close()
    references = [str(leg["run_id"]) for leg in job["legs"] if leg["role"] == "reference"]
    candidates = [str(leg["run_id"]) for leg in job["legs"] if leg["role"] == "candidate"]
    compare_path = (f"/compare?reference={','.join(references)}&candidates={','.join(candidates)}"
                    f"&ladder={ladder_job['id']}")
    return DemoResult(job=job, token=token, url=server.url, compare_path=compare_path,
                      seconds=time.perf_counter() - started, summary=summary, ladder_job=ladder_job)


def _demo_ladder(api: Any, url: str, token: str, job: dict[str, Any], progress: bool,
                 echo: Callable[[str], None]) -> dict[str, Any]:
    """The parity ladder over v1-initial against the reference pair, every rung run
    (docs/LADDER.md): which of its five settings close the gap."""
    from workers.job_loop import Worker

    references = [leg["run_id"] for leg in job["legs"] if leg["role"] == "reference"]
    candidate = next(leg["run_id"] for leg in job["legs"] if leg["label"] == "v1-initial")
    ladder_job = api.ladder({"reference": references, "candidate": candidate, "stop_at_parity": False})
    echo(f"ladder job {ladder_job['id']} over v1-initial: {ladder_job['ladder']['leg_count']} legs")
    worker = Worker(url, token, name="demo-worker", engines=["torch"], poll_seconds=0.2,
                    progress=progress, log=echo)
    try:
        worker.run(stop=lambda: api.job(ladder_job["id"])["status"] in ("finished", "failed"))
    finally:
        worker.close()
    ladder_job = api.job(ladder_job["id"])
    if ladder_job["status"] != "finished":
        raise DemoFailed(f"demo: ladder job {ladder_job['id']} {ladder_job['status']}")
    return ladder_job
