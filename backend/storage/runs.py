"""Runs: creation (idempotent on ``external_id``), listing, reading and updating."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, exists, func, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from backend.domain import Run, RunPage, RunStatus
from backend.errors import BadInput, NotFound
from backend.limits import is_row_id, row_id_text
from backend.models import RunRow, utcnow


def _to_domain(row: RunRow) -> Run:
    return Run(
        id=row.id,
        project_id=row.project_id,
        project_slug=row.project.slug,
        name=row.name,
        status=RunStatus(row.status),
        tags=list(row.tags or []),
        config=dict(row.config or {}),
        engine=row.engine,
        label=row.label,
        external_id=row.external_id,
        last_step=row.last_step,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def merge_config(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: nested dicts merge key by key, anything else in ``patch`` wins."""
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


class RunStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        project_id: int,
        name: str,
        config: dict[str, Any],
        tags: list[str],
        external_id: str | None = None,
        engine: dict[str, Any] | None = None,
        label: str | None = None,
    ) -> tuple[Run, bool]:
        """Create a run, or return the existing one with the same ``external_id``.

        Returns ``(run, created)``. Safe against two trainers racing on one external id.
        """
        if external_id is not None:
            existing = self._by_external_id(project_id, external_id)
            if existing is not None:
                return existing, False
        row = RunRow(
            project_id=project_id,
            name=name,
            config=config,
            tags=tags,
            external_id=external_id,
            engine=engine,
            label=label,
            status=RunStatus.RUNNING.value,
        )
        try:
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            existing = self._by_external_id(project_id, external_id or "")
            if existing is None:
                raise
            return existing, False
        return _to_domain(row), True

    def named(self, project_id: int, name: str) -> list[Run]:
        """The project's runs called exactly ``name``, newest first."""
        rows = self.session.scalars(
            select(RunRow).where(RunRow.project_id == project_id, RunRow.name == name).order_by(RunRow.id.desc())
        )
        return [_to_domain(r) for r in rows]

    def _by_external_id(self, project_id: int, external_id: str) -> Run | None:
        row = self.session.scalar(
            select(RunRow).where(RunRow.project_id == project_id, RunRow.external_id == external_id)
        )
        return None if row is None else _to_domain(row)

    def get(self, run_id: int) -> Run:
        """The run, or ``NotFound``."""
        row = self.session.get(RunRow, run_id, options=[joinedload(RunRow.project)]) if is_row_id(run_id) else None
        if row is None:
            raise NotFound(f"run {run_id} not found")
        return _to_domain(row)

    def get_many(self, run_ids: list[int]) -> list[Run]:
        """Runs in the order asked; ``NotFound`` naming the first missing id."""
        found = {run.id: run for run in self.find_many(run_ids)}
        missing = [i for i in run_ids if i not in found]
        if missing:
            raise NotFound(f"run {missing[0]} not found")
        return [found[i] for i in run_ids]

    def find_many(self, run_ids: list[int]) -> list[Run]:
        """The runs of ``run_ids`` that exist, in the order asked; unknown ids are left out."""
        rows = {
            r.id: r
            for r in self.session.scalars(
                select(RunRow).options(joinedload(RunRow.project)).where(RunRow.id.in_([i for i in run_ids if is_row_id(i)]))
            )
        }
        return [_to_domain(rows[i]) for i in run_ids if i in rows]

    def list(
        self,
        project_id: int,
        *,
        q: str | None = None,
        tag: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Newest first. ``cursor`` is the opaque value from the previous page's ``next_cursor``."""
        stmt = select(RunRow).where(RunRow.project_id == project_id, RunRow.deleted_at.is_(None))
        if q:
            pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(
                func.lower(RunRow.name).like(pattern, escape="\\")
                | func.lower(func.coalesce(RunRow.label, "")).like(pattern, escape="\\")
            )
        if tag:
            stmt = stmt.where(self._has_tag(tag))
        if status is not None:
            stmt = stmt.where(RunRow.status == status.value)
        if cursor:
            # A cursor is a row id; one below every run's id is past the end (an empty page).
            before_id = row_id_text(cursor)
            if before_id is None:
                raise BadInput("cursor: not a cursor returned by this API", field="cursor")
            stmt = stmt.where(RunRow.id < before_id)
        rows = list(self.session.scalars(stmt.order_by(RunRow.id.desc()).limit(limit + 1)))
        next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
        return RunPage(runs=[_to_domain(r) for r in rows[:limit]], next_cursor=next_cursor)

    def _has_tag(self, tag: str):  # type: ignore[no-untyped-def]
        if self.session.get_bind().dialect.name == "postgresql":
            return type_coerce(RunRow.tags, JSONB).contains([tag])  # JSONB @>
        each = func.json_each(RunRow.tags).table_valued("value")
        return exists(select(literal(1)).select_from(each).where(cast(each.c.value, String) == tag))

    def update(
        self,
        run_id: int,
        *,
        status: RunStatus | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        config: dict[str, Any] | None = None,
        deleted: bool | None = None,
        replace_config: bool = False,
    ) -> Run:
        """Change fields; ``config`` is deep-merged into the stored config; ``deleted`` marks the
        run deleted (it leaves lists and searches, its data is kept) or restores it;
        ``replace_config`` stores ``config`` as the whole config instead."""
        row = self.session.get(RunRow, run_id) if is_row_id(run_id) else None
        if row is None:
            raise NotFound(f"run {run_id} not found")
        if status is not None:
            row.status = status.value
        if name is not None:
            row.name = name
        if tags is not None:
            row.tags = tags
        if config is not None:
            row.config = dict(config) if replace_config else merge_config(dict(row.config or {}), config)
        if deleted is not None:
            row.deleted_at = utcnow() if deleted else None
        row.updated_at = utcnow()
        self.session.flush()
        return _to_domain(row)
