"""/api/2.0/mlflow-artifacts/…: MLflow's artifact proxy (upload, download, list, delete).

A run's ``artifact_uri`` is ``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts`` and a logged
model's ``mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts``; the MLflow client
turns those into requests here, with the tracking token. The first path component is the
project (experiment) the file belongs to, and decides who may read or write it. Files live in
the artifact root of the settings (docs/API.md, "Artifacts").
"""

from __future__ import annotations

import mimetypes
import posixpath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from backend.api.deps import (
    ArtifactsDep,
    OptionalToken,
    SessionDep,
    SettingsDep,
    check_read,
    check_write,
)
from backend.api.mlflow_errors import EndpointNotFound, MlflowAnswer, MlflowRoute, mlflow_error
from backend.domain import Token
from backend.errors import NotFound, TooLarge
from backend.settings import Settings
from backend.storage.artifacts import check_artifact_path
from backend.storage.projects import ProjectStore
from backend.storage.runs import RunStore

PREFIX = "/api/2.0/mlflow-artifacts"

router = APIRouter(prefix=PREFIX, tags=["mlflow"], route_class=MlflowRoute)

# The paths published in /openapi.json: an experiment id, then components of printable ASCII other
# than '/' and '\\', none empty or dots only. ``check_artifact_path`` also takes printable
# characters beyond ASCII, which a pattern cannot list (docs/RELIABILITY.md, "Bad inputs tried").
_COMPONENT = r"[\x20-\x2e\x30-\x5b\x5d-\x7e]*[\x20-\x2d\x30-\x5b\x5d-\x7e][\x20-\x2e\x30-\x5b\x5d-\x7e]*"
ARTIFACT_PATH = {"pattern": rf"^[0-9]{{1,17}}(/{_COMPONENT})*$", "maxLength": 1000}
PathParam = Annotated[str, Path(json_schema_extra=ARTIFACT_PATH)]


def _check_access(session: Session, token: Token | None, settings: Settings, path: str, *, write: bool) -> None:
    """Whoever may read (write) the project named by the path's first component may read
    (write) the file; a run named by the second component must belong to that project."""
    parts = path.split("/")
    if not (parts[0].isascii() and parts[0].isdigit() and len(parts[0]) < 18):
        raise NotFound(f"artifact path {path[:80]!r}: not under an experiment of this server", field="path")
    project = ProjectStore(session).get(int(parts[0]))
    if write:
        check_write(token, project.id)
    else:
        check_read(token, project.id, settings)
    if len(parts) > 1 and parts[1].isascii() and parts[1].isdigit() and len(parts[1]) < 18:
        try:
            run = RunStore(session).get(int(parts[1]))
        except NotFound:
            run = None
        if run is None or run.project_id != project.id:
            raise NotFound(f"artifact path {path[:80]!r}: no run {parts[1]} in experiment {parts[0]}", field="path")


@router.put("/artifacts/{path:path}", operation_id="mlflow_upload_artifact")
async def upload_artifact(
    path: PathParam, request: Request, session: SessionDep, settings: SettingsDep, token: OptionalToken,
    artifacts: ArtifactsDep,
) -> dict[str, Any]:
    check_artifact_path(path)
    _check_access(session, token, settings, path, write=True)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_artifact_bytes:
        raise MlflowAnswer(mlflow_error(
            "INVALID_PARAMETER_VALUE",
            f"artifact: {length} bytes exceeds the limit of {settings.max_artifact_bytes} bytes", 413))
    try:
        await artifacts.write(path, request.stream(), settings.max_artifact_bytes)
    except TooLarge as exc:
        raise MlflowAnswer(mlflow_error("INVALID_PARAMETER_VALUE", exc.message, 413)) from exc
    return {}


@router.get(
    "/artifacts/{path:path}",
    operation_id="mlflow_download_artifact",
    response_class=StreamingResponse,
    responses={200: {"description": "the file, typed by its name's extension",
                     "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}},
)
def download_artifact(
    path: PathParam, session: SessionDep, settings: SettingsDep, token: OptionalToken, artifacts: ArtifactsDep
) -> StreamingResponse:
    check_artifact_path(path)
    _check_access(session, token, settings, path, write=False)
    size = artifacts.size(path)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    name = posixpath.basename(path).replace('"', "")
    return StreamingResponse(
        artifacts.read(path), media_type=media_type,
        headers={"content-length": str(size), "content-disposition": f'attachment; filename="{name}"'},
    )


@router.get("/artifacts", operation_id="mlflow_list_artifacts")
def list_artifacts(
    session: SessionDep, settings: SettingsDep, token: OptionalToken, artifacts: ArtifactsDep,
    path: Annotated[str | None, Query(json_schema_extra=ARTIFACT_PATH)] = None,
) -> dict[str, Any]:
    path = check_artifact_path(path or "", allow_empty=True)
    if not path:
        return {"files": []}  # the root lists no experiments: each belongs to someone else
    _check_access(session, token, settings, path, write=False)
    files = []
    for entry in artifacts.list(path):
        item: dict[str, Any] = {"path": posixpath.basename(entry.path), "is_dir": entry.is_dir}
        if not entry.is_dir:
            item["file_size"] = entry.size
        files.append(item)
    return {"files": files}


@router.delete("/artifacts/{path:path}", operation_id="mlflow_delete_artifact")
def delete_artifact(
    path: PathParam, session: SessionDep, settings: SettingsDep, token: OptionalToken, artifacts: ArtifactsDep
) -> dict[str, Any]:
    check_artifact_path(path)
    _check_access(session, token, settings, path, write=True)
    artifacts.delete(path)
    return {}


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def unknown_artifact_endpoint(path: str, request: Request) -> None:
    raise EndpointNotFound(
        f"No API endpoint {request.method} {PREFIX}/{path}: ParityScope's artifact proxy answers "
        "uploads, downloads, listings and deletions of single files (no multipart upload)"
    )
