import json

import numpy as np
import plotly.graph_objects as go

from backend.compare.downsample import DownsampledBand, DownsampledSeries
from backend.compare.encoding import decode_typed_array, typed_array
from backend.compare.figures import (
    BAND_FILL,
    CLIP_LABEL,
    REFERENCE_COLOUR,
    DivergenceMarker,
    RunTrace,
    diff_figure,
    overlay_figure,
    run_colours,
)


def series(values):
    y = np.asarray(values, dtype=float)
    return DownsampledSeries(np.arange(y.size), y, y, y)


COLOURS = run_colours(["ref", "ref2"], ["cand", "other"])
BAND = DownsampledBand(np.arange(4), np.array([0.0, np.nan, 0, 0]), np.ones(4), np.full(4, 2.0))
MARKER = DivergenceMarker(
    "cand",
    "v1 <b>initial</b>",
    "clip_rate",
    2,
    "clip_rate: 2 of 2 steps above the band from step 2 to step 3",
    "median distance beyond the band: 3.00 band half-widths",
)


def overlay():
    runs = [
        RunTrace("ref", "reference", "reference", series([1, 1, np.nan, 1])),
        RunTrace("ref2", "reference-replica", "reference", series([1, 1, 1, np.inf])),
        RunTrace("cand", "v1 <b>initial</b>", "candidate", series([1, 1, 5, 5])),
    ]
    return overlay_figure(
        "clip_rate", runs, BAND, "reference band (replicas, ±3σ)", [MARKER], COLOURS
    )


def ys(trace: dict) -> list:
    """A trace's y values with the gaps (NaN) as None."""
    return [None if np.isnan(v) else v for v in decode_typed_array(trace["y"]).tolist()]


def test_colours_fixed_for_references_distinct_for_candidates():
    assert COLOURS["ref"] == COLOURS["ref2"] == REFERENCE_COLOUR
    assert len({COLOURS["cand"], COLOURS["other"], REFERENCE_COLOUR}) == 3


def test_overlay_is_json_safe_with_gaps_for_non_finite_values():
    spec = overlay()
    text = json.dumps(spec, allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text
    by_name = {trace["name"]: trace for trace in spec["data"]}
    assert ys(by_name["reference (reference)"]) == [1.0, 1.0, None, 1.0]
    assert ys(by_name["reference-replica (reference)"])[3] is None
    assert decode_typed_array(by_name["reference (reference)"]["x"]).tolist() == [0, 1, 2, 3]


def test_band_is_a_shaded_area_behind_the_runs():
    upper, lower, center = overlay()["data"][:3]
    assert lower["fill"] == "tonexty" and lower["fillcolor"] == BAND_FILL
    assert ys(upper) == [2.0] * 4 and ys(lower)[1] is None
    assert center["line"]["dash"] == "dot"


def test_divergence_marker_writes_the_step_on_the_chart_and_no_layer():
    layout = overlay()["layout"]
    assert layout["hovermode"] == "x unified"
    (shape,) = layout["shapes"]
    assert shape["x0"] == shape["x1"] == 2 and shape["yref"] == "paper"
    (annotation,) = [a for a in layout["annotations"] if not a.get("name", "").startswith(CLIP_LABEL)]
    assert annotation["text"] == "v1 &lt;b&gt;initial&lt;/b&gt; · step 2"
    assert "clip_rate: 2 of 2 steps above the band from step 2" in annotation["hovertext"]
    assert "3.00 band half-widths" in annotation["hovertext"]
    for layer in ("semantic", "inference", "workload", "objective"):
        assert layer not in json.dumps(layout)


def test_names_people_typed_are_escaped():
    text = json.dumps(overlay())
    assert "<b>initial</b>" not in text
    assert "&lt;b&gt;initial&lt;/b&gt;" in text


def test_hover_shows_four_significant_digits_the_step_and_the_band_as_one_row():
    spec = overlay()
    for trace in spec["data"][3:]:
        assert trace["hovertemplate"].startswith("%{y:.4g}")
    upper, lower, center = spec["data"][:3]
    assert upper["hoverinfo"] == center["hoverinfo"] == "skip"
    assert lower["hovertemplate"] == "[%{y:.4g}, %{customdata:.4g}]<extra>band</extra>"
    assert decode_typed_array(lower["customdata"]).tolist() == [2.0] * 4
    assert spec["layout"]["xaxis"]["unifiedhovertitle"]["text"] == "step %{x}"


def test_a_far_candidate_is_clipped_with_an_edge_label_and_the_range_follows_the_band():
    layout = overlay()["layout"]
    low, high = layout["yaxis"]["range"]
    # The band spans [0, 2] and the references sit at 1; the candidate's 5 is over a band
    # height above the band, so it is left out of the range and named at the edge.
    assert -0.2 < low < 0 and 2 < high < 2.2 and layout["yaxis"]["autorange"] is False
    (label,) = [a for a in layout["annotations"] if a.get("name") == f"{CLIP_LABEL}:cand"]
    assert label["y"] == 1 and "v1 &lt;b&gt;initial&lt;/b&gt; 5" in label["text"]
    assert "at step 2" in label["hovertext"]
    assert layout["meta"]["y_focus"] == [low, high] and layout["meta"]["y_focus_log"] is None


def test_runs_near_the_band_keep_plotlys_own_range():
    runs = [
        RunTrace("ref", "reference", "reference", series([1, 1, 1, 1])),
        RunTrace("cand", "near", "candidate", series([1, 1, 3.5, 3.9])),
    ]
    layout = overlay_figure("kl", runs, BAND, "band", [], COLOURS)["layout"]
    assert "range" not in layout["yaxis"] and "meta" not in layout
    assert not [a for a in layout.get("annotations", []) if a.get("name", "").startswith(CLIP_LABEL)]


def test_a_positive_focus_has_a_log_range_too():
    band = DownsampledBand(np.arange(4), np.full(4, 0.001), np.full(4, 0.002), np.full(4, 0.003))
    runs = [RunTrace("cand", "far", "candidate", series([0.002, 0.025, 0.025, 0.002]))]
    layout = overlay_figure("kl", runs, band, "band", [], COLOURS)["layout"]
    low, high = layout["meta"]["y_focus"]
    assert 0 < low < 0.001 and 0.003 < high < 0.0032
    assert layout["meta"]["y_focus_log"] == [np.log10(low), np.log10(high)]
    (label,) = [a for a in layout["annotations"] if a.get("name") == f"{CLIP_LABEL}:cand"]
    assert "0.025" in label["text"] and "at step 1" in label["hovertext"]


def test_axes_carry_units_where_the_metric_has_one():
    assert overlay()["layout"]["yaxis"]["title"]["text"] == "fraction clipped"
    runs = [RunTrace("ref", "reference", "reference", series([1, 1, 1, 1]))]
    assert overlay_figure("kl_new_old", runs, BAND, "b", [], COLOURS)["layout"]["yaxis"]["title"]["text"] == "nats"
    assert overlay_figure("reward", runs, BAND, "b", [], COLOURS)["layout"]["yaxis"]["title"]["text"] == ""
    diff = diff_figure("entropy", [], BAND, "b", [], COLOURS)["layout"]
    assert diff["yaxis"]["title"]["text"] == "Δ nats" and diff["xaxis"]["title"]["text"] == "step"


def test_a_smoothed_run_keeps_its_raw_line_faint_underneath():
    raw = series([1, 3, 1, 3])
    runs = [RunTrace("ref", "reference", "reference", series([1, 2, 1.5, 2]), raw=raw)]
    faint, line = overlay_figure("kl", runs, None, "band", [], COLOURS)["data"]
    assert ys(faint) == [1, 3, 1, 3] and ys(line) == [1, 2, 1.5, 2]
    assert faint["opacity"] < 0.5 and faint["hoverinfo"] == "skip" and faint["showlegend"] is False
    assert faint["legendgroup"] == line["legendgroup"] == "ref"
    assert faint["line"]["color"] == line["line"]["color"]


def test_arrays_are_exact_in_the_narrowest_dtype():
    exact32 = np.array([0.5, 0.25, np.nan, 3.0])
    assert typed_array(exact32)["dtype"] == "f4"
    not32 = np.array([0.1, 0.2, 0.3])
    spec = typed_array(not32)
    assert spec["dtype"] == "f8" and decode_typed_array(spec).tolist() == [0.1, 0.2, 0.3]
    assert typed_array(np.array([0, 2**40]), integer=True)["dtype"] == "f8"
    assert decode_typed_array(typed_array(np.array([0, 2**40]), integer=True)).tolist() == [0, 2**40]


def test_diff_figure_shades_the_band_half_width_around_zero():
    spec = diff_figure(
        "kl", [("cand", "v1", series([0, 0, 4, 4]))], BAND, "band", [MARKER], COLOURS
    )
    upper, lower, center, diff = spec["data"]
    assert ys(upper) == [1.0] * 4 and ys(lower) == [-1.0, None, -1.0, -1.0]
    assert ys(center) == [0.0] * 4
    assert ys(diff) == [0.0, 0.0, 4.0, 4.0] and diff["line"]["color"] == COLOURS["cand"]
    json.dumps(spec, allow_nan=False)


def test_specs_are_valid_plotly_figures():
    go.Figure(overlay())
    go.Figure(diff_figure("kl", [], None, "band", [], COLOURS))


def test_a_smoothed_diff_keeps_its_raw_diff_faint_underneath():
    spec = diff_figure(
        "kl", [("cand", "v1", series([0, 1, 1, 2]))], None, "band", [], COLOURS, {"cand": series([0, 2, 0, 2])}
    )
    faint, line = spec["data"]
    assert ys(faint) == [0, 2, 0, 2] and ys(line) == [0, 1, 1, 2]
    assert faint["opacity"] < 0.5 and faint["legendgroup"] == line["legendgroup"] == "cand"
    assert faint["name"] == "v1 − reference (unsmoothed)"
