"""The one place where exceptions become HTTP responses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from backend.errors import ParityScopeError


def _describe(error: dict) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc) or "request"
    return f"{where}: {error.get('msg', 'invalid')}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ParityScopeError)
    async def _domain_error(_request: Request, exc: ParityScopeError) -> JSONResponse:
        body: dict = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        message = "; ".join(_describe(e) for e in errors[:5])
        return JSONResponse(
            {"detail": message, "errors": [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]},
            status_code=422,
        )

    @app.exception_handler(DBAPIError)
    async def _database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        # Values that pass validation but that the database still refuses (e.g. an out-of-range
        # integer) are the caller's problem, not a crash.
        if is_data_error(exc):
            return JSONResponse({"detail": f"value rejected by the database: {exc.orig}"}, status_code=422)
        if isinstance(exc, IntegrityError):
            # Two identical requests racing past the existence check: the second one loses at the
            # unique constraint, which is the same answer the check gives.
            return JSONResponse(
                {"detail": "conflict: this already exists (a concurrent request created it)"},
                status_code=409,
            )
        raise exc

    @app.exception_handler(OverflowError)
    async def _sqlite_overflow(_request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite's driver refuses an integer beyond 64 bits (an id or a cursor of 10**30) before
        # the query runs, where PostgreSQL answers sqlstate 22003 (handled above): the same case.
        if not is_sqlite_overflow(exc):
            raise exc
        return JSONResponse({"detail": f"value rejected by the database: {exc}"}, status_code=422)


def is_data_error(exc: DBAPIError) -> bool:
    """A value the database refuses: sqlstate class 22, or a DataError the driver raises before
    sending anything (psycopg refuses a NUL character in text that way, with no sqlstate)."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    return code.startswith("22") or isinstance(exc, DataError)


def is_sqlite_overflow(exc: BaseException) -> bool:
    """An integer too large for SQLite, refused by its driver."""
    return isinstance(exc, OverflowError) and "SQLite INTEGER" in str(exc)
