"""/api/v1/projects/{slug}/imports: a finished history file becomes a run."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from backend.api.deps import RawBody, SessionDep, SettingsDep, WritableProject
from backend.api.schemas import RunOut
from backend.domain import RunStatus
from backend.errors import BadInput, TooLarge
from backend.importers import read_bytes
from backend.storage.metrics import MetricStore
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
) -> ImportOut:
    if len(body) > settings.max_body_bytes:
        raise TooLarge(f"body: {len(body)} bytes exceeds the limit of {settings.max_body_bytes} bytes")
    if not body:
        raise BadInput("body: empty; send the file's content as the request body", field="body")
    history = read_bytes(format, body, filename or f"upload.{format}")
    if not history.points:  # no numeric column, or only columns without a value (a header-only CSV)
        skipped = f" (skipped: {', '.join(history.skipped[:10])})" if history.skipped else ""
        raise BadInput(f"file: no numeric metric to import{skipped}", field="file")
    name = run_name or (filename.rsplit("/", 1)[-1] if filename else f"import-{format}-{history.identity[:8]}")
    runs = RunStore(session)
    run, created = runs.create(
        project.id, name=name, config={}, tags=[f"imported:{format}"], external_id=history.external_id
    )
    result = MetricStore(session).ingest(run.id, history.batch())
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
    )
