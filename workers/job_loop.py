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

from tqdm import tqdm

from parityscope import __version__
from parityscope.connection import ClientError, Connection, LeaseLost
from parityscope.wire import iter_column_batches

__all__ = ["MetricBuffer", "Worker", "check_engines_available", "job_connection"]


def job_connection(url: str, token: str) -> Connection:
    """The connection of a worker and of ``parityscope submit``: every call they make is safe to
    repeat (see parityscope.connection), so they ride out a restarting server with retries, and
    allow a slow first validation of a job on the server."""
    return Connection(url, token, timeout=30.0, retries=5)


class MetricBuffer:
    """Steps' metrics collected into column-form posts, sent every ``every_steps`` steps or
    ``every_seconds`` seconds, whichever comes first."""

    def __init__(self, api: Connection, run_id: int, every_steps: int = 10, every_seconds: float = 2.0) -> None:
        self.api = api
        self.run_id = run_id
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.rows: list[tuple[int, dict[str, float], float]] = []
        self.posted = 0
        self._last_flush = time.monotonic()

    def add(self, step: int, metrics: Mapping[str, float]) -> None:
        # Each step carries the wall time it finished at, so the compare page can draw the run
        # against relative wall time (docs/COMPARE.md).
        self.rows.append((step, {key: float(value) for key, value in metrics.items()}, time.time()))
        if len(self.rows) >= self.every_steps or time.monotonic() - self._last_flush >= self.every_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self.rows:
            return
        # A key a step did not log is null there: "no value", nothing stored.
        for body in iter_column_batches(self.rows):
            self.api.post_metrics(self.run_id, body)
        self.posted += len(self.rows)
        self.rows = []


class _Heartbeat(threading.Thread):
    """Extends the lease every third of it; sets ``lost`` when the server refuses."""

    def __init__(self, url: str, token: str, leg: Mapping[str, Any]) -> None:
        super().__init__(name=f"heartbeat-leg-{leg['id']}", daemon=True)
        self.api = Connection(url, token, timeout=max(2.0, leg["lease_seconds"] / 2), retries=0)
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
                except ClientError:
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
        device: str | None = None,  # torch engine and trainer: cpu | cuda | None (cuda if available)
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
        self.device = device
        self.log = log
        self.api = job_connection(url, token)

    def close(self) -> None:
        self.api.close()

    def description(self) -> dict[str, Any]:
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
                               engine=describe_leg(leg["settings"], leg["engine"], workload=leg["workload"],
                                                   device=self.device))
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
                device=self.device,
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
            except ClientError as report_error:
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
