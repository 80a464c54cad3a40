"""The engine interface every rollout backend implements, and the settings that matter.

An engine takes token-id prompts with sampling settings and returns sampled tokens with one
logprob per token; it takes new weights from the trainer; it describes itself for the run record.
The settings are the same for every engine and each belongs to one layer of docs/WORKERS.md:
``logprobs_mode`` is semantic, the others are the inference path. ``lm_head_dtype`` is the
precision of the final projection alone, on every engine; ``dtype`` is the model's own dtype,
a separate inference-path setting (an engine that cannot run a dtype refuses it).

Generation is split into :meth:`RolloutEngine.submit` and :meth:`RolloutEngine.collect` because a
pipelined RL loop hands the engine the next batch before it trains on the current one; whether
the engine starts sampling it at once (async scheduling) or waits is the engine's business.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch

from workers.errors import InvalidEngineSettings

__all__ = [
    "Completion",
    "EngineSettings",
    "RolloutEngine",
    "SamplingSettings",
]

LogprobsMode = Literal["raw", "processed"]
WeightUpdate = Literal["blocking", "inflight"]
HeadDtype = Literal["fp32", "bf16"]
ModelDtype = Literal["float32", "bfloat16"]

# Spellings users bring from the engines' own configs; each maps onto one canonical value.
_ALIASES: dict[str, dict[str, Any]] = {
    "logprobs_mode": {
        "raw": "raw", "raw_logprobs": "raw",
        "processed": "processed", "processed_logprobs": "processed",
    },
    "weight_update": {
        "blocking": "blocking", "block": "blocking",
        "inflight": "inflight", "in-flight": "inflight", "in_flight": "inflight",
    },
    "lm_head_dtype": {
        "fp32": "fp32", "float32": "fp32",
        "bf16": "bf16", "bfloat16": "bf16",
    },
    "dtype": {
        "float32": "float32", "fp32": "float32",
        "bfloat16": "bfloat16", "bf16": "bfloat16",
    },
}
_SWITCHES: dict[Any, bool] = {True: True, False: False, "on": True, "off": False,
                              "true": True, "false": False}


@dataclass(frozen=True)
class EngineSettings:
    """The backend settings a leg runs with. Defaults are the reference (V0-like) behaviour."""

    logprobs_mode: LogprobsMode = "processed"
    prefix_caching: bool = False
    async_scheduling: bool = False
    weight_update: WeightUpdate = "blocking"
    lm_head_dtype: HeadDtype = "fp32"
    # The model's dtype (everything but the head); its own inference-path setting.
    dtype: ModelDtype = "float32"

    def __post_init__(self) -> None:
        for name in ("logprobs_mode", "weight_update", "lm_head_dtype", "dtype"):
            value = getattr(self, name)
            if value not in set(_ALIASES[name].values()):
                allowed = ", ".join(sorted(set(_ALIASES[name].values())))
                raise InvalidEngineSettings(name, f"expected one of {allowed}, got {value!r}")
        for name in ("prefix_caching", "async_scheduling"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidEngineSettings(name, f"expected a boolean, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any] | None) -> EngineSettings:
        """Parse the JSON dict the job API passes; missing keys take the reference defaults."""
        if payload is None:
            return cls()
        if not isinstance(payload, Mapping):
            raise InvalidEngineSettings("<root>", f"expected an object, got {type(payload).__name__}")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in payload.items():
            if key not in known:
                raise InvalidEngineSettings(
                    str(key), f"unknown setting; known: {', '.join(sorted(known))}"
                )
            lookup = raw.lower() if isinstance(raw, str) else raw
            if key in _ALIASES:
                canonical = _ALIASES[key].get(lookup) if isinstance(lookup, str) else None
                if canonical is None:
                    allowed = ", ".join(sorted(set(_ALIASES[key].values())))
                    raise InvalidEngineSettings(key, f"expected one of {allowed}, got {raw!r}")
                values[key] = canonical
            else:
                # Only real booleans and on/off words: 0/1 or "yes" are too easy to misread.
                switch = _SWITCHES.get(lookup) if isinstance(lookup, str | bool) else None
                if switch is None:
                    raise InvalidEngineSettings(key, f"expected true/false or on/off, got {raw!r}")
                values[key] = switch
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    @property
    def filters(self) -> bool:
        return self.top_p < 1.0 or self.top_k > 0


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
