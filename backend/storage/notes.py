"""Notes pinned at a step of a comparison.

A comparison is identified by its set of runs (references and candidates together, order
irrelevant), stored as the sorted, comma-joined ids, so everyone who opens the same runs sees
the same notes.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.domain import Note
from backend.errors import NotFound
from backend.limits import is_row_id
from backend.models import AnnotationRow

__all__ = ["NoteStore", "run_set_key"]


def run_set_key(run_ids: Iterable[int]) -> str:
    """The stored identity of a comparison: its sorted, comma-joined run ids."""
    return ",".join(str(i) for i in sorted(set(run_ids)))


def _to_domain(row: AnnotationRow) -> Note:
    return Note(
        id=row.id,
        project_id=row.project_id,
        run_ids=[int(i) for i in row.run_set.split(",") if i],
        step=row.step,
        text=row.text,
        author=row.author,
        source=row.source,
        created_at=row.created_at,
    )


class NoteStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        project_id: int,
        run_ids: Iterable[int],
        step: int,
        text: str,
        author: str | None,
        source: str = "person",
    ) -> Note:
        """Pin a note at ``step`` of the comparison of ``run_ids`` (already checked by the caller)."""
        row = AnnotationRow(
            project_id=project_id,
            run_set=run_set_key(run_ids),
            step=step,
            text=text,
            author=author,
            source=source,
        )
        self.session.add(row)
        self.session.flush()
        return _to_domain(row)

    def for_runs(self, project_id: int, run_ids: Iterable[int]) -> list[Note]:
        """Every note of exactly this comparison, by step then creation order."""
        rows = self.session.scalars(
            select(AnnotationRow)
            .where(
                AnnotationRow.project_id == project_id,
                AnnotationRow.run_set == run_set_key(run_ids),
            )
            .order_by(AnnotationRow.step, AnnotationRow.id)
        )
        return [_to_domain(r) for r in rows]

    def get(self, note_id: int) -> Note:
        """The note, or ``NotFound``."""
        row = self.session.get(AnnotationRow, note_id) if is_row_id(note_id) else None
        if row is None:
            raise NotFound(f"note {note_id} not found")
        return _to_domain(row)

    def delete(self, note_id: int) -> None:
        """Remove a note; ``NotFound`` if there is none with this id."""
        row = self.session.get(AnnotationRow, note_id) if is_row_id(note_id) else None
        if row is None:
            raise NotFound(f"note {note_id} not found")
        self.session.delete(row)
        self.session.flush()
