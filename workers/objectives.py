"""The RL objectives: GSPO (default), PPO and GRPO, each a clipped importance-ratio surrogate.

All of them work from Δ = new − old per token, where "old" is the engine's rollout logprob.

- GSPO as the GSPO paper defines it: one ratio per sequence, exp(mean Δ over the sequence),
  clipped with a tiny ε (3e-4/4e-4 in the paper), uniform sequence weights, advantages the
  group-normalised rewards (population std).
- ``gspo_pipelinerl``: PipelineRL's GSPO variant, the same sequence ratio and clipping but
  length-proportional sequence weights (each sequence's clipped term times its token count,
  divided by the number of sequences) and a leave-one-out baseline (reward minus the mean of the
  other rewards of its group, not divided by a std). It is a different objective, so the key
  registry reads the workload's ``objective`` as the objective layer.
- PPO clips each token's ratio exp(Δ) and averages over all tokens; advantages are rewards minus
  the group mean (the group is the baseline, no critic).
- GRPO clips each token's ratio, averages within each sequence, then over sequences, with
  group-normalised advantages (DeepSeekMath); no KL penalty term.
"""

from __future__ import annotations

import torch

from parityscope.jobspec import OBJECTIVES

__all__ = [
    "OBJECTIVES",
    "SEQUENCE_OBJECTIVES",
    "clip_indicator",
    "group_advantages",
    "leave_one_out_advantages",
    "objective_advantages",
    "policy_loss",
    "sequence_log_ratio",
]

# Objectives whose ratio, clipping and clip indicator are per sequence.
SEQUENCE_OBJECTIVES: frozenset[str] = frozenset({"gspo", "gspo_pipelinerl"})

_STD_FLOOR = 1e-4


def group_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, *, normalize: bool) -> torch.Tensor:
    """Reward minus its group's mean, divided by the group's std when ``normalize``."""
    groups, inverse = torch.unique(group_ids, return_inverse=True)
    count = torch.zeros(len(groups)).index_add_(0, inverse, torch.ones_like(rewards))
    mean = torch.zeros(len(groups)).index_add_(0, inverse, rewards) / count
    centred = rewards - mean[inverse]
    if not normalize:
        return centred
    # Population std, as the GRPO and GSPO papers write it; a group whose rewards are all equal
    # has zero advantage whatever the floor.
    var = torch.zeros(len(groups)).index_add_(0, inverse, centred**2) / count
    return centred / (var.sqrt()[inverse] + _STD_FLOOR)


def leave_one_out_advantages(rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Reward minus the mean of the *other* rewards of its group (groups of at least two)."""
    groups, inverse = torch.unique(group_ids, return_inverse=True)
    count = torch.zeros(len(groups)).index_add_(0, inverse, torch.ones_like(rewards))
    if bool((count < 2).any()):
        raise ValueError("a leave-one-out baseline needs at least two sequences per group")
    total = torch.zeros(len(groups)).index_add_(0, inverse, rewards)
    others = (total[inverse] - rewards) / (count[inverse] - 1)
    return rewards - others


def objective_advantages(objective: str, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """The advantages ``objective`` trains on."""
    if objective == "gspo_pipelinerl":
        return leave_one_out_advantages(rewards, group_ids)
    return group_advantages(rewards, group_ids, normalize=objective != "ppo")


def sequence_log_ratio(delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GSPO's per-sequence log ratio: the mean of Δ over the sequence's tokens."""
    mask = mask.to(delta.dtype)
    return (delta * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def clip_indicator(
    delta: torch.Tensor, mask: torch.Tensor, objective: str, epsilon_low: float, epsilon_high: float
) -> torch.Tensor:
    """1 where the ratio lies outside [1 − ε_low, 1 + ε_high]: per sequence for GSPO, else per token."""
    ratio = sequence_log_ratio(delta, mask).exp() if objective in SEQUENCE_OBJECTIVES else delta.exp()
    return ((ratio < 1.0 - epsilon_low) | (ratio > 1.0 + epsilon_high)).to(torch.float32)


def policy_loss(
    objective: str,
    delta: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> torch.Tensor:
    """The clipped surrogate to minimise; ``delta`` carries the gradient through ``new``."""
    maskf = mask.to(delta.dtype)
    if objective == "gspo":
        ratio = sequence_log_ratio(delta, mask).exp()
        clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)
        return -torch.minimum(ratio * advantages, clipped * advantages).mean()
    if objective == "gspo_pipelinerl":
        ratio = sequence_log_ratio(delta, mask).exp()
        clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)
        lengths = maskf.sum(-1)
        terms = torch.minimum(ratio * advantages, clipped * advantages) * lengths
        return -terms.sum() / len(terms)
    if objective not in ("ppo", "grpo"):
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    ratio = delta.exp()
    clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)
    per_token = -torch.minimum(ratio * advantages[:, None], clipped * advantages[:, None]) * maskf
    if objective == "ppo":
        return per_token.sum() / maskf.sum().clamp(min=1.0)
    return (per_token.sum(-1) / maskf.sum(-1).clamp(min=1.0)).mean()
