"""The per-step metrics, exactly as DESIGN.md §1 defines them, under PipelineRL's names.

Every function here is pure and works on whole-batch tensors so that the definitions can be
checked on hand-made numbers. Means run over completion tokens only.

The ``rl/*`` metrics aggregate as PipelineRL's ``rl_step`` does by default: each sequence's token
mean, then the mean over sequences (``sequence_mean``), so a long completion weighs as much as a
short one. ``token_mean`` (every token of the batch weighs the same) is the other choice, recorded
in the workload as ``metric_aggregation``. The two agree when completions have equal length. The
``parity/*`` metrics are always token means over the tokens they select (docs/WORKERS.md).
"""

from __future__ import annotations

import math

import torch

from parityscope.jobspec import METRIC_AGGREGATIONS
from workers.objectives import clip_indicator

__all__ = [
    "METRIC_AGGREGATIONS",
    "aggregate",
    "full_vocab_entropy",
    "masked_mean",
    "sequence_mean",
    "parity_metrics",
    "ratio_metrics",
]


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    maskf = mask.to(torch.float64)
    total = maskf.sum()
    if total == 0:
        return math.nan
    return float((values.to(torch.float64) * maskf).sum() / total)




def sequence_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over sequences (rows with at least one token) of each row's masked token mean."""
    maskf = mask.to(torch.float64)
    counts = maskf.sum(-1)
    has_tokens = counts > 0
    if not has_tokens.any():
        return math.nan
    per_sequence = (values.to(torch.float64) * maskf).sum(-1)[has_tokens] / counts[has_tokens]
    return float(per_sequence.mean())


def aggregate(values: torch.Tensor, mask: torch.Tensor, aggregation: str) -> float:
    """``values`` [N, T] reduced to one number the way ``aggregation`` names."""
    if aggregation == "sequence_mean":
        return sequence_mean(values, mask)
    if aggregation == "token_mean":
        return masked_mean(values, mask)
    raise ValueError(f"aggregation must be one of {', '.join(METRIC_AGGREGATIONS)}, got {aggregation!r}")


def ratio_metrics(
    delta: torch.Tensor,
    mask: torch.Tensor,
    objective: str,
    epsilon_low: float,
    epsilon_high: float,
    aggregation: str = "sequence_mean",
) -> dict[str, float]:
    """Clip rate, k3 KL, mean |Δ| and mean ratio from Δ = new − old per token.

    Under ``sequence_mean`` PPO's and GRPO's clip rate is the mean over sequences of each
    sequence's share of clipped tokens; GSPO's indicator is one value per sequence, so its clip
    rate is the share of sequences under either aggregation.
    """
    # float64: exp(Δ) − Δ − 1 for |Δ| near 1e-7 is below float32's resolution around 1 and
    # would come out negative, which a KL never is.
    delta = delta.to(torch.float64)
    clipped = clip_indicator(delta, mask, objective, epsilon_low, epsilon_high)
    if clipped.dim() == 1:  # one indicator per sequence (GSPO)
        has_tokens = mask.any(-1)
        clip_rate = float(clipped[has_tokens].mean()) if has_tokens.any() else math.nan
    else:
        clip_rate = aggregate(clipped, mask, aggregation)
    return {
        "clamp_log_ratio_new_old_indicator": clip_rate,
        "kl_new_old": aggregate(delta.exp() - delta - 1.0, mask, aggregation),
        "mean_abs_log_ratio_new_old": aggregate(delta.abs(), mask, aggregation),
        "ratio_new_old": aggregate(delta.exp(), mask, aggregation),
    }


def full_vocab_entropy(scaled_logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(``scaled_logits``) over the whole vocabulary, per position."""
    logprobs = scaled_logits.log_softmax(dim=-1)
    return -(logprobs.exp() * logprobs).sum(-1)


def parity_metrics(
    rollout_logprobs: torch.Tensor,
    trainer_logprobs: torch.Tensor,
    mask: torch.Tensor,
    token_versions: torch.Tensor,
    trainer_version: int,
) -> dict[str, float]:
    """Rollout − trainer logprob over tokens the engine sampled with the trainer's current
    weights, plus the mean weight-version lag over all tokens.

    Restricting the differences to lag-0 tokens keeps policy movement out of them: what is left
    is the backend. With no lag-0 token in the batch the differences are NaN, not zero.
    """
    lag = (trainer_version - token_versions).to(torch.float64)
    current = mask & (token_versions == trainer_version)
    diff = rollout_logprobs.to(torch.float64) - trainer_logprobs.to(torch.float64)
    abs_max = float(diff.abs()[current].max()) if current.any() else math.nan
    return {
        "parity/logprob_diff_mean": masked_mean(diff, current),
        "parity/logprob_abs_diff_mean": masked_mean(diff.abs(), current),
        "parity/logprob_abs_diff_max": abs_max,
        "parity/weight_version_lag": masked_mean(lag, mask),
    }
