"""/api/v1/ladders: a parity ladder from a reference and a candidate that came from jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backend.api.deps import OptionalToken, SessionDep, check_write, require_token
from backend.api.ladder_schemas import LadderFromRuns, job_out
from backend.laddering import create_ladder_job, ladder_request_from_runs, plan_request
from backend.storage.registry import ProjectRegistryStore
from backend.storage.runs import RunStore

router = APIRouter(prefix="/api/v1/ladders", tags=["ladders"])


@router.post("", status_code=201, response_model=None)
def create_ladder(body: LadderFromRuns, session: SessionDep, token: OptionalToken) -> Any:
    token = require_token(token)
    # Access first: nothing about a run (not even whether it came from a job) before that.
    for project_id in {run.project_id for run in RunStore(session).get_many([*body.reference, body.candidate])}:
        check_write(token, project_id)
    project_id, request = ladder_request_from_runs(
        session, body.reference, body.candidate, ablation=body.ablation,
        stop_at_parity=body.stop_at_parity, max_legs=body.max_legs,
    )
    if body.dry_run:
        _, plan = plan_request(request, ProjectRegistryStore(session).rules(project_id))
        return JSONResponse({"dry_run": True, "leg_count": plan.leg_count, "plan": plan.to_json()})
    return job_out(session, create_ladder_job(session, project_id, request))
