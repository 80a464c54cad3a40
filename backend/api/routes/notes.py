"""/api/v1/notes: notes pinned at a step of a comparison, shown on every panel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from backend.api.dashboard_schemas import NoteCreate, NoteOut
from backend.api.deps import (
    OptionalToken,
    SessionDep,
    SettingsDep,
    check_read,
    check_write,
    require_token,
)
from backend.api.params import RUN_IDS, parse_run_ids
from backend.comparing import load_comparable_runs
from backend.errors import BadInput
from backend.storage.notes import NoteStore

router = APIRouter(prefix="/api/v1/notes", tags=["notes"])


@router.post("", status_code=201, response_model=NoteOut)
def create_note(body: NoteCreate, session: SessionDep, token: OptionalToken) -> NoteOut:
    require_token(token)
    _, _, project_id = load_comparable_runs(
        session, body.runs, [], lambda pid: check_write(token, pid)
    )
    author = body.author or token.label
    return NoteOut.of(NoteStore(session).add(project_id, body.runs, body.step, body.text, author))


@router.get("", response_model=list[NoteOut])
def list_notes(
    session: SessionDep,
    settings: SettingsDep,
    token: OptionalToken,
    runs: Annotated[str, Query(description="comma-separated run ids of the comparison", json_schema_extra=RUN_IDS)],
) -> list[NoteOut]:
    run_ids = parse_run_ids(runs, "runs", required=True)
    if len(set(run_ids)) != len(run_ids):
        raise BadInput("runs: a run appears more than once", field="runs")
    _, _, project_id = load_comparable_runs(
        session, run_ids, [], lambda pid: check_read(token, pid, settings)
    )
    return [NoteOut.of(n) for n in NoteStore(session).for_runs(project_id, run_ids)]


@router.delete("/{note_id}", status_code=204, response_class=Response)
def delete_note(note_id: int, session: SessionDep, token: OptionalToken) -> Response:
    require_token(token)
    store = NoteStore(session)
    check_write(token, store.get(note_id).project_id)
    store.delete(note_id)
    return Response(status_code=204)
