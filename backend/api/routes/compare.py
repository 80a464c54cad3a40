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
from backend.api.schemas import JsonObject
from backend.compare.aliases import DEFAULT_METRICS
from backend.compare.comparison import build_comparison
from backend.compare.downsample import MAX_POINTS_LIMIT, MIN_POINTS_LIMIT
from backend.compare.response import comparison_to_json
from backend.domain import Run, SavedComparison
from backend.errors import BadInput
from backend.ingest import MAX_STEP
from backend.limits import MAX_BAND_K, MAX_DIVERGENCE_K
from backend.storage.comparisons import ComparisonStore
from backend.storage.projects import ProjectStore
from backend.storage.registry import ProjectRegistryStore
from backend.storage.run_series import load_run_series
from backend.storage.runs import RunStore
from backend.storage.series_cache import SeriesCache

router = APIRouter(tags=["compare"])

SECTIONS = ("series", "overlay", "diff")


def parse_include(raw: str | None) -> set[str]:
    if raw is None:
        return set(SECTIONS)
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
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
                entry["band"] = {"source": entry["band"]["source"], "k": entry["band"]["k"]}
            for candidate in entry["candidates"].values():
                candidate.pop("diff", None)
        figures = body["figures"].get(metric, {})
        for kind in ("overlay", "diff"):
            if kind not in include:
                figures.pop(kind, None)


def parse_ids(raw: str | None, field: str, *, required: bool) -> list[int]:
    if raw is None or not raw.strip():
        if required:
            raise BadInput(f"{field}: give at least one run id", field=field)
        return []
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        # isdigit() alone accepts characters such as '²' that int() refuses.
        if not (part.isascii() and part.isdigit()):
            raise BadInput(f"{field}: {part!r} is not a run id", field=field)
        ids.append(int(part))
    if len(ids) > 50:
        raise BadInput(f"{field}: at most 50 runs", field=field)
    return ids


def runs_of_one_project(runs: list[Run]) -> int:
    projects = {run.project_id for run in runs}
    if len(projects) > 1:
        raise BadInput("runs: all runs of a comparison must belong to one project", field="runs")
    return projects.pop()


def load_comparable_runs(
    session: SessionDep, reference_ids: list[int], candidate_ids: list[int], check: Any
) -> tuple[list[Run], list[Run], int]:
    """The runs in the order asked, after the caller's access ``check`` on each project."""
    overlap = set(reference_ids) & set(candidate_ids)
    if overlap:
        raise BadInput(f"candidates: run {min(overlap)} is also a reference", field="candidates")
    store = RunStore(session)
    references = store.get_many(reference_ids)
    candidates = store.get_many(candidate_ids)
    for project_id in {run.project_id for run in [*references, *candidates]}:
        check(project_id)
    return references, candidates, runs_of_one_project([*references, *candidates])


def compare_payload(
    session: SessionDep,
    references: list[Run],
    candidates: list[Run],
    project_id: int,
    *,
    metrics: list[str] | None,
    start: int | None,
    end: int | None,
    max_points: int,
    smoothing: float,
    band_k: float,
    divergence_k: int,
    cache: SeriesCache | None = None,
    figures: tuple[str, ...] = ("overlay", "diff"),
) -> dict[str, Any]:
    """The compare response body for runs already checked for access."""
    registry = ProjectRegistryStore(session)
    aliases = registry.aliases(project_id)
    names = metrics or list(DEFAULT_METRICS)
    reference_series = load_run_series(session, references, names, aliases, start, end, cache)
    candidate_series = load_run_series(session, candidates, names, aliases, start, end, cache)
    comparison = build_comparison(
        reference_series,
        candidate_series,
        names,
        start=start,
        end=end,
        max_points=max_points,
        smoothing=smoothing,
        band_k=band_k,
        divergence_k=divergence_k,
        extra_aliases=aliases,
        extra_rules=registry.rules(project_id),
        figures=figures,
    )
    body = comparison_to_json(comparison)
    reference_ids = {run.id for run in references}
    body["runs"] = {
        str(run.id): {
            "id": run.id,
            "name": run.name,
            "label": run.label,
            "status": run.status.value,
            "last_step": run.last_step,
            "engine": run.engine,
            "role": "reference" if run.id in reference_ids else "candidate",
        }
        for run in [*references, *candidates]
    }
    return body


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
    reference: Annotated[str, Query(description="run id, or comma-separated replica ids")],
    candidates: Annotated[str | None, Query(description="comma-separated run ids")] = None,
    metrics: Annotated[str | None, Query(description="comma-separated canonical names or raw keys")] = None,
    start: Annotated[int | None, Query(ge=0, le=MAX_STEP)] = None,
    end: Annotated[int | None, Query(ge=0, le=MAX_STEP)] = None,
    max_points: Annotated[int, Query(ge=MIN_POINTS_LIMIT, le=MAX_POINTS_LIMIT)] = 2000,
    smoothing: Annotated[float, Query(ge=0.0, lt=1.0)] = 0.0,
    band_k: Annotated[float, Query(gt=0.0, le=MAX_BAND_K, allow_inf_nan=False)] = 3.0,
    divergence_k: Annotated[int, Query(ge=1, le=MAX_DIVERGENCE_K)] = 5,
    include: Annotated[
        str | None,
        Query(description="comma-separated sections with data arrays: series, overlay, diff (default all)"),
    ] = None,
) -> Response:
    sections = parse_include(include)
    reference_ids = parse_ids(reference, "reference", required=True)
    candidate_ids = parse_ids(candidates, "candidates", required=False)
    references, candidate_runs, project_id = load_comparable_runs(
        session, reference_ids, candidate_ids, lambda pid: check_read(token, pid, settings)
    )
    metric_names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    body = compare_payload(
        session,
        references,
        candidate_runs,
        project_id,
        metrics=metric_names,
        start=start,
        end=end,
        max_points=max_points,
        smoothing=smoothing,
        band_k=band_k,
        divergence_k=divergence_k,
        cache=request.app.state.series_cache,
        figures=tuple(kind for kind in ("overlay", "diff") if kind in sections),
    )
    trim_sections(body, sections)
    return orjson_response(body)


class ComparisonCreate(BaseModel):
    name: str = Field(min_length=1, max_length=500)
    reference: list[int] = Field(min_length=1, max_length=50)
    candidates: list[int] = Field(default_factory=list, max_length=50)
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
