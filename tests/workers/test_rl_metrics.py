import math

import pytest
import torch

from workers.rl_metrics import (
    aggregate,
    full_vocab_entropy,
    masked_mean,
    parity_metrics,
    ratio_metrics,
    sequence_mean,
)

EPS_LOW, EPS_HIGH = 0.1, 0.2


def test_token_metrics_match_their_definitions_on_hand_made_deltas():
    delta = torch.tensor([[0.0, 0.5, -0.3], [0.1, 9.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    tokens = [0.0, 0.5, -0.3, 0.1]  # masked entries must not count

    metrics = ratio_metrics(delta, mask, "ppo", EPS_LOW, EPS_HIGH, "token_mean")

    assert metrics["kl_new_old"] == pytest.approx(sum(math.exp(d) - d - 1 for d in tokens) / 4)
    assert metrics["mean_abs_log_ratio_new_old"] == pytest.approx(sum(abs(d) for d in tokens) / 4)
    assert metrics["ratio_new_old"] == pytest.approx(sum(math.exp(d) for d in tokens) / 4)
    # exp(0.5)=1.65 > 1.2 and exp(-0.3)=0.74 < 0.9 clip; exp(0)=1 and exp(0.1)=1.105 do not.
    assert metrics["clamp_log_ratio_new_old_indicator"] == pytest.approx(2 / 4)


def test_gspo_clip_rate_counts_sequences_by_their_mean_log_ratio():
    # Sequence 0: mean Δ = 0.05 -> ratio 1.051 inside [0.9, 1.2] although one token alone would clip.
    # Sequence 1: mean Δ = 0.3 -> ratio 1.35, clipped. Sequence 2: mean Δ = -0.2 -> 0.82, clipped.
    delta = torch.tensor([[0.4, -0.3], [0.3, 0.3], [-0.2, 5.0]])
    mask = torch.tensor([[True, True], [True, True], [True, False]])

    metrics = ratio_metrics(delta, mask, "gspo", EPS_LOW, EPS_HIGH, "token_mean")

    assert metrics["clamp_log_ratio_new_old_indicator"] == pytest.approx(2 / 3)
    # The other metrics stay token means whatever the objective.
    assert metrics["mean_abs_log_ratio_new_old"] == pytest.approx((0.4 + 0.3 + 0.3 + 0.3 + 0.2) / 5)
    # Per sequence by default: (0.35 + 0.3 + 0.2) / 3; the clip rate is a share of sequences either way.
    default = ratio_metrics(delta, mask, "gspo", EPS_LOW, EPS_HIGH)
    assert default["mean_abs_log_ratio_new_old"] == pytest.approx((0.35 + 0.3 + 0.2) / 3)
    assert default["clamp_log_ratio_new_old_indicator"] == pytest.approx(2 / 3)


def test_rl_metrics_default_to_the_mean_over_sequences_of_per_sequence_token_means():
    # Sequence 0 has three tokens, two of them clipped; sequence 1 one unclipped token.
    delta = torch.tensor([[0.5, -0.3, 0.0], [0.1, 9.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])

    per_sequence = ratio_metrics(delta, mask, "ppo", EPS_LOW, EPS_HIGH)
    per_token = ratio_metrics(delta, mask, "ppo", EPS_LOW, EPS_HIGH, "token_mean")

    # PipelineRL: each sequence's share of clipped tokens (2/3 and 0), then their mean.
    assert per_sequence["clamp_log_ratio_new_old_indicator"] == pytest.approx((2 / 3 + 0) / 2)
    assert per_token["clamp_log_ratio_new_old_indicator"] == pytest.approx(2 / 4)
    assert per_sequence["mean_abs_log_ratio_new_old"] == pytest.approx((0.8 / 3 + 0.1) / 2)
    kl = [math.exp(d) - d - 1 for d in (0.5, -0.3, 0.0)]
    assert per_sequence["kl_new_old"] == pytest.approx((sum(kl) / 3 + math.exp(0.1) - 1.1) / 2)
    assert aggregate(torch.ones(2, 3), mask, "sequence_mean") == 1.0
    assert math.isnan(sequence_mean(torch.ones(1, 2), torch.zeros(1, 2, dtype=torch.bool)))
    with pytest.raises(ValueError, match="sequence_mean, token_mean"):
        aggregate(torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool), "median")


def test_kl_is_never_negative_for_rounding_sized_deltas():
    delta = torch.full((4, 8), 1e-7)
    assert ratio_metrics(delta, torch.ones(4, 8, dtype=torch.bool), "ppo", 0.2, 0.2)["kl_new_old"] >= 0.0


def test_identical_logprobs_give_no_clip_zero_kl_and_unit_ratio():
    mask = torch.ones(3, 4, dtype=torch.bool)
    metrics = ratio_metrics(torch.zeros(3, 4), mask, "gspo", 3e-4, 4e-4)
    assert metrics == {
        "clamp_log_ratio_new_old_indicator": 0.0,
        "kl_new_old": 0.0,
        "mean_abs_log_ratio_new_old": 0.0,
        "ratio_new_old": 1.0,
    }


def test_full_vocab_entropy_of_uniform_and_certain_distributions():
    uniform = torch.zeros(1, 256)
    certain = torch.tensor([[0.0, -1e4, -1e4]])
    assert float(full_vocab_entropy(uniform)) == pytest.approx(math.log(256))
    assert float(full_vocab_entropy(certain)) == pytest.approx(0.0, abs=1e-6)


def test_parity_metrics_use_only_tokens_sampled_with_the_trainers_current_weights():
    rollout = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]])
    trainer = torch.tensor([[-1.1, -1.0], [-0.4, -0.9]])
    mask = torch.tensor([[True, True], [True, False]])
    versions = torch.tensor([[4, 3], [4, -1]])  # token (0,1) is one version behind

    metrics = parity_metrics(rollout, trainer, mask, versions, trainer_version=4)

    # Current-version tokens: (0,0) diff +0.1 and (1,0) diff -0.1.
    assert metrics["parity/logprob_diff_mean"] == pytest.approx(0.0, abs=1e-7)
    assert metrics["parity/logprob_abs_diff_mean"] == pytest.approx(0.1)
    assert metrics["parity/logprob_abs_diff_max"] == pytest.approx(0.1)
    assert metrics["parity/weight_version_lag"] == pytest.approx(1 / 3)


def test_parity_differences_are_nan_not_zero_when_no_token_is_current():
    metrics = parity_metrics(
        torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool), torch.tensor([[2, 2]]), 3
    )
    assert math.isnan(metrics["parity/logprob_diff_mean"])
    assert math.isnan(metrics["parity/logprob_abs_diff_max"])
    assert metrics["parity/weight_version_lag"] == 1.0


def test_masked_mean_of_nothing_is_nan():
    assert math.isnan(masked_mean(torch.ones(2), torch.zeros(2, dtype=torch.bool)))
