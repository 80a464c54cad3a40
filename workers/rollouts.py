"""Completions from an engine, collated into the padded tensors the trainer step consumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from workers.engines.base import Completion

__all__ = ["RolloutBatch"]


@dataclass(frozen=True)
class RolloutBatch:
    """``N`` sequences; completion tensors are [N, T] with T the longest completion."""

    input_ids: torch.Tensor  # [N, P + T], prompt then completion, padded
    prompt_length: int
    completion_mask: torch.Tensor  # [N, T] bool
    old_logprobs: torch.Tensor  # [N, T] the engine's logprobs, 0 where masked
    weight_versions: torch.Tensor  # [N, T] engine weight version per token, -1 where masked
    rewards: torch.Tensor  # [N]
    group_ids: torch.Tensor  # [N] sequences sampled from the same prompt share an id

    @classmethod
    def from_completions(
        cls,
        completions: Sequence[Completion],
        rewards: Sequence[float],
        group_size: int,
        pad_token: int,
    ) -> RolloutBatch:
        if len(completions) != len(rewards) or not completions:
            raise ValueError("need one reward per completion and at least one completion")
        if len(completions) % group_size:
            raise ValueError("the number of completions must be a multiple of group_size")
        prompt_length = len(completions[0].prompt)
        if any(len(c.prompt) != prompt_length for c in completions):
            raise ValueError("all prompts of a batch must have the same length")
        width = max(len(c.tokens) for c in completions)
        if width == 0:
            raise ValueError("every completion is empty")
        n = len(completions)
        input_ids = torch.full((n, prompt_length + width), pad_token, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.bool)
        old = torch.zeros((n, width), dtype=torch.float32)
        versions = torch.full((n, width), -1, dtype=torch.long)
        for row, c in enumerate(completions):
            length = len(c.tokens)
            input_ids[row, :prompt_length] = torch.tensor(c.prompt)
            if length:
                input_ids[row, prompt_length : prompt_length + length] = torch.tensor(c.tokens)
                mask[row, :length] = True
                old[row, :length] = torch.tensor(c.logprobs)
                versions[row, :length] = torch.tensor(c.weight_versions)
        return cls(
            input_ids=input_ids,
            prompt_length=prompt_length,
            completion_mask=mask,
            old_logprobs=old,
            weight_versions=versions,
            rewards=torch.tensor(rewards, dtype=torch.float32),
            group_ids=torch.arange(n) // group_size,
        )

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> RolloutBatch:
        """The same batch with every tensor on ``device``."""
        return RolloutBatch(
            input_ids=self.input_ids.to(device),
            prompt_length=self.prompt_length,
            completion_mask=self.completion_mask.to(device),
            old_logprobs=self.old_logprobs.to(device),
            weight_versions=self.weight_versions.to(device),
            rewards=self.rewards.to(device),
            group_ids=self.group_ids.to(device),
        )

    def rows(self, start: int, stop: int) -> RolloutBatch:
        return RolloutBatch(
            input_ids=self.input_ids[start:stop],
            prompt_length=self.prompt_length,
            completion_mask=self.completion_mask[start:stop],
            old_logprobs=self.old_logprobs[start:stop],
            weight_versions=self.weight_versions[start:stop],
            rewards=self.rewards[start:stop],
            group_ids=self.group_ids[start:stop],
        )
