"""The application factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from backend import __version__
from backend.api import mlflow_errors
from backend.api.errors import install_error_handlers
from backend.api.json_body import JsonByDefault
from backend.api.routes import (
    artifacts,
    compare,
    imports,
    jobs,
    legs,
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
from backend.api.schemas import ColumnsBody, RowsBody
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
ROUTERS += [jobs.router, legs.router]
# The dashboard: its API, then its pages (after every API route).
ROUTERS += [summaries.router, notes.router, shares.router, pages.router]


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
        database = Database(prepare_database(settings.database_url))
    app = FastAPI(
        title="ParityScope",
        version=__version__,
        description="Compare RL training runs across inference backends.",
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.series_cache = SeriesCache(settings.series_cache_mb * 1024 * 1024)
    install_error_handlers(app)
    mlflow_errors.install(app)
    # Compare payloads and series reads are large and compress well.
    app.add_middleware(GZipMiddleware, minimum_size=4096, compresslevel=5)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        # Artifact uploads are streamed to the artifact store under their own limit.
        streamed = request.url.path.startswith(mlflow_artifacts.PREFIX + "/")
        if length and length.isdigit() and int(length) > settings.max_body_bytes and not streamed:
            return JSONResponse(
                {"detail": f"body: {length} bytes exceeds the limit of {settings.max_body_bytes} bytes"},
                status_code=413,
            )
        return await call_next(request)

    for router in ROUTERS:
        app.include_router(router)
    pages.mount_static(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(JsonByDefault)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

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
