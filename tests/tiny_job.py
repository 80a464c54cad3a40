"""A paired job small enough for the torch engine to run each leg in seconds on CPU."""

from __future__ import annotations

from typing import Any

# ``minibatches`` is left out on purpose: the API fills in the workload's defaults.
TINY_WORKLOAD: dict[str, Any] = {
    "model": "llama-0.4m",
    "task": "sort4",
    "seed": 7,
    "steps": 3,
    "batch_size": 4,
    "group_size": 2,
    "max_tokens": 5,
    "lr": 3e-4,
    "temperature": 0.7,
    "top_p": 1.0,
    "objective": "gspo",
    "epsilon_low": 3e-4,
    "epsilon_high": 4e-4,
    "warm_start_steps": 10,
}
# V1's settings as first deployed (the demo's v1-initial leg).
V1_INITIAL: dict[str, Any] = {
    "logprobs_mode": "raw",
    "prefix_caching": True,
    "async_scheduling": True,
    "weight_update": "inflight",
    "lm_head_dtype": "bf16",
}
