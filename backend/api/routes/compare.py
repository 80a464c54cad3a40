"""/api/v1/compare and /api/v1/comparisons"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from backend.api.deps import (
    OptionalToken,
    ReadableProject,
    SessionDep,
    SettingsDep,
    check_read,
    check_write,
)
from backend.api.json import orjson_response
from backend.api.params import RUN_IDS, parse_run_ids
from backend.api.schemas import JsonObject
from backend.compare.downsample import MAX_POINTS_LIMIT, MIN_POINTS_LIMIT
from backend.comparing import (
    FIGURE_KINDS,
    MAX_RUNS_PER_COMPARISON,
    CompareOptions,
    compare_runs,
    known_runs,
    load_comparable_runs,
)
from backend.domain import SavedComparison
from backend.errors import BadInput
from backend.limits import MAX_BAND_K, MAX_DIVERGENCE_K
from backend.storage.comparisons import ComparisonStore
from backend.storage.projects import ProjectStore
from parityscope.wire import MAX_STEP

router = APIRouter(tags=["compare"])

SECTIONS = ("series", *FIGURE_KINDS, "wall_time")
# What parse_include accepts: sections separated by commas, spaces and empty parts ignored.
_SECTION = f"(?:{'|'.join(SECTIONS)})"
INCLUDE = {"pattern": rf"^ *(?:{_SECTION} *)?(?:, *(?:{_SECTION} *)?)*$"}


def parse_include(raw: str | None) -> set[str]:
    if raw is None:
        return set(SECTIONS)
    wanted = {part.strip(" ") for part in raw.split(",") if part.strip(" ")}
    unknown = wanted - set(SECTIONS)
    if unknown:
        raise BadInput(
            f"include: unknown section {sorted(unknown)[0]!r}; choose from {', '.join(SECTIONS)}",
            field="include",
        )
    return wanted


def trim_sections(body: dict[str, Any], include: set[str]) -> None:
    """Drop the data arrays the caller did not ask for; summaries always stay."""
    for metric, entry in body["metrics"].items():
        if "series" not in include:
            entry["series"] = [
                {k: v for k, v in s.items() if k not in ("x", "y", "y_min", "y_max")} for s in entry["series"]
            ]
            if entry["band"] is not None:
                entry["band"] = {
                    key: entry["band"][key]
                    for key in ("source", "k", "reference_outside_rate")
                    if key in entry["band"]
                }
            for candidate in entry["candidates"].values():
                candidate.pop("diff", None)
        figures = body["figures"].get(metric, {})
        for kind in ("overlay", "diff"):
            if kind not in include:
                figures.pop(kind, None)


@router.get(
    "/api/v1/compare",
    response_description="Aligned, smoothed and downsampled series, the reference band, divergence, "
    "config diff, diagnosis and Plotly figures (see docs/API.md)",
)
def compare(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: OptionalToken,
    reference: Annotated[str, Query(description="run id, or comma-separated replica ids", json_schema_extra=RUN_IDS)],
    candidates: Annotated[str | None, Query(description="comma-separated run ids", json_schema_extra=RUN_IDS)] = None,
    metrics: Annotated[str | None, Query(description="comma-separated canonical names or raw keys")] = None,
    start: Annotated[int | None, Query(ge=0, le=MAX_STEP)] = None,
    end: Annotated[int | None, Query(ge=0, le=MAX_STEP)] = None,
    max_points: Annotated[int, Query(ge=MIN_POINTS_LIMIT, le=MAX_POINTS_LIMIT)] = CompareOptions.max_points,
    smoothing: Annotated[float, Query(ge=0.0, lt=1.0)] = CompareOptions.smoothing,
    band_k: Annotated[float, Query(gt=0.0, le=MAX_BAND_K, allow_inf_nan=False)] = CompareOptions.band_k,
    divergence_k: Annotated[int, Query(ge=1, le=MAX_DIVERGENCE_K)] = CompareOptions.divergence_k,
    include: Annotated[
        str | None,
        Query(
            description="comma-separated sections with data arrays: series, overlay, diff, wall_time "
            "(default all)",
            json_schema_extra=INCLUDE,
        ),
    ] = None,
    partial: Annotated[
        bool,
        Query(description="compare what is valid: unknown runs and metrics are named in `missing`"),
    ] = False,
) -> Response:
    sections = parse_include(include)
    reference_ids = parse_run_ids(reference, "reference", required=True)
    candidate_ids = parse_run_ids(candidates, "candidates", required=False)
    missing_runs: list[dict[str, Any]] = []
    if partial:
        reference_ids, candidate_ids, missing_runs = known_runs(session, reference_ids, candidate_ids)
    references, candidate_runs, project_id = load_comparable_runs(
        session, reference_ids, candidate_ids, lambda pid: check_read(token, pid, settings)
    )
    metric_names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    options = CompareOptions(
        metrics=tuple(metric_names) if metric_names else None,
        start=start,
        end=end,
        max_points=max_points,
        smoothing=smoothing,
        band_k=band_k,
        divergence_k=divergence_k,
        figures=tuple(kind for kind in FIGURE_KINDS if kind in sections),
        partial=partial,
        wall_time="wall_time" in sections,
    )
    body = compare_runs(
        session, references, candidate_runs, project_id, options, request.app.state.series_cache
    )
    if partial:
        body["missing"] = [*missing_runs, *body["missing"]]
    trim_sections(body, sections)
    return orjson_response(body)


class ComparisonCreate(BaseModel):
    name: str = Field(min_length=1, max_length=500)
    reference: list[int] = Field(min_length=1, max_length=MAX_RUNS_PER_COMPARISON)
    candidates: list[int] = Field(default_factory=list, max_length=MAX_RUNS_PER_COMPARISON)
    options: JsonObject = Field(default_factory=dict)

    @field_validator("reference", "candidates")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        # As GET /api/v1/compare: a run given twice could never be opened.
        if len(set(ids)) != len(ids):
            raise ValueError("a run appears more than once")
        return ids


class ComparisonOut(BaseModel):
    id: int
    project: str
    name: str
    reference: list[int]
    candidates: list[int]
    options: dict[str, Any]
    job_id: int | None
    created_at: str

    @classmethod
    def of(cls, c: SavedComparison, slug: str) -> ComparisonOut:
        return cls(
            id=c.id,
            project=slug,
            name=c.name,
            reference=c.reference_ids,
            candidates=c.candidate_ids,
            options=c.options,
            job_id=c.job_id,
            created_at=c.created_at.isoformat(),
        )


@router.post("/api/v1/comparisons", status_code=201, response_model=ComparisonOut)
def save_comparison(body: ComparisonCreate, session: SessionDep, token: OptionalToken) -> ComparisonOut:
    references, candidates, project_id = load_comparable_runs(
        session, body.reference, body.candidates, lambda pid: check_write(token, pid)
    )
    saved = ComparisonStore(session).save(
        project_id, body.name, [r.id for r in references], [c.id for c in candidates], body.options
    )
    return ComparisonOut.of(saved, references[0].project_slug)


@router.get("/api/v1/comparisons/{comparison_id}", response_model=ComparisonOut)
def get_comparison(
    comparison_id: int, session: SessionDep, settings: SettingsDep, token: OptionalToken
) -> ComparisonOut:
    saved = ComparisonStore(session).get(comparison_id)
    check_read(token, saved.project_id, settings)
    return ComparisonOut.of(saved, ProjectStore(session).get(saved.project_id).slug)


@router.get("/api/v1/projects/{slug}/comparisons", response_model=list[ComparisonOut])
def list_comparisons(project: ReadableProject, session: SessionDep) -> list[ComparisonOut]:
    return [ComparisonOut.of(c, project.slug) for c in ComparisonStore(session).list(project.id)]
