"""The application factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp

from backend import __version__
from backend.api import mlflow_errors
from backend.api.body import BoundedBody
from backend.api.errors import (
    UnhandledErrors,
    declare_error_responses,
    install_error_handlers,
    is_outage,
    outage_response,
)
from backend.api.json_body import JsonByDefault
from backend.api.routes import (
    artifacts,
    compare,
    imports,
    jobs,
    ladders,
    legs,
    meta,
    metrics,
    mlflow_artifacts,
    notes,
    pages,
    projects,
    registry,
    runs,
    shares,
    summaries,
)
from backend.api.routes import mlflow as mlflow_routes
from backend.api.schemas import JSON_VALUE_SCHEMA, ColumnsBody, RowsBody
from backend.api.security import SecurityHeaders
from backend.db import Database, prepare_database
from backend.settings import Settings, get_settings
from backend.storage.series_cache import SeriesCache

ROUTERS = [projects.router, runs.router, metrics.router, artifacts.router]
# The comparison engine and the project's own alias and layer tables.
ROUTERS += [compare.router, registry.router]
# Trainer integrations: the MLflow-compatible tracking API, history imports.
ROUTERS += [mlflow_routes.router, mlflow_artifacts.router, imports.router]
# Paired jobs and the workers that run their legs.
ROUTERS += [jobs.router, legs.router, ladders.router]
# The dashboard: its API, then its pages (after every API route).
ROUTERS += [meta.router, summaries.router, notes.router, shares.router, pages.router]


class ParityScopeApp(FastAPI):
    """FastAPI with two layers outside Starlette's own last-resort error handler, so that even
    a 500 is JSON, keeps its connection and carries the security headers."""

    retry_after_seconds = 2

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(UnhandledErrors(super().build_middleware_stack(), self.retry_after_seconds))


def operation_id(route: APIRoute) -> str:
    """Readable operation ids for generated clients: the endpoint function's name, prefixed
    with ``mlflow_`` for the MLflow-compatible endpoints (``get_run`` exists in both)."""
    if route.path.startswith("/api/2.0/") and not route.name.startswith("mlflow_"):
        return f"mlflow_{route.name}"
    return route.name


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app. Opening the database migrates SQLite and refuses a stale PostgreSQL."""
    settings = settings or get_settings()
    if database is None:
        database = Database(
            prepare_database(
                settings.database_url,
                statement_timeout=settings.db_statement_timeout_seconds,
                connect_timeout=settings.db_connect_timeout_seconds,
            )
        )
    app = ParityScopeApp(
        title="ParityScope",
        version=__version__,
        description="Compare RL training runs across inference backends.",
        # /docs is the dashboard's own page (backend/api/routes/pages.py), with Swagger UI from
        # a Python package: FastAPI's default pages load it from a CDN, which the CSP blocks.
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.retry_after_seconds = settings.retry_after_seconds
    app.state.settings = settings
    app.state.database = database
    app.state.series_cache = SeriesCache(settings.series_cache_mb * 1024 * 1024)
    install_error_handlers(app, settings.retry_after_seconds)
    mlflow_errors.install(app)
    # Compare payloads and series reads are large and compress well.
    app.add_middleware(GZipMiddleware, minimum_size=4096, compresslevel=5)

    for router in ROUTERS:
        app.include_router(router)
    pages.mount_static(app)
    # Outside compression: a refused body is answered before anything else runs.
    app.add_middleware(BoundedBody, settings=settings, database=database)
    # Outermost: a JSON body sent without a Content-Type is read as JSON by every layer below.
    app.add_middleware(JsonByDefault)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """The process is alive; it does not touch the database (see /readyz)."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        """Ready to serve: the database answers a query (503 with Retry-After when it does not)."""
        try:
            database.ping()
        except Exception as exc:
            if not is_outage(exc):
                raise
            return outage_response("/readyz", exc, settings.retry_after_seconds)
        return JSONResponse({"status": "ready", "database": "ok"})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                                 description=app.description)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            # The metrics body is parsed by hand for speed; publish its two forms all the same.
            for model in (RowsBody, ColumnsBody):
                model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, sub in model_schema.pop("$defs", {}).items():
                    components.setdefault(name, sub)
                components[model.__name__] = model_schema
            components["JsonValue"] = JSON_VALUE_SCHEMA
            declare_error_responses(schema)
            # Every endpoint takes the project or admin token as a bearer token; reads may
            # also go without one on a public deployment (docs/API.md, "Conventions").
            schema["components"].setdefault("securitySchemes", {})["bearerAuth"] = {
                "type": "http", "scheme": "bearer", "description": "a ParityScope token (pst_...)",
            }
            schema["security"] = [{"bearerAuth": []}, {}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
