"""The engine interface every rollout backend implements, and the settings that matter.

An engine takes token-id prompts with sampling settings and returns sampled tokens with one
logprob per token; it takes new weights from the trainer; it describes itself for the run record.
The settings a leg runs with (``EngineSettings``) are declared with the job spec, in
``parityscope.jobspec``, so the server validates them without torch. ``lm_head_dtype`` is
the precision of the final projection alone, on every engine; ``dtype`` is the model's own dtype.

Generation is split into :meth:`RolloutEngine.submit` and :meth:`RolloutEngine.collect` because a
pipelined RL loop hands the engine the next batch before it trains on the current one; whether
the engine starts sampling it at once (async scheduling) or waits is the engine's business.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from parityscope.jobspec import EngineSettings

__all__ = [
    "Completion",
    "EngineSettings",
    "RolloutEngine",
    "SamplingSettings",
]


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 16
    stop_token_id: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError("temperature must be positive; greedy decoding has no logprobs to compare")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must lie in (0, 1]")
        if self.top_k < 0 or self.max_tokens < 1:
            raise ValueError("top_k must be >= 0 and max_tokens >= 1")


@dataclass(frozen=True)
class Completion:
    """One sampled sequence. ``logprobs`` and ``weight_versions`` align with ``tokens``."""

    prompt: tuple[int, ...]
    tokens: tuple[int, ...]
    logprobs: tuple[float, ...]
    weight_versions: tuple[int, ...]

    def __post_init__(self) -> None:
        if not len(self.tokens) == len(self.logprobs) == len(self.weight_versions):
            raise ValueError("tokens, logprobs and weight_versions must have the same length")


class RolloutEngine(abc.ABC):
    """An inference backend as an RL trainer sees it."""

    name: str

    @abc.abstractmethod
    def submit(self, prompts: Sequence[Sequence[int]], sampling: SamplingSettings) -> None:
        """Queue one batch. An engine with async scheduling may start sampling it right away."""

    @abc.abstractmethod
    def collect(self) -> list[Completion]:
        """Finish the queued batch and return its completions in prompt order."""

    @abc.abstractmethod
    def update_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        """Take the trainer's weights (names as in the Hugging Face state dict)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """``{"name", "version", "settings"}`` for the run record; settings as in effect."""

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingSettings) -> list[Completion]:
        self.submit(prompts, sampling)
        return self.collect()

    def close(self) -> None:  # noqa: B027 - engines without resources need nothing here
        """Release the engine's resources."""
