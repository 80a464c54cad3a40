"""Share links: read-only, unguessable, revocable, optionally expiring and optionally frozen.

The secret (``pss_`` + 32 random bytes) is returned once at creation; only its SHA-256 hash is
stored, as for API tokens, so a database dump does not open any link. A frozen link keeps the
comparison payload as it was when the link was made (``snapshot``), so points posted later do
not change what the review saw.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from backend.domain import IssuedShareLink, ShareLink
from backend.errors import Gone, NotFound
from backend.limits import is_row_id
from backend.models import ShareLinkRow, utcnow
from backend.storage.tokens import hash_secret

__all__ = ["SHARE_PREFIX", "ShareStore"]

SHARE_PREFIX = "pss_"


def _to_domain(row: ShareLinkRow) -> ShareLink:
    return ShareLink(
        id=row.id,
        project_id=row.project_id,
        view=dict(row.view),
        run_ids=[int(i) for i in row.run_ids],
        frozen=row.frozen,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class ShareStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        project_id: int,
        view: dict,
        run_ids: list[int],
        *,
        snapshot: str | None,
        expires_at: datetime | None,
    ) -> IssuedShareLink:
        """Store a link to ``view`` over ``run_ids``; frozen when a ``snapshot`` is given."""
        secret = SHARE_PREFIX + secrets.token_urlsafe(32)
        row = ShareLinkRow(
            project_id=project_id,
            token_hash=hash_secret(secret),
            view=view,
            run_ids=list(run_ids),
            frozen=snapshot is not None,
            snapshot=snapshot,
            expires_at=expires_at,
        )
        self.session.add(row)
        self.session.flush()
        return IssuedShareLink(link=_to_domain(row), secret=secret)

    def resolve(self, secret: str, now: datetime | None = None) -> tuple[ShareLink, str | None]:
        """The live link for ``secret`` and its snapshot (None unless frozen).

        ``NotFound`` for an unknown secret; ``Gone`` for a revoked or expired link.
        """
        row = self.session.scalar(
            select(ShareLinkRow).where(ShareLinkRow.token_hash == hash_secret(secret))
        )
        if row is None:
            raise NotFound("share link not found")
        if row.revoked_at is not None:
            raise Gone("this share link was revoked")
        if row.expires_at is not None and row.expires_at <= (now or utcnow()):
            raise Gone("this share link has expired")
        return _to_domain(row), row.snapshot

    def list(self, project_id: int) -> list[ShareLink]:
        """Every link of a project, newest first, without their snapshots."""
        rows = self.session.scalars(
            select(ShareLinkRow)
            .options(defer(ShareLinkRow.snapshot))
            .where(ShareLinkRow.project_id == project_id)
            .order_by(ShareLinkRow.id.desc())
        )
        return [_to_domain(r) for r in rows]

    def for_comparison(
        self, project_id: int, reference_ids: list[int], candidate_ids: list[int]
    ) -> list[ShareLink]:
        """The project's links whose view has exactly these reference and candidate runs
        (in any order), newest first, without their snapshots."""
        wanted = (set(reference_ids), set(candidate_ids))
        return [
            link
            for link in self.list(project_id)
            if (set(link.view.get("reference", [])), set(link.view.get("candidates", []))) == wanted
        ]

    def get(self, link_id: int) -> ShareLink:
        """The link by id, or ``NotFound``."""
        row = (
            self.session.get(ShareLinkRow, link_id, options=[defer(ShareLinkRow.snapshot)])
            if is_row_id(link_id)
            else None
        )
        if row is None:
            raise NotFound(f"share link {link_id} not found")
        return _to_domain(row)

    def revoke(self, link_id: int) -> ShareLink:
        """Revoke a link for good; revoking twice keeps the first time."""
        row = (
            self.session.get(ShareLinkRow, link_id, options=[defer(ShareLinkRow.snapshot)])
            if is_row_id(link_id)
            else None
        )
        if row is None:
            raise NotFound(f"share link {link_id} not found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            self.session.flush()
        return _to_domain(row)
