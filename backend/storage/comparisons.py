"""Saved comparisons: a named reference group, its candidates and the view options."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.domain import SavedComparison
from backend.errors import NotFound
from backend.limits import is_row_id
from backend.models import SavedComparisonRow


def _to_domain(row: SavedComparisonRow) -> SavedComparison:
    return SavedComparison(
        id=row.id,
        project_id=row.project_id,
        name=row.name,
        reference_ids=list(row.reference_ids),
        candidate_ids=list(row.candidate_ids),
        options=dict(row.options or {}),
        job_id=row.job_id,
        created_at=row.created_at,
    )


class ComparisonStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def save(
        self,
        project_id: int,
        name: str,
        reference_ids: list[int],
        candidate_ids: list[int],
        options: dict[str, Any] | None = None,
        job_id: int | None = None,
    ) -> SavedComparison:
        """Store a comparison. The caller has checked that every run belongs to the project."""
        row = SavedComparisonRow(
            project_id=project_id,
            name=name,
            reference_ids=reference_ids,
            candidate_ids=candidate_ids,
            options=options or {},
            job_id=job_id,
        )
        self.session.add(row)
        self.session.flush()
        return _to_domain(row)

    def get(self, comparison_id: int) -> SavedComparison:
        """The saved comparison, or ``NotFound``."""
        row = self.session.get(SavedComparisonRow, comparison_id) if is_row_id(comparison_id) else None
        if row is None:
            raise NotFound(f"comparison {comparison_id} not found")
        return _to_domain(row)

    def list(self, project_id: int, limit: int = 100) -> list[SavedComparison]:
        """The project's saved comparisons, newest first."""
        rows = self.session.scalars(
            select(SavedComparisonRow)
            .where(SavedComparisonRow.project_id == project_id)
            .order_by(SavedComparisonRow.id.desc())
            .limit(limit)
        )
        return [_to_domain(r) for r in rows]
