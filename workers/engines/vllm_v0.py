"""The vLLM V0 adapter: vllm==0.8.5 with ``VLLM_USE_V1=0``, the reference backend.

V0's sampler computes logprobs after temperature, penalties and top-k/top-p, from the same
processed logits it samples from, and 0.8.5 has no option to return raw ones; it has no
``async_scheduling`` engine argument either. Settings that V0 cannot honour are refused with
:class:`~parityscope.jobspec.UnsupportedSetting` (``parityscope.jobspec.check_supported``) instead of being silently ignored, because a
reference that is not what it claims would poison every comparison made against it.

It drives the offline ``vllm.LLM``: ``generate`` is synchronous, so every weight update lands
while nothing is generating. Its description reports that as the ``between-batches`` update path,
the name the V1 driver uses for the same situation. V0 in 0.8.5 runs its worker in-process, so
``collective_rpc`` passes its arguments as they are; the payload is the same safetensors bytes V1
needs anyway.

Engine arguments used (vLLM 0.8.5 ``EngineArgs``): ``model``, ``skip_tokenizer_init`` (the policy
has no tokenizer; prompts are token ids), ``dtype``, ``quantization`` (the head-only method of
``vllm_head`` when the head's dtype differs from the model's), ``enable_prefix_caching``,
``block_size``, ``seed``, ``max_model_len``, ``enforce_eager``, ``gpu_memory_utilization``.
Sampling: ``temperature``, ``top_p``, ``top_k`` (-1 disables it in 0.8.5; 0 is rejected there),
``max_tokens``, ``logprobs=1``, ``detokenize=False``, ``stop_token_ids``. The contract tests check
each of these names against the 0.8.5 release (docs/VLLM.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from parityscope.jobspec import check_supported
from workers.engines import vllm_common
from workers.engines.base import Completion, EngineSettings, RolloutEngine, SamplingSettings
from workers.engines.vllm_common import (
    VLLM_BLOCK_SIZE,
    apply_env,
    check_loaded_model,
    describe_loaded_model,
    encode_weights,
    head_dtype_args,
    head_dtype_env,
    installed_vllm_version,
    load_weights_on_worker,
    require_vllm,
)

__all__ = [
    "VLLM_V0_BELOW",
    "VLLM_V0_VERSION",
    "VllmV0Engine",
    "describe",
    "engine_env",
    "engine_kwargs",
    "sampling_kwargs",
]

VLLM_V0_VERSION = "0.8.5"
VLLM_V0_BELOW = "0.9"  # the adapter is checked against the 0.8 series only
_ENGINE = "vllm-v0"


def engine_env(settings: EngineSettings) -> dict[str, str]:
    return {"VLLM_USE_V1": "0", **head_dtype_env(settings)}


def engine_kwargs(
    settings: EngineSettings,
    checkpoint: Path,
    sampling_seed: int,
    *,
    max_model_len: int = 64,
    block_size: int = VLLM_BLOCK_SIZE,
    gpu_memory_utilization: float = 0.25,
) -> dict[str, Any]:
    check_supported(_ENGINE, settings)
    return {
        "model": str(checkpoint),
        "skip_tokenizer_init": True,
        **head_dtype_args(_ENGINE, settings),
        "enable_prefix_caching": settings.prefix_caching,
        "block_size": block_size,
        "seed": sampling_seed,
        "max_model_len": max_model_len,
        "enforce_eager": True,
        "gpu_memory_utilization": gpu_memory_utilization,
    }


def sampling_kwargs(sampling: SamplingSettings) -> dict[str, Any]:
    return vllm_common.sampling_kwargs(sampling, top_k_off=-1)  # 0.8.5 rejects top_k=0


def describe(
    settings: EngineSettings,
    *,
    loaded: Mapping[str, str] | None = None,
    update_paths: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The run record's description; ``loaded`` is read back from the started engine's model."""
    return {
        "name": "vllm",
        "version": installed_vllm_version(f"{VLLM_V0_VERSION} required (vLLM not installed here)"),
        "driver": "LLM",
        "settings": {**settings.to_dict(), "VLLM_USE_V1": 0},
        "loaded": dict(loaded) if loaded is not None else None,
        "update_paths": dict(update_paths or {}),
    }


class VllmV0Engine(RolloutEngine):
    """Drives ``vllm.LLM`` 0.8.5 with V0; updates always fall between ``generate`` calls."""

    name = _ENGINE

    def __init__(self, checkpoint: Path, settings: EngineSettings, sampling_seed: int, **options: Any) -> None:
        kwargs = engine_kwargs(settings, Path(checkpoint), sampling_seed, **options)  # refuses first
        require_vllm(_ENGINE, minimum=VLLM_V0_VERSION, below=VLLM_V0_BELOW)
        self.settings = settings
        # Read when the engine is created, so set before.
        apply_env(engine_env(settings))
        import vllm

        if "quantization" in kwargs:
            from workers.engines.vllm_head import register

            register()
        self._vllm = vllm
        self._llm = vllm.LLM(**kwargs)
        self.loaded = self._llm.collective_rpc(describe_loaded_model)[0]
        check_loaded_model(_ENGINE, settings, self.loaded)
        self._queued: tuple[list[list[int]], SamplingSettings] | None = None
        self._version = 0
        self.update_paths: dict[str, int] = {}

    def submit(self, prompts: Sequence[Sequence[int]], sampling: SamplingSettings) -> None:
        if self._queued is not None:
            raise RuntimeError("a batch is already queued; collect it before submitting another")
        self._queued = ([list(map(int, p)) for p in prompts], sampling)

    def collect(self) -> list[Completion]:
        if self._queued is None:
            raise RuntimeError("nothing was submitted")
        prompts, sampling = self._queued
        self._queued = None
        params = self._vllm.SamplingParams(**sampling_kwargs(sampling))
        outputs = self._llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        completions = []
        for prompt, output in zip(prompts, outputs, strict=True):
            sample = output.outputs[0]
            tokens = tuple(int(t) for t in sample.token_ids)
            logprobs = tuple(float(sample.logprobs[i][t].logprob) for i, t in enumerate(tokens))
            completions.append(Completion(tuple(prompt), tokens, logprobs, (self._version,) * len(tokens)))
        return completions

    def update_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        self._llm.collective_rpc(load_weights_on_worker, args=(encode_weights(weights),))
        self._version = version
        self.update_paths["between-batches"] = self.update_paths.get("between-batches", 0) + 1

    def describe(self) -> dict[str, Any]:
        return describe(self.settings, loaded=self.loaded, update_paths=self.update_paths)

    def close(self) -> None:
        self._llm = None
