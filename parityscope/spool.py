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

    def append(self, header: dict[str, Any], records: list[dict[str, Any]]) -> None:
        """Append ``records``; a new file starts with ``header`` (the run line)."""
        if not self.try_lock():
            raise SpoolError(f"{self.path}: locked by another process")
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        lines = ([header] if fresh else []) + records
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            for line in lines:
                handle.write(json.dumps(line, allow_nan=False, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> SpoolContents:
        """The file's contents; a damaged last line (a crash mid-write) is ignored."""
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records: list[dict[str, Any]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
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


def _of_kind(records: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (r for r in records[1:] if r.get("kind") == kind)
