"""The vLLM V0 adapter: vllm==0.8.5 with ``VLLM_USE_V1=0``, the reference backend.

V0's sampler computes logprobs after temperature, penalties and top-k/top-p, from the same
processed logits it samples from, and 0.8.5 has no option to return raw ones; it has no
``async_scheduling`` engine argument either. Settings that V0 cannot honour are refused with
:class:`~parityscope.jobspec.UnsupportedSetting` (``parityscope.jobspec.check_supported``) instead of being silently ignored, because a
reference that is not what it claims would poison every comparison made against it.

Engine arguments used (vLLM 0.8.5 ``EngineArgs``): ``model``, ``skip_tokenizer_init`` (the policy
has no tokenizer; prompts are token ids), ``dtype``, ``enable_prefix_caching``, ``seed``,
``max_model_len``, ``enforce_eager``, ``gpu_memory_utilization``. Sampling: ``temperature``,
``top_p``, ``top_k`` (-1 disables it in 0.8.5; 0 is rejected there), ``max_tokens``,
``logprobs=1`` (the sampled token's logprob is always included), ``detokenize=False``,
``stop_token_ids``. See ``vllm_common`` for how this API was checked.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from parityscope.jobspec import check_supported
from workers.engines import vllm_common
from workers.engines.base import EngineSettings, SamplingSettings
from workers.engines.vllm_common import OfflineVllmEngine, head_dtype_args, installed_vllm_version

__all__ = ["VLLM_V0_VERSION", "VllmV0Engine", "describe", "engine_env", "engine_kwargs", "sampling_kwargs"]

VLLM_V0_VERSION = "0.8.5"
_ENGINE = "vllm-v0"


def engine_env(settings: EngineSettings) -> dict[str, str]:
    return {"VLLM_USE_V1": "0"}


def engine_kwargs(
    settings: EngineSettings,
    checkpoint: Path,
    sampling_seed: int,
    *,
    model_dtype: str = "float32",
    max_model_len: int = 32,
    gpu_memory_utilization: float = 0.25,
) -> dict[str, Any]:
    check_supported(_ENGINE, settings)
    return {
        "model": str(checkpoint),
        "skip_tokenizer_init": True,
        **head_dtype_args(_ENGINE, settings, model_dtype, fp32_head_override=False),
        "enable_prefix_caching": settings.prefix_caching,
        "seed": sampling_seed,
        "max_model_len": max_model_len,
        "enforce_eager": True,
        "gpu_memory_utilization": gpu_memory_utilization,
    }


def sampling_kwargs(sampling: SamplingSettings) -> dict[str, Any]:
    return vllm_common.sampling_kwargs(sampling, top_k_off=-1)  # 0.8.5 rejects top_k=0


def describe(settings: EngineSettings) -> dict[str, Any]:
    return {
        "name": "vllm",
        "version": installed_vllm_version(f"{VLLM_V0_VERSION} required (vLLM not installed here)"),
        "settings": {**settings.to_dict(), "VLLM_USE_V1": 0},
    }


class VllmV0Engine(OfflineVllmEngine):
    name = "vllm-v0"
    mapping = sys.modules[__name__]
