"""A compare request from start to end: which runs, which of their series, the comparison.

The routes for the compare page, share links and notes call in here; storage reads the runs
and their points, ``backend.compare`` (pure numpy) computes. The options of one comparison
travel as one ``CompareOptions``, whose defaults are the ones the API documents and the pages
start from (served by ``GET /api/v1/meta``). See docs/API.md, "Comparison".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from backend.compare.aliases import DEFAULT_METRICS, PARITY_METRICS, AliasTable
from backend.compare.align import within_window
from backend.compare.band import DEFAULT_BAND_K
from backend.compare.comparison import Comparison, build_comparison
from backend.compare.divergence import DEFAULT_DIVERGENCE_K
from backend.compare.downsample import DEFAULT_MAX_POINTS
from backend.compare.response import comparison_to_json
from backend.compare.run_series import RunSeries
from backend.domain import Run, Sparkline
from backend.errors import BadInput, NotFound
from backend.series_summary import level_for
from backend.storage.metrics import MetricStore
from backend.storage.registry import ProjectRegistryStore
from backend.storage.runs import RunStore
from backend.storage.series_cache import SeriesCache
from backend.storage.sparklines import SparklineStore
from backend.storage.summaries import SummaryStore

__all__ = [
    "FIGURE_KINDS",
    "MAX_RUNS_PER_COMPARISON",
    "CompareOptions",
    "compare_runs",
    "known_runs",
    "load_comparable_runs",
    "load_run_series",
    "FULL_RESOLUTION_STEPS",
    "run_sparklines",
]

MAX_RUNS_PER_COMPARISON = 50
"""Runs in one comparison, references and candidates together. A job's comparison holds all of
its legs (at most 32), so this must not be lower than a job's leg limit."""

FIGURE_KINDS: tuple[str, ...] = ("overlay", "diff")

FULL_RESOLUTION_STEPS = 16_384
"""A window of at most this many steps (or at most ``max_points``) is compared point by point;
a longer one from the series summaries, at a cost bounded by ``max_points`` rather than by the
run's length (docs/ARCHITECTURE.md, "Summaries")."""


@dataclass(frozen=True)
class CompareOptions:
    """How to compare: the metrics, the step window and the display and band parameters.

    ``metrics`` None means the default metrics. The values are checked by the comparison
    itself (``backend.compare.comparison.build_comparison``), which names the bad field.
    """

    metrics: tuple[str, ...] | None = None
    start: int | None = None
    end: int | None = None
    max_points: int = DEFAULT_MAX_POINTS
    smoothing: float = 0.0
    band_k: float = DEFAULT_BAND_K
    divergence_k: int = DEFAULT_DIVERGENCE_K
    figures: tuple[str, ...] = FIGURE_KINDS
    partial: bool = False
    """Compare what is valid: a metric no run has is left out and named in ``missing``."""
    wall_time: bool = True
    """Give each run its relative wall time at the steps drawn (``runs[id].wall_time``)."""

    @property
    def metric_names(self) -> list[str]:
        return list(self.metrics or DEFAULT_METRICS)


def _one_project(runs: list[Run]) -> int:
    projects = {run.project_id for run in runs}
    if len(projects) > 1:
        raise BadInput("runs: all runs of a comparison must belong to one project", field="runs")
    return projects.pop()


def load_comparable_runs(
    session: Session,
    reference_ids: Sequence[int],
    candidate_ids: Sequence[int],
    check: Callable[[int], Any],
) -> tuple[list[Run], list[Run], int]:
    """The runs in the order asked, after the caller's access ``check`` on each project.

    Raises ``BadInput`` for a run that is both reference and candidate, more than
    ``MAX_RUNS_PER_COMPARISON`` runs, or runs of several projects; ``NotFound`` for an unknown run.
    """
    overlap = set(reference_ids) & set(candidate_ids)
    if overlap:
        raise BadInput(f"candidates: run {min(overlap)} is also a reference", field="candidates")
    total = len(reference_ids) + len(candidate_ids)
    if total > MAX_RUNS_PER_COMPARISON:
        raise BadInput(
            f"runs: a comparison has at most {MAX_RUNS_PER_COMPARISON} runs, this one has {total}",
            field="runs",
        )
    store = RunStore(session)
    references = store.get_many(list(reference_ids))
    candidates = store.get_many(list(candidate_ids))
    for project_id in {run.project_id for run in [*references, *candidates]}:
        check(project_id)
    return references, candidates, _one_project([*references, *candidates])


def _wanted_keys(
    store: MetricStore, run: Run, metric_names: Sequence[str], table: AliasTable
) -> list[str]:
    available = set(store.key_names(run.id))
    return sorted(
        {
            key
            for name in [*metric_names, *PARITY_METRICS]
            if (key := table.resolve(name, available)) is not None
        }
    )


def _overview_window(
    session: Session,
    runs: Sequence[Run],
    wanted: Mapping[int, list[str]],
    options: CompareOptions,
    cache: SeriesCache | None = None,
) -> tuple[int, int] | None:
    """The step window to compare from summaries, or None to compare point by point."""
    ids = MetricStore(session).key_ids(sorted({k for keys in wanted.values() for k in keys}), create=False)
    summaries = SummaryStore(session)
    extents = []
    for run in runs:
        keys = [ids[k] for k in wanted[run.id] if k in ids]
        name = "\x00extent " + " ".join(map(str, sorted(keys)))
        hit = cache.get(run.id, name, run.updated_at) if cache is not None else None
        if hit is None:
            found = summaries.extent(run.id, keys)
            hit = (np.asarray(found or (), dtype=np.int64),)
            if cache is not None:
                cache.put(run.id, name, run.updated_at, hit)
        if hit[0].size:
            extents.append((int(hit[0][0]), int(hit[0][1])))
    if not extents:
        return None
    lo = options.start if options.start is not None else min(e[0] for e in extents)
    hi = options.end if options.end is not None else max(e[1] for e in extents)
    if hi - lo + 1 <= max(options.max_points, FULL_RESOLUTION_STEPS):
        return None
    return lo, hi


def load_run_summaries(
    session: Session,
    runs: Sequence[Run],
    wanted: Mapping[int, list[str]],
    window: tuple[int, int],
    max_points: int,
    cache: SeriesCache | None = None,
) -> list[RunSeries]:
    """Each run with the bucket rows of its wanted keys covering ``window`` exactly, at the
    coarsest level no wider than a pixel: about ``max_points`` rows a series, whatever the
    run's length."""
    lo, hi = window
    level = level_for(hi - lo + 1, max(1, (max_points - 2) // 2))
    ids = MetricStore(session).key_ids(sorted({k for keys in wanted.values() for k in keys}), create=False)
    names = {key_id: name for name, key_id in ids.items()}
    store = SummaryStore(session)
    loaded = []
    # Cached under a name no metric key can have (keys exclude control characters).
    for run in runs:
        keys = [ids[k] for k in wanted[run.id] if k in ids]
        rows = {}
        if cache is not None:
            for key_id in keys:
                hit = cache.get(run.id, f"\x00summary {level} {lo} {hi} {names[key_id]}", run.updated_at)
                if hit is not None:
                    rows[key_id] = hit
        missing = [key_id for key_id in keys if key_id not in rows]
        if missing:
            for key_id, found in store.read_window(run.id, missing, lo, hi, level).items():
                rows[key_id] = found
                if cache is not None:
                    cache.put(run.id, f"\x00summary {level} {lo} {hi} {names[key_id]}", run.updated_at, found)
        loaded.append(
            _run_series(run, summaries={names[key_id]: found for key_id, found in rows.items() if len(found)})
        )
    return loaded


def _run_series(run: Run, **data: Any) -> RunSeries:
    """The comparison's plain input for ``run``, with its points (``series``) or its
    multi-resolution summaries (``summaries``)."""
    return RunSeries(
        run_id=run.id, name=run.name, label=run.label, config=run.config, engine=run.engine or {}, **data
    )


def known_runs(
    session: Session, reference_ids: Sequence[int], candidate_ids: Sequence[int]
) -> tuple[list[int], list[int], list[dict[str, Any]]]:
    """The ids that name runs, and a ``missing`` entry for each that does not. With no known
    reference left there is nothing to compare against: ``NotFound``, as without ``partial``."""
    found = {run.id for run in RunStore(session).find_many([*reference_ids, *candidate_ids])}
    missing = [
        {"kind": "run", "id": run_id, "role": role, "detail": f"run {run_id} not found"}
        for role, ids in (("reference", reference_ids), ("candidate", candidate_ids))
        for run_id in ids
        if run_id not in found
    ]
    known_references = [i for i in reference_ids if i in found]
    if not known_references:
        raise NotFound(f"run {reference_ids[0]} not found")
    return known_references, [i for i in candidate_ids if i in found], missing


def load_run_series(
    session: Session,
    runs: Sequence[Run],
    metric_names: Sequence[str],
    aliases: Mapping[str, object],
    start: int | None = None,
    end: int | None = None,
    cache: SeriesCache | None = None,
) -> list[RunSeries]:
    """Each run with the series the comparison will use: the asked metrics, resolved through
    the alias table, and the parity metrics, cut to the ``[start, end]`` window. Only those keys
    are read; with a ``cache``, whole series are kept between requests until the run changes."""
    store = MetricStore(session)
    table = AliasTable(aliases)
    loaded = []
    for run in runs:
        available = set(store.key_names(run.id))
        wanted = {
            key
            for name in [*metric_names, *PARITY_METRICS]
            if (key := table.resolve(name, available)) is not None
        }
        if cache is None:
            series = store.read_arrays(run.id, sorted(wanted), start, end) if wanted else {}
        else:
            series = {}
            missing = []
            for key in sorted(wanted):
                hit = cache.get(run.id, key, run.updated_at)
                if hit is None:
                    missing.append(key)
                else:
                    series[key] = hit
            if missing:
                for key, whole in store.read_arrays(run.id, missing).items():
                    cache.put(run.id, key, run.updated_at, whole)
                    series[key] = whole
            series = {key: within_window(whole, start, end) for key, whole in series.items()}
        loaded.append(_run_series(run, series=series))
    return loaded


def compare_runs(
    session: Session,
    references: list[Run],
    candidates: list[Run],
    project_id: int,
    options: CompareOptions,
    cache: SeriesCache | None = None,
) -> dict[str, Any]:
    """The compare response body for runs already checked for access (see docs/API.md)."""
    registry = ProjectRegistryStore(session)
    aliases = registry.aliases(project_id)
    names = options.metric_names
    window = (options.start, options.end)
    table = AliasTable(aliases)
    store = MetricStore(session)
    wanted = {run.id: _wanted_keys(store, run, names, table) for run in [*references, *candidates]}
    overview = _overview_window(session, [*references, *candidates], wanted, options, cache)
    if overview is None:
        # A zoomed window of a long run reads only that window; whole series are cached only
        # for runs short enough to be compared point by point.
        if any((run.last_step or 0) >= FULL_RESOLUTION_STEPS for run in [*references, *candidates]):
            cache = None
        reference_series = load_run_series(session, references, names, aliases, *window, cache)
        candidate_series = load_run_series(session, candidates, names, aliases, *window, cache)
    else:
        reference_series = load_run_summaries(
            session, references, wanted, overview, options.max_points, cache
        )
        candidate_series = load_run_summaries(
            session, candidates, wanted, overview, options.max_points, cache
        )
    comparison = build_comparison(
        reference_series,
        candidate_series,
        names,
        start=options.start,
        end=options.end,
        max_points=options.max_points,
        smoothing=options.smoothing,
        band_k=options.band_k,
        divergence_k=options.divergence_k,
        extra_aliases=aliases,
        extra_rules=registry.rules(project_id),
        figures=options.figures,
        unknown_metrics="skip" if options.partial else "refuse",
        window=overview,
    )
    body = comparison_to_json(comparison)
    body["settings"]["resolution"] = "points" if overview is None else "summaries"
    body["project"] = references[0].project_slug
    if options.partial:
        body["missing"] = [
            {"kind": "metric", "name": name, "detail": f"unknown metric {name!r}: no run has it"}
            for name in comparison.skipped_metrics
        ]
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
    if options.wall_time:
        times = run_wall_times(session, [*references, *candidates], comparison, cache)
        for run_id, entry in times.items():
            body["runs"][str(run_id)]["wall_time"] = entry
    return body


def _drawn_steps(comparison: Comparison) -> dict[str, tuple[dict[str, list[np.ndarray]], list[int]]]:
    """Per run id (as text): per raw key, the steps that run's lines are drawn at (its line and
    its unsmoothed line), and the steps of its divergence markers (on those keys too)."""
    drawn: dict[str, tuple[dict[str, list[np.ndarray]], list[int]]] = {}
    for metric in comparison.metrics:
        keys = {str(run.run_id): run.key for run in metric.runs}
        for run in metric.runs:
            if run.key is None:
                continue
            for shown in (run.series, run.raw):
                if shown is not None:
                    drawn.setdefault(str(run.run_id), ({}, []))[0].setdefault(run.key, []).append(shown.x)
        for candidate in metric.candidates:
            key = keys.get(str(candidate.run_id))
            divergence = candidate.divergence
            if key is None or divergence is None or divergence.first_divergence_step is None:
                continue
            per_key, markers = drawn.setdefault(str(candidate.run_id), ({}, []))
            per_key.setdefault(key, []).append(np.asarray([divergence.first_divergence_step], dtype=np.int64))
            markers.append(divergence.first_divergence_step)
    return drawn


def _steps_to_look_up(
    per_key: Mapping[int, np.ndarray], markers: Sequence[int], most: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(key ids, steps)``: every drawn step, or ``most`` of them spread evenly over the
    drawn ones when there are more (the markers' always), each on the first key of ``per_key``
    drawn there."""
    if not per_key:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    steps = np.concatenate(list(per_key.values())).astype(np.int64, copy=False)
    keys = np.concatenate([np.full(drawn.size, key_id, dtype=np.int64) for key_id, drawn in per_key.items()])
    rank = np.concatenate([np.full(drawn.size, i, dtype=np.int64) for i, drawn in enumerate(per_key.values())])
    order = np.lexsort((rank, steps))
    steps, keys = steps[order], keys[order]
    first = np.ones(steps.size, dtype=bool)
    first[1:] = steps[1:] != steps[:-1]
    steps, keys = steps[first], keys[first]
    if steps.size > most:
        spread = np.linspace(0, steps.size - 1, most).round().astype(np.int64)
        at_markers = np.searchsorted(steps, np.asarray(markers, dtype=np.int64))
        chosen = np.unique(np.concatenate([spread, at_markers]))
        steps, keys = steps[chosen], keys[chosen]
    return keys, steps


def run_wall_times(
    session: Session,
    runs: Sequence[Run],
    comparison: Comparison,
    cache: SeriesCache | None = None,
) -> dict[int, dict[str, Any] | None]:
    """Each run's relative wall time at the steps the comparison draws for it (at most
    ``max_points`` of them, spread evenly, plus its markers), or None when the run has no usable
    wall times (docs/COMPARE.md, "x: step or relative wall time").

    One primary-key probe per step looked up plus one per key of the run for the origin, so the
    cost follows what is drawn, whatever the run's length; cached until the run changes.
    """
    drawn = _drawn_steps(comparison)
    most = int(comparison.settings["max_points"])
    store = MetricStore(session)
    names = sorted({key for per_key, _ in drawn.values() for key in per_key})
    ids = store.key_ids(names, create=False)
    out: dict[int, dict[str, Any] | None] = {}
    for run in runs:
        per_key, markers = drawn.get(str(run.id), ({}, []))
        keys_asked, steps_asked = _steps_to_look_up(
            {ids[key]: np.concatenate(per_key[key]) for key in sorted(per_key) if key in ids},
            markers,
            most,
        )
        # Cached under a name no metric key can have, valid until the run changes.
        digest = hashlib.sha1(keys_asked.tobytes() + b"|" + steps_asked.tobytes()).hexdigest()
        name = f"\x00wall {digest}"
        hit = cache.get(run.id, name, run.updated_at) if cache is not None else None
        if hit is None:
            steps, times = store.wall_times_at(run.id, keys_asked, steps_asked)
            first = store.first_wall_time(run.id) if steps.size else None
            hit = (steps, times, np.asarray([np.nan if first is None else first]))
            if cache is not None:
                cache.put(run.id, name, run.updated_at, hit)
        out[run.id] = _relative_times(*hit)
    return out


def _relative_times(steps: np.ndarray, times: np.ndarray, first: np.ndarray) -> dict[str, Any] | None:
    """``{"origin", "steps", "seconds"}`` from the wall times found, or None when there are
    none, or when the steps carry no more than half as many distinct times as there are steps:
    points posted without times are stamped with the time the server received their request,
    one time for a whole batch of steps, which says nothing of when each step ran."""
    if steps.size == 0:
        return None
    order = np.argsort(steps, kind="stable")
    steps, times = steps[order], times[order]
    if steps.size > 1 and 2 * np.unique(times).size <= steps.size:
        return None
    origin = float(np.nanmin(np.append(times, first)))
    return {
        "origin": origin,
        "steps": steps.tolist(),
        "seconds": np.round(times - origin, 3).tolist(),
    }


def run_sparklines(
    session: Session, project_id: int, run_ids: Sequence[int], metric: str, points: int
) -> dict[int, Sparkline]:
    """A sparkline of ``metric``, resolved through the project's alias table, for each run."""
    table = AliasTable(ProjectRegistryStore(session).aliases(project_id))
    return SparklineStore(session).for_runs(
        run_ids,
        metric,
        points,
        candidate_keys=table.candidate_keys(metric),
        resolve=lambda logged: table.resolve(metric, logged),
    )
