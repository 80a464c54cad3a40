"""/api/v1/projects/{slug}/runs and /api/v1/runs/{run_id}"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from backend.api.deps import ReadableProject, ReadableRun, SessionDep, WritableProject, WritableRun
from backend.api.params import CURSOR
from backend.api.schemas import RunCreate, RunOut, RunPageOut, RunPatch
from backend.domain import RunStatus
from backend.storage.runs import RunStore

router = APIRouter(tags=["runs"])


@router.post(
    "/api/v1/projects/{slug}/runs",
    status_code=201,
    response_model=RunOut,
    responses={200: {"model": RunOut, "description": "A run with this external_id already exists"}},
)
def create_run(
    body: RunCreate, project: WritableProject, session: SessionDep, response: Response
) -> RunOut:
    run, created = RunStore(session).create(
        project.id,
        name=body.name,
        config=body.config,
        tags=body.tags,
        external_id=body.external_id,
        engine=body.engine,
        label=body.label,
    )
    if not created:
        response.status_code = 200
    return RunOut.of(run)


@router.get("/api/v1/projects/{slug}/runs", response_model=RunPageOut)
def list_runs(
    project: ReadableProject,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(json_schema_extra=CURSOR)] = None,
) -> RunPageOut:
    page = RunStore(session).list(
        project.id, q=q, tag=tag, status=status, limit=limit, cursor=cursor
    )
    return RunPageOut(runs=[RunOut.of(r) for r in page.runs], next_cursor=page.next_cursor)


@router.get("/api/v1/runs/{run_id}", response_model=RunOut)
def get_run(run: ReadableRun) -> RunOut:
    return RunOut.of(run)


@router.patch("/api/v1/runs/{run_id}", response_model=RunOut)
def update_run(body: RunPatch, run: WritableRun, session: SessionDep) -> RunOut:
    updated = RunStore(session).update(
        run.id, status=body.status, name=body.name, tags=body.tags, config=body.config
    )
    return RunOut.of(updated)
