"""The V1 ``AsyncLLM`` driver and the weight path, against stand-ins with vLLM's signatures.

The stand-in engine has ``AsyncLLM``'s method names and keyword arguments as 0.18.1 declares them
(the contract tier checks those against the release); the stand-in worker model answers
``load_weights`` as vLLM's Llama does, with the set of (fused) parameter names it wrote.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from workers.engines.base import EngineSettings, SamplingSettings
from workers.engines.vllm_common import (
    check_loaded_model,
    describe_loaded_model,
    encode_weights,
    load_weights_on_worker,
)
from workers.engines.vllm_v1 import AsyncVllmDriver
from workers.errors import UnsupportedSetting

SAMPLING = SamplingSettings(temperature=0.7, max_tokens=6)
_FUSED = {"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj"}


class WorkerModel(torch.nn.Module):
    """A worker's model: one attention projection (vLLM fuses q/k/v) and a head."""

    def __init__(self, head_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.qkv_proj = torch.nn.Parameter(torch.zeros(6, 2))
        self.lm_head = torch.nn.Linear(2, 4, bias=False).to(head_dtype)
        self.written: dict[str, torch.Tensor] = {}

    def load_weights(self, weights):
        loaded = set()
        for name, tensor in weights:
            leaf = name.split(".")[-2]
            if leaf in _FUSED:
                self.written[name] = tensor
                loaded.add(name.replace(leaf, _FUSED[leaf]))
            elif name == "lm_head.weight":
                self.lm_head.weight.data.copy_(tensor)
                loaded.add(name)
        return loaded


@dataclass
class Worker:
    model: WorkerModel

    @property
    def model_runner(self):
        return self

    def get_model(self):
        return self.model


@dataclass
class Output:
    token_ids: list[int]
    logprobs: list[dict[int, Any]]


@dataclass
class RequestOutput:
    outputs: list[Output]


@dataclass
class Logprob:
    logprob: float


@dataclass
class StandInAsyncLLM:
    """``AsyncLLM``'s surface: generate, pause_generation, resume_generation, collective_rpc."""

    worker: Worker
    step_seconds: float = 0.01
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tokens_generated: int = 0
    paused: bool = False

    async def generate(self, prompt, sampling_params, request_id, **_):
        tokens: list[int] = []
        for i in range(sampling_params.max_tokens):
            while self.paused:  # "keep": frozen in place, resumed later
                await asyncio.sleep(self.step_seconds / 4)
            await asyncio.sleep(self.step_seconds)
            tokens.append(i)
            self.tokens_generated += 1
            yield RequestOutput([Output(list(tokens), [{t: Logprob(-0.5)} for t in tokens])])

    async def pause_generation(self, *, mode="abort", wait_for_inflight_requests=None, clear_cache=True):
        self.calls.append(("pause_generation", {"mode": mode, "clear_cache": clear_cache}))
        self.paused = True

    async def resume_generation(self):
        self.calls.append(("resume_generation", {}))
        self.paused = False

    async def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        self.calls.append(("collective_rpc", {"method": method.__name__}))
        return [method(self.worker, *args, **(kwargs or {}))]

    def shutdown(self):
        self.calls.append(("shutdown", {}))


def driver(settings: EngineSettings, model: WorkerModel | None = None, step_seconds: float = 0.01):
    engine = StandInAsyncLLM(Worker(model or WorkerModel()), step_seconds)
    return AsyncVllmDriver(lambda: engine, settings, lambda sampling: sampling), engine


WEIGHTS = {
    "model.layers.0.self_attn.q_proj.weight": torch.ones(2, 2),
    "model.layers.0.self_attn.k_proj.weight": torch.full((2, 2), 2.0),
    "model.layers.0.self_attn.v_proj.weight": torch.full((2, 2), 3.0),
    "lm_head.weight": torch.full((4, 2), 0.25),
}


def test_the_payload_loads_tensor_by_tensor_and_checks_each_landed():
    model = WorkerModel()
    assert load_weights_on_worker(Worker(model), encode_weights(WEIGHTS)) == 4
    assert torch.equal(model.lm_head.weight, WEIGHTS["lm_head.weight"])
    assert torch.equal(model.written["model.layers.0.self_attn.v_proj.weight"], WEIGHTS["model.layers.0.self_attn.v_proj.weight"])


def test_a_name_the_model_does_not_load_fails_the_update():
    with pytest.raises(RuntimeError, match=r"did not load 1 of 2 tensors: \['model.norm_typo.weight'\]"):
        load_weights_on_worker(Worker(WorkerModel()), encode_weights(
            {"lm_head.weight": torch.zeros(4, 2), "model.norm_typo.weight": torch.zeros(2)}))


def test_tensors_are_refused_as_a_payload():
    with pytest.raises(TypeError, match="safetensors bytes"):
        load_weights_on_worker(Worker(WorkerModel()), [("lm_head.weight", ["float32", [4, 2], 1])])


def test_the_description_is_read_back_from_the_loaded_model_and_a_mismatch_refuses_the_leg():
    fp32 = describe_loaded_model(Worker(WorkerModel()))
    assert fp32 == {"dtype": "float32", "lm_head_weight_dtype": "float32", "lm_head_compute_dtype": "float32",
                    "lm_head_method": "none"}
    bf16_head = describe_loaded_model(Worker(WorkerModel(torch.bfloat16)))
    # An engine that ran its head in bf16 is never reported as fp32.
    with pytest.raises(UnsupportedSetting, match="asked for float32, the loaded lm_head computes in bfloat16"):
        check_loaded_model("vllm-v1", EngineSettings(lm_head_dtype="fp32"), bf16_head)
    with pytest.raises(UnsupportedSetting, match="settings.dtype"):
        check_loaded_model("vllm-v1", EngineSettings(dtype="bfloat16"), fp32)
    with pytest.raises(UnsupportedSetting, match="lm_head_dtype"):
        driver(EngineSettings(lm_head_dtype="fp32"), WorkerModel(torch.bfloat16))
    check_loaded_model("vllm-v1", EngineSettings(lm_head_dtype="bf16"), bf16_head)


def test_generation_runs_while_the_trainer_steps():
    engine_driver, engine = driver(EngineSettings())
    try:
        engine_driver.submit([(1, 2, 3)] * 4, SAMPLING)
        deadline = time.monotonic() + 5
        while engine.tokens_generated == 0 and time.monotonic() < deadline:
            time.sleep(0.005)  # the caller is busy elsewhere (the trainer step)
        assert engine.tokens_generated > 0  # before collect was called
        completions = engine_driver.collect()
        assert [len(c.tokens) for c in completions] == [6] * 4
        assert all(c.logprobs == (-0.5,) * 6 for c in completions)
    finally:
        engine_driver.close()
    assert engine.calls[-1] == ("shutdown", {})


def _update_mid_batch(settings: EngineSettings):
    engine_driver, engine = driver(settings, step_seconds=0.02)
    try:
        engine_driver.submit([(1, 2, 3)] * 2, SAMPLING)
        while engine.tokens_generated < 2:
            time.sleep(0.002)
        engine_driver.update_weights(WEIGHTS, version=1)
        completions = engine_driver.collect()
        engine_driver.update_weights(WEIGHTS, version=2)  # nothing running now
        return engine_driver.describe(), engine.calls, completions
    finally:
        engine_driver.close()


def test_blocking_pauses_in_keep_mode_without_clearing_the_cache_around_the_load():
    described, calls, completions = _update_mid_batch(EngineSettings(weight_update="blocking"))
    names = [name for name, _ in calls if name != "shutdown"]
    assert names[:1] == ["collective_rpc"]  # describe_loaded_model at start
    assert names[1:4] == ["pause_generation", "collective_rpc", "resume_generation"]
    assert calls[1] == ("pause_generation", {"mode": "keep", "clear_cache": False})
    assert described["update_paths"] == {"paused": 1, "between-batches": 1}
    assert described["loaded"]["lm_head_compute_dtype"] == "float32"
    for completion in completions:  # tokens before the pause carry version 0, after it 1
        assert completion.weight_versions[0] == 0 and completion.weight_versions[-1] == 1


def test_inflight_loads_without_pausing_and_says_so():
    described, calls, completions = _update_mid_batch(EngineSettings(weight_update="inflight"))
    assert "pause_generation" not in [name for name, _ in calls]
    assert described["update_paths"] == {"unpaused": 1, "between-batches": 1}
    assert described["settings"]["weight_update"] == "inflight"
    assert all(c.weight_versions[0] == 0 and c.weight_versions[-1] == 1 for c in completions)
