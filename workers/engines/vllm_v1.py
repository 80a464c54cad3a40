"""The vLLM V1 adapter (vLLM >= 0.10.2; 0.18.1 is the release it is checked against), driven
through ``AsyncLLM`` as an online RL trainer drives it.

Each setting maps onto V1's own switch:

- ``logprobs_mode``: the ``logprobs_mode`` engine argument, ``processed_logprobs`` or
  ``raw_logprobs`` (V1's default is raw). Only from 0.10.2 do processed logprobs include
  temperature and top-k/top-p (0.10.0 and 0.10.1 take them before), so older releases are
  refused when the engine starts.
- ``prefix_caching``: ``enable_prefix_caching``, with ``block_size`` from the workload;
- ``async_scheduling``: the ``async_scheduling`` engine argument;
- ``dtype`` and ``lm_head_dtype``: the model's dtype, and the head alone through the head-only
  method of ``vllm_head`` when the two differ; what the loaded model really has is read back
  from the worker when the engine starts and a mismatch refuses the leg;
- ``weight_update``: a batch starts generating as soon as it is submitted, so it runs while the
  trainer steps. ``blocking`` brackets the load with ``pause_generation(mode="keep",
  clear_cache=False)`` and ``resume_generation()`` (running requests are frozen with their KV
  cache, the prefix cache is kept); ``inflight`` loads without pausing. The description counts
  how each update met generation (``update_paths``: ``between-batches``, ``paused``,
  ``unpaused``), so a leg says which paths it really exercised.

Weights load through ``AsyncLLM.collective_rpc`` with a function of this package, which vLLM
pickles to its engine-core process only with ``VLLM_ALLOW_INSECURE_SERIALIZATION=1``; the engine
is local and the function is this package's. ``VLLM_USE_V1`` is not set: 0.18.1 no longer knows
it. Each token is stamped with the weight version the driver had finished loading when the token
reached it (docs/VLLM.md says where that can lag behind the engine by one step).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

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
    "VLLM_V1_MIN_VERSION",
    "AsyncVllmDriver",
    "VllmV1Engine",
    "describe",
    "engine_env",
    "engine_kwargs",
    "sampling_kwargs",
    "weight_update_calls",
]

VLLM_V1_MIN_VERSION = "0.10.2"
_ENGINE = "vllm-v1"
_LOGPROBS_MODES = {"raw": "raw_logprobs", "processed": "processed_logprobs"}
_T = TypeVar("_T")


def engine_env(settings: EngineSettings) -> dict[str, str]:
    return {"VLLM_ALLOW_INSECURE_SERIALIZATION": "1", **head_dtype_env(settings)}


def engine_kwargs(
    settings: EngineSettings,
    checkpoint: Path,
    sampling_seed: int,
    *,
    max_model_len: int = 64,
    block_size: int = VLLM_BLOCK_SIZE,
    gpu_memory_utilization: float = 0.25,
) -> dict[str, Any]:
    """``AsyncEngineArgs`` for the leg (the same fields as ``EngineArgs``)."""
    return {
        "model": str(checkpoint),
        "skip_tokenizer_init": True,
        **head_dtype_args(_ENGINE, settings),
        "logprobs_mode": _LOGPROBS_MODES[settings.logprobs_mode],
        "enable_prefix_caching": settings.prefix_caching,
        "block_size": block_size,
        "async_scheduling": settings.async_scheduling,
        "seed": sampling_seed,
        "max_model_len": max_model_len,
        "enforce_eager": True,
        "gpu_memory_utilization": gpu_memory_utilization,
    }


def sampling_kwargs(sampling: SamplingSettings) -> dict[str, Any]:
    return vllm_common.sampling_kwargs(sampling, top_k_off=0)


def weight_update_calls(settings: EngineSettings) -> dict[str, Any]:
    """The ``AsyncLLM`` calls that bracket a weight load for this setting (keyword arguments).

    Blocking freezes the running requests in place ("keep"), keeps their KV cache and the
    prefix cache, loads, and resumes: the V0-equivalent update. In-flight does not pause.
    """
    if settings.weight_update == "blocking":
        return {"pause_generation": {"mode": "keep", "clear_cache": False}, "resume_generation": {}}
    return {"pause_generation": None, "resume_generation": None}


def describe(
    settings: EngineSettings,
    *,
    loaded: Mapping[str, str] | None = None,
    update_paths: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The run record's description; ``loaded`` is read back from the started engine's model."""
    return {
        "name": "vllm",
        "version": installed_vllm_version(f">= {VLLM_V1_MIN_VERSION} required (vLLM not installed here)"),
        "driver": "AsyncLLM",
        "settings": settings.to_dict(),
        "loaded": dict(loaded) if loaded is not None else None,
        "update_paths": dict(update_paths or {}),
    }


class AsyncVllmDriver(RolloutEngine):
    """Runs an ``AsyncLLM``-shaped engine on an event loop in a background thread.

    ``submit`` starts every request of the batch at once, so generation proceeds while the
    caller trains; ``collect`` waits for them; ``update_weights`` loads through
    ``collective_rpc``, paused or not as ``weight_update_calls`` says. Tests drive it with a
    stand-in engine that has the same methods.
    """

    name = _ENGINE

    def __init__(self, engine_factory: Callable[[], Any], settings: EngineSettings,
                 sampling_params: Callable[[SamplingSettings], Any]) -> None:
        self.settings = settings
        self._sampling_params = sampling_params
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-v1-driver", daemon=True)
        self._thread.start()
        self._ids = itertools.count()
        self._version = 0
        self._batch: list[concurrent.futures.Future[Completion]] | None = None
        self._running = 0
        self.update_paths: dict[str, int] = {}
        try:
            self._engine = self._call(self._create(engine_factory))
            self.loaded = self._call(self._engine.collective_rpc(describe_loaded_model))[0]
            check_loaded_model(_ENGINE, settings, self.loaded)
        except BaseException:
            self.close()
            raise

    # -- the interface ------------------------------------------------------------------
    def submit(self, prompts: Sequence[Sequence[int]], sampling: SamplingSettings) -> None:
        if self._batch is not None:
            raise RuntimeError("a batch is already queued; collect it before submitting another")
        params = self._sampling_params(sampling)
        self._batch = [
            asyncio.run_coroutine_threadsafe(self._request(tuple(int(t) for t in p), params), self._loop)
            for p in prompts
        ]

    def collect(self) -> list[Completion]:
        if self._batch is None:
            raise RuntimeError("nothing was submitted")
        batch, self._batch = self._batch, None
        return [future.result() for future in batch]

    def update_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        self._call(self._update(encode_weights(weights), version))

    def describe(self) -> dict[str, Any]:
        return describe(self.settings, loaded=self.loaded, update_paths=self.update_paths)

    def close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            self._engine = None
            engine.shutdown()
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    # -- on the loop ----------------------------------------------------------------------
    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @staticmethod
    async def _create(engine_factory: Callable[[], Any]) -> Any:
        return engine_factory()  # on the loop's thread: AsyncLLM binds its output task to it

    async def _request(self, prompt: tuple[int, ...], params: Any) -> Completion:
        self._running += 1
        versions: list[int] = []
        final = None
        try:
            stream = self._engine.generate({"prompt_token_ids": list(prompt)}, params, f"leg-{next(self._ids)}")
            async for output in stream:
                # Cumulative outputs: the tokens new in this one reached us under this version.
                versions.extend([self._version] * (len(output.outputs[0].token_ids) - len(versions)))
                final = output
        finally:
            self._running -= 1
        if final is None:
            raise RuntimeError("vLLM returned no output for a request")
        sample = final.outputs[0]
        tokens = tuple(int(t) for t in sample.token_ids)
        logprobs = tuple(float(sample.logprobs[i][t].logprob) for i, t in enumerate(tokens))
        return Completion(prompt, tokens, logprobs, tuple(versions[: len(tokens)]))

    async def _update(self, payload: bytes, version: int) -> None:
        calls = weight_update_calls(self.settings)
        pause = calls["pause_generation"]
        running = self._running > 0
        if pause is not None:
            await self._engine.pause_generation(**pause)
        try:
            await self._engine.collective_rpc(load_weights_on_worker, args=(payload,))
            self._version = version
        finally:
            if pause is not None:
                await self._engine.resume_generation(**calls["resume_generation"])
        path = ("paused" if pause is not None else "unpaused") if running else "between-batches"
        self.update_paths[path] = self.update_paths.get(path, 0) + 1


class VllmV1Engine(AsyncVllmDriver):
    """``AsyncVllmDriver`` over a real ``vllm.v1.engine.async_llm.AsyncLLM``."""

    def __init__(self, checkpoint: Path, settings: EngineSettings, sampling_seed: int, **options: Any) -> None:
        kwargs = engine_kwargs(settings, Path(checkpoint), sampling_seed, **options)
        require_vllm(_ENGINE, minimum=VLLM_V1_MIN_VERSION)
        # Read when the engine (and its engine-core process) is created, so set before.
        apply_env(engine_env(settings))
        from vllm import SamplingParams
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        if "quantization" in kwargs:
            from workers.engines.vllm_head import register

            register()

        def create() -> Any:
            return AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))

        super().__init__(create, settings, lambda sampling: SamplingParams(**sampling_kwargs(sampling)))
