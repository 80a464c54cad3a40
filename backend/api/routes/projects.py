"""/api/v1/projects"""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import AdminToken, OptionalToken, SessionDep, SettingsDep
from backend.api.schemas import ProjectCreate, ProjectOut
from backend.domain import Scope
from backend.errors import NotAuthenticated
from backend.storage.projects import ProjectStore

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])


@router.post("", status_code=201, response_model=ProjectOut)
def create_project(body: ProjectCreate, session: SessionDep, _admin: AdminToken) -> ProjectOut:
    return ProjectOut.of(ProjectStore(session).create(body.slug, body.name))


@router.get("", response_model=list[ProjectOut])
def list_projects(session: SessionDep, settings: SettingsDep, token: OptionalToken) -> list[ProjectOut]:
    if token is None and not settings.reads_are_public:
        raise NotAuthenticated("authorization: a read token is required")
    only_ids = None
    if token is not None and token.scope != Scope.ADMIN and not settings.reads_are_public:
        only_ids = {token.project_id or -1}
    return [ProjectOut.of(p) for p in ProjectStore(session).list(only_ids)]
