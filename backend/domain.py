"""Plain domain objects returned by the storage layer. ORM rows never leave ``backend.storage``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


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


@dataclass
class Series:
    """One metric of one run. ``values`` holds floats; NaN is float('nan')."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
