"""The trainer step: recompute logprobs, take the clipped policy-gradient step, log the metrics.

One call to :meth:`Trainer.step` consumes one batch of rollouts and returns the step's metrics
under PipelineRL's names (DESIGN.md §1) plus the ``parity/*`` metrics. The batch may be split into
minibatches, each its own optimizer step, as PPO-style trainers do; the later minibatches then see
a policy that has already moved, which is the trainer-side source of a nonzero clip rate in an
otherwise exact run, and what makes the reference replicas' band real.

The trainer's logprobs are those of the temperature-scaled distribution (the one the engine
samples from), computed with the head in ``lm_head_dtype`` — fp32 by default, as production RL
trainers run it.

The ``rl/*`` metrics aggregate over sequences by default, as PipelineRL's do (``rl_metrics``);
``metric_aggregation="token_mean"`` makes them token means. The trainer runs on ``device``
(``cpu`` or ``cuda``; see ``workers.device``); the metrics are computed in float64 on that device.
"""

from __future__ import annotations

import torch
from transformers import LlamaForCausalLM

from workers.device import resolve_device
from workers.lm_head import project_logits
from workers.objectives import OBJECTIVES, objective_advantages, policy_loss
from workers.rl_metrics import (
    METRIC_AGGREGATIONS,
    aggregate,
    full_vocab_entropy,
    parity_metrics,
    ratio_metrics,
)
from workers.rollouts import RolloutBatch

__all__ = ["METRIC_NAMES", "Trainer"]

METRIC_NAMES: tuple[str, ...] = (
    "clamp_log_ratio_new_old_indicator",
    "kl_new_old",
    "mean_abs_log_ratio_new_old",
    "ratio_new_old",
    "entropy",
    "reward",
    "parity/logprob_diff_mean",
    "parity/logprob_abs_diff_mean",
    "parity/logprob_abs_diff_max",
    "parity/weight_version_lag",
)

_GRAD_CLIP = 1.0


class Trainer:
    def __init__(
        self,
        model: LlamaForCausalLM,
        *,
        objective: str,
        epsilon_low: float,
        epsilon_high: float,
        temperature: float,
        lr: float,
        minibatches: int = 1,
        lm_head_dtype: str = "fp32",
        metric_aggregation: str = "sequence_mean",
        device: str | None = None,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if metric_aggregation not in METRIC_AGGREGATIONS:
            raise ValueError(
                f"metric_aggregation must be one of {', '.join(METRIC_AGGREGATIONS)}, got {metric_aggregation!r}"
            )
        self.device = resolve_device(device)
        self.model = model.float().to(self.device).train()
        self.metric_aggregation = metric_aggregation
        self.objective = objective
        self.epsilon_low = epsilon_low
        self.epsilon_high = epsilon_high
        self.temperature = temperature
        self.minibatches = minibatches
        self.lm_head_dtype = lm_head_dtype
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        self.version = 0

    def weights(self) -> dict[str, torch.Tensor]:
        """The current weights, on the trainer's device (engines copy what they need)."""
        return {name: tensor.detach() for name, tensor in self.model.state_dict().items()}

    def token_logprobs(self, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logprobs of the completion tokens and the full-vocabulary entropy at each, [N, T]."""
        width = batch.completion_mask.shape[1]
        # Positions P-1 .. P+T-2 predict the completion tokens at P .. P+T-1.
        inputs = batch.input_ids[:, : batch.prompt_length + width - 1]
        hidden = self.model.model(input_ids=inputs).last_hidden_state[:, batch.prompt_length - 1 :]
        logits = project_logits(hidden, self.model.lm_head.weight, self.lm_head_dtype) / self.temperature
        targets = batch.input_ids[:, batch.prompt_length : batch.prompt_length + width]
        logprobs = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
        return logprobs, full_vocab_entropy(logits.detach())

    def step(self, batch: RolloutBatch) -> dict[str, float]:
        if batch.size % self.minibatches:
            raise ValueError("the batch does not split into the configured minibatches")
        batch = batch.to(self.device)
        mask = batch.completion_mask
        with torch.no_grad():
            # The trainer's view of the rollout with the weights it has now, before this step
            # moves them: the parity metrics compare backends, not policy versions.
            current_logprobs, _ = self.token_logprobs(batch)
        parity = parity_metrics(batch.old_logprobs, current_logprobs, mask, batch.weight_versions, self.version)

        advantages = objective_advantages(self.objective, batch.rewards.cpu(), batch.group_ids.cpu()).to(self.device)
        deltas, entropies = [], []
        rows = batch.size // self.minibatches
        for start in range(0, batch.size, rows):
            part = batch.rows(start, start + rows)
            new_logprobs, entropy = self.token_logprobs(part)
            delta = (new_logprobs - part.old_logprobs) * part.completion_mask
            loss = policy_loss(
                self.objective,
                delta,
                part.completion_mask,
                advantages[start : start + rows],
                self.epsilon_low,
                self.epsilon_high,
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), _GRAD_CLIP)
            self.optimizer.step()
            deltas.append(delta.detach())
            entropies.append(entropy)
        self.version += 1

        delta = torch.cat(deltas)
        metrics = ratio_metrics(delta, mask, self.objective, self.epsilon_low, self.epsilon_high,
                                self.metric_aggregation)
        metrics["entropy"] = aggregate(torch.cat(entropies), mask, self.metric_aggregation)
        metrics["reward"] = float(batch.rewards.mean())
        metrics.update(parity)
        return metrics
