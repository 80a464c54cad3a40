"""Plain domain objects that several layers share: what storage returns and what it is given.

ORM rows never leave ``backend.storage``; these objects do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from backend.errors import TooLarge
from backend.limits import MAX_KEYS_PER_REQUEST


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"


@dataclass(frozen=True)
class Project:
    id: int
    slug: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Token:
    """A verified token. ``project_id`` is None for a deployment-wide admin token."""

    id: int
    scope: Scope
    project_id: int | None
    label: str | None = None

    def can_read(self, project_id: int) -> bool:
        return self.scope == Scope.ADMIN or self.project_id == project_id

    def can_write(self, project_id: int) -> bool:
        return self.scope == Scope.ADMIN or (
            self.project_id == project_id and self.scope == Scope.WRITE
        )


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: the secret is shown once and stored only as a hash."""

    id: int
    secret: str
    scope: Scope
    project_id: int | None


@dataclass(frozen=True)
class Run:
    id: int
    project_id: int
    project_slug: str
    name: str
    status: RunStatus
    tags: list[str]
    config: dict[str, Any]
    engine: dict[str, Any] | None
    label: str | None
    external_id: str | None
    last_step: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RunPage:
    runs: list[Run]
    next_cursor: str | None


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    replaced: int


@dataclass(frozen=True)
class KeySummary:
    key: str
    count: int
    first_step: int
    last_step: int


@dataclass(frozen=True)
class Note:
    """A note pinned at a step of one comparison (its run set), shown on every panel."""

    id: int
    project_id: int
    run_ids: list[int]
    step: int
    text: str
    author: str | None
    source: str
    created_at: datetime


@dataclass(frozen=True)
class ShareLink:
    """A read-only link to one comparison view. The secret itself is never stored."""

    id: int
    project_id: int
    view: dict[str, Any]
    run_ids: list[int]
    frozen: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedShareLink:
    """A freshly made share link: the secret is shown once, like an API token's."""

    link: ShareLink
    secret: str


@dataclass(frozen=True)
class Sparkline:
    """A few sampled points of one metric of a run, for the runs table."""

    metric: str
    key: str | None
    steps: list[int]
    values: list[float]


@dataclass(frozen=True)
class SavedComparison:
    id: int
    project_id: int
    name: str
    reference_ids: list[int]
    candidate_ids: list[int]
    options: dict[str, Any]
    job_id: int | None
    created_at: datetime


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class LegStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    # A ladder's held and skipped rungs (docs/LADDER.md, stop_at_parity).
    WAITING = "waiting"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class JobLeg:
    """One leg of a paired job: one engine, one settings set, one sampling seed.

    ``attempts`` counts claims; the current claim is identified by (worker, attempts), so a
    worker whose lease expired and was claimed again cannot report on the newer attempt.
    """

    id: int
    job_id: int
    position: int
    role: str  # reference | candidate
    label: str
    engine: str
    settings: dict[str, Any]
    replica: int
    sampling_seed: int
    status: LegStatus
    run_id: int | None
    worker: str | None
    attempts: int
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    progress: dict[str, Any]
    error: str | None


@dataclass(frozen=True)
class Job:
    id: int
    project_id: int
    project_slug: str
    status: JobStatus
    workload: dict[str, Any]
    comparison_id: int | None
    created_at: datetime
    finished_at: datetime | None
    legs: list[JobLeg]


@dataclass(frozen=True)
class ClaimedLeg:
    """What a worker needs to run a leg it has just claimed."""

    leg: JobLeg
    project_slug: str
    workload: dict[str, Any]
    lease_expires_at: datetime


@dataclass(frozen=True)
class LegPlan:
    """One leg of a job as planned at submission, before storage gives it an id."""

    position: int
    role: str  # reference | candidate
    label: str
    engine: str
    settings: dict[str, Any]
    replica: int
    sampling_seed: int


class PointBatch:
    """Validated points in columns, de-duplicated per (key, step): the last value posted wins.

    ``times`` holds NaN where the caller gave no wall time; storage fills in the time of receipt.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._keys: list[int] = []
        self._steps: list[int] = []
        self._values: list[float] = []
        self._times: list[float] = []
        self._final: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def key_index(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            if len(self.names) >= MAX_KEYS_PER_REQUEST:
                raise TooLarge(
                    f"keys: more than {MAX_KEYS_PER_REQUEST} distinct metric keys in one request",
                    field="keys",
                )
            index = self._index[key] = len(self.names)
            self.names.append(key)
        return index

    def add(self, key: str, step: int, value: float, time: float | None) -> None:
        self._keys.append(self.key_index(key))
        self._steps.append(step)
        self._values.append(value)
        self._times.append(math.nan if time is None else time)
        self._final = None

    def extend(self, key: str, steps: list[int], values: list[float], times: list[float]) -> None:
        """Append a whole column of one key (values already decoded, ``None`` entries removed)."""
        index = self.key_index(key)
        self._keys.extend([index] * len(steps))
        self._steps.extend(steps)
        self._values.extend(values)
        self._times.extend(times)
        self._final = None

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(key_index int32, step int64, value float64, time float64)`` sorted by key and step."""
        if self._final is None:
            keys = np.asarray(self._keys, dtype=np.int32)
            steps = np.asarray(self._steps, dtype=np.int64)
            values = np.asarray(self._values, dtype=np.float64)
            times = np.asarray(self._times, dtype=np.float64)
            order = np.lexsort((np.arange(len(keys)), steps, keys))
            keys, steps, values, times = keys[order], steps[order], values[order], times[order]
            if len(keys) > 1:
                # Within a run of equal (key, step) the stable sort put the last-posted value last.
                last = np.ones(len(keys), dtype=bool)
                last[:-1] = (keys[1:] != keys[:-1]) | (steps[1:] != steps[:-1])
                keys, steps, values, times = keys[last], steps[last], values[last], times[last]
            self._final = (keys, steps, values, times)
        return self._final
