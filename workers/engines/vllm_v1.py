"""The vLLM V1 adapter: current V1 engine arguments, the candidate backend.

Each setting maps onto V1's own switch, so a V1 leg runs exactly the configuration it claims:

- ``logprobs_mode``: V1's ``logprobs_mode`` engine argument, ``processed_logprobs`` or
  ``raw_logprobs`` (V1's default is raw);
- ``prefix_caching``: ``enable_prefix_caching`` (on by default in V1);
- ``async_scheduling``: the ``async_scheduling`` engine argument;
- ``lm_head_dtype``: see ``vllm_common.head_dtype_args`` (fp32 head via the model dtype, or via
  ``hf_overrides={"head_dtype": "float32"}`` on a bf16 model);
- ``weight_update``: weights load through ``LLM.collective_rpc``; a serving deployment on
  ``AsyncLLM`` pauses around it as :func:`weight_update_calls` says (``pause_generation(
  mode="keep", clear_cache=False)`` then ``resume_generation()`` for a blocking update, no pause
  for in-flight). The offline ``LLM`` driven here generates synchronously, so its updates
  always fall between batches; :func:`describe` reports that as the effective setting.

``VLLM_ALLOW_INSECURE_SERIALIZATION=1`` lets ``collective_rpc`` pickle the weight-loading
function to V1's engine-core process; the engine is local and the function is this package's.
See ``vllm_common`` for how this API was checked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from workers.engines import vllm_common
from workers.engines.base import EngineSettings, SamplingSettings
from workers.engines.vllm_common import OfflineVllmEngine, head_dtype_args, installed_vllm_version

__all__ = [
    "VllmV1Engine",
    "describe",
    "engine_env",
    "engine_kwargs",
    "sampling_kwargs",
    "weight_update_calls",
]

_ENGINE = "vllm-v1"
_LOGPROBS_MODES = {"raw": "raw_logprobs", "processed": "processed_logprobs"}


def engine_env(settings: EngineSettings) -> dict[str, str]:
    return {"VLLM_USE_V1": "1", "VLLM_ALLOW_INSECURE_SERIALIZATION": "1"}


def engine_kwargs(
    settings: EngineSettings,
    checkpoint: Path,
    sampling_seed: int,
    *,
    model_dtype: str = "float32",
    max_model_len: int = 32,
    gpu_memory_utilization: float = 0.25,
) -> dict[str, Any]:
    return {
        "model": str(checkpoint),
        "skip_tokenizer_init": True,
        **head_dtype_args(_ENGINE, settings, model_dtype, fp32_head_override=True),
        "logprobs_mode": _LOGPROBS_MODES[settings.logprobs_mode],
        "enable_prefix_caching": settings.prefix_caching,
        "async_scheduling": settings.async_scheduling,
        "seed": sampling_seed,
        "max_model_len": max_model_len,
        "enforce_eager": True,
        "gpu_memory_utilization": gpu_memory_utilization,
    }


def sampling_kwargs(sampling: SamplingSettings) -> dict[str, Any]:
    return vllm_common.sampling_kwargs(sampling, top_k_off=0)


def weight_update_calls(settings: EngineSettings) -> dict[str, Any]:
    """How a serving ``AsyncLLM`` brackets a weight load for this setting.

    Blocking freezes the running requests in place ("keep"), keeps their KV cache and the
    prefix cache, loads, and resumes: the V0-equivalent update. In-flight does not pause.
    """
    if settings.weight_update == "blocking":
        return {"pause_generation": {"mode": "keep", "clear_cache": False}, "resume_generation": {}}
    return {"pause_generation": None, "resume_generation": None}


def describe(settings: EngineSettings) -> dict[str, Any]:
    effective = settings.to_dict()
    # The offline LLM never overlaps an update with generation (see the module docstring).
    effective["weight_update"] = "between-batches"
    effective["requested_weight_update"] = settings.weight_update
    return {
        "name": "vllm",
        "version": installed_vllm_version("unknown (vLLM not installed)"),
        "settings": {**effective, "VLLM_USE_V1": 1},
    }


class VllmV1Engine(OfflineVllmEngine):
    name = "vllm-v1"
    mapping = sys.modules[__name__]
