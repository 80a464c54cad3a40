"""/api/v1/legs: what workers call to claim, heartbeat, complete and fail job legs."""

from __future__ import annotations

from fastapi import APIRouter, Response

from backend.api.deps import OptionalToken, SessionDep, SettingsDep, check_write, require_token
from backend.api.job_schemas import (
    ClaimBody,
    ClaimOut,
    CompleteBody,
    FailBody,
    HeartbeatBody,
    LegOut,
)
from backend.domain import Scope, Token
from backend.errors import Forbidden
from backend.laddering import advance_ladder
from backend.storage.jobs import JobStore

router = APIRouter(prefix="/api/v1/legs", tags=["legs"])


def _writer(token: Token | None) -> Token:
    token = require_token(token)
    if token.scope == Scope.READ:
        raise Forbidden("authorization: this token is read-only; workers need a write token")
    return token


@router.post(
    "/claim",
    response_model=ClaimOut,
    responses={204: {"description": "No leg is claimable for these engines now"}},
)
def claim_leg(body: ClaimBody, session: SessionDep, settings: SettingsDep, token: OptionalToken) -> ClaimOut | Response:
    token = _writer(token)
    lease = body.lease_seconds or settings.leg_lease_seconds
    claimed = JobStore(session).claim(
        None if token.scope == Scope.ADMIN else token.project_id,
        body.worker,
        body.engines,
        lease_seconds=lease,
        max_attempts=settings.leg_max_attempts,
        description=body.description,
    )
    if claimed is None:
        return Response(status_code=204)
    return ClaimOut.of_claim(claimed, lease)


def _own_leg(store: JobStore, token: Token | None, leg_id: int) -> None:
    token = _writer(token)
    check_write(token, store.project_of_leg(leg_id))


@router.post("/{leg_id}/heartbeat", response_model=LegOut)
def heartbeat_leg(
    leg_id: int, body: HeartbeatBody, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> LegOut:
    store = JobStore(session)
    _own_leg(store, token, leg_id)
    leg = store.heartbeat(
        leg_id,
        body.worker,
        body.attempt,
        lease_seconds=body.lease_seconds or settings.leg_lease_seconds,
        progress=body.progress,
        engine=body.engine,
    )
    return LegOut.of(leg)


@router.post("/{leg_id}/complete", response_model=LegOut)
def complete_leg(leg_id: int, body: CompleteBody, session: SessionDep, token: OptionalToken) -> LegOut:
    store = JobStore(session)
    _own_leg(store, token, leg_id)
    leg = store.complete(leg_id, body.worker, body.attempt, engine=body.engine, progress=body.progress)
    advance_ladder(session, leg.job_id)  # a ladder's next rung (docs/LADDER.md, stop_at_parity)
    return LegOut.of(leg)


@router.post("/{leg_id}/fail", response_model=LegOut)
def fail_leg(leg_id: int, body: FailBody, session: SessionDep, token: OptionalToken) -> LegOut:
    store = JobStore(session)
    _own_leg(store, token, leg_id)
    return LegOut.of(store.fail(leg_id, body.worker, body.attempt, body.error))
