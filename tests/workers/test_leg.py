import importlib.util
import os

import pytest

from workers.demo import DEMO_LEGS, DEMO_WORKLOAD
from workers.engines.base import EngineSettings
from workers.errors import EngineUnavailable, InvalidEngineSettings, InvalidWorkload
from workers.leg import ENGINE_NAMES, describe_leg, make_engine, run_leg
from workers.trainer import METRIC_NAMES

# The demo's model, task, seed and warm start, so the session's checkpoint is reused.
SHORT = {**DEMO_WORKLOAD, "steps": 3, "batch_size": 4, "group_size": 2}


def test_a_leg_reports_every_step_with_every_metric(checkpoint_dir, demo_checkpoint):
    seen = []
    result = run_leg(SHORT, {"logprobs_mode": "raw"}, 1, on_step=lambda s, m: seen.append((s, m)),
                     checkpoint_dir=checkpoint_dir)
    assert [step for step, _ in seen] == [0, 1, 2]
    assert all(set(metrics) == set(METRIC_NAMES) for _, metrics in seen)
    assert [m for _, m in seen] == result.metrics
    assert result.checkpoint == str(demo_checkpoint)
    assert result.engine == describe_leg({"logprobs_mode": "raw"})


def test_a_rerun_from_start_step_reports_the_same_values_for_the_remaining_steps(checkpoint_dir):
    settings = DEMO_LEGS[2].settings  # every mechanism on: the hardest case for determinism
    first = run_leg(SHORT, settings, 3, checkpoint_dir=checkpoint_dir).metrics
    resumed = []
    run_leg(SHORT, settings, 3, start_step=2, on_step=lambda s, m: resumed.append((s, m)),
            checkpoint_dir=checkpoint_dir)
    assert resumed == [(2, first[2])]


def test_sampling_seed_is_the_only_difference_between_replicas(checkpoint_dir):
    a = run_leg(SHORT, None, 1, checkpoint_dir=checkpoint_dir).metrics
    b = run_leg(SHORT, None, 2, checkpoint_dir=checkpoint_dir).metrics
    assert a != b


@pytest.mark.parametrize(
    ("workload", "settings", "seed", "error", "field"),
    [
        ({**SHORT, "steps": -1}, None, 1, InvalidWorkload, "steps"),
        (SHORT, {"prefix_caching": "maybe"}, 1, InvalidEngineSettings, "prefix_caching"),
        (SHORT, None, -4, InvalidWorkload, "sampling_seed"),
    ],
)
def test_bad_input_is_refused_before_any_work(workload, settings, seed, error, field, tmp_path):
    with pytest.raises(error) as caught:
        run_leg(workload, settings, seed, checkpoint_dir=tmp_path)
    assert caught.value.field == field
    assert not any(tmp_path.iterdir())  # nothing was built


def test_start_step_outside_the_leg_is_refused(tmp_path):
    with pytest.raises(InvalidWorkload, match="start_step"):
        run_leg(SHORT, None, 1, start_step=4, checkpoint_dir=tmp_path)


def test_unknown_engine_is_named(tmp_path):
    with pytest.raises(InvalidWorkload, match="unknown engine 'sglang'"):
        describe_leg(None, "sglang")
    with pytest.raises(InvalidWorkload, match="unknown engine"):
        make_engine("sglang", tmp_path, EngineSettings(), 1)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_engines_need_vllm(tmp_path, monkeypatch):
    monkeypatch.delenv("VLLM_USE_V1", raising=False)
    with pytest.raises(EngineUnavailable, match="needs vLLM"):
        make_engine("vllm-v1", tmp_path, EngineSettings(), 1)
    assert "VLLM_USE_V1" not in os.environ  # a refused engine leaves the environment alone


def test_the_torch_engine_is_never_labelled_vllm():
    for leg in DEMO_LEGS:
        assert describe_leg(leg.settings, leg.engine)["name"] == "torch"
    assert set(ENGINE_NAMES) == {"torch", "vllm-v0", "vllm-v1"}


def test_demo_legs_match_issue_three():
    by_label = {leg.label: leg for leg in DEMO_LEGS}
    assert list(by_label) == ["reference", "reference-replica", "v1-initial", "v1-fixed"]
    reference = EngineSettings()
    assert by_label["reference"].settings == by_label["reference-replica"].settings == reference
    assert by_label["v1-fixed"].settings == reference
    assert by_label["v1-initial"].settings == EngineSettings(
        logprobs_mode="raw", lm_head_dtype="bf16", prefix_caching=True, async_scheduling=True,
        weight_update="inflight",
    )
    assert len({leg.sampling_seed for leg in DEMO_LEGS}) == 4
    assert DEMO_WORKLOAD["temperature"] < 1.0
    assert (DEMO_WORKLOAD["epsilon_low"], DEMO_WORKLOAD["epsilon_high"]) == (3e-4, 4e-4)
