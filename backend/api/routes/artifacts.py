"""/api/v1/runs/{run_id}/artifacts: a run's files (logged through MLflow's artifact calls), for
the dashboard's run page."""

from __future__ import annotations

import mimetypes
import posixpath

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from backend.api.deps import ArtifactsDep, ReadableRun
from backend.storage.artifacts import check_artifact_path, run_artifact_dir

router = APIRouter(prefix="/api/v1/runs/{run_id}/artifacts", tags=["artifacts"])


class ArtifactOut(BaseModel):
    path: str
    size: int | None


@router.get("", response_model=list[ArtifactOut], operation_id="list_run_artifacts")
def list_run_artifacts(run: ReadableRun, artifacts: ArtifactsDep) -> list[ArtifactOut]:
    """Every file of the run, recursively, with its size in bytes."""
    return [ArtifactOut(path=f.path, size=f.size) for f in artifacts.walk(run_artifact_dir(run.project_id, run.id))]


@router.get("/{path:path}", operation_id="download_run_artifact",
            response_class=StreamingResponse, responses={200: {"content": {"application/octet-stream": {}}}})
def download_run_artifact(path: str, run: ReadableRun, artifacts: ArtifactsDep) -> StreamingResponse:
    check_artifact_path(path)
    full = f"{run_artifact_dir(run.project_id, run.id)}/{path}"
    size = artifacts.size(full)
    name = posixpath.basename(path).replace('"', "")
    return StreamingResponse(
        artifacts.read(full), media_type=mimetypes.guess_type(path)[0] or "application/octet-stream",
        headers={"content-length": str(size), "content-disposition": f'attachment; filename="{name}"'},
    )
