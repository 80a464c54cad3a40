"""MLflow's error format for the MLflow-compatible endpoints (tracking and artifacts).

MLflow's client reads ``{"error_code": ..., "message": ...}`` with MLflow's status codes; the
routers under ``/api/2.0/`` use ``MlflowRoute`` so every error they raise is answered that way.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError

from backend.api.errors import is_data_error, is_sqlite_overflow
from backend.errors import (
    BadInput,
    Conflict,
    Forbidden,
    NotAuthenticated,
    NotFound,
    ParityScopeError,
    SchemaOutOfDate,
    TooLarge,
)

__all__ = ["EndpointNotFound", "MlflowAnswer", "MlflowRoute", "install", "mlflow_error"]


class EndpointNotFound(NotFound):
    pass


_ERROR_CODES: list[tuple[type[ParityScopeError], str, int]] = [
    (EndpointNotFound, "ENDPOINT_NOT_FOUND", 404),
    (NotFound, "RESOURCE_DOES_NOT_EXIST", 404),
    (BadInput, "INVALID_PARAMETER_VALUE", 400),
    (TooLarge, "INVALID_PARAMETER_VALUE", 400),
    (Conflict, "RESOURCE_ALREADY_EXISTS", 400),
    (NotAuthenticated, "UNAUTHENTICATED", 401),
    (Forbidden, "PERMISSION_DENIED", 403),
    (SchemaOutOfDate, "TEMPORARILY_UNAVAILABLE", 503),
]


def mlflow_error(error_code: str, message: str, status: int) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error_code": error_code, "message": message}, status_code=status, headers=headers)


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query")]
    return f"{'.'.join(loc) or 'request'}: {error.get('msg', 'invalid')}"


class MlflowAnswer(Exception):
    """An error already in MLflow's format, answered as is by the handler ``install`` adds."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(bytes(response.body).decode())
        self.response = response


def install(app: FastAPI) -> None:
    """Answer ``MlflowAnswer`` with its response (after the request's session rolled back)."""

    @app.exception_handler(MlflowAnswer)
    async def _mlflow_answer(_request: Request, exc: MlflowAnswer) -> JSONResponse:
        return exc.response


class MlflowRoute(APIRoute):
    """Answers every error of these endpoints in MLflow's format instead of the core API's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            # Errors are raised, not returned: the request's session then sees the failure and
            # rolls back whatever the endpoint wrote before it (a run created before a bad tag).
            try:
                return await handler(request)
            except ParityScopeError as exc:
                for kind, code, status in _ERROR_CODES:
                    if isinstance(exc, kind):
                        raise MlflowAnswer(mlflow_error(code, exc.message, status)) from exc
                raise MlflowAnswer(mlflow_error("BAD_REQUEST", exc.message, exc.status_code)) from exc
            except RequestValidationError as exc:
                errors = exc.errors()
                if any(e.get("type") == "json_invalid" for e in errors):
                    raise MlflowAnswer(mlflow_error("MALFORMED_REQUEST", "body: not valid JSON", 400)) from exc
                message = "; ".join(_describe(e) for e in errors[:5])
                raise MlflowAnswer(mlflow_error("INVALID_PARAMETER_VALUE", message, 400)) from exc
            except DBAPIError as exc:
                if is_data_error(exc):
                    raise MlflowAnswer(mlflow_error("INVALID_PARAMETER_VALUE", f"value rejected by the database: {exc.orig}", 400)) from exc
                raise
            except OverflowError as exc:
                if is_sqlite_overflow(exc):
                    raise MlflowAnswer(mlflow_error("INVALID_PARAMETER_VALUE", f"value rejected by the database: {exc}", 400)) from exc
                raise

        return answer
