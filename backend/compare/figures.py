"""Plotly figure specs built on the server, so the browser only draws.

Per metric there is an overlay figure (the reference band as a shaded area, the reference runs
in one fixed colour, each candidate in its own colour, a dotted vertical line where a candidate
first leaves the band, labelled with the run and the step, whose hover text gives the marker's
evidence in words) and a diff figure (candidate − reference, with the band's half-width shaded
around zero, and the same markers). Markers name no layer: the diagnosis says where to start.

Trace and layout attributes go through ``plotly.graph_objects`` (``go.Scatter``, ``go.Layout``)
so Plotly validates every one; the data arrays are attached afterwards as Plotly typed arrays
(see ``backend.compare.encoding``), on which Plotly draws non-finite values as gaps.
Assembling the figure from validated parts instead of through ``go.Figure`` keeps the cost at a
few milliseconds per figure. No template is embedded: the page's Plotly.js defaults apply.

Names people typed (run names) are HTML-escaped (quotes left alone: Plotly does not decode
``&quot;``), since Plotly renders a subset of HTML in
legend, annotation and hover text.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go

from backend.compare.aliases import canonical_of
from backend.compare.downsample import DownsampledBand, DownsampledSeries
from backend.compare.encoding import typed_array

__all__ = [
    "BAND_FILL",
    "CANDIDATE_COLOURS",
    "CLIP_LABEL",
    "MARKER_NAME",
    "METRIC_UNITS",
    "REFERENCE_COLOUR",
    "DivergenceMarker",
    "RunTrace",
    "diff_figure",
    "overlay_figure",
    "run_colours",
]

REFERENCE_COLOUR = "#1f1f1f"
BAND_FILL = "rgba(110, 110, 110, 0.22)"
CANDIDATE_COLOURS = (
    "#d62728",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#e377c2",
    "#8c564b",
    "#bcbd22",
)
_REPLICA_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
# d3-format for hover text: four significant digits, enough to read a curve by eye. The exact
# values are in the API's series and the CSV export.
_HOVER_FORMAT = ":.4g"
# The raw line under a smoothed one: the same colour, faint.
_RAW_OPACITY = 0.25
# Units of the canonical metrics (docs/API.md, GET /api/v1/compare); a metric not listed here
# has none, and its axis carries no title beyond the panel's own.
METRIC_UNITS = {
    "clip_rate": "fraction clipped",
    "kl": "nats",
    "entropy": "nats",
    "logprob_diff_mean": "nats",
    "logprob_abs_diff_mean": "nats",
    "logprob_abs_diff_max": "nats",
    "weight_version_lag": "steps",
}
# A run counts as near the reference band while it stays within this many band heights of it;
# a run further off is clipped out of the panel's focused y range (see ``_focus``).
_NEAR_BANDS = 1.0
# Edge labels of clipped runs are named "clipped-run:<run id>", so the page can drop them for
# "fit all" and for runs hidden in its legend (docs/API.md, GET /api/v1/compare).
CLIP_LABEL = "clipped-run"
# Divergence markers' line and label are named "marker:<run id>" (docs/API.md, GET /api/v1/compare).
MARKER_NAME = "marker"
# A "different definition" note above the plot: characters per line, pixels per line.
_NOTE_WIDTH = 100
_NOTE_LINE_PX = 13


def _xy(trace: dict[str, Any], x: np.ndarray, y: np.ndarray, hover_prefix: str, hover_suffix: str) -> None:
    """Attach the data as typed arrays and a four-digit hover template."""
    trace.update(x=typed_array(x, integer=True), y=typed_array(y))
    trace["hovertemplate"] = f"{hover_prefix}%{{y{_HOVER_FORMAT}}}{hover_suffix}"


@dataclass(frozen=True)
class RunTrace:
    run_id: str
    name: str
    role: Literal["reference", "candidate"]
    series: DownsampledSeries
    # The unsmoothed line, drawn faint under ``series`` when smoothing is on.
    raw: DownsampledSeries | None = None


@dataclass(frozen=True)
class DivergenceMarker:
    """Where one candidate leaves the band of one metric, and the evidence in words."""

    run_id: str
    name: str
    metric: str
    step: int
    summary: str
    detail: str


def run_colours(reference_ids: Sequence[str], candidate_ids: Sequence[str]) -> dict[str, str]:
    """The fixed reference colour for every reference, a distinct colour per candidate."""
    colours = dict.fromkeys(reference_ids, REFERENCE_COLOUR)
    for index, run_id in enumerate(candidate_ids):
        colours[run_id] = CANDIDATE_COLOURS[index % len(CANDIDATE_COLOURS)]
    return colours


def overlay_figure(
    metric: str,
    runs: Sequence[RunTrace],
    band: DownsampledBand | None,
    band_label: str,
    markers: Sequence[DivergenceMarker],
    colours: dict[str, str],
    title: str | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The overlay of every run on the reference band, with first-divergence markers.
    ``title`` states the quantity shown; each of ``notes`` (a run drawn with a different
    definition, see ``backend.compare.aliases.definition_note``) is written under it."""
    data = []
    if band is not None and band.x.size:
        data.extend(_band_traces(band.x, band.lower, band.center, band.upper, band_label))
    replica = 0
    for run in runs:
        dash = "solid"
        if run.role == "reference":
            dash = _REPLICA_DASHES[replica % len(_REPLICA_DASHES)]
            replica += 1
        if run.raw is not None:
            data.append(_raw_trace(run, colours[run.run_id], dash))
        data.append(_run_trace(run, colours[run.run_id], dash))
    layout = _layout(title or metric, _unit(metric), markers, colours, notes)
    focus = _focus(
        band.lower if band is not None else None,
        band.upper if band is not None else None,
        [(run.run_id, run.name, run.series.x, run.series.y) for run in runs],
        colours,
    )
    _apply_focus(layout, focus)
    return {"data": data, "layout": layout}


def diff_figure(
    metric: str,
    diffs: Sequence[tuple[str, str, DownsampledSeries]],
    band: DownsampledBand | None,
    band_label: str,
    markers: Sequence[DivergenceMarker],
    colours: dict[str, str],
    raw_diffs: Mapping[str, DownsampledSeries] | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Candidate − reference per candidate, with the band's half-width shaded around zero;
    ``raw_diffs`` (by run id) are the unsmoothed diffs, drawn faint under smoothed ones."""
    data = []
    if band is not None and band.x.size:
        zeros = np.zeros(band.x.size)
        data.extend(
            _band_traces(
                band.x, band.lower - band.center, zeros, band.upper - band.center, band_label
            )
        )
    for run_id, name, diff in diffs:
        raw = (raw_diffs or {}).get(run_id)
        if raw is not None:
            data.append(_raw_trace(RunTrace(run_id, f"{name} − reference", "candidate", raw, raw), colours[run_id], "solid"))
        trace = go.Scatter(
            mode="lines",
            name=f"{html.escape(name, quote=False)} − reference",
            legendgroup=run_id,
            line={"color": colours[run_id], "width": 1.5},
        ).to_plotly_json()
        _xy(trace, diff.x, diff.y, "", "")
        data.append(trace)
    unit = _unit(metric)
    layout = _layout(
        f"{title or metric}: candidate − reference", f"Δ {unit}" if unit else "Δ", markers, colours, notes
    )
    focus = None
    if band is not None and band.x.size:
        focus = _focus(
            band.lower - band.center,
            band.upper - band.center,
            [(run_id, name, diff.x, diff.y) for run_id, name, diff in diffs],
            colours,
        )
    _apply_focus(layout, focus)
    return {"data": data, "layout": layout}


def _unit(metric: str) -> str:
    return METRIC_UNITS.get(canonical_of(metric) or metric, "")


@dataclass(frozen=True)
class _Focus:
    linear: tuple[float, float]
    log: tuple[float, float] | None
    labels: list[dict[str, Any]]


def _focus(
    band_lower: np.ndarray | None,
    band_upper: np.ndarray | None,
    lines: Sequence[tuple[str, str, np.ndarray, np.ndarray]],
    colours: Mapping[str, str],
) -> _Focus | None:
    """The y range that follows the reference band and the runs near it, when some run lies
    far off (else None: Plotly's autorange already shows everything well).

    "Near" is within ``_NEAR_BANDS`` band heights above or below the band. A run further off
    is clipped, and gets an edge label with its most extreme value and the step of it.
    """
    if band_lower is None or band_upper is None:
        return None
    edges = np.concatenate([np.asarray(band_lower, float), np.asarray(band_upper, float)])
    edges = edges[np.isfinite(edges)]
    if not edges.size:
        return None
    low, high = float(edges.min()), float(edges.max())
    height = high - low or abs(high) or 1.0
    near_low, near_high = low - _NEAR_BANDS * height, high + _NEAR_BANDS * height
    far: list[tuple[str, str, np.ndarray, np.ndarray]] = []
    for run_id, name, x, y in lines:
        y = np.asarray(y, float)
        finite = np.isfinite(y)
        near = finite & (y >= near_low) & (y <= near_high)
        if near.any():
            low, high = min(low, float(y[near].min())), max(high, float(y[near].max()))
        if (finite & ~near).any():
            far.append((run_id, name, np.asarray(x), y))
    if not far:
        return None
    pad = 0.05 * ((high - low) or height)
    linear = (low - pad, high + pad)
    labels = []
    for index, (run_id, name, x, y) in enumerate(far):
        values = np.where(np.isfinite(y), y, np.nan)
        above = np.nanmax(values) > linear[1]
        at = int(np.nanargmax(values) if above else np.nanargmin(values))
        value = float(values[at])
        labels.append(
            {
                "name": f"{CLIP_LABEL}:{run_id}",
                "x": 1,
                "xref": "paper",
                "xanchor": "right",
                # Above the plot area (in the top margin, clear of the curves and of the
                # divergence markers' labels), or on the bottom edge inside it.
                "y": 1 if above else 0,
                "yref": "paper",
                "yanchor": "bottom",
                "yshift": 16 * index if above else 18 * index,
                "showarrow": False,
                "bgcolor": "rgba(255, 255, 255, 0.85)",
                "bordercolor": colours[run_id],
                "font": {"color": colours[run_id], "size": 11},
                "text": f"{'▲' if above else '▼'} {html.escape(name, quote=False)} {value:.4g} (off scale)",
                "hovertext": f"{html.escape(name, quote=False)} reaches {value:.4g} at step {int(x[at])}; "
                "use “fit all” to see the whole line",
            }
        )
    log = (float(np.log10(linear[0])), float(np.log10(linear[1]))) if low > 0 and linear[0] > 0 else None
    return _Focus(linear, log, labels)


def _apply_focus(layout: dict[str, Any], focus: _Focus | None) -> None:
    """Set the focused y range, its log-axis form and the clipped runs' labels; the page's
    "fit all" drops all three."""
    if focus is None:
        return
    layout["yaxis"]["range"] = list(focus.linear)
    layout["yaxis"]["autorange"] = False
    layout["meta"] = {"y_focus": list(focus.linear), "y_focus_log": list(focus.log) if focus.log else None}
    layout["annotations"] = [*layout.get("annotations", []), *focus.labels]


def _run_trace(run: RunTrace, colour: str, dash: str) -> dict[str, Any]:
    # No bucket min/max in the hover: downsampling keeps the points where they occur, so
    # hovering the extremes of the drawn line shows them exactly, at no extra payload.
    trace = go.Scatter(
        mode="lines",
        name=html.escape(run.name, quote=False) + (" (reference)" if run.role == "reference" else ""),
        legendgroup=run.run_id,
        line={"color": colour, "width": 1.5 if run.role == "candidate" else 1.2, "dash": dash},
    ).to_plotly_json()
    _xy(trace, run.series.x, run.series.y, "", "<extra>%{fullData.name}</extra>")
    return trace


def _raw_trace(run: RunTrace, colour: str, dash: str) -> dict[str, Any]:
    assert run.raw is not None
    trace = go.Scatter(
        mode="lines",
        name=html.escape(run.name, quote=False) + " (unsmoothed)",
        legendgroup=run.run_id,
        showlegend=False,
        hoverinfo="skip",
        opacity=_RAW_OPACITY,
        line={"color": colour, "width": 1, "dash": dash},
    ).to_plotly_json()
    trace.update(x=typed_array(run.raw.x, integer=True), y=typed_array(run.raw.y))
    return trace


def _band_traces(
    x: np.ndarray, lower: np.ndarray, center: np.ndarray, upper: np.ndarray, label: str
) -> list[dict[str, Any]]:
    # The band is one hover row, "[low, high]", on the lower edge's trace; the upper edge and
    # the center line are drawn but not hovered.
    upper_trace = go.Scatter(
        mode="lines",
        name="band upper",
        legendgroup="band",
        showlegend=False,
        hoverinfo="skip",
        line={"width": 0},
    ).to_plotly_json()
    upper_trace.update(x=typed_array(x, integer=True), y=typed_array(upper))
    lower_trace = go.Scatter(
        mode="lines",
        name=label,
        legendgroup="band",
        line={"width": 0},
        fill="tonexty",
        fillcolor=BAND_FILL,
    ).to_plotly_json()
    _xy(lower_trace, x, lower, "[", f", %{{customdata{_HOVER_FORMAT}}}]<extra>band</extra>")
    lower_trace["customdata"] = typed_array(upper)
    center_trace = go.Scatter(
        mode="lines",
        name="band center",
        legendgroup="band",
        showlegend=False,
        hoverinfo="skip",
        line={"width": 1, "dash": "dot", "color": "rgba(90, 90, 90, 0.8)"},
    ).to_plotly_json()
    center_trace.update(x=typed_array(x, integer=True), y=typed_array(center))
    return [upper_trace, lower_trace, center_trace]


def _layout(
    title: str,
    y_title: str,
    markers: Sequence[DivergenceMarker],
    colours: dict[str, str],
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    shapes, annotations = [], []
    # Notes go above the plot, wrapped to the panel's width, the first one on top.
    note_lines = [textwrap.wrap("⚠ " + note, _NOTE_WIDTH) for note in notes]
    below = sum(len(lines) for lines in note_lines)
    for lines in note_lines:
        below -= len(lines)
        annotations.append(
            {
                "x": 0,
                "xref": "paper",
                "y": 1,
                "yref": "paper",
                "yshift": 4 + _NOTE_LINE_PX * below,
                "xanchor": "left",
                "yanchor": "bottom",
                "showarrow": False,
                "align": "left",
                "font": {"color": "#8a4b00", "size": 10},
                "text": "<br>".join(html.escape(line, quote=False) for line in lines),
            }
        )
    for index, marker in enumerate(markers):
        colour = colours[marker.run_id]
        # Named after the run, so the page can move a marker onto another x axis (wall time).
        shapes.append(
            {
                "name": f"{MARKER_NAME}:{marker.run_id}",
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": marker.step,
                "x1": marker.step,
                "y0": 0,
                "y1": 1,
                "line": {"color": colour, "width": 1.5, "dash": "dot"},
            }
        )
        annotations.append(
            {
                "name": f"{MARKER_NAME}:{marker.run_id}",
                "x": marker.step,
                "xref": "x",
                "y": 1 - 0.07 * index,
                "yref": "paper",
                "xanchor": "left",
                "yanchor": "top",
                "showarrow": False,
                "font": {"color": colour, "size": 11},
                "text": f"{html.escape(marker.name, quote=False)} · step {marker.step}",
                "hovertext": _marker_hover(marker),
            }
        )
    title_spec: dict[str, Any] = {"text": html.escape(title, quote=False)}
    if note_lines:  # pinned to the top, so the notes have the space between it and the plot
        title_spec.update(y=1, yref="container", yanchor="top", pad={"t": 10})
    return go.Layout(
        title=title_spec,
        hovermode="x unified",
        # See-through, so the hover box does not hide the curves under it.
        hoverlabel={"bgcolor": "rgba(255, 255, 255, 0.72)"},
        xaxis={"title": {"text": "step"}, "unifiedhovertitle": {"text": "step %{x}"}},
        yaxis={"title": {"text": html.escape(y_title, quote=False)}},
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 50 + _NOTE_LINE_PX * sum(len(lines) for lines in note_lines), "b": 60},
        shapes=shapes,
        annotations=annotations,
    ).to_plotly_json()


def _marker_hover(marker: DivergenceMarker) -> str:
    lines = [html.escape(marker.name, quote=False), html.escape(marker.summary, quote=False)]
    if marker.detail:
        lines.append(html.escape(marker.detail, quote=False))
    return "<br>".join(lines)
