"""The demo job: one workload, four legs on the torch engine (docs/WORKERS.md).

- ``reference``: V0-like settings: processed logprobs, fp32 head, no prefix cache, no async
  scheduling, blocking weight update.
- ``reference-replica``: the same settings with another sampling seed; with the reference it
  spans the seed-to-seed band that parity is judged against.
- ``v1-initial``: V1's defaults as first deployed: raw logprobs, bf16 head, prefix caching,
  async scheduling, in-flight weight update.
- ``v1-fixed``: the reference settings again, on its own seed: what V1 looks like once layers 1
  and 2 are fixed.

The workload's figures were chosen by measurement (docs/WORKERS.md): temperature below 1 so raw
and processed logprobs differ, GSPO's ε from the GSPO paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.engines.base import EngineSettings

__all__ = ["DEMO_LEGS", "DEMO_WORKLOAD", "DemoLeg"]

DEMO_WORKLOAD: dict[str, Any] = {
    "model": "llama-0.4m",
    "task": "sort4",
    "seed": 7,
    "steps": 60,
    "batch_size": 16,
    "group_size": 4,
    "max_tokens": 5,
    "lr": 1e-4,
    "temperature": 0.7,
    "top_p": 1.0,
    "objective": "gspo",
    "epsilon_low": 3e-4,
    "epsilon_high": 4e-4,
    "minibatches": 2,
    "warm_start_steps": 40,
}

_REFERENCE = EngineSettings(
    logprobs_mode="processed",
    prefix_caching=False,
    async_scheduling=False,
    weight_update="blocking",
    lm_head_dtype="fp32",
)
_V1_INITIAL = EngineSettings(
    logprobs_mode="raw",
    prefix_caching=True,
    async_scheduling=True,
    weight_update="inflight",
    lm_head_dtype="bf16",
)


@dataclass(frozen=True)
class DemoLeg:
    label: str
    settings: EngineSettings
    sampling_seed: int
    engine: str = "torch"
    role: str = "candidate"  # "reference" legs form the reference band


DEMO_LEGS: tuple[DemoLeg, ...] = (
    DemoLeg("reference", _REFERENCE, sampling_seed=1, role="reference"),
    DemoLeg("reference-replica", _REFERENCE, sampling_seed=2, role="reference"),
    DemoLeg("v1-initial", _V1_INITIAL, sampling_seed=3),
    DemoLeg("v1-fixed", _REFERENCE, sampling_seed=4),
)
