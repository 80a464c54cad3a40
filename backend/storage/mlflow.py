"""Queries behind the MLflow-compatible tracking API (``backend.api.routes.mlflow``).

MLflow's entities live in ParityScope's own tables (see ``backend.mlflow_compat``); what this
module adds is what MLflow asks for and the core API does not: projects looked up by name,
metric points with their wall times, each run's latest value per key, and a row lock that makes
MLflow's read-modify-write of params and tags safe against a concurrent writer.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from backend.domain import Project, Run
from backend.errors import NotFound
from backend.models import MetricKeyRow, MetricPointRow, ProjectRow, RunRow, utcnow
from backend.storage.projects import ProjectStore
from backend.storage.runs import RunStore
from backend.storage.values import from_storage

__all__ = ["LoggedValue", "TrackingStore"]


@dataclass(frozen=True)
class LoggedValue:
    """One stored point with its wall time (seconds since the epoch; None if never given)."""

    key: str
    step: int
    value: float
    wall_time: float | None


class TrackingStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def projects_named(self, names: set[str], only_ids: set[int] | None = None) -> list[Project]:
        """Projects whose name or slug is one of ``names``, optionally only among ``only_ids``."""
        names = {name for name in names if "\x00" not in name}  # no name holds a NUL
        if not names:
            return []
        stmt = select(ProjectRow.id).where(or_(ProjectRow.name.in_(names), ProjectRow.slug.in_(names)))
        if only_ids is not None:
            stmt = stmt.where(ProjectRow.id.in_(only_ids))
        found = set(self.session.scalars(stmt))
        if not found:
            return []
        return sorted(ProjectStore(self.session).list(found), key=lambda project: project.id)

    def run_ids(self, project_ids: list[int]) -> list[int]:
        """Every run of these projects, newest first."""
        if not project_ids:
            return []
        stmt = select(RunRow.id).where(RunRow.project_id.in_(project_ids)).order_by(RunRow.id.desc())
        return list(self.session.scalars(stmt))

    def lock_run(self, run_id: int) -> Run:
        """Take the run's row lock for the rest of the transaction and return its current state.

        The write comes first so that a concurrent writer of the same run waits here on both
        databases (a row lock on PostgreSQL, the database write lock on SQLite), and the state
        returned is read after the lock is held, never from an earlier read in this session.
        """
        locked = self.session.execute(
            update(RunRow).where(RunRow.id == run_id).values(updated_at=utcnow())
        ).rowcount
        if not locked:
            raise NotFound(f"Run with id={run_id} not found")
        self.session.execute(
            select(RunRow).where(RunRow.id == run_id).execution_options(populate_existing=True)
        ).scalar_one()
        return RunStore(self.session).get(run_id)

    def history(
        self, run_id: int, key: str, *, from_step: int = 0, limit: int | None = None
    ) -> list[LoggedValue]:
        """Points of one key ordered by step, starting at ``from_step``, at most ``limit``."""
        stmt = (
            select(MetricPointRow.step, MetricPointRow.value, MetricPointRow.wall_time)
            .join(MetricKeyRow, MetricKeyRow.id == MetricPointRow.key_id)
            .where(
                MetricPointRow.run_id == run_id,
                MetricKeyRow.name == key,
                MetricPointRow.step >= from_step,
            )
            .order_by(MetricPointRow.step)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        return [
            LoggedValue(key=key, step=step, value=from_storage(value), wall_time=wall_time)
            for step, value, wall_time in self.session.execute(stmt)
        ]

    def latest_values(self, run_ids: list[int]) -> dict[int, list[LoggedValue]]:
        """For each run, every key's point at its highest step (MLflow's "latest metric")."""
        if not run_ids:
            return {}
        last = (
            select(
                MetricPointRow.run_id,
                MetricPointRow.key_id,
                func.max(MetricPointRow.step).label("step"),
            )
            .where(MetricPointRow.run_id.in_(run_ids))
            .group_by(MetricPointRow.run_id, MetricPointRow.key_id)
            .subquery()
        )
        stmt = (
            select(
                MetricPointRow.run_id,
                MetricKeyRow.name,
                MetricPointRow.step,
                MetricPointRow.value,
                MetricPointRow.wall_time,
            )
            .join(
                last,
                and_(
                    last.c.run_id == MetricPointRow.run_id,
                    last.c.key_id == MetricPointRow.key_id,
                    last.c.step == MetricPointRow.step,
                ),
            )
            .join(MetricKeyRow, MetricKeyRow.id == MetricPointRow.key_id)
            .order_by(MetricPointRow.run_id, MetricKeyRow.name)
        )
        out: dict[int, list[LoggedValue]] = {run_id: [] for run_id in run_ids}
        for run_id, name, step, value, wall_time in self.session.execute(stmt):
            out[run_id].append(LoggedValue(name, step, from_storage(value), wall_time))
        return out
