"""Plotly figure specs built on the server, so the browser only draws.

Per metric there is an overlay figure (the reference band as a shaded area, the reference runs
in one fixed colour, each candidate in its own colour, a dotted vertical line and a label where
a candidate first leaves the band, whose hover text names the diagnosis' starting layer) and a
diff figure (candidate − reference, with the band's half-width shaded around zero).

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go

from backend.compare.downsample import DownsampledBand, DownsampledSeries
from backend.compare.encoding import typed_array

__all__ = [
    "BAND_FILL",
    "CANDIDATE_COLOURS",
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
# d3-format for hover text: enough significant digits to show each dtype's values exactly.
# float32 values need 9 digits to be told apart; 15 show any decimal a float64 was made from.
_HOVER_DIGITS = {"f4": ":.9~g", "f8": ":.15~g"}
_NOTE_WIDTH = 100  # characters per line of a "different definition" note
_NOTE_LINE_PX = 13


def _xy(trace: dict[str, Any], x: np.ndarray, y: np.ndarray, hover_prefix: str, hover_suffix: str) -> None:
    """Attach the data as typed arrays and a hover template exact for the chosen dtype."""
    y_spec = typed_array(y)
    trace.update(x=typed_array(x, integer=True), y=y_spec)
    trace["hovertemplate"] = f"{hover_prefix}%{{y{_HOVER_DIGITS[y_spec['dtype']]}}}{hover_suffix}"


@dataclass(frozen=True)
class RunTrace:
    run_id: str
    name: str
    role: Literal["reference", "candidate"]
    series: DownsampledSeries


@dataclass(frozen=True)
class DivergenceMarker:
    run_id: str
    name: str
    step: int
    effect_size: float | None
    starting_layer: str | None
    sentence: str | None


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
        data.append(_run_trace(run, colours[run.run_id], dash))
    return {"data": data, "layout": _layout(title or metric, metric, markers, colours, notes)}


def diff_figure(
    metric: str,
    diffs: Sequence[tuple[str, str, DownsampledSeries]],
    band: DownsampledBand | None,
    band_label: str,
    markers: Sequence[DivergenceMarker],
    colours: dict[str, str],
    title: str | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Candidate − reference per candidate, with the band's half-width shaded around zero."""
    data = []
    if band is not None and band.x.size:
        zeros = np.zeros(band.x.size)
        data.extend(
            _band_traces(
                band.x, band.lower - band.center, zeros, band.upper - band.center, band_label
            )
        )
    for run_id, name, diff in diffs:
        trace = go.Scatter(
            mode="lines",
            name=f"{html.escape(name, quote=False)} − reference",
            legendgroup=run_id,
            line={"color": colours[run_id], "width": 1.5},
        ).to_plotly_json()
        _xy(trace, diff.x, diff.y, "", "")
        data.append(trace)
    return {
        "data": data,
        "layout": _layout(f"{title or metric}: candidate − reference", f"Δ {metric}", markers, colours, notes),
    }


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


def _band_traces(
    x: np.ndarray, lower: np.ndarray, center: np.ndarray, upper: np.ndarray, label: str
) -> list[dict[str, Any]]:
    upper_trace = go.Scatter(
        mode="lines",
        name="band upper",
        legendgroup="band",
        showlegend=False,
        line={"width": 0},
    ).to_plotly_json()
    _xy(upper_trace, x, upper, "band upper ", "<extra></extra>")
    lower_trace = go.Scatter(
        mode="lines",
        name=label,
        legendgroup="band",
        line={"width": 0},
        fill="tonexty",
        fillcolor=BAND_FILL,
    ).to_plotly_json()
    _xy(lower_trace, x, lower, "band lower ", "<extra></extra>")
    center_trace = go.Scatter(
        mode="lines",
        name="band center",
        legendgroup="band",
        showlegend=False,
        line={"width": 1, "dash": "dot", "color": "rgba(90, 90, 90, 0.8)"},
    ).to_plotly_json()
    _xy(center_trace, x, center, "band center ", "<extra></extra>")
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
        layer = marker.starting_layer or "no failing layer"
        shapes.append(
            {
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
                "x": marker.step,
                "xref": "x",
                "y": 1 - 0.07 * index,
                "yref": "paper",
                "xanchor": "left",
                "yanchor": "top",
                "showarrow": False,
                "font": {"color": colour, "size": 11},
                "text": f"{html.escape(marker.name, quote=False)} leaves the band · {layer}",
                "hovertext": _marker_hover(marker),
            }
        )
    title_spec: dict[str, Any] = {"text": html.escape(title, quote=False)}
    if note_lines:  # pinned to the top, so the notes have the space between it and the plot
        title_spec.update(y=1, yref="container", yanchor="top", pad={"t": 10})
    return go.Layout(
        title=title_spec,
        hovermode="x unified",
        xaxis={"title": {"text": "step"}},
        yaxis={"title": {"text": html.escape(y_title, quote=False)}},
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 50 + _NOTE_LINE_PX * sum(len(lines) for lines in note_lines), "b": 60},
        shapes=shapes,
        annotations=annotations,
    ).to_plotly_json()


def _marker_hover(marker: DivergenceMarker) -> str:
    lines = [f"{html.escape(marker.name, quote=False)} leaves the reference band at step {marker.step}"]
    if marker.effect_size is not None:
        lines.append(f"effect size {marker.effect_size:.3g} band half-widths beyond the edge")
    if marker.starting_layer:
        lines.append(f"start with the {marker.starting_layer} layer")
    if marker.sentence:
        lines.append(html.escape(marker.sentence, quote=False))
    return "<br>".join(lines)
