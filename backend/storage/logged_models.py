"""Models logged through MLflow's logged-model calls (``mlflow.<flavor>.log_model``).

ParityScope keeps them so that the calls transformers' and TRL's MLflow integrations make with
artifact logging on succeed: a model has an id, a name, a status, tags and params, and its files
are artifacts under ``<project>/models/<model_id>/artifacts`` (docs/API.md, "Artifacts").
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.errors import NotFound
from backend.models import LoggedModelRow, utcnow

__all__ = ["LoggedModel", "LoggedModelStore", "model_artifact_dir"]


def model_artifact_dir(project_id: int, model_id: str) -> str:
    return f"{project_id}/models/{model_id}/artifacts"


@dataclass(frozen=True)
class LoggedModel:
    id: str
    project_id: int
    run_id: int | None
    name: str
    status: str
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _to_domain(row: LoggedModelRow) -> LoggedModel:
    return LoggedModel(row.id, row.project_id, row.run_id, row.name, row.status, dict(row.details or {}),
                       row.created_at, row.updated_at)


class LoggedModelStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, project_id: int, run_id: int | None, name: str, status: str, details: dict[str, Any]) -> LoggedModel:
        row = LoggedModelRow(id=f"m-{secrets.token_hex(16)}", project_id=project_id, run_id=run_id, name=name,
                             status=status, details=details)
        self.session.add(row)
        self.session.flush()
        return _to_domain(row)

    def get(self, model_id: str) -> LoggedModel:
        """The model, or ``NotFound``."""
        row = None if "\x00" in model_id else self.session.get(LoggedModelRow, model_id)
        if row is None:
            raise NotFound(f"Logged model with ID '{model_id}' not found.", field="model_id")
        return _to_domain(row)

    def update(self, model_id: str, *, status: str | None = None, details: dict[str, Any] | None = None) -> LoggedModel:
        row = None if "\x00" in model_id else self.session.get(LoggedModelRow, model_id)
        if row is None:
            raise NotFound(f"Logged model with ID '{model_id}' not found.", field="model_id")
        if status is not None:
            row.status = status
        if details is not None:
            row.details = details
        row.updated_at = utcnow()
        self.session.flush()
        return _to_domain(row)

    def set_run(self, model_id: str, run_id: int) -> None:
        row = self.session.get(LoggedModelRow, model_id)
        if row is not None:
            row.run_id = run_id
            self.session.flush()

    def of_projects(self, project_ids: list[int]) -> list[LoggedModel]:
        """Every model of these projects, newest first."""
        stmt = select(LoggedModelRow).where(LoggedModelRow.project_id.in_(project_ids))
        rows = self.session.scalars(stmt.order_by(LoggedModelRow.created_at.desc()))
        return [_to_domain(r) for r in rows]
