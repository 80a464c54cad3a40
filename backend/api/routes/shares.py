"""Share links: ``/api/v1/shares`` to make, list and revoke them (write token), and
``/api/v1/s/{token}`` to read one (the link's secret is the only credential).

A link grants read access to exactly the comparison it shows: its runs, its metrics. A frozen
link serves the payload stored when it was made, so points posted later never reach it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from backend.api.dashboard_schemas import NoteOut, ShareCreate, ShareOut, ShareView
from backend.api.deps import OptionalToken, SessionDep, WritableProject, check_write, require_token
from backend.api.json import orjson_response
from backend.api.params import RUN_IDS, parse_run_ids
from backend.comparing import CompareOptions, compare_runs, load_comparable_runs
from backend.domain import Run, ShareLink
from backend.errors import BadInput
from backend.laddering import ladder_of_view
from backend.models import utcnow
from backend.storage.notes import NoteStore
from backend.storage.runs import RunStore
from backend.storage.shares import ShareStore

router = APIRouter(tags=["share links"])

# The share token is a path segment; anything longer than a real one is refused before hashing.
_MAX_SECRET = 100


def _view_data(
    request: Request,
    session: SessionDep,
    view: ShareView,
    references: list[Run],
    candidates: list[Run],
    project_id: int,
    smoothing: float | None = None,
) -> dict[str, Any]:
    """What a share page shows: the comparison of the view, complete (series for a CSV, the
    overlay and diff figures, so a frozen link can switch modes), and the comparison's notes."""
    options = CompareOptions(
        metrics=tuple(view.metrics),
        max_points=view.max_points,
        smoothing=view.smoothing if smoothing is None else smoothing,
    )
    comparison = compare_runs(
        session, references, candidates, project_id, options, request.app.state.series_cache
    )
    notes = NoteStore(session).for_runs(project_id, view.run_ids)
    data = {
        "comparison": comparison,
        "notes": [NoteOut.of(n).model_dump(mode="json") for n in notes],
    }
    if view.ladder is not None:
        data["ladder"] = ladder_of_view(session, view.ladder, project_id)
    return data


@router.post("/api/v1/shares", status_code=201, response_model=ShareOut)
def create_share(
    body: ShareCreate, request: Request, session: SessionDep, token: OptionalToken
) -> ShareOut:
    """Make a link to ``body.view``; the response carries the secret, once."""
    require_token(token)
    view = body.view
    references, candidates, project_id = load_comparable_runs(
        session, view.reference, view.candidates, lambda pid: check_write(token, pid)
    )
    # Computing the view now refuses a link that could never be shown (an unknown metric) and,
    # for a frozen link, is the snapshot itself.
    data = _view_data(request, session, view, references, candidates, project_id)
    expires_at = None
    if body.expires_in_hours is not None:
        expires_at = utcnow() + timedelta(hours=body.expires_in_hours)
    issued = ShareStore(session).create(
        project_id,
        # A view without a ladder, on steps, is stored as before either existed.
        view.model_dump(
            mode="json",
            exclude={name for name, default in (("ladder", None), ("x_axis", "step"))
                     if getattr(view, name) == default} or None,
        ),
        view.run_ids,
        snapshot=orjson.dumps(data).decode() if body.frozen else None,
        expires_at=expires_at,
    )
    return ShareOut.of(issued.link, issued.secret)


@router.get("/api/v1/projects/{slug}/shares", response_model=list[ShareOut])
def list_shares(project: WritableProject, session: SessionDep) -> list[ShareOut]:
    """Every link of the project, newest first (the secrets are not stored, so not shown)."""
    return [ShareOut.of(link) for link in ShareStore(session).list(project.id)]


@router.get("/api/v1/shares", response_model=list[ShareOut])
def list_comparison_shares(
    session: SessionDep,
    token: OptionalToken,
    reference: Annotated[str, Query(description="run id, or comma-separated replica ids", json_schema_extra=RUN_IDS)],
    candidates: Annotated[str | None, Query(description="comma-separated run ids", json_schema_extra=RUN_IDS)] = None,
) -> list[ShareOut]:
    """The links of one comparison (these reference and candidate runs), newest first, revoked
    and expired ones included; the secrets are not stored, so not shown."""
    require_token(token)
    reference_ids = parse_run_ids(reference, "reference", required=True)
    candidate_ids = parse_run_ids(candidates, "candidates", required=False)
    _, _, project_id = load_comparable_runs(
        session, reference_ids, candidate_ids, lambda pid: check_write(token, pid)
    )
    links = ShareStore(session).for_comparison(project_id, reference_ids, candidate_ids)
    return [ShareOut.of(link) for link in links]


@router.delete("/api/v1/shares/{share_id}", response_model=ShareOut)
def revoke_share(share_id: int, session: SessionDep, token: OptionalToken) -> ShareOut:
    """Revoke a link for good: opening it answers ``410 Gone`` from now on."""
    require_token(token)
    store = ShareStore(session)
    check_write(token, store.get(share_id).project_id)
    return ShareOut.of(store.revoke(share_id))


def _resolve(session: SessionDep, secret: str) -> tuple[ShareLink, str | None]:
    if len(secret) > _MAX_SECRET:
        raise BadInput("token: not a share link token", field="token")
    return ShareStore(session).resolve(secret)


def _about(link: ShareLink) -> dict[str, Any]:
    return {
        "id": link.id,
        "frozen": link.frozen,
        "created_at": link.created_at.isoformat(),
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        "view": link.view,
    }


@router.get(
    "/api/v1/s/{token}",
    response_description='{"share": {"id", "frozen", "created_at", "expires_at", "view"}, '
    '"data": {"comparison", "notes"}}',
)
def read_share(
    token: str,
    request: Request,
    session: SessionDep,
    smoothing: Annotated[
        float | None, Query(ge=0.0, lt=1.0, description="live links only: another smoothing")
    ] = None,
) -> Response:
    """The shared view and its data: the stored snapshot for a frozen link, live data otherwise."""
    link, snapshot = _resolve(session, token)
    about = orjson.dumps(_about(link))
    if snapshot is not None:
        if smoothing is not None and smoothing != link.view.get("smoothing"):
            raise BadInput(
                "smoothing: this link is frozen; its data is the snapshot it was made with",
                field="smoothing",
            )
        # The snapshot is spliced in as stored: no parse and re-serialise of a large payload.
        body = b'{"share":' + about + b',"data":' + snapshot.encode() + b"}"
        return Response(body, media_type="application/json")
    view = ShareView.model_validate(link.view)
    store = RunStore(session)
    references = store.get_many(view.reference)
    candidates = store.get_many(view.candidates)
    data = _view_data(request, session, view, references, candidates, link.project_id, smoothing)
    return orjson_response({"share": _about(link), "data": data})


@router.get("/api/v1/s/{token}/runs")
def read_share_runs(token: str, session: SessionDep) -> Response:
    """Status and last step of the link's runs, for a live page to poll cheaply."""
    link, _ = _resolve(session, token)
    runs = RunStore(session).get_many(link.run_ids)
    return orjson_response(
        [
            {"id": r.id, "name": r.name, "status": r.status.value, "last_step": r.last_step}
            for r in runs
        ]
    )
