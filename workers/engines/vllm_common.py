"""What the vLLM V0 and V1 adapters share: version checks, the head dtype, the weight payload and
the functions that run inside vLLM's worker.

vLLM is imported lazily, inside the engines' constructors, so this module and the pure mapping
functions of both adapters import and test on hosts without vLLM or a GPU. Every vLLM name used
here and in the adapters is checked against the released 0.8.5 and 0.18.1 sources by the contract
tests (``tests/vllm_contract``, docs/VLLM.md).

Weights travel as one safetensors byte string. vLLM 0.18.1 runs its engine core in another
process and msgpack-encodes utility-call arguments without type information, so a tensor passed
to ``collective_rpc`` arrives as a ``[dtype, shape, buffer-index]`` list; bytes arrive as bytes.
The worker loads the tensors one at a time and checks that each load reports exactly one loaded
parameter, so a name the model does not know fails the update instead of being skipped.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from parityscope.jobspec import VLLM_BLOCK_SIZE
from workers.engines.base import EngineSettings, SamplingSettings
from workers.engines.vllm_head import HEAD_DTYPE_ENV, HEAD_DTYPES, METHOD_NAME
from workers.errors import EngineUnavailable, UnsupportedSetting

__all__ = [
    "UPDATE_PATHS",
    "VLLM_BLOCK_SIZE",
    "apply_env",
    "check_loaded_model",
    "describe_loaded_model",
    "encode_weights",
    "head_dtype_args",
    "head_dtype_env",
    "installed_vllm_version",
    "load_weights_on_worker",
    "require_vllm",
    "sampling_kwargs",
    "version_tuple",
]

# vLLM caches full blocks of this many tokens (its default on CUDA in 0.8.5 and 0.18.1).
# How a weight update met generation, the same names on V0 and V1 (docs/VLLM.md):
# between-batches: nothing was running; paused: requests were running and generation was paused
# around the load ("keep", caches kept); unpaused: requests were running and kept running.
UPDATE_PATHS: tuple[str, ...] = ("between-batches", "paused", "unpaused")


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.10.2"`` -> ``(0, 10, 2)``; local and pre-release tails are ignored."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts)


def installed_vllm_version(missing: str) -> str:
    """The installed vLLM's version, or ``missing`` on a host without vLLM."""
    try:
        return metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return missing


def require_vllm(engine: str, *, minimum: str, below: str | None = None) -> str:
    """The installed vLLM version if it lies in [minimum, below), else a clear refusal."""
    if importlib.util.find_spec("vllm") is None:
        raise EngineUnavailable(f"{engine} needs vLLM installed on this host")
    installed = installed_vllm_version("")
    have = version_tuple(installed)
    if not have or have < version_tuple(minimum) or (below is not None and have >= version_tuple(below)):
        wanted = f">= {minimum}" + (f", < {below}" if below else "")
        raise EngineUnavailable(f"{engine} needs vLLM {wanted}; this host has vLLM {installed or 'of unknown version'}")
    return installed


def head_dtype_args(engine: str, settings: EngineSettings) -> dict[str, Any]:
    """``dtype`` for the model and, when the head runs in another dtype, the head-only method.

    ``lm_head_dtype`` is the head alone (as on the torch engine); ``dtype`` is the rest of the
    model. A head in the model's dtype needs nothing; any other head runs through the
    ``vllm_head`` quantization method.
    """
    args: dict[str, Any] = {"dtype": settings.dtype}
    if HEAD_DTYPES[settings.lm_head_dtype] != settings.dtype:
        args["quantization"] = METHOD_NAME
    return args


def head_dtype_env(settings: EngineSettings) -> dict[str, str]:
    return {HEAD_DTYPE_ENV: HEAD_DTYPES[settings.lm_head_dtype]}


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


def encode_weights(weights: Mapping[str, torch.Tensor]) -> bytes:
    """The trainer's weights as one safetensors byte string (survives any RPC encoding)."""
    return save_safetensors({name: tensor.detach().to("cpu").contiguous() for name, tensor in weights.items()})


def _worker_model(worker: Any) -> torch.nn.Module:
    runner = worker.model_runner
    return runner.get_model() if hasattr(runner, "get_model") else runner.model


def load_weights_on_worker(worker: Any, payload: bytes) -> int:
    """Runs inside each vLLM worker (sent through ``collective_rpc``); returns tensors loaded.

    ``payload`` is :func:`encode_weights`' output. Each tensor is loaded on its own so that
    ``load_weights``' returned set (the parameters it wrote, under vLLM's fused names) tells
    whether that tensor landed.
    """
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"weight payload must be safetensors bytes, got {type(payload).__name__}")
    model = _worker_model(worker)
    device = next(model.parameters()).device
    missed = []
    tensors = load_safetensors(bytes(payload))
    for name, tensor in tensors.items():
        loaded = model.load_weights(weights=[(name, tensor.to(device))])
        if loaded is None or len(loaded) != 1:
            missed.append(name)
    if missed:
        raise RuntimeError(f"vLLM's model did not load {len(missed)} of {len(tensors)} tensors: {missed[:8]}")
    return len(tensors)


def describe_loaded_model(worker: Any) -> dict[str, str]:
    """Runs inside a vLLM worker: the dtypes the loaded model really has and computes in."""
    model = _worker_model(worker)
    head = model.lm_head
    method = getattr(head, "quant_method", None)
    compute = getattr(method, "compute_dtype", head.weight.dtype)
    body = next(p.dtype for n, p in model.named_parameters() if not n.startswith("lm_head"))
    return {
        "dtype": str(body).removeprefix("torch."),
        "lm_head_weight_dtype": str(head.weight.dtype).removeprefix("torch."),
        "lm_head_compute_dtype": str(compute).removeprefix("torch."),
        "lm_head_method": type(method).__name__ if method is not None else "none",
    }


def check_loaded_model(engine: str, settings: EngineSettings, loaded: Mapping[str, str]) -> None:
    """Refuse to run a leg whose loaded model does not have the dtypes its settings ask for."""
    if loaded.get("dtype") != settings.dtype:
        raise UnsupportedSetting(engine, "dtype", f"asked for {settings.dtype}, the loaded model has {loaded.get('dtype')}")
    want = HEAD_DTYPES[settings.lm_head_dtype]
    if loaded.get("lm_head_compute_dtype") != want:
        raise UnsupportedSetting(
            engine, "lm_head_dtype",
            f"asked for {want}, the loaded lm_head computes in {loaded.get('lm_head_compute_dtype')}",
        )


def apply_env(env: Mapping[str, str]) -> None:
    """Set the variables vLLM reads when the engine is created (inherited by its processes)."""
    os.environ.update(env)
