import math
from pathlib import Path

import pytest
import torch

from workers.engines.base import EngineSettings, SamplingSettings
from workers.engines.torch_engine import TorchEngine
from workers.policy import load_policy
from workers.rollouts import RolloutBatch
from workers.task import EOS, PAD, get_task
from workers.trainer import METRIC_NAMES, Trainer

TASK = get_task("sort4")
SAMPLING = SamplingSettings(temperature=0.7, max_tokens=5, stop_token_id=EOS)


def rollouts(checkpoint: Path, settings: EngineSettings, step: int = 0) -> RolloutBatch:
    engine = TorchEngine.from_checkpoint(checkpoint, settings, sampling_seed=5)
    prompts = [p for p in TASK.rl_prompts(3, step, 8) for _ in range(4)]
    completions = engine.generate(prompts, SAMPLING)
    rewards = [TASK.reward(c.prompt, c.tokens) for c in completions]
    return RolloutBatch.from_completions(completions, rewards, group_size=4, pad_token=PAD)


def trainer(checkpoint: Path, **options) -> Trainer:
    defaults = dict(objective="gspo", epsilon_low=3e-4, epsilon_high=4e-4, temperature=0.7, lr=1e-4)
    return Trainer(load_policy(checkpoint), **{**defaults, **options})


def test_on_policy_step_with_matching_backend_has_no_mismatch(demo_checkpoint):
    batch = rollouts(demo_checkpoint, EngineSettings())
    before = {k: v.clone() for k, v in trainer(demo_checkpoint).weights().items()}
    t = trainer(demo_checkpoint)

    metrics = t.step(batch)

    assert set(metrics) == set(METRIC_NAMES)
    # One minibatch: the trainer scores the batch with the weights that sampled it.
    assert metrics["clamp_log_ratio_new_old_indicator"] == 0.0
    assert metrics["kl_new_old"] < 1e-10
    assert metrics["ratio_new_old"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["mean_abs_log_ratio_new_old"] < 1e-5
    assert metrics["parity/logprob_abs_diff_max"] < 1e-5
    assert metrics["parity/weight_version_lag"] == 0.0
    assert metrics["reward"] == pytest.approx(float(batch.rewards.mean()))
    assert 0.0 < metrics["entropy"] < math.log(256)
    assert t.version == 1
    assert any(not torch.equal(before[k], v) for k, v in t.weights().items())


def test_raw_logprobs_show_as_a_mean_offset_in_the_parity_metrics(demo_checkpoint):
    batch = rollouts(demo_checkpoint, EngineSettings(logprobs_mode="raw"))
    metrics = trainer(demo_checkpoint).step(batch)
    # Raw logprobs of the untempered distribution sit below the sharper T=0.7 ones the trainer
    # computes for likely tokens: a negative mean, and nearly every sequence clipped.
    assert metrics["parity/logprob_diff_mean"] < -1e-3
    assert metrics["ratio_new_old"] > 1.0
    assert metrics["clamp_log_ratio_new_old_indicator"] > 0.9


def test_later_minibatches_see_a_moved_policy(demo_checkpoint):
    batch = rollouts(demo_checkpoint, EngineSettings())
    metrics = trainer(demo_checkpoint, minibatches=2).step(batch)
    assert metrics["kl_new_old"] > 1e-8
    assert 0.0 < metrics["clamp_log_ratio_new_old_indicator"] <= 0.5 + 1e-9


@pytest.mark.parametrize("objective", ["ppo", "grpo"])
def test_token_level_objectives_run_and_report_token_clip_rates(demo_checkpoint, objective):
    batch = rollouts(demo_checkpoint, EngineSettings())
    metrics = trainer(demo_checkpoint, objective=objective, epsilon_low=0.2, epsilon_high=0.2).step(batch)
    assert metrics["clamp_log_ratio_new_old_indicator"] == 0.0
    assert all(math.isfinite(metrics[k]) for k in METRIC_NAMES)


def test_a_bf16_trainer_head_is_a_real_mismatch_against_an_fp32_engine(demo_checkpoint):
    batch = rollouts(demo_checkpoint, EngineSettings(lm_head_dtype="fp32"))
    metrics = trainer(demo_checkpoint, lm_head_dtype="bf16").step(batch)
    assert metrics["parity/logprob_abs_diff_mean"] > 1e-5


def test_a_batch_that_does_not_split_into_minibatches_is_refused(demo_checkpoint):
    batch = rollouts(demo_checkpoint, EngineSettings())
    with pytest.raises(ValueError, match="minibatches"):
        trainer(demo_checkpoint, minibatches=3).step(batch)


def test_metric_aggregation_and_device_are_checked_options(demo_checkpoint):
    with pytest.raises(ValueError, match="metric_aggregation must be one of sequence_mean, token_mean"):
        trainer(demo_checkpoint, metric_aggregation="median")
    assert trainer(demo_checkpoint, device="cpu").device.type == "cpu"
    batch = rollouts(demo_checkpoint, EngineSettings(lm_head_dtype="bf16"))
    per_sequence = trainer(demo_checkpoint).step(batch)
    per_token = trainer(demo_checkpoint, metric_aggregation="token_mean").step(batch)
    lengths = batch.completion_mask.sum(-1)
    # Equal-length completions give equal figures; otherwise the two aggregations differ.
    if bool((lengths == lengths[0]).all()):
        assert per_sequence["kl_new_old"] == pytest.approx(per_token["kl_new_old"])
    else:
        assert per_sequence["kl_new_old"] != per_token["kl_new_old"]
    # The GSPO clip rate is a share of sequences under either aggregation.
    assert per_sequence["clamp_log_ratio_new_old_indicator"] == per_token["clamp_log_ratio_new_old_indicator"]
