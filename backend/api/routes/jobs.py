"""/api/v1/jobs"""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import (
    OptionalToken,
    SessionDep,
    SettingsDep,
    check_read,
    check_write,
    require_token,
)
from backend.api.job_schemas import JobOut
from backend.api.ladder_schemas import JobSubmission, LadderJobCreate, job_out
from backend.domain import Scope, Token
from backend.errors import BadInput
from backend.job_spec import LegRequest, normalise_workload, plan_legs
from backend.laddering import LadderRequest, create_ladder_job
from backend.storage.jobs import JobStore
from backend.storage.projects import ProjectStore

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


def _target_project(session: SessionDep, token: Token | None, slug: str | None) -> int:
    """The project a job goes to: the named one for an admin token, the token's own otherwise."""
    token = require_token(token)
    if slug is not None:
        project_id = ProjectStore(session).get_by_slug(slug).id
    elif token.scope == Scope.ADMIN or token.project_id is None:
        raise BadInput("project: an admin token must name the project the job belongs to", field="project")
    else:
        project_id = token.project_id
    check_write(token, project_id)
    return project_id


@router.post("", status_code=201, response_model=JobOut)
def create_job(body: JobSubmission, session: SessionDep, token: OptionalToken) -> JobOut:
    project_id = _target_project(session, token, body.project)
    if isinstance(body, LadderJobCreate):
        return _create_ladder(session, project_id, body)
    workload = normalise_workload(body.workload)
    reference = LegRequest(
        engine=body.reference.engine,
        settings=body.reference.settings,
        label=body.reference.label,
        replicas=body.reference.replicas,
    )
    candidates = [LegRequest(engine=c.engine, settings=c.settings, label=c.label) for c in body.candidates]
    legs = plan_legs(reference, candidates, workload)
    spec = body.model_dump(exclude={"project", "workload"})
    return JobOut.of(JobStore(session).create(project_id, workload, legs, spec))


def _create_ladder(session: SessionDep, project_id: int, body: LadderJobCreate) -> JobOut:
    request = LadderRequest(
        workload=body.workload,
        reference=LegRequest(body.reference.engine, body.reference.settings, body.reference.label,
                             body.reference.replicas),
        candidate=LegRequest(body.candidate.engine, body.candidate.settings, body.candidate.label),
        candidate_workload=body.candidate.workload,
        ablation=body.ablation,
        stop_at_parity=body.stop_at_parity,
        max_legs=body.max_legs,
    )
    return job_out(session, create_ladder_job(session, project_id, request))


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: int, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> JobOut:
    store = JobStore(session)
    check_read(token, store.get(job_id).project_id, settings)
    # A leg whose every claim ran out is reported failed here too, not only at the next claim.
    store.fail_exhausted(settings.leg_max_attempts, job_id=job_id)
    return job_out(session, store.get(job_id))
