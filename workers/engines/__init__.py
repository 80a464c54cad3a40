"""Rollout engines: the interface, the built-in torch engine and the vLLM adapters."""

from workers.engines.base import Completion, EngineSettings, RolloutEngine, SamplingSettings

__all__ = ["Completion", "EngineSettings", "RolloutEngine", "SamplingSettings"]
