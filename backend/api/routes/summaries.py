"""/api/v1/projects/{slug}/run-summaries: the runs table of the dashboard."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.dashboard_schemas import RunSummaryOut, RunSummaryPageOut
from backend.api.deps import ReadableProject, SessionDep
from backend.api.params import CURSOR
from backend.comparing import run_sparklines
from backend.domain import RunStatus
from backend.errors import BadInput
from backend.storage.runs import RunStore
from parityscope.wire import MAX_KEY_LENGTH

router = APIRouter(tags=["runs"])


@router.get("/api/v1/projects/{slug}/run-summaries", response_model=RunSummaryPageOut)
def list_run_summaries(
    project: ReadableProject,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(json_schema_extra=CURSOR)] = None,
    metric: Annotated[str, Query(min_length=1, max_length=MAX_KEY_LENGTH, description="sparkline metric")] = "reward",
    points: Annotated[int, Query(ge=2, le=200, description="sparkline points per run")] = 48,
) -> RunSummaryPageOut:
    """Runs newest first, with the same filters and cursor as the runs list, plus a sparkline."""
    if not metric.strip():
        raise BadInput("metric: give a metric name", field="metric")
    page = RunStore(session).list(project.id, q=q, tag=tag, status=status, limit=limit, cursor=cursor)
    sparklines = run_sparklines(session, project.id, [r.id for r in page.runs], metric, points)
    return RunSummaryPageOut(
        runs=[RunSummaryOut.of(r, sparklines[r.id]) for r in page.runs],
        next_cursor=page.next_cursor,
    )

