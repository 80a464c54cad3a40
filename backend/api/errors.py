"""The one place where exceptions become HTTP responses.

A database that cannot be reached, a statement cancelled by its timeout, or a deadlock that
outlived the server's own retries is an outage, not a bug: ``503`` with ``Retry-After`` and a
JSON error, in MLflow's format on MLflow's paths. Anything else unexpected is a JSON ``500``
that keeps the connection open (docs/RELIABILITY.md).
"""

from __future__ import annotations

import logging
import sqlite3

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.errors import ParityScopeError

logger = logging.getLogger("parityscope")

MLFLOW_PREFIX = "/api/2.0/mlflow"
_FASTAPI_PARSE_FAILURE = "There was an error parsing the body"

_PG_OUTAGE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
# SQLite reports a busy or missing file through the same exception class as a syntax error.
_SQLITE_OUTAGES = ("database is locked", "unable to open database", "disk i/o error", "interrupted")


def is_outage(exc: BaseException) -> bool:
    """The database is unreachable, overloaded or timed out: worth retrying later."""
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.InterfaceError):
        return True  # the connection is gone
    if isinstance(exc, psycopg.OperationalError):
        # No sqlstate: the client could not connect. Otherwise connection failures (08),
        # deadlocks and serialization failures (40), resources (53), operator intervention and
        # timeouts (57), system errors (58), lock timeouts (55P03); not, say, a program limit.
        code = exc.sqlstate
        return code is None or code[:2] in _PG_OUTAGE_CLASSES or code == "55P03"
    if isinstance(exc, sqlite3.OperationalError):
        return any(text in str(exc).lower() for text in _SQLITE_OUTAGES)
    return False


def error_response(path: str, status: int, message: str, *, code: str, retry_after: int | None = None) -> JSONResponse:
    """An error in the format of the API that ``path`` belongs to."""
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if path.startswith(MLFLOW_PREFIX):
        body = {"error_code": code, "message": message}
    else:
        body = {"detail": message}
    return JSONResponse(body, status_code=status, headers=headers or None)


def outage_response(path: str, exc: BaseException, retry_after: int) -> JSONResponse:
    logger.warning("database unavailable: %s", exc)
    kind = type(getattr(exc, "orig", None) or exc).__name__
    return error_response(
        path,
        503,
        f"database: temporarily unavailable ({kind}); retry after {retry_after} s",
        code="TEMPORARILY_UNAVAILABLE",
        retry_after=retry_after,
    )


class UnhandledErrors:
    """Outermost ASGI layer: an exception that escaped every handler becomes a JSON ``500`` (or a
    ``503`` for an outage) and is logged, and the connection stays usable. Starlette's own last
    resort answers plain text and re-raises, which makes the server close the connection."""

    def __init__(self, app: ASGIApp, retry_after: int) -> None:
        self.app = app
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:  # noqa: BLE001 - the last resort, logged
            if not is_outage(exc):
                logger.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            if started:
                # The handler below already answered; Starlette re-raised it for the server log.
                return
            response = server_error_response(scope.get("path", ""), exc, self.retry_after)
            await response(scope, receive, send)


def server_error_response(path: str, exc: BaseException, retry_after: int) -> JSONResponse:
    if is_outage(exc):
        return outage_response(path, exc, retry_after)
    return error_response(path, 500, "internal error: the server failed on this request", code="INTERNAL_ERROR")


def _describe(error: dict) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    where = ".".join(loc) or "request"
    return f"{where}: {error.get('msg', 'invalid')}"


def install_error_handlers(app: FastAPI, retry_after: int) -> None:
    @app.exception_handler(ParityScopeError)
    async def _domain_error(_request: Request, exc: ParityScopeError) -> JSONResponse:
        body: dict = {"detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path = request.url.path
        if exc.status_code == 400 and exc.detail == _FASTAPI_PARSE_FAILURE:
            # FastAPI's answer when the JSON parser itself fails (nesting deeper than it
            # recurses): malformed input like any other, a 422 (MLflow's 400 on its paths).
            message = "body: not valid JSON, or nested too deeply to parse"
            status = 400 if path.startswith(MLFLOW_PREFIX) else 422
            return error_response(path, status, message, code="MALFORMED_REQUEST")
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

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
        if is_outage(exc):
            return outage_response(_request.url.path, exc, retry_after)
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

    @app.exception_handler(psycopg.Error)
    async def _driver_error(request: Request, exc: psycopg.Error) -> JSONResponse:
        # Ingestion talks to psycopg directly (binary COPY), so its errors arrive unwrapped.
        if is_outage(exc):
            return outage_response(request.url.path, exc, retry_after)
        if (getattr(exc, "sqlstate", None) or "").startswith("22"):
            return JSONResponse({"detail": f"value rejected by the database: {exc}"}, status_code=422)
        raise exc

    @app.exception_handler(sa_exc.TimeoutError)
    async def _pool_timeout(request: Request, exc: sa_exc.TimeoutError) -> JSONResponse:
        return outage_response(request.url.path, exc, retry_after)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette calls this as the last resort and then re-raises for the server's log;
        # UnhandledErrors (the outermost layer) catches that, so the connection stays open.
        return server_error_response(request.url.path, exc, retry_after)


def is_data_error(exc: DBAPIError) -> bool:
    """A value the database refuses: sqlstate class 22, or a DataError the driver raises before
    sending anything (psycopg refuses a NUL character in text that way, with no sqlstate)."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    return code.startswith("22") or isinstance(exc, DataError)


def is_sqlite_overflow(exc: BaseException) -> bool:
    """An integer too large for SQLite, refused by its driver."""
    return isinstance(exc, OverflowError) and "SQLite INTEGER" in str(exc)


_CORE_ERROR = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "what is wrong, naming the field"},
        "field": {"type": "string", "description": "the field to blame, when one is"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array"}, "msg": {"type": ["string", "null"]}},
            },
            "description": "every validation error, for a 422 from request validation",
        },
    },
    "required": ["detail"],
}
_MLFLOW_ERROR = {
    "type": "object",
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error_code", "message"],
}


def declare_error_responses(schema: dict) -> None:
    """Publish the errors as they are sent: ``{"detail", "field"?, "errors"?}`` (MLflow's
    ``{"error_code", "message"}`` on its paths) for any 4xx or 5xx, with the headers that come
    with them, in place of FastAPI's default 422 shape that this API never sends."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = _CORE_ERROR
    components["MlflowError"] = _MLFLOW_ERROR
    retry_after = {"Retry-After": {"description": "seconds to wait (429, 503)", "schema": {"type": "string"}}}
    for path, operations in schema.get("paths", {}).items():
        ref = {"$ref": "#/components/schemas/" + ("MlflowError" if path.startswith(MLFLOW_PREFIX) else "Error")}
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            for status in ("4XX", "5XX"):
                responses[status] = {
                    "description": "an error" if status == "4XX" else "the server or its database is unavailable",
                    "headers": retry_after,
                    "content": {"application/json": {"schema": ref}},
                }
