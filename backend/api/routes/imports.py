"""/api/v1/projects/{slug}/imports: a finished history file becomes a run."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from backend.api.deps import RawBody, SessionDep, SettingsDep, WritableProject
from backend.api.schemas import RunOut
from backend.domain import RunStatus
from backend.errors import BadInput, Conflict, TooLarge
from backend.importers import read_bytes
from backend.storage.metrics import MetricStore, lock_run_points
from backend.storage.runs import RunStore

router = APIRouter(tags=["imports"])

FILE_BODY = {
    "requestBody": {
        "required": True,
        "description": "the file's bytes: a CSV or JSONL history export, or one TensorBoard event file",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class ImportOut(BaseModel):
    run: RunOut
    created: bool
    points: int
    replaced: int
    keys: list[str]
    skipped: list[str]
    notes: list[str]


@router.post(
    "/api/v1/projects/{slug}/imports",
    status_code=201,
    response_model=ImportOut,
    responses={200: {"model": ImportOut, "description": "This file was imported before: its run, unchanged"}},
    openapi_extra=FILE_BODY,
)
def import_history(
    project: WritableProject,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    body: RawBody,
    format: Annotated[Literal["tensorboard", "csv", "jsonl"], Query(description="the file's format")],
    run_name: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    filename: Annotated[str | None, Query(min_length=1, max_length=500, description="names the run by default")] = None,
    step_column: Annotated[
        str | None, Query(min_length=1, max_length=500, description="the CSV or JSONL column holding the step")
    ] = None,
    update: Annotated[
        bool, Query(description="add to the project's run of the same name instead of the source's own run")
    ] = False,
    allow_partial: Annotated[
        bool, Query(description="import a damaged TensorBoard file up to the damage instead of refusing it")
    ] = False,
) -> ImportOut:
    if len(body) > settings.max_body_bytes:
        raise TooLarge(f"body: {len(body)} bytes exceeds the limit of {settings.max_body_bytes} bytes")
    if not body:
        raise BadInput("body: empty; send the file's content as the request body", field="body")
    history = read_bytes(format, body, filename or f"upload.{format}", step_column)
    if history.damage and not allow_partial:
        raise BadInput(
            f"file: damaged: {history.damage}; nothing was imported (allow_partial=true imports the "
            f"{history.points} points read before the damage)",
            field="file",
        )
    if not history.points:  # no numeric column, or only columns without a value (a header-only CSV)
        skipped = f" (skipped: {', '.join(history.skipped[:10])})" if history.skipped else ""
        raise BadInput(f"file: no numeric metric to import{skipped}", field="file")
    name = run_name or history.run_name or (
        filename.rsplit("/", 1)[-1] if filename else f"import-{format}-{history.identity[:8]}"
    )
    runs = RunStore(session)
    named = runs.named(project.id, name) if update else []
    if len(named) > 1:
        raise Conflict(
            f"update: {len(named)} runs of project {project.slug} are named {name!r} "
            f"(ids {', '.join(str(r.id) for r in named[:10])}); rename all but one"
        )
    if named:
        run, created = named[0], False
    else:
        run, created = runs.create(
            project.id, name=name, config=history.config, tags=[f"imported:{format}"], external_id=history.external_id
        )
    # New metric keys first, then the run's ingest lock, then its row: the order every ingest
    # keeps (docs/ARCHITECTURE.md, "An ingest").
    points = history.batch()
    MetricStore(session).key_ids(points.names, create=True)
    lock_run_points(session, run.id)
    if not created and history.config and {**run.config, **history.config} != run.config:
        runs.update(run.id, config={**run.config, **history.config})
    result = MetricStore(session).ingest(run.id, points)
    if created:
        runs.update(run.id, status=RunStatus.FINISHED)  # a finished history
    else:
        response.status_code = 200
    return ImportOut(
        run=RunOut.of(runs.get(run.id)),
        created=created,
        points=history.points,
        replaced=result.replaced,
        keys=sorted(history.columns),
        skipped=history.skipped,
        notes=history.notes + ([f"damaged, imported up to the damage: {history.damage}"] if history.damage else []),
    )
