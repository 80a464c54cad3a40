"""Request and response bodies of the dashboard's API: run summaries, notes and share links."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema, field_validator, model_validator

from backend.api.schemas import StrictModel, printable
from backend.compare.aliases import DEFAULT_METRICS
from backend.compare.downsample import MAX_POINTS_LIMIT, MIN_POINTS_LIMIT
from backend.compare.encoding import api_numbers
from backend.comparing import MAX_RUNS_PER_COMPARISON, CompareOptions
from backend.domain import Note, Run, RunStatus, ShareLink, Sparkline
from parityscope.wire import MAX_KEY_LENGTH, MAX_STEP

__all__ = [
    "NoteCreate",
    "NoteOut",
    "RunSummaryOut",
    "RunSummaryPageOut",
    "ShareCreate",
    "ShareOut",
    "ShareView",
    "SparklineOut",
]

RunId = Annotated[int, Field(ge=1)]
MetricName = Annotated[str, WithJsonSchema(printable(MAX_KEY_LENGTH))]
# The validators below refuse a run given twice; the schema says so too.
DISTINCT = {"uniqueItems": True}


def _distinct_ids(ids: list[int], field: str) -> list[int]:
    if len(set(ids)) != len(ids):
        raise ValueError(f"a run appears more than once in {field}")
    if any(i < 1 for i in ids):
        raise ValueError("run ids are positive integers")
    return ids


# -- run summaries ----------------------------------------------------------------------------


class SparklineOut(BaseModel):
    metric: str
    key: str | None = Field(description="the raw key the metric resolved to in this run; null if none")
    x: list[int]
    y: list[float | str] = Field(description="values in the API encoding (NaN as \"NaN\")")

    @classmethod
    def of(cls, s: Sparkline) -> SparklineOut:
        return cls(metric=s.metric, key=s.key, x=s.steps, y=api_numbers(s.values))


class RunSummaryOut(BaseModel):
    id: int
    name: str
    status: RunStatus
    engine: dict[str, Any] | None
    label: str | None
    tags: list[str]
    last_step: int | None
    created_at: datetime
    updated_at: datetime
    sparkline: SparklineOut

    @classmethod
    def of(cls, run: Run, sparkline: Sparkline) -> RunSummaryOut:
        return cls(
            id=run.id,
            name=run.name,
            status=run.status,
            engine=run.engine,
            label=run.label,
            tags=run.tags,
            last_step=run.last_step,
            created_at=run.created_at,
            updated_at=run.updated_at,
            sparkline=SparklineOut.of(sparkline),
        )


class RunSummaryPageOut(BaseModel):
    runs: list[RunSummaryOut]
    next_cursor: str | None


# -- notes ------------------------------------------------------------------------------------


class NoteCreate(StrictModel):
    runs: list[RunId] = Field(
        min_length=1,
        max_length=MAX_RUNS_PER_COMPARISON,
        description="every run of the comparison (references and candidates, any order)",
        json_schema_extra=DISTINCT,
    )
    step: int = Field(ge=0, le=MAX_STEP)
    text: str = Field(min_length=1, max_length=2000)
    author: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("runs")
    @classmethod
    def _runs(cls, v: list[int]) -> list[int]:
        return _distinct_ids(v, "runs")

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a note needs some text")
        return v


class NoteOut(BaseModel):
    id: int
    runs: list[int]
    step: int
    text: str
    author: str | None
    source: str
    created_at: datetime

    @classmethod
    def of(cls, note: Note) -> NoteOut:
        return cls(
            id=note.id,
            runs=note.run_ids,
            step=note.step,
            text=note.text,
            author=note.author,
            source=note.source,
            created_at=note.created_at,
        )


# -- share links ------------------------------------------------------------------------------


class ShareView(StrictModel):
    """Everything the compare page needs to show the same picture again."""

    reference: list[RunId] = Field(min_length=1, max_length=MAX_RUNS_PER_COMPARISON, json_schema_extra=DISTINCT)
    candidates: list[RunId] = Field(
        default_factory=list, max_length=MAX_RUNS_PER_COMPARISON, json_schema_extra=DISTINCT
    )
    metrics: list[MetricName] = Field(
        default_factory=lambda: list(DEFAULT_METRICS), min_length=1, max_length=20
    )
    smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    mode: Literal["overlay", "diff"] = "overlay"
    log_y: bool | list[MetricName] = Field(
        default=False, description="the metrics drawn on a log y axis (true: every one)"
    )
    x_range: list[float] | None = Field(
        default=None, min_length=2, max_length=2,
        description="the zoomed x range: steps, or seconds of relative wall time with x_axis time",
    )
    x_axis: Literal["step", "time"] = Field(
        default="step", description="the panels' x: step, or each run's relative wall time"
    )
    max_points: int = Field(default=CompareOptions.max_points, ge=MIN_POINTS_LIMIT, le=MAX_POINTS_LIMIT)
    # A ladder job of the runs' project shown under the panels (docs/LADDER.md).
    ladder: int | None = Field(default=None, ge=1)

    @field_validator("reference", "candidates")
    @classmethod
    def _ids(cls, v: list[int], info: Any) -> list[int]:
        return _distinct_ids(v, info.field_name)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: list[str]) -> list[str]:
        if any(not m or len(m) > MAX_KEY_LENGTH or not m.isprintable() for m in v):
            raise ValueError(f"each metric is 1-{MAX_KEY_LENGTH} printable characters")
        return list(dict.fromkeys(v))

    @field_validator("log_y")
    @classmethod
    def _log_y(cls, v: bool | list[str]) -> bool | list[str]:
        if isinstance(v, list) and any(not m or len(m) > 250 or not m.isprintable() for m in v):
            raise ValueError("each metric is 1-250 printable characters")
        return v

    @field_validator("x_range")
    @classmethod
    def _range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not v[0] < v[1]:
            raise ValueError("x_range must be [low, high] with low < high")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> ShareView:
        both = set(self.reference) & set(self.candidates)
        if both:
            raise ValueError(f"run {min(both)} is both a reference and a candidate")
        return self

    @property
    def run_ids(self) -> list[int]:
        return [*self.reference, *self.candidates]


class ShareCreate(StrictModel):
    view: ShareView
    frozen: bool = Field(default=False, description="store the data as it is now")
    expires_in_hours: int | None = Field(default=None, ge=1, le=24 * 365 * 10)


class ShareOut(BaseModel):
    id: int
    frozen: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    view: dict[str, Any]
    runs: list[int]
    url: str | None = Field(default=None, description="only in the response that made the link")
    token: str | None = Field(default=None, description="only in the response that made the link")

    @classmethod
    def of(cls, link: ShareLink, secret: str | None = None) -> ShareOut:
        return cls(
            id=link.id,
            frozen=link.frozen,
            created_at=link.created_at,
            expires_at=link.expires_at,
            revoked_at=link.revoked_at,
            view=link.view,
            runs=link.run_ids,
            url=f"/s/{secret}" if secret else None,
            token=secret,
        )
