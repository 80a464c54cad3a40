"""The demo's markers, on the demo's own runs (the torch engine's four legs, 60 steps).

Every canonical metric that ``v1-initial`` takes out of the band gets a marker at the step a
person would point to: the first step of the stretch where it is mostly outside. ``v1-fixed``,
another seed of the reference's settings, gets none.
"""

import json

import numpy as np
import pytest

from backend.compare.comparison import build_comparison
from backend.compare.encoding import decode_typed_array
from backend.compare.figures import CLIP_LABEL
from backend.compare.response import comparison_to_json

from .torch_runs import load_torch_runs

RUNS = load_torch_runs()
CANONICAL = ("clip_rate", "kl", "entropy", "reward")
# Read off the recorded runs: clip rate and KL are outside from the first step, entropy climbs
# out of the band at step 8 and stays out, and reward falls below it at step 36 for most of the
# remaining steps, never five in a row.
EXPECTED_STEPS = {"clip_rate": 0, "kl": 0, "entropy": 8, "reward": 36}


@pytest.fixture(scope="module")
def demo():
    comparison = build_comparison(
        [RUNS["reference"], RUNS["reference-replica"]], [RUNS["v1-initial"], RUNS["v1-fixed"]]
    )
    return comparison, comparison_to_json(comparison)


def outside_mask(comparison, metric, label):
    compared = next(m for m in comparison.metrics if m.metric == metric)
    band = compared.band
    steps, values = RUNS[label].series[compared.runs[2].key]
    return (values < band.lower) | (values > band.upper)


@pytest.mark.parametrize("metric", CANONICAL)
def test_every_metric_that_leaves_the_band_is_marked_where_a_person_points(demo, metric):
    comparison, body = demo
    outside = outside_mask(comparison, metric, "v1-initial")
    (marker,) = [m for m in body["metrics"][metric]["markers"] if m["run_id"] == "v1-initial"]
    step = marker["step"]
    assert step == EXPECTED_STEPS[metric]
    # A person points at the first outside step of a stretch that is mostly outside from there.
    assert outside[step]
    assert outside[step : step + 10].mean() >= 0.5
    assert marker["outside_steps"] == int(outside[step : marker["last_step"] + 1].sum())
    assert marker["summary"].startswith(f"{metric}: {marker['outside_steps']} of ")
    assert f"from step {step}" in marker["summary"]


def test_reward_is_marked_although_never_five_steps_in_a_row(demo):
    comparison, body = demo
    outside = outside_mask(comparison, "reward", "v1-initial")
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], outside.astype(int), [0])))))[::2]
    assert runs.max() < 5  # the old rule (five consecutive steps) could not mark it
    (marker,) = body["metrics"]["reward"]["markers"]
    assert marker["direction"] == "below"
    assert "steps below the band from step 36" in marker["summary"]


def test_v1_fixed_gets_no_marker(demo):
    comparison, body = demo
    for metric in CANONICAL:
        assert all(m["run_id"] != "v1-fixed" for m in body["metrics"][metric]["markers"])
        assert body["metrics"][metric]["candidates"]["v1-fixed"]["first_divergence_step"] is None
    # It does leave the KL band now and then, as often as the reference's own runs do.
    assert outside_mask(comparison, "kl", "v1-fixed").any()


def test_the_charts_write_the_step_and_no_layer(demo):
    _, body = demo
    for metric in CANONICAL:
        for kind in ("overlay", "diff"):
            layout = body["figures"][metric][kind]["layout"]
            # A run far off the band also gets an off-scale edge label; markers are the rest.
            markers = [a for a in layout["annotations"] if not a.get("name", "").startswith(CLIP_LABEL)]
            assert [a["text"] for a in markers] == [f"v1-initial · step {EXPECTED_STEPS[metric]}"]
            assert [s["x0"] for s in layout["shapes"]] == [EXPECTED_STEPS[metric]]
            hover = markers[0]["hovertext"]
            assert "band half-widths" in hover and "of steps" in hover
            for layer in ("semantic", "inference", "objective", "workload"):
                assert layer not in json.dumps(layout)
    # The starting layer is said once, in the diagnosis.
    assert body["diagnosis"]["v1-initial"]["starting_layer"] == "semantic"


def test_marker_payload_fields(demo):
    _, body = demo
    json.dumps(body, allow_nan=False)
    (marker,) = body["metrics"]["entropy"]["markers"]
    assert set(marker) == {
        "run_id", "name", "metric", "step", "last_step", "direction", "outside_steps",
        "stretch_steps", "above", "below", "distance", "reference_rate", "bucket_steps", "summary", "detail",
    }  # fmt: skip
    assert marker["metric"] == "entropy" and marker["name"] == "v1-initial"
    assert marker["above"] + marker["below"] == marker["outside_steps"] <= marker["stretch_steps"]
    assert 0 < marker["reference_rate"] < 0.05
    assert set(body["definitions"]["markers"]) >= {
        "step", "outside_steps", "distance", "reference_rate"
    }  # fmt: skip
    band = body["metrics"]["entropy"]["band"]
    assert band["reference_outside_rate"] == 0.0
    # The drawn candidate line is outside the drawn band at the marker's step.
    overlay = body["figures"]["entropy"]["overlay"]["data"]
    upper = decode_typed_array(overlay[0]["y"])
    candidate = next(t for t in overlay if t["name"] == "v1-initial")
    assert decode_typed_array(candidate["y"])[marker["step"]] > upper[marker["step"]]
