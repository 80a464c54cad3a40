"""The client's spool: what could not be sent yet, kept on disk until the server takes it.

One file per run, JSON lines, append-only:

    {"kind": "run", "url": ..., "project": ..., "body": {"name", "config", "tags", "external_id"}}
    {"kind": "metrics", "body": {"steps": [...], "values": {...}, "times": [...]}}   (any number)
    {"kind": "status", "status": "finished", "config": {...}}    (optional; config when it changed)

The first line is enough to create the run (its ``external_id`` makes that idempotent), and each
metrics line is a request body of ``POST /api/v1/runs/{id}/metrics``, which is idempotent per
(run, key, step): sending a file twice never duplicates a point. A process that writes a spool
holds an exclusive lock on ``<file>.lock`` while it lives, so ``parityscope sync`` leaves the files
of running trainers alone. Only the standard library is used here.

A crash never loses what a spool file held before it:

- an append writes whole lines and fsyncs before it returns; a crash mid-append can leave a torn
  last line, which a reader skips and the next append cuts off before it writes;
- a rewrite (the spool less what the server has acknowledged) writes a temporary file in the
  same directory (``.<name>.tmp``), fsyncs it, renames it over the spool with ``os.replace`` and
  fsyncs the directory; a crash before the rename leaves the old spool whole and a temporary
  file that nothing reads and the next rewrite or removal replaces.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # POSIX advisory locks; elsewhere files are not locked.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["SpoolContents", "SpoolFile", "SpoolError", "default_spool_dir", "spool_files"]

SUFFIX = ".jsonl"


class SpoolError(Exception):
    """A spool file that cannot be read back (not written by this client, or damaged)."""


def default_spool_dir() -> Path:
    """``PARITYSCOPE_SPOOL_DIR``, else ``$XDG_CACHE_HOME/parityscope/spool`` (``~/.cache``)."""
    explicit = os.environ.get("PARITYSCOPE_SPOOL_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "parityscope" / "spool"


def spool_files(directory: Path) -> list[Path]:
    """The spool files in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))


@dataclass
class SpoolContents:
    url: str
    project: str
    run_body: dict[str, Any]
    metrics: list[dict[str, Any]]
    status: str | None
    final_update: dict[str, Any] = field(default_factory=dict)  # the run's last PATCH body

    @property
    def points(self) -> int:
        return sum(
            sum(v is not None for v in column)
            for body in self.metrics
            for column in body["values"].values()
        )


class SpoolFile:
    """The spool of one run. ``append`` writes the header line first, then each record, and
    flushes every line to disk before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_file: Any = None

    @classmethod
    def for_run(cls, directory: Path, url: str, project: str, external_id: str) -> SpoolFile:
        digest = hashlib.sha256(f"{url}\n{project}\n{external_id}".encode()).hexdigest()[:24]
        return cls(directory / f"{project[:40]}-{digest}{SUFFIX}")

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def exists(self) -> bool:
        return self.path.exists()

    def try_lock(self) -> bool:
        """Take the file's lock; False if another process holds it."""
        if self._lock_file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(self.lock_path, "a+")  # noqa: SIM115 - held until release()
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                return False
        self._lock_file = handle
        return True

    def release(self) -> None:
        if self._lock_file is not None:
            if not self.path.exists():
                self.lock_path.unlink(missing_ok=True)
            self._lock_file.close()
            self._lock_file = None

    @property
    def temp_path(self) -> Path:
        """Where a rewrite is prepared; never read as a spool (it does not end in ``.jsonl``)."""
        return self.path.with_name(f".{self.path.name}.tmp")

    def append(self, header: dict[str, Any], records: list[dict[str, Any]]) -> None:
        """Append ``records``; a new file starts with ``header`` (the run line)."""
        if not self.try_lock():
            raise SpoolError(f"{self.path}: locked by another process")
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            # A torn last line (a crash mid-append) is cut off, so that what follows starts a line.
            size = handle.seek(0, os.SEEK_END)
            whole = _whole_lines_length(handle, size)
            if whole != size:
                handle.truncate(whole)
            handle.seek(whole)
            lines = ([header] if whole == 0 else []) + records
            handle.write(b"".join(_line(line) for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        if created:
            _fsync_directory(self.path.parent)

    def rewrite(self, header: dict[str, Any], records: list[dict[str, Any]]) -> None:
        """Replace the file with ``header`` and ``records``, atomically: after a crash the file
        holds either its old contents or the new ones, whole."""
        if not self.try_lock():
            raise SpoolError(f"{self.path}: locked by another process")
        fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"".join(_line(line) for line in [header, *records]))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(self.temp_path, self.path)
        _fsync_directory(self.path.parent)

    def read(self) -> SpoolContents:
        """The file's contents; a torn last line (a crash mid-append) is skipped."""
        lines = self.path.read_bytes().split(b"\n")
        records: list[dict[str, Any]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError):
                if number == len(lines):  # no newline after it: the append never finished
                    break
                raise SpoolError(f"{self.path}: line {number} is not JSON") from None
        if not records or records[0].get("kind") != "run":
            raise SpoolError(f"{self.path}: line 1 is not a run header")
        header = records[0]
        metrics = [r["body"] for r in _of_kind(records, "metrics")]
        statuses = list(_of_kind(records, "status"))
        return SpoolContents(
            url=header["url"],
            project=header["project"],
            run_body=header["body"],
            metrics=metrics,
            status=statuses[-1]["status"] if statuses else None,
            final_update={k: v for k, v in statuses[-1].items() if k != "kind"} if statuses else {},
        )

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.temp_path.unlink(missing_ok=True)


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")


def _whole_lines_length(handle: Any, size: int) -> int:
    """The length of the file up to and with its last newline (0 without one)."""
    position = size
    while position > 0:
        start = max(0, position - 65536)
        handle.seek(start)
        chunk = handle.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def _fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse it
        pass
    finally:
        os.close(fd)


def _of_kind(records: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (r for r in records[1:] if r.get("kind") == kind)
