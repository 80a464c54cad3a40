"""The ParityScope Python client: log metrics from a training loop without ever blocking it.

    import parityscope

    with parityscope.init(project="gspo-v1", name="v1-candidate", config=cfg) as run:
        for step in range(steps):
            ...
            run.log({"reward": reward, "kl_new_old": kl}, step=step)

The module-level calls are wandb's and trackio's (``import parityscope as wandb`` runs a wandb
script's logging unchanged): ``parityscope.init(project=, name=, config=)`` makes its run the
current one, ``parityscope.log(values, step=)``, ``parityscope.config``, ``parityscope.summary``
and ``parityscope.finish()`` act on it. Values may be numbers, numpy scalars or one-element
tensors; nested dicts are flattened with ``/``; anything else is skipped with one warning per
key, never raised in the training loop.

``run.log`` only copies the values and appends them to a queue; a background thread sends them in
column-form batches to ``POST /api/v1/runs/{id}/metrics``. When the server cannot be reached (or
answers 5xx/429), batches go to a spool file (``parityscope.spool``) and the thread retries with
exponential backoff, sending the spool first when the server is back. Whatever is still spooled
when the process ends is sent by ``parityscope sync``. The run is created with an
``external_id`` (generated when not given), so creating it is idempotent too: a run that could not
be created at ``init`` is created later with the same identity.

Depends only on httpx and the standard library.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parityscope.connection import ClientError, Connection, ServerUnavailable
from parityscope.run_state import Config, Summary, as_mapping, as_number
from parityscope.spool import SpoolError, SpoolFile, default_spool_dir, spool_files
from parityscope.wire import MAX_STEP, WireError, check_key, column_batches

__all__ = ["ClientError", "Connection", "Run", "ServerUnavailable", "SyncResult", "current_run", "finish",
           "init", "log_values", "sync"]

ENV_URL = "PARITYSCOPE_URL"
ENV_TOKEN = "PARITYSCOPE_TOKEN"
ENV_PROJECT = "PARITYSCOPE_PROJECT"
SUMMARY_PREFIX = "summary/"
# wandb.init options that have no meaning here; a wandb script passes them and carries on.
IGNORED_WANDB_OPTIONS = frozenset(
    {"entity", "group", "job_type", "notes", "dir", "reinit", "resume", "save_code", "settings", "mode"}
)

log = logging.getLogger("parityscope")
_now = time.time


# -- the run --------------------------------------------------------------------------------


class Run:
    """One training run on the server. Create it with ``init``."""

    def __init__(
        self,
        connection: Connection,
        project: str,
        body: dict[str, Any],
        *,
        spool_dir: Path,
        flush_interval: float,
        max_backoff: float,
    ) -> None:
        self.project = project
        self.name: str = body["name"]
        self.external_id: str = body["external_id"]
        self.id: int | None = None
        self._connection = connection
        self._run_body = body
        self._spool = SpoolFile.for_run(spool_dir, connection.url, project, self.external_id)
        self._header = {"kind": "run", "url": connection.url, "project": project, "body": body}
        self._flush_interval = flush_interval
        self._max_backoff = max_backoff
        self._queue: collections.deque[tuple[int, dict[str, float], float]] = collections.deque()
        self._append = self._queue.append  # deque.append is atomic: no lock on the hot path
        self._known_keys: set[str] = set()
        self._warned_keys: set[Any] = set()
        self._latest: dict[str, float] = {}
        self.config = Config(body["config"], on_change=self._config_changed)
        self.summary = Summary(self._latest)
        self._config_changed_after_init = False
        self._next_step = 0
        self._finished = False
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._requested = 0  # flush requests made / served, guarded by _done
        self._served = 0
        self._stop = False
        self._final_status: str | None = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._gave_up = False  # a 4xx: automatic retries would not help
        self._sent = 0
        self._announced_outage = False

    # -- the training loop's side ---------------------------------------------------------

    def log(self, values: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """Queue one step's values; returns at once. ``step`` defaults to the previous step + 1
        (to the same step again after ``commit=False``, as in wandb).

        Values are numbers (NaN and ±inf included), numpy scalars or one-element tensors; a
        nested dict is flattened with ``/`` (``{"train": {"loss": x}}`` is ``train/loss``). A value
        that is not a number, or a key the wire format refuses, is skipped with one warning per
        key: a training loop never fails on what it logs.
        """
        if self._finished:
            raise RuntimeError(f"log: run {self.name!r} is finished")
        if step is None:
            step = self._next_step
        elif type(step) is not int:
            step = int(step.__index__())
        if not 0 <= step <= MAX_STEP:
            raise ValueError(f"log: step {step} is outside 0..2^53")
        row: dict[str, float] = {}
        known = self._known_keys
        for key, value in values.items():
            if type(value) is float and key in known:
                row[key] = value
            else:
                self._add_value(row, key, value)
        if row:
            self._latest.update(row)
            self._append((step, row, _now()))
        self._next_step = step if commit is False else step + 1

    def _add_value(self, row: dict[str, float], key: Any, value: Any) -> None:
        """The slow path of ``log``: a new key, a value that is not a float, a nested dict."""
        if isinstance(value, Mapping) and isinstance(key, str):
            for inner, inner_value in value.items():
                self._add_value(row, f"{key}/{inner}" if isinstance(inner, str) else inner, inner_value)
            return
        if key not in self._known_keys:
            try:
                check_key(key, "log")
                self._known_keys.add(key)
            except WireError as exc:
                self._warn_once(key, f"parityscope: log: {exc}; the value is skipped")
                return
        number = as_number(value)
        if number is None:
            self._warn_once(
                key, f"parityscope: log: {key!r} is {type(value).__name__}, not a number; skipped "
                "(this warning is given once per key)",
            )
            return
        row[key] = number

    def _warn_once(self, key: Any, message: str) -> None:
        marker = key if isinstance(key, str) else repr(key)
        if marker not in self._warned_keys:
            self._warned_keys.add(marker)
            log.warning(message)

    def _config_changed(self) -> None:
        self._config_changed_after_init = True
        self._run_body["config"] = self.config.as_dict()  # a run created late gets it too

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything logged so far is sent or spooled. True when nothing is left in
        the spool (all of it is on the server)."""
        self._serve(timeout)
        return self.id is not None and not self._spool.exists()

    def finish(self, status: str = "finished", timeout: float | None = 30.0) -> None:
        """Send what is queued, set the run's status and stop the background thread. With the
        server unreachable, the status goes to the spool with the points."""
        if self._finished:
            return
        self._log_summary()
        self._finished = True
        self._final_status = status
        self._serve(timeout, stop=True)
        self._thread.join(timeout)
        self._spool.release()
        self._connection.close()
        if self._spool.exists():
            log.warning(
                "parityscope: run %r: the server was not reachable; its unsent points are in %s "
                "and will be sent by `parityscope sync`",
                self.name,
                self._spool.path,
            )

    def _log_summary(self) -> None:
        explicit = self.summary.explicit
        if explicit:
            self.log({SUMMARY_PREFIX + key: value for key, value in explicit.items()}, step=max(0, self._next_step - 1))

    def _final_update(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self._final_status}
        if self._config_changed_after_init:
            body["config"] = self.config.as_dict()
        return body

    @property
    def finished(self) -> bool:
        return self._finished

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish("failed" if exc_type is not None else "finished")

    # -- the background thread ------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"parityscope-{self.name}", daemon=True)
        self._thread.start()

    def _serve(self, timeout: float | None, stop: bool = False) -> None:
        """Ask the thread for a full cycle (its last one with ``stop``) and wait for it."""
        with self._done:
            self._stop = self._stop or stop
            self._requested += 1
            ticket = self._requested
            self._wake.set()
            self._done.wait_for(lambda: self._served >= ticket or not self._thread.is_alive(), timeout)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            with self._done:
                # Read together: a stop request always comes with a ticket this cycle serves.
                ticket, final = self._requested, self._stop
            try:
                self._cycle(final)
            except Exception:  # noqa: BLE001 - the thread must survive anything and keep the data
                log.exception("parityscope: run %r: unexpected error in the sender", self.name)
            with self._done:
                self._served = max(self._served, ticket)
                self._done.notify_all()
            if final:
                return

    def _drain(self) -> list[tuple[int, dict[str, float], float]]:
        rows = []
        queue = self._queue
        while queue:
            rows.append(queue.popleft())
        return rows

    def _cycle(self, final: bool) -> None:
        batches = column_batches(self._drain())
        records = [{"kind": "metrics", "body": b} for b in batches]
        if final and self._final_status is not None:
            records.append({"kind": "status", **self._final_update()})
        # While the server is away (or refused us), keep appending to the spool until the
        # next retry is due; the last cycle of finish() always tries once more.
        waiting = self._gave_up or (time.monotonic() < self._retry_at and not final)
        if waiting or self._spool.exists():
            if records:
                self._spool.append(self._header, records)
            if not waiting:
                self._deliver_spool()
            return
        try:
            self._send(records)
        except ClientError as exc:
            self._spool.append(self._header, records[self._sent :])
            self._failed(exc)

    def _send(self, records: list[dict[str, Any]]) -> None:
        self._sent = 0
        if self.id is None:
            self.id = int(self._connection.create_run(self.project, self._run_body)["id"])
        for record in records:
            if record["kind"] == "metrics":
                self._connection.post_metrics(self.id, record["body"])
            else:
                self._connection.update_run(self.id, {k: v for k, v in record.items() if k != "kind"})
            self._sent += 1
        self._recovered()

    def _deliver_spool(self) -> None:
        try:
            contents = self._spool.read()
            records = [{"kind": "metrics", "body": b} for b in contents.metrics]
            if contents.status is not None:
                records.append({"kind": "status", **contents.final_update})
            self._send(records)
        except ClientError as exc:
            if self._sent:
                # Keep only what the server has not acknowledged: a server that takes a few
                # requests at a time (a rate limit) then sees progress, not the same first ones.
                self._spool.rewrite(self._header, records[self._sent :])
            self._failed(exc)
            return
        self._spool.remove()
        log.info("parityscope: run %r: the spooled points are on the server", self.name)

    def _failed(self, exc: Exception) -> None:
        if not isinstance(exc, ServerUnavailable):
            self._gave_up = True
            log.warning(
                "parityscope: run %r: the server refused the metrics (%s); they are kept in %s "
                "for `parityscope sync`",
                self.name,
                exc,
                self._spool.path,
            )
            return
        self._backoff = min(self._max_backoff, max(0.5, self._backoff * 2))
        wait = self._backoff
        if isinstance(exc, ServerUnavailable) and exc.retry_after is not None:
            # The server said when to come back (a rate limit, a database outage).
            wait = max(wait, exc.retry_after)
        self._retry_at = time.monotonic() + wait
        if not self._announced_outage:
            self._announced_outage = True
            log.warning(
                "parityscope: run %r: %s; spooling to %s and retrying", self.name, exc, self._spool.path
            )

    def _recovered(self) -> None:
        self._backoff = 0.0
        self._retry_at = 0.0
        self._announced_outage = False


# -- entry points ---------------------------------------------------------------------------


_live_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_crashed = False


def _excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
    global _crashed
    _crashed = True
    _previous_excepthook(exc_type, exc, tb)


_previous_excepthook = sys.excepthook


def _finish_all_at_exit() -> None:
    for run in list(_live_runs):
        run.finish("failed" if _crashed else "finished", timeout=10.0)


_hooks_installed = False


def _install_exit_hooks() -> None:
    global _hooks_installed, _previous_excepthook
    if not _hooks_installed:
        _hooks_installed = True
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        atexit.register(_finish_all_at_exit)


def init(
    project: str | None = None,
    name: str | None = None,
    config: Any = None,
    tags: list[str] | None = None,
    external_id: str | None = None,
    url: str | None = None,
    token: str | None = None,
    *,
    id: str | None = None,  # noqa: A002 - wandb's name for the run's identity
    spool_dir: str | Path | None = None,
    flush_interval: float = 1.0,
    max_backoff: float = 30.0,
    timeout: float = 10.0,
    **wandb_options: Any,
) -> Run:
    """Start logging a run of ``project`` (its slug) and make it the current run of the
    module-level ``log``, ``config``, ``summary`` and ``finish``.

    ``project`` defaults to ``PARITYSCOPE_PROJECT``, ``url`` and ``token`` to ``PARITYSCOPE_URL``
    and ``PARITYSCOPE_TOKEN`` (a write token); ``name`` to the script's name and a short id.
    ``config`` is a mapping or an ``argparse.Namespace``. ``external_id`` (or wandb's ``id``)
    names the run idempotently: a restarted trainer that passes the same one logs into the same
    run. wandb's options that mean nothing here (``entity``, ``group``, ``notes``, ``mode``…) are
    accepted and ignored. The server is asked to create the run at once; if it is unreachable,
    logging goes on into the spool and the run is created when the server is back. A refusal
    (a bad token, an unknown project, a bad config) raises ``ClientError`` here. The run
    finishes on ``with`` exit, on ``finish()``, or when the interpreter exits (``failed`` after
    an uncaught exception).
    """
    unknown = sorted(set(wandb_options) - IGNORED_WANDB_OPTIONS)
    if unknown:
        raise TypeError(f"init() got an unexpected keyword argument {unknown[0]!r}")
    project = project or os.environ.get(ENV_PROJECT)
    url = url or os.environ.get(ENV_URL)
    token = token or os.environ.get(ENV_TOKEN)
    if not project:
        raise ValueError(f"init: no project; pass project= or set {ENV_PROJECT} (a project's slug)")
    if not url:
        raise ValueError(f"init: no server URL; pass url= or set {ENV_URL}")
    if not token:
        raise ValueError(f"init: no token; pass token= or set {ENV_TOKEN} (a write token of the project)")
    if external_id is not None and id is not None and external_id != id:
        raise ValueError("init: external_id and id name the same thing; pass one of them")
    identity = external_id or id or uuid.uuid4().hex
    body = {
        "name": name or f"{Path(sys.argv[0]).stem or 'run'}-{identity[:8]}",
        "config": {},
        "tags": list(tags or []),
        "external_id": identity,
    }
    connection = Connection(url, token, timeout=timeout)
    run = Run(
        connection,
        project,
        body,
        spool_dir=Path(spool_dir) if spool_dir is not None else default_spool_dir(),
        flush_interval=flush_interval,
        max_backoff=max_backoff,
    )
    run.config.update(as_mapping(config, "init"))
    body["config"] = run.config.as_dict()
    run._config_changed_after_init = False
    try:
        run.id = int(connection.create_run(project, body)["id"])
    except ServerUnavailable as exc:
        run._failed(exc)
        run._spool.append(run._header, [])
    except ClientError:
        connection.close()
        raise
    run._start()
    _live_runs.add(run)
    _install_exit_hooks()
    global _current
    _current = run
    return run


# -- the module-level calls of wandb and trackio ------------------------------------------


_current: Run | None = None


def current_run() -> Run | None:
    """The run of the last ``init``, until it finishes."""
    return _current if _current is not None and not _current.finished else None


def _require_run(what: str) -> Run:
    run = current_run()
    if run is None:
        raise RuntimeError(f"parityscope.{what}: call parityscope.init() first")
    return run


def log_values(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``Run.log`` on the current run (``parityscope.log``)."""
    _require_run("log").log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run: ``failed`` with a non-zero ``exit_code``, else ``finished``.
    Nothing happens when no run is current (as in wandb)."""
    global _current
    run = current_run()
    _current = None
    if run is not None:
        run.finish("failed" if exit_code else "finished")


class _BeforeInit:
    """What ``parityscope.config`` and ``parityscope.summary`` are before ``init``: any use
    says to call ``init`` first."""

    def __init__(self, what: str) -> None:
        object.__setattr__(self, "_what", what)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"parityscope.{self._what}: call parityscope.init() first")

    __getattr__ = __setattr__ = __getitem__ = __setitem__ = __iter__ = __len__ = _refuse

    def __repr__(self) -> str:
        return f"<parityscope.{self._what} before init>"


def current_attribute(name: str) -> Any:
    """``parityscope.run``, ``parityscope.config``, ``parityscope.summary`` of the current run."""
    run = current_run()
    if name == "run":
        return run
    if run is None:
        return _BeforeInit(name)
    return getattr(run, name)


@dataclass(frozen=True)
class SyncResult:
    path: Path
    run_id: int | None
    points: int
    error: str | None  # None when the file was sent and removed


def sync(url: str | None = None, token: str | None = None, spool_dir: str | Path | None = None) -> list[SyncResult]:
    """Send every spool file in ``spool_dir`` (default: the client's), each to the URL it was
    written for unless ``url`` is given. Files of running processes are skipped; a file is
    removed once all of it is on the server."""
    token = token or os.environ.get(ENV_TOKEN)
    url = url or os.environ.get(ENV_URL)
    directory = Path(spool_dir) if spool_dir is not None else default_spool_dir()
    results = []
    for path in spool_files(directory):
        spool = SpoolFile(path)
        if not spool.try_lock():
            results.append(SyncResult(path, None, 0, "in use by a running process; skipped"))
            continue
        try:
            contents = spool.read()
            connection = Connection(url or contents.url, token)
            try:
                run_id = int(connection.create_run(contents.project, contents.run_body)["id"])
                for body in contents.metrics:
                    connection.post_metrics(run_id, body)
                if contents.status is not None:
                    connection.update_run(run_id, contents.final_update)
            finally:
                connection.close()
            spool.remove()
            results.append(SyncResult(path, run_id, contents.points, None))
        except (ClientError, SpoolError) as exc:
            results.append(SyncResult(path, None, 0, str(exc)))
        finally:
            spool.release()
    return results
