"""The package's exception tree. One handler in ``backend.api.errors`` maps it to HTTP."""

from __future__ import annotations


class ParityScopeError(Exception):
    """Root of every error the service raises on purpose."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadInput(ParityScopeError):
    """The request is well-formed JSON but a value is not acceptable."""

    status_code = 422


class TooLarge(ParityScopeError):
    """The request exceeds a documented size limit."""

    status_code = 413


class NotAuthenticated(ParityScopeError):
    status_code = 401


class Forbidden(ParityScopeError):
    status_code = 403


class NotFound(ParityScopeError):
    status_code = 404


class Conflict(ParityScopeError):
    status_code = 409


class Gone(ParityScopeError):
    """A share link that was revoked or expired."""

    status_code = 410


class SchemaOutOfDate(ParityScopeError):
    """The database is behind the latest migration."""

    status_code = 503
