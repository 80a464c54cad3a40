"""One leg of a paired job: N RL steps on one engine, reported step by step.

A leg is the loop an online RL trainer runs: the engine samples a batch, the trainer takes a step
on it, the new weights go back to the engine. The loop is pipelined the way PipelineRL's is: the
next batch is handed to the engine *before* the trainer steps on the current one, so an engine
with async scheduling starts sampling it with the weights it has then. Every leg of a job shares
the workload (checkpoint, prompts and their order, sampling settings) and differs only in engine
settings and its own sampling seed.

The job loop calls :func:`run_leg` and posts each step's metrics from ``on_step``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parityscope.jobspec import ENGINE_NAMES, VLLM_BLOCK_SIZE, check_workload_for_engine
from workers.cpu_math import small_model_cpu_math
from workers.demo import DEMO_LEGS, DEMO_WORKLOAD, DemoLeg
from workers.device import resolve_device
from workers.engines.base import EngineSettings, RolloutEngine, SamplingSettings
from workers.errors import InvalidWorkload
from workers.policy import load_policy
from workers.rollouts import RolloutBatch
from workers.task import EOS, PAD
from workers.trainer import Trainer
from workers.warm_start import warm_started_checkpoint
from workers.workload import Workload, task_for

__all__ = [
    "DEMO_LEGS",
    "DEMO_WORKLOAD",
    "ENGINE_NAMES",
    "DemoLeg",
    "LegResult",
    "describe_leg",
    "engine_options_for",
    "make_engine",
    "run_leg",
]

StepCallback = Callable[[int, dict[str, float]], None]



@dataclass
class LegResult:
    metrics: list[dict[str, float]] = field(default_factory=list)  # one dict per step, from step 0
    engine: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    seconds: float = 0.0


def run_leg(
    workload: Workload | Mapping[str, Any],
    settings: EngineSettings | Mapping[str, Any] | None,
    sampling_seed: int,
    *,
    engine_name: str = "torch",
    on_step: StepCallback | None = None,
    start_step: int = 0,
    checkpoint_dir: Path | None = None,
    engine_options: Mapping[str, Any] | None = None,
    torch_threads: int | None = 1,
    device: str | None = None,
) -> LegResult:
    """Run every step of one leg and call ``on_step(step, metrics)`` from ``start_step`` on.

    A leg is a deterministic function of (workload, settings, sampling_seed) on a given machine,
    so a re-run after a requeue recomputes the steps before ``start_step`` without reporting them
    and reports the rest; its values replace the earlier ones step for step.

    ``torch_threads`` is the intra-op thread count while the leg runs (see ``cpu_math``); to use
    several cores, run legs in several processes.

    ``device`` is where the trainer (and the torch engine) run: ``cpu``, ``cuda``, or None for
    ``cuda`` when available, else ``cpu``.
    """
    with small_model_cpu_math(torch_threads):
        return _run_leg(workload, settings, sampling_seed, engine_name, on_step, start_step,
                        checkpoint_dir, engine_options, device)


def _run_leg(
    workload: Workload | Mapping[str, Any],
    settings: EngineSettings | Mapping[str, Any] | None,
    sampling_seed: int,
    engine_name: str,
    on_step: StepCallback | None,
    start_step: int,
    checkpoint_dir: Path | None,
    engine_options: Mapping[str, Any] | None,
    device: str | None,
) -> LegResult:
    started = time.perf_counter()
    workload = workload if isinstance(workload, Workload) else Workload.from_dict(workload)
    settings = settings if isinstance(settings, EngineSettings) else EngineSettings.from_dict(settings)
    if isinstance(sampling_seed, bool) or not isinstance(sampling_seed, int) or sampling_seed < 0:
        raise InvalidWorkload("sampling_seed", f"expected a non-negative integer, got {sampling_seed!r}")
    if not 0 <= start_step <= workload.steps:
        raise InvalidWorkload("start_step", f"must lie in 0..{workload.steps}, got {start_step}")

    task = task_for(workload)
    device = resolve_device(device).type
    options = engine_options_for(engine_name, workload, device, engine_options)
    checkpoint = warm_started_checkpoint(workload, checkpoint_dir)
    engine = make_engine(engine_name, checkpoint, settings, sampling_seed, **options)
    trainer = Trainer(
        load_policy(checkpoint),
        objective=workload.objective,
        epsilon_low=workload.epsilon_low,
        epsilon_high=workload.epsilon_high,
        temperature=workload.temperature,
        lr=workload.lr,
        minibatches=workload.minibatches,
        metric_aggregation=workload.metric_aggregation,
        device=device,
    )
    sampling = SamplingSettings(
        temperature=workload.temperature,
        top_p=workload.top_p,
        top_k=workload.top_k,
        max_tokens=workload.max_tokens,
        stop_token_id=EOS,
    )

    def prompts(step: int) -> list[tuple[int, ...]]:
        distinct = task.rl_prompts(workload.seed, step, workload.batch_size)
        return [prompt for prompt in distinct for _ in range(workload.group_size)]

    result = LegResult(checkpoint=str(checkpoint))
    try:
        engine.submit(prompts(0), sampling)
        for step in range(workload.steps):
            completions = engine.collect()
            if step + 1 < workload.steps:
                engine.submit(prompts(step + 1), sampling)
            rewards = [task.reward(c.prompt, c.tokens) for c in completions]
            batch = RolloutBatch.from_completions(completions, rewards, workload.group_size, PAD)
            metrics = trainer.step(batch)
            engine.update_weights(trainer.weights(), trainer.version)
            result.metrics.append(metrics)
            if on_step is not None and step >= start_step:
                on_step(step, metrics)
        # Described after the run: what the engine loaded and which update paths it exercised.
        result.engine = engine.describe()
    finally:
        engine.close()
    result.seconds = time.perf_counter() - started
    return result


def engine_options_for(
    engine_name: str, workload: Workload, device: str | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The engine's constructor options that follow from the workload, plus ``engine_options``.

    Every engine of a job caches prefixes in the workload's ``prefix_block_size`` blocks. vLLM
    caches only full 16-token blocks and never serves a prompt's last token from the cache, so a
    vLLM leg needs that block size and a shared instruction of at least two blocks, or its prefix
    caching would be inert.
    """
    options = dict(engine_options or {})
    if "prefix_block_size" in options or "block_size" in options:
        raise InvalidWorkload("prefix_block_size", "the block size is the workload's prefix_block_size, for every leg")
    if engine_name == "torch":
        return {**options, "prefix_block_size": workload.prefix_block_size, "device": device}
    if engine_name in ("vllm-v0", "vllm-v1"):
        check_workload_for_engine(engine_name, workload)
        return {"max_model_len": workload.sequence_length, "block_size": VLLM_BLOCK_SIZE, **options}
    raise InvalidWorkload("engine", f"unknown engine {engine_name!r}; known: {', '.join(ENGINE_NAMES)}")


def make_engine(
    engine_name: str, checkpoint: Path, settings: EngineSettings, sampling_seed: int, **options: Any
) -> RolloutEngine:
    if engine_name == "torch":
        from workers.engines.torch_engine import TorchEngine

        return TorchEngine.from_checkpoint(checkpoint, settings, sampling_seed, **options)
    if engine_name == "vllm-v0":
        from workers.engines.vllm_v0 import VllmV0Engine

        return VllmV0Engine(checkpoint, settings, sampling_seed, **options)
    if engine_name == "vllm-v1":
        from workers.engines.vllm_v1 import VllmV1Engine

        return VllmV1Engine(checkpoint, settings, sampling_seed, **options)
    raise InvalidWorkload("engine", f"unknown engine {engine_name!r}; known: {', '.join(ENGINE_NAMES)}")


def describe_leg(
    settings: EngineSettings | Mapping[str, Any] | None,
    engine_name: str = "torch",
    engine_options: Mapping[str, Any] | None = None,
    workload: Workload | Mapping[str, Any] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The engine description for the run record, without starting the engine.

    For the torch engine it equals what the started engine's ``describe()`` returns when
    ``workload`` (which sets the block size) is given. A vLLM engine adds what it read back from
    its loaded model and the update paths it exercised once it has run (``loaded`` is None here).
    """
    settings = settings if isinstance(settings, EngineSettings) else EngineSettings.from_dict(settings)
    if engine_name == "torch":
        from workers.engines import torch_engine

        options = dict(engine_options or {})
        if workload is not None:
            workload = workload if isinstance(workload, Workload) else Workload.from_dict(workload)
            options = engine_options_for(engine_name, workload, resolve_device(device).type, options)
        else:
            options["device"] = resolve_device(device).type
        return torch_engine.describe(settings, **options)
    if engine_name == "vllm-v0":
        from workers.engines import vllm_v0

        return vllm_v0.describe(settings)
    if engine_name == "vllm-v1":
        from workers.engines import vllm_v1

        return vllm_v1.describe(settings)
    raise InvalidWorkload("engine", f"unknown engine {engine_name!r}; known: {', '.join(ENGINE_NAMES)}")
