"""What the vLLM V0 and V1 adapters share: the offline ``vllm.LLM`` driver and the weight loader.

vLLM is imported lazily, inside the engine's constructor, so this module and the pure mapping
functions of both adapters import and test on hosts without vLLM or a GPU.

The vLLM API used here was checked against vLLM's published source and documentation, not
against a running install: ``LLM(**engine_args)``,
``LLM.generate(prompts, sampling_params, use_tqdm=False)`` with ``{"prompt_token_ids": [...]}``
prompts, ``RequestOutput.outputs[0].token_ids`` / ``.logprobs`` (one ``{token_id: Logprob}`` per
generated token), ``LLM.collective_rpc(callable, args=...)`` whose callable receives the worker
as its first argument, and ``model.load_weights(weights=[(hf_name, tensor), ...])`` on the
worker's model, which takes Hugging Face parameter names and fuses q/k/v and gate/up itself.
Nothing here has been run on a GPU host by the project's CI; ``workers/vllm_smoke.py`` is the
check to run there.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from workers.engines.base import Completion, EngineSettings, RolloutEngine, SamplingSettings
from workers.errors import EngineUnavailable, UnsupportedSetting

__all__ = [
    "OfflineVllmEngine",
    "head_dtype_args",
    "installed_vllm_version",
    "load_weights_on_worker",
    "sampling_kwargs",
]


def head_dtype_args(engine: str, settings: EngineSettings, model_dtype: str, *, fp32_head_override: bool) -> dict[str, Any]:
    """``dtype`` (and for V1 ``hf_overrides``) giving the requested lm_head precision.

    vLLM has no switch that rounds *only* the head to bf16, so a bf16 head means a bf16 model.
    An fp32 head on an fp32 model needs nothing. An fp32 head on a bf16 model needs the
    ``head_dtype`` override, which only V1 builds that extend it to generation models honour
    (vLLM PR #48390); vLLM 0.8.5 has no equivalent short of a custom quantization plugin.
    """
    if model_dtype not in ("float32", "bfloat16"):
        raise UnsupportedSetting(engine, "model_dtype", f"expected float32 or bfloat16, got {model_dtype!r}")
    if settings.lm_head_dtype == "bf16":
        return {"dtype": "bfloat16"}
    if model_dtype == "float32":
        return {"dtype": "float32"}
    if not fp32_head_override:
        raise UnsupportedSetting(
            engine, "lm_head_dtype", "an fp32 head on a bf16 model needs a patched vLLM; use model_dtype=float32"
        )
    return {"dtype": "bfloat16", "hf_overrides": {"head_dtype": "float32"}}


def sampling_kwargs(sampling: SamplingSettings, *, top_k_off: int) -> dict[str, Any]:
    """``SamplingParams`` arguments; ``top_k_off`` is the generation's value that disables top-k."""
    return {
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else top_k_off,
        "max_tokens": sampling.max_tokens,
        "logprobs": 1,
        "detokenize": False,
        "stop_token_ids": [sampling.stop_token_id] if sampling.stop_token_id is not None else None,
    }


def installed_vllm_version(missing: str) -> str:
    """The installed vLLM's version, or ``missing`` on a host without vLLM."""
    try:
        return metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return missing


def load_weights_on_worker(worker: Any, named_tensors: Sequence[tuple[str, torch.Tensor]]) -> int:
    """Runs inside each vLLM worker (sent through ``collective_rpc``); returns tensors loaded."""
    runner = worker.model_runner
    model = runner.get_model() if hasattr(runner, "get_model") else runner.model
    device = next(model.parameters()).device
    model.load_weights(weights=[(name, tensor.to(device)) for name, tensor in named_tensors])
    return len(named_tensors)


class OfflineVllmEngine(RolloutEngine):
    """Drives ``vllm.LLM``. Subclasses name the module that maps settings for their vLLM
    generation (``mapping``: a module with ``engine_env``, ``engine_kwargs``, ``sampling_kwargs``
    and ``describe``, pure functions unit-tested without vLLM).

    ``generate`` on the offline ``LLM`` is synchronous, so the next batch is sampled at
    :meth:`collect` and weights always load between batches: an update never overlaps
    generation here. Engine-internal behaviour (async scheduling, prefix caching, logprobs mode)
    is vLLM's own.
    """

    name = "vllm"
    mapping: ModuleType

    def __init__(self, checkpoint: Path, settings: EngineSettings, sampling_seed: int, **options: Any) -> None:
        self.settings = settings
        self.sampling_seed = sampling_seed
        self.options = dict(options)
        # Refuse before touching the environment, so a host without vLLM is left as it was.
        if importlib.util.find_spec("vllm") is None:
            raise EngineUnavailable(f"{self.name} needs vLLM installed on this host")
        # The V0/V1 switch is read when the engine is created, so it must be set before.
        os.environ.update(self.mapping.engine_env(settings))
        import vllm
        self._vllm = vllm
        self._llm = vllm.LLM(
            **self.mapping.engine_kwargs(settings, Path(checkpoint), sampling_seed, **self.options)
        )
        self._queued: tuple[list[list[int]], SamplingSettings] | None = None
        self._version = 0

    def submit(self, prompts: Sequence[Sequence[int]], sampling: SamplingSettings) -> None:
        if self._queued is not None:
            raise RuntimeError("a batch is already queued; collect it before submitting another")
        self._queued = ([list(map(int, p)) for p in prompts], sampling)

    def collect(self) -> list[Completion]:
        if self._queued is None:
            raise RuntimeError("nothing was submitted")
        prompts, sampling = self._queued
        self._queued = None
        params = self._vllm.SamplingParams(**self.mapping.sampling_kwargs(sampling))
        outputs = self._llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        completions = []
        for prompt, output in zip(prompts, outputs, strict=True):
            sample = output.outputs[0]
            tokens = tuple(int(t) for t in sample.token_ids)
            logprobs = tuple(float(sample.logprobs[i][t].logprob) for i, t in enumerate(tokens))
            completions.append(Completion(tuple(prompt), tokens, logprobs, (self._version,) * len(tokens)))
        return completions

    def update_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        # CPU tensors travel to the workers; each moves them to its own device.
        named = [(name, tensor.detach().cpu()) for name, tensor in weights.items()]
        self._llm.collective_rpc(load_weights_on_worker, args=(named,))
        self._version = version

    def describe(self) -> dict[str, Any]:
        return self.mapping.describe(self.settings)

    def close(self) -> None:
        self._llm = None
