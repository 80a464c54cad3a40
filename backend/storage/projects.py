"""Projects."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.domain import Project
from backend.errors import BadInput, Conflict, NotFound
from backend.limits import is_row_id
from backend.models import ProjectRow

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _to_domain(row: ProjectRow) -> Project:
    return Project(id=row.id, slug=row.slug, name=row.name, created_at=row.created_at)


class ProjectStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, slug: str, name: str) -> Project:
        """Create a project; ``Conflict`` if the slug is taken, ``BadInput`` if malformed."""
        if not SLUG_PATTERN.fullmatch(slug):
            raise BadInput(
                "slug: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit",
                field="slug",
            )
        if self.session.scalar(select(ProjectRow.id).where(ProjectRow.slug == slug)) is not None:
            raise Conflict(f"slug: project {slug!r} already exists", field="slug")
        row = ProjectRow(slug=slug, name=name)
        self.session.add(row)
        self.session.flush()
        return _to_domain(row)

    def get_by_slug(self, slug: str) -> Project:
        """The project with this slug, or ``NotFound``."""
        # A malformed slug names nothing (and a NUL would not even reach PostgreSQL).
        row = None
        if SLUG_PATTERN.fullmatch(slug):
            row = self.session.scalar(select(ProjectRow).where(ProjectRow.slug == slug))
        if row is None:
            raise NotFound(f"project {slug!r} not found")
        return _to_domain(row)

    def get(self, project_id: int) -> Project:
        row = self.session.get(ProjectRow, project_id) if is_row_id(project_id) else None
        if row is None:
            raise NotFound(f"project {project_id} not found")
        return _to_domain(row)

    def list(self, only_ids: set[int] | None = None) -> list[Project]:
        """All projects, or those whose id is in ``only_ids``."""
        stmt = select(ProjectRow).order_by(ProjectRow.slug)
        if only_ids is not None:
            stmt = stmt.where(ProjectRow.id.in_(only_ids))
        return [_to_domain(r) for r in self.session.scalars(stmt)]
