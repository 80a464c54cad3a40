"""The worker's job loop: claim a leg over HTTP, run it, post its metrics, report the outcome.

A worker is a client of the REST API like a trainer: it needs a URL and a project write token,
never database credentials, so it runs on any host that has its engine. For each leg it

1. claims the leg for the engines it declared, with a lease;
2. heartbeats from a thread every third of the lease, with the step it has reached;
3. runs :func:`workers.leg.run_leg`, batching each step's metrics into column-form posts to
   ``/api/v1/runs/{run}/metrics``;
4. completes the leg with the engine's own description, or fails it with the error.

A re-run after a requeue posts every step again into the same run: ingestion is idempotent per
(run, key, step), so the run ends with exactly one value per step whichever worker wrote it. If
a heartbeat is refused (409: the lease ran out and the leg went to another worker) the leg is
abandoned at the next step, without completing or failing it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from backend.storage.values import encode_value

__all__ = ["JobApi", "LeaseLost", "MetricBuffer", "Worker", "check_engines_available"]

# Transient answers worth retrying: a proxy in front of a restarting server. (The server's own
# 503s — a database behind its migrations, a server without the worker extra — are not transient.)
_RETRY_STATUS = {502, 504}


class LeaseLost(Exception):
    """The server gave this leg to another claim; this worker must stop working on it."""


class JobApi:
    """The few endpoints a worker and ``parityscope submit`` use, with retries on transient errors.

    Every call the loop makes is safe to repeat: metric posts are idempotent per (run, key, step)
    and a repeated heartbeat only extends the lease again.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0, retries: int = 5) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def close(self) -> None:
        self.client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            else:
                if response.status_code not in _RETRY_STATUS or attempt == self.retries:
                    return response
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        raise AssertionError("unreachable")

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise httpx.HTTPStatusError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}",
            request=response.request,
            response=response,
        )

    def submit(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return self._check(self._request("POST", "/api/v1/jobs", json=job)).json()

    def job(self, job_id: int) -> dict[str, Any]:
        return self._check(self._request("GET", f"/api/v1/jobs/{job_id}")).json()

    def ladder(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/v1/ladders: a ladder job from runs (or its plan, with ``dry_run``)."""
        return self._check(self._request("POST", "/api/v1/ladders", json=body)).json()

    def claim(
        self, worker: str, engines: list[str], lease_seconds: int, description: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        body = {"worker": worker, "engines": engines, "lease_seconds": lease_seconds,
                "description": dict(description)}
        response = self._check(self._request("POST", "/api/v1/legs/claim", json=body))
        return None if response.status_code == 204 else response.json()

    def _report(self, leg: Mapping[str, Any], what: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"worker": leg["worker"], "attempt": leg["attempt"], **body}
        response = self._request("POST", f"/api/v1/legs/{leg['id']}/{what}", json=body)
        if response.status_code == 409:
            raise LeaseLost(response.json().get("detail", "lease lost"))
        return self._check(response).json()

    def heartbeat(self, leg: Mapping[str, Any], progress: Mapping[str, Any] | None = None,
                  engine: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"lease_seconds": leg["lease_seconds"]}
        if progress is not None:
            body["progress"] = dict(progress)
        if engine is not None:
            body["engine"] = dict(engine)
        return self._report(leg, "heartbeat", body)

    def complete(self, leg: Mapping[str, Any], engine: Mapping[str, Any] | None = None,
                 progress: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if engine is not None:
            body["engine"] = dict(engine)
        if progress is not None:
            body["progress"] = dict(progress)
        return self._report(leg, "complete", body)

    def fail(self, leg: Mapping[str, Any], error: str) -> dict[str, Any]:
        return self._report(leg, "fail", {"error": error[-20_000:] or "unknown error"})

    def metrics(self, run_id: int, keys: list[str]) -> dict[str, Any]:
        params = {"keys": ",".join(keys)}
        return self._check(self._request("GET", f"/api/v1/runs/{run_id}/metrics", params=params)).json()

    def post_metrics(self, run_id: int, steps: list[int], values: Mapping[str, list[Any]]) -> None:
        body = {"steps": steps, "values": dict(values)}
        self._check(self._request("POST", f"/api/v1/runs/{run_id}/metrics", json=body))


class MetricBuffer:
    """Steps' metrics collected into one column-form post, sent every ``every_steps`` steps or
    ``every_seconds`` seconds, whichever comes first."""

    def __init__(self, api: JobApi, run_id: int, every_steps: int = 10, every_seconds: float = 2.0) -> None:
        self.api = api
        self.run_id = run_id
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.steps: list[int] = []
        self.rows: list[Mapping[str, float]] = []
        self.posted = 0
        self._last_flush = time.monotonic()

    def add(self, step: int, metrics: Mapping[str, float]) -> None:
        self.steps.append(step)
        self.rows.append(metrics)
        if len(self.steps) >= self.every_steps or time.monotonic() - self._last_flush >= self.every_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self.steps:
            return
        keys = sorted({key for row in self.rows for key in row})
        # A key a step did not log is null there: "no value", nothing stored.
        values = {key: [encode_value(float(row[key])) if key in row else None for row in self.rows] for key in keys}
        self.api.post_metrics(self.run_id, self.steps, values)
        self.posted += len(self.steps)
        self.steps, self.rows = [], []


class _Heartbeat(threading.Thread):
    """Extends the lease every third of it; sets ``lost`` when the server refuses."""

    def __init__(self, url: str, token: str, leg: Mapping[str, Any]) -> None:
        super().__init__(name=f"heartbeat-leg-{leg['id']}", daemon=True)
        self.api = JobApi(url, token, timeout=max(2.0, leg["lease_seconds"] / 2), retries=0)
        self.leg = leg
        self.interval = max(0.2, leg["lease_seconds"] / 3)
        self.progress: dict[str, Any] = {"step": 0, "steps": leg["workload"]["steps"]}
        self.lost = threading.Event()
        self.reason = ""
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.wait(self.interval):
                try:
                    self.api.heartbeat(self.leg, progress=self.progress)
                except LeaseLost as exc:
                    self.reason = str(exc)
                    self.lost.set()
                    return
                except httpx.HTTPError:
                    # The server may be briefly away; the lease outlives a few missed beats.
                    continue
        finally:
            self.api.close()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=10)
        else:
            self.api.close()


def check_engines_available(engines: list[str]) -> None:
    """Refuse to declare an engine this host cannot run, so its legs go to a worker that can."""
    from workers.leg import ENGINE_NAMES

    for engine in engines:
        if engine not in ENGINE_NAMES:
            raise ValueError(f"engines: unknown engine {engine!r}; known: {', '.join(ENGINE_NAMES)}")
        if engine.startswith("vllm") and importlib.util.find_spec("vllm") is None:
            raise ValueError(f"engines: {engine} needs vLLM installed on this host")


class Worker:
    """Claims and runs legs until told to stop."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        name: str | None = None,
        engines: list[str] | None = None,
        lease_seconds: int = 60,
        checkpoint_dir: Path | None = None,
        poll_seconds: float = 2.0,
        flush_steps: int = 10,
        flush_seconds: float = 2.0,
        progress: bool = True,
        torch_threads: int | None = 1,
        log: Callable[[str], None] = print,
    ) -> None:
        self.url = url
        self.token = token
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.engines = engines or ["torch"]
        self.lease_seconds = lease_seconds
        self.checkpoint_dir = checkpoint_dir
        self.poll_seconds = poll_seconds
        self.flush_steps = flush_steps
        self.flush_seconds = flush_seconds
        self.progress = progress
        self.torch_threads = torch_threads
        self.log = log
        self.api = JobApi(url, token)

    def close(self) -> None:
        self.api.close()

    def description(self) -> dict[str, Any]:
        from backend import __version__

        return {"host": socket.gethostname(), "pid": os.getpid(), "parityscope": __version__,
                "engines": self.engines}

    def run_once(self) -> str | None:
        """Claim one leg and run it: ``"finished"``, ``"failed"``, ``"lost"``, or None if none."""
        leg = self.api.claim(self.name, self.engines, self.lease_seconds, self.description())
        if leg is None:
            return None
        return self.run_leg(leg)

    def run(self, stop: Callable[[], bool] | None = None, max_legs: int | None = None) -> int:
        """Work until ``stop()`` says so (checked whenever no leg is claimable) or ``max_legs``
        legs have been run; forever without either. Returns the number of legs run."""
        done = 0
        while max_legs is None or done < max_legs:
            outcome = self.run_once()
            if outcome is not None:
                done += 1
                continue
            if stop is not None and stop():
                break
            time.sleep(self.poll_seconds)
        return done

    def run_leg(self, leg: dict[str, Any]) -> str:
        from workers.leg import describe_leg, run_leg

        steps = leg["workload"]["steps"]
        title = f"{leg['label']} (job {leg['job_id']} leg {leg['id']}, {leg['engine']}, claim {leg['attempt']})"
        buffer = MetricBuffer(self.api, leg["run_id"], self.flush_steps, self.flush_seconds)
        heartbeat = _Heartbeat(self.url, self.token, leg)
        bar = tqdm(total=steps, desc=leg["label"], unit="step", disable=not self.progress, leave=True)
        if self.progress:
            bar.write(f"leg: {title}")
        try:
            # The run record names the engine that actually runs the leg from the start.
            self.api.heartbeat(leg, progress=heartbeat.progress,
                               engine=describe_leg(leg["settings"], leg["engine"]))
            heartbeat.start()

            def on_step(step: int, metrics: dict[str, float]) -> None:
                if heartbeat.lost.is_set():
                    raise LeaseLost(heartbeat.reason)
                buffer.add(step, metrics)
                heartbeat.progress = {"step": step + 1, "steps": steps}
                bar.update(1)
                bar.set_postfix(reward=f"{metrics.get('reward', math.nan):.3f}",
                                clip=f"{metrics.get('clamp_log_ratio_new_old_indicator', math.nan):.3f}")

            result = run_leg(
                leg["workload"],
                leg["settings"],
                leg["sampling_seed"],
                engine_name=leg["engine"],
                on_step=on_step,
                checkpoint_dir=self.checkpoint_dir,
                torch_threads=self.torch_threads,
            )
            buffer.flush()
            if heartbeat.lost.is_set():
                raise LeaseLost(heartbeat.reason)
            self.api.complete(leg, engine=result.engine, progress=heartbeat.progress)
            self._say(bar, f"finished {title}: {steps} steps in {result.seconds:.1f} s")
            return "finished"
        except LeaseLost as exc:
            self._say(bar, f"abandoned {title}: {exc}")
            return "lost"
        except Exception as exc:  # noqa: BLE001 - any failure of the leg is reported, then we go on
            error = "".join(traceback.format_exception(exc)[-20:])
            self._say(bar, f"failed {title}: {type(exc).__name__}: {exc}")
            try:
                self.api.fail(leg, f"{type(exc).__name__}: {exc}\n\n{error}")
            except (LeaseLost, httpx.HTTPError) as report_error:
                # The lease will run out and the leg go to another worker.
                self._say(bar, f"could not report the failure: {report_error}")
            return "failed"
        finally:
            heartbeat.stop()
            bar.close()

    def _say(self, bar: tqdm, message: str) -> None:
        if self.progress:
            bar.write(message)
        else:
            self.log(message)
