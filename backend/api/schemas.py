"""Pydantic request and response bodies of the REST contract (docs/API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from backend.domain import Project, Run, RunStatus
from parityscope.wire import MAX_STEP

MAX_JSON_DEPTH = 64


def _not_too_deep(value: Any) -> Any:
    # A JSON value nested deeper than the response serializer goes (about 255 levels) would be
    # stored and then never sent back: every list holding it would answer 500.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_not_too_deep)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(StrictModel):
    slug: str = Field(min_length=1, max_length=64, examples=["gspo-v1-migration"])
    name: str = Field(min_length=1, max_length=200)


class ProjectOut(BaseModel):
    id: int
    slug: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, p: Project) -> ProjectOut:
        return cls(id=p.id, slug=p.slug, name=p.name, created_at=p.created_at)


def _check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not tag or len(tag) > 100 or not tag.isprintable():
            raise ValueError("each tag must be 1-100 printable characters")
    if len(tags) > 100:
        raise ValueError("at most 100 tags")
    return tags


class RunCreate(StrictModel):
    name: str = Field(min_length=1, max_length=500)
    config: JsonObject = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    engine: JsonObject | None = None
    label: str | None = Field(default=None, max_length=200)

    _tags = field_validator("tags")(classmethod(lambda cls, v: _check_tags(v)))


class RunPatch(StrictModel):
    status: RunStatus | None = None
    name: str | None = Field(default=None, min_length=1, max_length=500)
    tags: list[str] | None = None
    config: JsonObject | None = None

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_tags(v)


class RunOut(BaseModel):
    id: int
    project: str
    name: str
    status: RunStatus
    tags: list[str]
    config: dict[str, Any]
    engine: dict[str, Any] | None
    label: str | None
    external_id: str | None
    last_step: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: Run) -> RunOut:
        return cls(
            id=r.id,
            project=r.project_slug,
            name=r.name,
            status=r.status,
            tags=r.tags,
            config=r.config,
            engine=r.engine,
            label=r.label,
            external_id=r.external_id,
            last_step=r.last_step,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )


class RunPageOut(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None


class IngestOut(BaseModel):
    accepted: int
    replaced: int


class KeyOut(BaseModel):
    key: str
    count: int
    first_step: int
    last_step: int


# The metrics body is parsed by backend.ingest for speed; these models only document it.
WireValue = float | str | None


class PointRow(BaseModel):
    step: int = Field(ge=0, le=MAX_STEP)
    values: dict[str, WireValue]
    time: float | None = None


class RowsBody(BaseModel):
    points: list[PointRow]


class ColumnsBody(BaseModel):
    steps: list[int]
    values: dict[str, list[WireValue]]
    times: list[float | None] | None = None


class SeriesOut(BaseModel):
    steps: list[int]
    values: list[WireValue]


METRICS_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/RowsBody"},
                        {"$ref": "#/components/schemas/ColumnsBody"},
                    ]
                }
            }
        },
    }
}
