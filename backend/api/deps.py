"""Request dependencies with typed aliases: the database session, the caller's token, and the
ownership checks for projects and runs, written once here rather than in every route."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from backend.api.body import VERIFIED_TOKEN, bearer_secret
from backend.db import Database
from backend.domain import Project, Run, Scope, Token
from backend.errors import Forbidden, NotAuthenticated
from backend.settings import Settings
from backend.storage.projects import ProjectStore
from backend.storage.runs import RunStore
from backend.storage.tokens import TokenStore


def get_database(request: Request) -> Database:
    return request.app.state.database


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request: committed if the route returns, rolled back if it raises."""
    with get_database(request).session() as session:
        yield session


# "function" scope: the session commits before the response is sent. FastAPI's default for a
# yield dependency ends it after the response, so a client could see "201 created" and find
# nothing on its next request (or never learn that the commit failed).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_optional_token(request: Request, session: SessionDep) -> Token | None:
    state = request.scope.get("state") or {}
    if VERIFIED_TOKEN in state:
        # Requests with a body were authenticated before it was read (backend.api.body).
        return state[VERIFIED_TOKEN]
    secret = bearer_secret(request.headers.get("authorization"))
    if secret is None:
        return None
    token = TokenStore(session).verify(secret)
    if token is None:
        raise NotAuthenticated("authorization: unknown or revoked token")
    return token


OptionalToken = Annotated[Token | None, Depends(get_optional_token)]


def get_admin_token(token: OptionalToken) -> Token:
    if token is None:
        raise NotAuthenticated("authorization: an admin token is required")
    if token.scope != Scope.ADMIN:
        raise Forbidden("authorization: this needs an admin token")
    return token


AdminToken = Annotated[Token, Depends(get_admin_token)]


def check_read(token: Token | None, project_id: int, settings: Settings) -> None:
    """Reads are open on a public deployment; otherwise a token for the project is needed."""
    if token is None:
        if settings.reads_are_public:
            return
        raise NotAuthenticated("authorization: a read token is required")
    if not token.can_read(project_id) and not settings.reads_are_public:
        raise Forbidden("authorization: this token has no access to this project")


def require_token(token: Token | None) -> Token:
    """The caller's token, or a 401. Routes that look something up call it first, so a request
    without a token learns nothing about what exists."""
    if token is None:
        raise NotAuthenticated("authorization: a write token is required")
    return token


def check_write(token: Token | None, project_id: int) -> None:
    token = require_token(token)
    if not token.can_write(project_id):
        if token.can_read(project_id):
            raise Forbidden("authorization: this token is read-only")
        raise Forbidden("authorization: this token has no access to this project")


def readable_project(
    session: SessionDep, settings: SettingsDep, token: OptionalToken, slug: Annotated[str, Path()]
) -> Project:
    project = ProjectStore(session).get_by_slug(slug)
    check_read(token, project.id, settings)
    return project


def writable_project(
    session: SessionDep, token: OptionalToken, slug: Annotated[str, Path()]
) -> Project:
    require_token(token)
    project = ProjectStore(session).get_by_slug(slug)
    check_write(token, project.id)
    return project


def readable_run(
    session: SessionDep, settings: SettingsDep, token: OptionalToken, run_id: Annotated[int, Path()]
) -> Run:
    run = RunStore(session).get(run_id)
    check_read(token, run.project_id, settings)
    return run


def writable_run(session: SessionDep, token: OptionalToken, run_id: Annotated[int, Path()]) -> Run:
    require_token(token)
    run = RunStore(session).get(run_id)
    check_write(token, run.project_id)
    return run


async def request_body(request: Request) -> bytes:
    return await request.body()


# A body read as bytes: metrics are parsed by hand for speed, imported files are not JSON.
RawBody = Annotated[bytes, Depends(request_body)]
ReadableProject = Annotated[Project, Depends(readable_project)]
WritableProject = Annotated[Project, Depends(writable_project)]
ReadableRun = Annotated[Run, Depends(readable_run)]
WritableRun = Annotated[Run, Depends(writable_run)]
