"""Pydantic request and response bodies of the REST contract (docs/API.md)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from backend.domain import Project, Run, RunStatus
from backend.limits import (
    MAX_CONFIG_BYTES,
    MAX_ENGINE_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_INTEGER,
    MAX_NAME_LENGTH,
    MAX_OPTIONS_BYTES,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)
from backend.storage.projects import SLUG_PATTERN
from parityscope.wire import MAX_STEP


def check_json_value(value: Any, *, max_bytes: int) -> Any:
    """Refuse a JSON value the server could store but not serve back exactly: nested deeper than
    the response serializer goes, integers beyond 2**53 (every JSON reader's exact range; the
    database's is 64 bits), NaN or Infinity (not JSON), a NUL character (PostgreSQL text cannot
    hold it), or more than ``max_bytes`` once serialized (it is sent back in every listing)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
            if isinstance(item, dict):
                for key in item:
                    if "\x00" in key:
                        raise ValueError("a key contains a NUL character")
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -MAX_JSON_INTEGER <= item <= MAX_JSON_INTEGER:
                raise ValueError(f"integer {item} is beyond ±2**53, the range JSON readers hold exactly")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{item} is not a JSON number")
        elif isinstance(item, str) and "\x00" in item:
            raise ValueError("a string contains a NUL character")
    size = len(orjson.dumps(value))
    if size > max_bytes:
        raise ValueError(f"{size} bytes once serialized, the limit is {max_bytes}")
    return value


# str.isprintable() in /openapi.json: no character of Unicode's categories Other or Separator
# but the space. A validator's Unicode tables may be of another version than Python's.
PRINTABLE = r"^(?:[^\p{C}\p{Z}]| )*$"


def printable(max_length: int, min_length: int = 1) -> dict[str, Any]:
    """The JSON schema of a string of ``min_length``-``max_length`` printable characters."""
    return {"type": "string", "minLength": min_length, "maxLength": max_length, "pattern": PRINTABLE}


# What ``check_json_value`` accepts, published in /openapi.json as the component ``JsonValue``
# (the app adds it). Its depth and serialized size are bounds on the whole document that JSON
# Schema cannot state; they are checked all the same (docs/RELIABILITY.md, "Bad inputs tried").
NO_NUL = "^[^\\u0000]*$"
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
# Written without a union of types: each keyword applies to the values of its own type, which
# standard client generators read (a union that refers to itself they refuse).
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "a JSON value stored as sent: integers within ±2**53, no NUL character",
    "if": {"type": "integer"},
    "then": {"minimum": -MAX_JSON_INTEGER, "maximum": MAX_JSON_INTEGER},
    "pattern": NO_NUL,
    "items": JSON_VALUE_REF,
    "additionalProperties": JSON_VALUE_REF,
    "propertyNames": {"pattern": NO_NUL},
}


def json_object(max_bytes: int) -> Any:
    """A JSON object checked by ``check_json_value`` with its own size limit."""
    return Annotated[
        dict[str, Any],
        AfterValidator(lambda v: check_json_value(v, max_bytes=max_bytes)),
        WithJsonSchema({
            "type": "object",
            "additionalProperties": JSON_VALUE_REF,
            "propertyNames": {"pattern": NO_NUL},
            "description": f"a JSON object of at most {max_bytes} bytes serialized, {MAX_JSON_DEPTH} levels deep",
        }),
    ]


JsonObject = json_object(MAX_OPTIONS_BYTES)
ConfigObject = json_object(MAX_CONFIG_BYTES)
EngineObject = json_object(MAX_ENGINE_BYTES)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ProjectCreate(StrictModel):
    slug: str = Field(min_length=1, max_length=64, pattern=SLUG_PATTERN.pattern, examples=["gspo-v1-migration"])
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)


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
        if not tag or len(tag) > MAX_TAG_LENGTH or not tag.isprintable():
            raise ValueError(f"each tag must be 1-{MAX_TAG_LENGTH} printable characters")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags


Tag = Annotated[str, WithJsonSchema(printable(MAX_TAG_LENGTH))]
TAGS = {"maxItems": MAX_TAGS}  # published; _check_tags refuses more with its own message


class RunCreate(StrictModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    config: ConfigObject = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list, json_schema_extra=TAGS)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    engine: EngineObject | None = None
    label: str | None = Field(default=None, max_length=200)

    _tags = field_validator("tags")(classmethod(lambda cls, v: _check_tags(v)))


class RunPatch(StrictModel):
    status: RunStatus | None = None
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    tags: list[Tag] | None = Field(default=None, json_schema_extra=TAGS)
    config: ConfigObject | None = None

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
