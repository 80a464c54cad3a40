"""The comparison of candidates against a reference (or reference replicas), end to end.

Order of work, per metric: resolve each run's key through the alias table, clip to the
``[start, end]`` window, build the band and find divergence on the full-resolution unsmoothed
series, compute each candidate's diff against the reference line (the reference run, or the
replicas' per-step mean) on full-resolution unsmoothed values at the steps both sides have,
then smooth (if asked) and only then downsample for display. Smoothing the diff is the diff of
the smoothed lines wherever both have the same steps, since the EMA is linear. The displayed
band goes through the same smoothing as the lines drawn over it, so the picture is consistent;
divergence steps always come from the unsmoothed data.

The diagnosis of each candidate reads its config diff against the reference (group), its parity
metrics and the reference's (pooled over replicas, within the same window), and the
divergences of the compared metrics.

``comparison_to_json`` in ``backend.compare.response`` turns the result into the response body.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from typing import Any, Literal

import numpy as np

from backend.compare.aliases import (
    DEFAULT_METRICS,
    PARITY_METRICS,
    AliasTable,
    definition_note,
    panel_title,
)
from backend.compare.align import align_pair, within_window
from backend.compare.band import (
    DEFAULT_BAND_K,
    ReferenceBand,
    check_band_k,
    reference_band,
    reference_line,
)
from backend.compare.configdiff import ConfigDifference, config_diff, run_settings
from backend.compare.diagnosis import Diagnosis, diagnose
from backend.compare.divergence import (
    DEFAULT_DIVERGENCE_K,
    Divergence,
    check_divergence_k,
    first_divergence,
    marker_words,
)
from backend.compare.downsample import (
    DEFAULT_MAX_POINTS,
    DownsampledBand,
    DownsampledSeries,
    check_max_points,
    downsample_band,
    downsample_series,
)
from backend.compare.figures import (
    DivergenceMarker,
    RunTrace,
    diff_figure,
    overlay_figure,
    run_colours,
)
from backend.compare.overview import (
    Grid,
    compared_series,
    drawn_series,
    grid_for,
    pixel_rows,
)
from backend.compare.parity import parity_findings, summarise_parity
from backend.compare.registry import KeyRegistry, normalise_key
from backend.compare.run_series import RunSeries, Series, checked_series
from backend.compare.smoothing import check_smoothing, debiased_ema
from backend.errors import BadInput
from backend.series_summary import BucketStats

__all__ = ["CandidateMetric", "Comparison", "MetricComparison", "RunMetric", "build_comparison"]


@dataclass(frozen=True)
class RunMetric:
    run_id: str | int
    name: str
    role: str
    key: str | None
    series: DownsampledSeries | None
    downsampled: bool
    # The unsmoothed line for display, when smoothing is on (drawn faint under ``series``).
    raw: DownsampledSeries | None = None


@dataclass(frozen=True)
class CandidateMetric:
    run_id: str | int
    diff: DownsampledSeries | None
    divergence: Divergence | None
    # The unsmoothed diff for display, when smoothing is on (drawn faint under ``diff``).
    raw_diff: DownsampledSeries | None = None


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    runs: list[RunMetric]
    band: ReferenceBand | None
    band_display: DownsampledBand | None
    candidates: list[CandidateMetric]
    figures: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Comparison:
    reference_ids: list[str | int]
    candidate_ids: list[str | int]
    settings: dict[str, Any]
    metrics: list[MetricComparison]
    config_diff: dict[str, list[ConfigDifference]]
    diagnosis: dict[str, Diagnosis]
    config_table: dict[str, list[ConfigDifference]] = dataclass_field(default_factory=dict)
    # Metrics left out because no run has them and they are not canonical
    # (``unknown_metrics="skip"`` only).
    skipped_metrics: list[str] = dataclass_field(default_factory=list)


def build_comparison(
    references: Sequence[RunSeries],
    candidates: Sequence[RunSeries],
    metrics: Sequence[str] | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    smoothing: float = 0.0,
    band_k: float = DEFAULT_BAND_K,
    divergence_k: int = DEFAULT_DIVERGENCE_K,
    extra_aliases: Mapping[str, object] | None = None,
    extra_rules: Mapping[str, str] | None = None,
    figures: Collection[str] = ("overlay", "diff"),
    unknown_metrics: Literal["refuse", "skip"] = "refuse",
    window: tuple[int, int] | None = None,
) -> Comparison:
    """Compare ``candidates`` with ``references`` (two or more references are replicas).

    ``metrics`` are canonical names or raw keys, defaulting to clip rate, KL, entropy and
    reward. Raises ``BadInput`` (naming the field) for an empty reference list, a run given
    twice, a metric no run has that is not canonical, ``max_points`` outside [10, 20000],
    ``smoothing`` outside [0, 1), a non-positive ``band_k``, ``divergence_k`` below 1, or
    ``start`` after ``end``. ``figures`` names the Plotly figures to build per metric. With
    ``unknown_metrics="skip"`` an unknown metric is left out and listed in ``skipped_metrics``
    instead of refused.

    Runs that bring ``summaries`` instead of ``series`` are compared as an overview of the
    steps ``window`` (``backend.compare.overview``): the band, divergence, diff and smoothing
    run on per-pixel means, the drawn lines keep each pixel's extremes.
    """
    _check_runs(references, candidates)
    max_points = check_max_points(max_points)
    smoothing = check_smoothing(smoothing)
    band_k = check_band_k(band_k)
    divergence_k = check_divergence_k(divergence_k)
    _check_window(start, end)
    aliases = AliasTable(extra_aliases)
    registry = KeyRegistry(extra_rules)
    skipped: list[str] = []
    wanted = _check_metrics(
        metrics, [*references, *candidates], aliases, skipped if unknown_metrics == "skip" else None
    )

    resolved: dict[tuple[str, str], tuple[str | None, Series | None]] = {}
    overview = _Overview(window, [*references, *candidates], aliases, max_points)

    def series_of(run: RunSeries, name: str) -> tuple[str | None, Series | None]:
        cache_key = (str(run.run_id), name)
        if cache_key not in resolved:
            key = aliases.resolve(name, run.keys())
            series = None
            if key is not None and key in run.summaries:
                series = overview.compared(run, name, key)
            elif key is not None:
                steps, values = run.series[key]
                checked = checked_series(steps, values, field=f"series[{run.run_id}][{key}]")
                series = within_window(checked, start, end)
            resolved[cache_key] = (key, series)
        return resolved[cache_key]

    compared = [
        _compare_metric(
            name,
            references,
            candidates,
            series_of,
            max_points,
            smoothing,
            band_k,
            divergence_k,
            overview if overview.active else None,
        )
        for name in wanted
    ]

    reference_parity = summarise_parity([_parity_series(run, series_of) for run in references])
    config_diffs: dict[str, list[ConfigDifference]] = {}
    config_tables: dict[str, list[ConfigDifference]] = {}
    diagnoses: dict[str, Diagnosis] = {}
    for candidate in candidates:
        table = config_diff(
            [(run.config, run.engine) for run in references],
            (candidate.config, candidate.engine),
            registry,
            every_key=True,
        )
        differences = [d for d in table if d.differs]
        config_tables[str(candidate.run_id)] = table
        findings = parity_findings(
            summarise_parity([_parity_series(candidate, series_of)]), reference_parity
        )
        divergences = {
            m.metric: c.divergence
            for m in compared
            for c in m.candidates
            if c.run_id == candidate.run_id and c.divergence is not None
        }
        config_diffs[str(candidate.run_id)] = differences
        diagnoses[str(candidate.run_id)] = diagnose(
            differences,
            findings,
            divergences,
            has_config=_has_config(references[0]) and _has_config(candidate),
            logprobs_mode_recorded=_records_logprobs_mode(references[0], candidate),
        )

    colours = run_colours(
        [str(run.run_id) for run in references], [str(run.run_id) for run in candidates]
    )
    names = {str(run.run_id): run.name for run in [*references, *candidates]}
    compared = [
        replace(metric, figures=_figures(metric, names, colours, figures)) for metric in compared
    ]

    return Comparison(
        reference_ids=[run.run_id for run in references],
        candidate_ids=[run.run_id for run in candidates],
        settings={
            "start": start,
            "end": end,
            "max_points": max_points,
            "smoothing": smoothing,
            "band_k": band_k,
            "divergence_k": divergence_k,
        },
        metrics=compared,
        config_diff=config_diffs,
        diagnosis=diagnoses,
        config_table=config_tables,
        skipped_metrics=skipped,
    )


def _compare_metric(
    name: str,
    references: Sequence[RunSeries],
    candidates: Sequence[RunSeries],
    series_of: Callable[[RunSeries, str], tuple[str | None, Series | None]],
    max_points: int,
    smoothing: float,
    band_k: float,
    divergence_k: int,
    overview: _Overview | None = None,
) -> MetricComparison:
    runs: list[RunMetric] = []
    reference_series: list[Series] = []
    # Over an overview a compared point is a pixel mean of ``per_point`` steps: the smoothing
    # weight per pixel is the weight per step to that power.
    per_point = overview.points_per_pixel(name) if overview is not None else 1.0
    pixel_smoothing = smoothing**per_point if smoothing else 0.0
    for role, group in (("reference", references), ("candidate", candidates)):
        for run in group:
            key, series = series_of(run, name)
            shown = raw = None
            if series is not None:
                if role == "reference":
                    reference_series.append(series)
                if overview is not None and not smoothing:
                    shown = overview.drawn(run, name)
                else:
                    shown = downsample_series(
                        series[0], _smoothed(series[1], pixel_smoothing), max_points
                    )
                if smoothing:
                    raw = (
                        overview.drawn(run, name)
                        if overview is not None
                        else downsample_series(series[0], series[1], max_points)
                    )
            runs.append(
                RunMetric(
                    run_id=run.run_id,
                    name=run.name,
                    role=role,
                    key=key,
                    series=shown,
                    downsampled=series is not None
                    and (overview is not None or series[0].size > max_points),
                    raw=raw,
                )
            )

    band = band_display = line = None
    if reference_series:
        band = reference_band(reference_series, k=band_k)
        line = reference_line(reference_series)
        # The band of pixel means is drawn as wide as the band of single steps would be, its
        # half-width scaled by √(points per pixel), so it sits on the drawn lines' scale.
        widen = math.sqrt(per_point) if overview is not None and not smoothing else 1.0
        half = (band.upper - band.lower) / 2.0 * widen
        smoothed_center = _smoothed(band.center, pixel_smoothing)
        band_display = downsample_band(
            band.steps,
            _smoothed(band.center - half, pixel_smoothing),
            smoothed_center,
            _smoothed(band.center + half, pixel_smoothing),
            max_points,
        )

    compared: list[CandidateMetric] = []
    for run in candidates:
        _, series = series_of(run, name)
        if series is None or band is None or line is None:
            compared.append(CandidateMetric(run.run_id, None, None))
            continue
        steps, candidate_values, reference_values = align_pair(series, line)
        diff = downsample_series(
            steps, _smoothed(candidate_values - reference_values, pixel_smoothing), max_points
        )
        raw_diff = None
        if smoothing:
            raw_diff = downsample_series(steps, candidate_values - reference_values, max_points)
        divergence = first_divergence(band, series, divergence_k)
        if overview is not None:
            divergence = replace(divergence, bucket_steps=overview.pixel_steps(name))
        compared.append(CandidateMetric(run.run_id, diff, divergence, raw_diff=raw_diff))
    return MetricComparison(name, runs, band, band_display, compared, figures={})


def _figures(
    metric: MetricComparison,
    names: Mapping[str, str],
    colours: Mapping[str, str],
    kinds: Collection[str],
) -> dict[str, dict[str, Any]]:
    markers = []
    for candidate in metric.candidates:
        divergence = candidate.divergence
        if divergence is None or divergence.first_divergence_step is None:
            continue
        summary, detail = marker_words(metric.metric, divergence)
        markers.append(
            DivergenceMarker(
                run_id=str(candidate.run_id),
                name=names[str(candidate.run_id)],
                metric=metric.metric,
                step=divergence.first_divergence_step,
                summary=summary,
                detail=detail,
            )
        )
    band_label = "reference band"
    if metric.band is not None:
        band_label = f"reference band ({metric.band.source}, ±{metric.band.k:g}σ)"
    traces = [
        RunTrace(str(run.run_id), run.name, run.role, run.series, raw=run.raw)
        for run in metric.runs
        if run.series is not None
    ]
    diffs = [
        (str(c.run_id), names[str(c.run_id)], c.diff)
        for c in metric.candidates
        if c.diff is not None
    ]
    title = panel_title(metric.metric)
    notes = list(dict.fromkeys(
        note for run in metric.runs if (note := definition_note(metric.metric, run.key)) is not None
    ))  # fmt: skip
    built: dict[str, dict[str, Any]] = {}
    if "overlay" in kinds:
        built["overlay"] = overlay_figure(
            metric.metric, traces, metric.band_display, band_label, markers, dict(colours), title, notes
        )
    if "diff" in kinds:
        raw_diffs = {str(c.run_id): c.raw_diff for c in metric.candidates if c.raw_diff is not None}
        built["diff"] = diff_figure(
            metric.metric, diffs, metric.band_display, band_label, markers, dict(colours), raw_diffs,
            title, notes,
        )
    return built


def _smoothed(values: np.ndarray, smoothing: float) -> np.ndarray:
    return debiased_ema(values, smoothing) if smoothing else values


def _parity_series(
    run: RunSeries, series_of: Callable[[RunSeries, str], tuple[str | None, Series | None]]
) -> dict[str, Series]:
    found = {}
    for name in PARITY_METRICS:
        _, series = series_of(run, name)
        if series is not None:
            found[name] = series
    return found


def _has_config(run: RunSeries) -> bool:
    return bool(run.config) or bool(run.engine)


def _records_logprobs_mode(reference: RunSeries, candidate: RunSeries) -> bool:
    def records(run: RunSeries) -> bool:
        keys = run_settings(run.config, run.engine)
        return any(normalise_key(key)[-1:] == ("logprobs_mode",) for key in keys)

    return records(reference) and records(candidate)


def _check_runs(references: Sequence[RunSeries], candidates: Sequence[RunSeries]) -> None:
    if not references:
        raise BadInput("at least one reference run is needed", field="reference")
    seen: set[str] = set()
    for field, group in (("reference", references), ("candidates", candidates)):
        for run in group:
            if not isinstance(run, RunSeries):
                raise BadInput("runs must be RunSeries", field=field)
            if str(run.run_id) in seen:
                raise BadInput(f"run {run.run_id} is given more than once", field=field)
            seen.add(str(run.run_id))


def _check_window(start: int | None, end: int | None) -> None:
    for field, bound in (("start", start), ("end", end)):
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int | np.integer)
        ):
            raise BadInput(f"{field} must be an integer step", field=field)
    if start is not None and end is not None and start > end:
        raise BadInput(f"start ({start}) is after end ({end})", field="start")


def _check_metrics(
    metrics: Sequence[str] | None,
    runs: Sequence[RunSeries],
    aliases: AliasTable,
    skipped: list[str] | None = None,
) -> list[str]:
    if not metrics:
        return list(DEFAULT_METRICS)
    if isinstance(metrics, str):
        raise BadInput("metrics must be a list of names", field="metrics")
    known = aliases.names()
    wanted: list[str] = []
    for name in metrics:
        if not isinstance(name, str) or not name.strip():
            raise BadInput("metric names must be non-empty strings", field="metrics")
        if name in wanted:
            continue
        if (
            name not in known
            and aliases.canonical_of(name) is None
            and not any(name in run.keys() for run in runs)
        ):
            if skipped is not None:
                skipped.append(name)
                continue
            raise BadInput(
                f"unknown metric {name!r}: no run has it and it is not canonical", field="metrics"
            )
        wanted.append(name)
    return wanted


class _Overview:
    """Per metric, the pixel grid shared by its runs and each run's pixels (cached)."""

    def __init__(
        self,
        window: tuple[int, int] | None,
        runs: Sequence[RunSeries],
        aliases: AliasTable,
        max_points: int,
    ) -> None:
        self.runs = runs
        self.aliases = aliases
        self.max_points = max_points
        self.active = any(run.summaries for run in runs)
        if window is None and self.active:
            rows = [r for run in runs for r in run.summaries.values() if len(r)]
            window = (
                min((int(r.first_step[0]) for r in rows), default=0),
                max((int(r.last_step[-1]) for r in rows), default=0),
            )
        self.window = window
        self._grids: dict[str, Grid] = {}
        self._pixels: dict[tuple[str, str], BucketStats] = {}

    def _grid(self, name: str) -> Grid:
        if name not in self._grids:
            assert self.window is not None
            rows = []
            for run in self.runs:
                key = self.aliases.resolve(name, run.keys())
                if key is not None and key in run.summaries:
                    rows.append(run.summaries[key])
            self._grids[name] = grid_for(*self.window, self.max_points, rows)
        return self._grids[name]

    def _pixels_of(self, run: RunSeries, name: str, key: str) -> BucketStats:
        cache_key = (str(run.run_id), name)
        if cache_key not in self._pixels:
            self._pixels[cache_key] = pixel_rows(run.summaries[key], self._grid(name))
        return self._pixels[cache_key]

    def compared(self, run: RunSeries, name: str, key: str) -> Series:
        return compared_series(self._pixels_of(run, name, key), self._grid(name))

    def drawn(self, run: RunSeries, name: str) -> DownsampledSeries:
        key = self.aliases.resolve(name, run.keys())
        assert key is not None
        return drawn_series(self._pixels_of(run, name, key))

    def pixel_steps(self, name: str) -> int:
        grid = self._grid(name)
        return -(-grid.width // grid.pixels)

    def points_per_pixel(self, name: str) -> float:
        counts = []
        for run in self.runs:
            key = self.aliases.resolve(name, run.keys())
            if key is not None and key in run.summaries:
                pixels = self._pixels_of(run, name, key)
                if len(pixels):
                    counts.append(float(pixels.count.mean()))
        return max(1.0, float(np.mean(counts))) if counts else 1.0
