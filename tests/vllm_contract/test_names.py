"""Every vLLM name the adapters use, checked against the released 0.8.5 (V0) and 0.18.1 (V1).

The names are not listed by hand: the adapters' own mapping functions are run over every setting
they accept and whatever they produce is looked up in the release's source.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.vllm_contract import checks
from workers.engines import vllm_v0, vllm_v1
from workers.engines.base import EngineSettings, SamplingSettings
from workers.errors import UnsupportedSetting

pytestmark = pytest.mark.vllm_contract

CHECKPOINT = Path("/checkpoint")
HEAD_SOURCE = Path(__file__).resolve().parents[2] / "workers" / "engines" / "vllm_head.py"


def every_settings() -> list[EngineSettings]:
    return [
        EngineSettings(logprobs_mode=lp, prefix_caching=pc, async_scheduling=asy, weight_update=wu,
                       lm_head_dtype=head, dtype=dtype)
        for lp, pc, asy, wu, head, dtype in itertools.product(
            ("raw", "processed"), (False, True), (False, True), ("blocking", "inflight"), ("fp32", "bf16"),
            ("float32", "bfloat16"))
    ]


def accepted(adapter) -> list[EngineSettings]:
    out = []
    for settings in every_settings():
        try:
            adapter.engine_kwargs(settings, CHECKPOINT, 0)
        except UnsupportedSetting:
            continue
        out.append(settings)
    return out


SAMPLINGS = [
    SamplingSettings(temperature=0.7, top_p=0.9, top_k=k, max_tokens=5, stop_token_id=stop)
    for k in (0, 20) for stop in (None, 11)
]


# -- V0: vllm 0.8.5 -----------------------------------------------------------------------------
def test_v0_engine_arguments_are_085_engine_args_fields(v0_release):
    kwargs = [vllm_v0.engine_kwargs(s, CHECKPOINT, 0) for s in accepted(vllm_v0)]
    assert len(kwargs) == 8  # processed, no async, blocking; prefix caching x head x model dtype
    assert checks.engine_args_problems(v0_release, kwargs, "EngineArgs") == []


def test_v0_refuses_exactly_what_085_has_no_field_for(v0_release):
    fields = v0_release.fields(checks.ENGINE_ARGS, "EngineArgs")
    assert "logprobs_mode" not in fields and "async_scheduling" not in fields
    assert not v0_release.has("config/model.py")  # no LogprobsMode anywhere in 0.8.5


def test_v0_sampling_params_environment_and_calls(v0_release):
    assert checks.sampling_problems(v0_release, [vllm_v0.sampling_kwargs(s) for s in SAMPLINGS]) == []
    envs = [vllm_v0.engine_env(s) for s in accepted(vllm_v0)]
    assert all(checks.env_problems(v0_release, env) == [] for env in envs)
    assert checks.call_problems(v0_release, checks.LLM, "LLM", "collective_rpc", ["args"], positional=1) == []
    assert checks.call_problems(v0_release, checks.LLM, "LLM", "generate", ["use_tqdm"], positional=2) == []
    assert checks.class_problems(v0_release, "worker/model_runner.py", ["GPUModelRunnerBase"]) == []
    v0_release.method("worker/model_runner.py", "GPUModelRunnerBase", "get_model")


# -- V1: vllm 0.18.1 ----------------------------------------------------------------------------
def test_v1_engine_arguments_are_0181_async_engine_args_fields(v1_release):
    kwargs = [vllm_v1.engine_kwargs(s, CHECKPOINT, 0) for s in accepted(vllm_v1)]
    assert len(kwargs) == len(every_settings())  # V1 accepts every setting
    assert checks.engine_args_problems(v1_release, kwargs, "AsyncEngineArgs") == []
    assert checks.engine_args_problems(v1_release, kwargs, "EngineArgs") == []


def test_v1_logprobs_modes_are_0181_literal_values(v1_release):
    assert checks.logprobs_mode_problems(v1_release, vllm_v1._LOGPROBS_MODES.values()) == []


def test_v1_sampling_params_and_environment(v1_release):
    assert checks.sampling_problems(v1_release, [vllm_v1.sampling_kwargs(s) for s in SAMPLINGS]) == []
    for settings in every_settings():
        assert checks.env_problems(v1_release, vllm_v1.engine_env(settings)) == []
    # The V1 adapter no longer sets VLLM_USE_V1, which 0.18.1 would warn about as unknown.
    assert checks.env_problems(v1_release, {"VLLM_USE_V1": "1"}) != []


def test_v1_async_llm_calls(v1_release):
    blocking = vllm_v1.weight_update_calls(EngineSettings(weight_update="blocking"))
    assert checks.call_problems(v1_release, checks.ASYNC_LLM, "AsyncLLM", "pause_generation",
                                blocking["pause_generation"]) == []
    assert "keep" in v1_release.literal("v1/engine/__init__.py", "PauseMode")
    pause = v1_release.method(checks.ASYNC_LLM, "AsyncLLM", "pause_generation")
    assert set(blocking["pause_generation"]) <= {a.arg for a in pause.args.kwonlyargs}
    assert checks.call_problems(v1_release, checks.ASYNC_LLM, "AsyncLLM", "resume_generation",
                                blocking["resume_generation"]) == []
    assert checks.call_problems(v1_release, checks.ASYNC_LLM, "AsyncLLM", "collective_rpc", ["args"],
                                positional=1) == []
    assert checks.call_problems(v1_release, checks.ASYNC_LLM, "AsyncLLM", "generate", [], positional=3) == []
    assert checks.call_problems(v1_release, checks.ASYNC_LLM, "AsyncLLM", "from_engine_args", [],
                                positional=1) == []
    assert checks.call_problems(v1_release, checks.ASYNC_LLM, "AsyncLLM", "shutdown", []) == []
    assert "SamplingParams" in v1_release.source("__init__.py")
    assert checks.class_problems(v1_release, checks.ENGINE_ARGS, ["AsyncEngineArgs"]) == []
    v1_release.method("v1/worker/gpu_model_runner.py", "GPUModelRunner", "get_model")


# -- both ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["v0_release", "v1_release"])
def test_head_only_dtype_method_fits_the_release(which, request):
    assert checks.head_method_problems(request.getfixturevalue(which), HEAD_SOURCE) == []


@pytest.mark.parametrize("which", ["v0_release", "v1_release"])
def test_llamas_load_weights_returns_the_set_the_weight_check_reads(which, request):
    release = request.getfixturevalue(which)
    function = release.method("model_executor/models/llama.py", "LlamaForCausalLM", "load_weights")
    assert "set" in ast_annotation(function).lower()


def ast_annotation(function) -> str:
    import ast

    return ast.unparse(function.returns) if function.returns is not None else ""


# -- the checker catches a wrong name ------------------------------------------------------------
def test_a_misspelt_engine_argument_is_reported(v0_release, v1_release):
    good = vllm_v1.engine_kwargs(EngineSettings(), CHECKPOINT, 0)
    planted = {**{k: v for k, v in good.items() if k != "enable_prefix_caching"}, "enable_prefix_cachng": False}
    assert checks.engine_args_problems(v1_release, [planted], "AsyncEngineArgs") == [
        "vllm-0.18.1: AsyncEngineArgs has no 'enable_prefix_cachng'"]
    # And the V1-only arguments are reported against 0.8.5.
    problems = checks.engine_args_problems(v0_release, [good], "EngineArgs")
    assert problems == ["vllm-0.8.5: EngineArgs has no 'async_scheduling'", "vllm-0.8.5: EngineArgs has no 'logprobs_mode'"]


def test_other_planted_names_are_reported(v0_release, v1_release):
    assert checks.sampling_problems(v1_release, [{"max_token": 5}]) == ["vllm-0.18.1: SamplingParams has no 'max_token'"]
    assert checks.logprobs_mode_problems(v1_release, ["processed_logprob"]) != []
    assert checks.env_problems(v0_release, {"VLLM_USE_V2": "0"}) == [
        "vllm-0.8.5: envs.environment_variables has no 'VLLM_USE_V2'"]
    assert checks.call_problems(v1_release, checks.ASYNC_LLM, "AsyncLLM", "pause_generation",
                                ["mode", "clear_caches"]) == ["vllm-0.18.1: AsyncLLM.pause_generation() has no 'clear_caches'"]
    assert checks.call_problems(v1_release, checks.ASYNC_LLM, "AsyncLLM", "pause_generations", []) != []
    assert checks.class_problems(v1_release, checks.EMBEDDING, ["ParallelLmHead"]) != []
