import json

import numpy as np
import pytest

from backend.compare.comparison import build_comparison
from backend.compare.encoding import decode_typed_array
from backend.compare.response import comparison_to_json
from backend.compare.run_series import RunSeries
from backend.compare.smoothing import debiased_ema
from backend.errors import BadInput

from .synthetic_runs import PLANTED_STEP, demo_runs


@pytest.fixture(scope="module")
def demo():
    runs = demo_runs()
    comparison = build_comparison(
        [runs["reference"], runs["reference-replica"]], [runs["v1-initial"], runs["v1-fixed"]]
    )
    return comparison_to_json(comparison)


def simple_run(run_id, series, config=None, engine=None):
    return RunSeries(run_id, str(run_id), None, config or {"seed": 1}, engine or {}, series)


def noise(seed, n=300, scale=1.0):
    return np.arange(n), np.random.default_rng(seed).normal(0.0, scale, n)


def test_demo_names_the_semantic_layer_for_v1_initial(demo):
    diagnosis = demo["diagnosis"]["v1-initial"]
    assert diagnosis["starting_layer"] == "semantic"
    assert diagnosis["like_for_like"] is True
    layers = [v["layer"] for v in diagnosis["verdicts"]]
    assert layers == ["workload", "semantic", "inference-path", "objective"]
    semantic = diagnosis["verdicts"][1]
    assert semantic["verdict"] == "fail"
    assert semantic["evidence"]["differing_keys"] == [
        {
            "key": "engine.settings.logprobs_mode",
            "reference_value": "processed",
            "candidate_value": "raw",
        }
    ]


def test_demo_finds_v1_initial_diverging_early_in_clip_rate_and_kl(demo):
    for metric in ("clip_rate", "kl"):
        found = demo["metrics"][metric]["candidates"]["v1-initial"]
        assert PLANTED_STEP <= found["first_divergence_step"] < PLANTED_STEP + 5
        assert found["effect_size"] > 1


def test_demo_finds_no_divergence_for_v1_fixed(demo):
    for metric in ("clip_rate", "kl", "entropy", "reward"):
        found = demo["metrics"][metric]["candidates"]["v1-fixed"]
        assert found["first_divergence_step"] is None and found["effect_size"] is None
    assert demo["diagnosis"]["v1-fixed"]["starting_layer"] is None
    assert demo["config_diff"]["v1-fixed"] == []


def test_demo_response_shape(demo):
    json.dumps(demo, allow_nan=False)
    assert demo["references"] == ["reference", "reference-replica"]
    assert list(demo["metrics"]) == ["clip_rate", "kl", "entropy", "reward"]
    clip = demo["metrics"]["clip_rate"]
    assert clip["resolved"]["v1-fixed"] == "rl/clamp_log_ratio_new_old_indicator"
    assert clip["band"]["source"] == "replicas"
    assert {s["run_id"] for s in clip["series"]} == {
        "reference",
        "reference-replica",
        "v1-initial",
        "v1-fixed",
    }
    for entry in clip["series"]:
        assert (
            len(entry["x"]) == len(entry["y"]) == len(entry["y_min"]) == len(entry["y_max"]) == 200
        )
    assert len(clip["candidates"]["v1-fixed"]["diff"]["x"]) == 200
    layers = {d["layer"] for d in demo["config_diff"]["v1-initial"]}
    assert layers == {"semantic", "inference-path"}
    figures = demo["figures"]["clip_rate"]
    assert set(figures) == {"overlay", "diff"}
    assert (
        figures["overlay"]["layout"]["shapes"][0]["x0"]
        == clip["candidates"]["v1-initial"]["first_divergence_step"]
    )


def test_long_series_are_downsampled_after_full_resolution_diffs():
    n = 30_000
    steps = np.arange(n)
    reference = simple_run("ref", {"kl": (steps, np.zeros(n))})
    spike = np.zeros(n)
    spike[12_345] = 7.0
    candidate = simple_run("cand", {"kl": (steps, spike)})
    body = comparison_to_json(build_comparison([reference], [candidate], ["kl"], max_points=100))
    metric = body["metrics"]["kl"]
    for entry in metric["series"]:
        assert len(entry["x"]) <= 100
    assert entry["downsampled"] is True and 7.0 in entry["y"]
    diff = metric["candidates"]["cand"]["diff"]
    assert len(diff["x"]) <= 100 and max(diff["y"]) == 7.0
    assert len(metric["band"]["x"]) <= 100


def test_smoothing_changes_the_picture_not_the_divergence():
    reference = simple_run("ref", {"reward": noise(1)})
    steps, values = noise(2)
    values[100:] += 20
    candidate = simple_run("cand", {"reward": (steps, values)})
    raw = build_comparison([reference], [candidate], ["reward"])
    smooth = build_comparison([reference], [candidate], ["reward"], smoothing=0.9)
    shown = smooth.metrics[0].runs[1].series.y
    assert np.allclose(shown, debiased_ema(values, 0.9))
    found = [c.metrics[0].candidates[0].divergence.first_divergence_step for c in (raw, smooth)]
    assert found[0] == found[1] and 100 <= found[0] < 105


def test_steps_a_run_lacks_are_not_invented():
    steps, values = noise(3, n=50)
    reference = simple_run("ref", {"kl": (steps, values)})
    candidate = simple_run("cand", {"kl": (steps[::2], values[::2] + 1.0)})
    body = comparison_to_json(build_comparison([reference], [candidate], ["kl"]))
    diff = body["metrics"]["kl"]["candidates"]["cand"]["diff"]
    assert diff["x"] == steps[::2].tolist()
    assert np.allclose(diff["y"], 1.0)


def test_runs_from_different_trainers_overlay_on_canonical_panels():
    reference = simple_run("pipelinerl", {"rl/kl_new_old": noise(4), "rl/reward": noise(5)})
    candidate = simple_run("verl", {"actor/ppo_kl": noise(6), "critic/score/mean": noise(7)})
    body = comparison_to_json(
        build_comparison([reference], [candidate], ["kl", "reward", "clip_rate"])
    )
    assert body["metrics"]["kl"]["resolved"] == {
        "pipelinerl": "rl/kl_new_old",
        "verl": "actor/ppo_kl",
    }
    assert body["metrics"]["kl"]["band"]["source"] == "within-run"
    # A canonical metric no run logged is present but empty rather than an error.
    clip = body["metrics"]["clip_rate"]
    assert clip["band"] is None and clip["candidates"]["verl"]["diff"] is None


def test_non_finite_values_use_the_api_encoding_in_series_and_null_in_figures():
    steps = np.arange(20)
    values = np.zeros(20)
    values[[3, 4, 5]] = [np.nan, np.inf, -np.inf]
    reference = simple_run("ref", {"kl": (steps, values)})
    body = comparison_to_json(build_comparison([reference], [], ["kl"]))
    y = body["metrics"]["kl"]["series"][0]["y"]
    assert y[3:6] == ["NaN", "Infinity", "-Infinity"]
    figure_y = decode_typed_array(body["figures"]["kl"]["overlay"]["data"][-1]["y"])
    assert np.isnan(figure_y[3:6]).all() and (figure_y[[0, 1, 2, 6]] == 0).all()
    json.dumps(body, allow_nan=False)


def test_window_limits_every_series():
    reference = simple_run("ref", {"kl": noise(8)})
    candidate = simple_run("cand", {"kl": noise(9)})
    body = comparison_to_json(build_comparison([reference], [candidate], ["kl"], start=10, end=19))
    metric = body["metrics"]["kl"]
    assert metric["series"][0]["x"] == list(range(10, 20))
    assert metric["band"]["x"] == list(range(10, 20))
    assert body["settings"]["start"] == 10


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_points": 0}, "max_points"),
        ({"max_points": 1_000_000}, "max_points"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"band_k": 0}, "band_k"),
        ({"divergence_k": 0}, "divergence_k"),
        ({"start": 10, "end": 5}, "start"),
        ({"metrics": ["no_such_metric"]}, "metrics"),
        ({"extra_rules": {"x": "nowhere"}}, "rules"),
        ({"extra_aliases": {"kl": 3}}, "aliases"),
    ],
)
def test_bad_requests_are_rejected_naming_the_field(kwargs, field):
    reference = simple_run("ref", {"kl": noise(10)})
    with pytest.raises(BadInput) as error:
        build_comparison([reference], [], **kwargs)
    assert error.value.field == field


def test_unknown_metric_is_named():
    with pytest.raises(BadInput, match="no_such_metric"):
        build_comparison([simple_run("ref", {"kl": noise(11)})], [], ["no_such_metric"])


def test_missing_references_duplicates_and_bad_series_are_rejected():
    run = simple_run("ref", {"kl": noise(12)})
    with pytest.raises(BadInput) as error:
        build_comparison([], [run])
    assert error.value.field == "reference"
    with pytest.raises(BadInput, match="more than once"):
        build_comparison([run], [run])
    broken = simple_run("bad", {"kl": (np.array([1, 1]), np.array([0.0, 1.0]))})
    with pytest.raises(BadInput, match="appears more than once"):
        build_comparison([run], [broken], ["kl"])
