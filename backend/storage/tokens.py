"""API tokens. Only a SHA-256 hash of each secret is stored; the secret is shown once."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.domain import IssuedToken, Scope, Token
from backend.errors import BadInput, NotFound
from backend.models import ApiTokenRow, utcnow

TOKEN_PREFIX = "pst_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def issue(self, scope: Scope, project_id: int | None, label: str | None = None) -> IssuedToken:
        """Create a token. Admin tokens are deployment-wide; read/write ones need a project."""
        if scope == Scope.ADMIN and project_id is not None:
            raise BadInput("scope: an admin token is deployment-wide and takes no project")
        if scope != Scope.ADMIN and project_id is None:
            raise BadInput(f"project: a {scope.value} token needs a project")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiTokenRow(
            project_id=project_id,
            scope=scope.value,
            token_hash=hash_secret(secret),
            prefix=secret[:10],
            label=label,
        )
        self.session.add(row)
        self.session.flush()
        return IssuedToken(id=row.id, secret=secret, scope=scope, project_id=project_id)

    def verify(self, secret: str) -> Token | None:
        """The live token for this secret, or None if unknown or revoked."""
        row = self.session.scalar(
            select(ApiTokenRow).where(ApiTokenRow.token_hash == hash_secret(secret))
        )
        if row is None or row.revoked_at is not None:
            return None
        return Token(id=row.id, scope=Scope(row.scope), project_id=row.project_id, label=row.label)

    def revoke(self, token_id: int) -> None:
        """Revoke a token by id; ``NotFound`` if there is no such token."""
        row = self.session.get(ApiTokenRow, token_id)
        if row is None:
            raise NotFound(f"token {token_id} not found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
