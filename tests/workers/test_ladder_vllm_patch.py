"""The ladder's patch as vLLM arguments, checked against vLLM 0.18.1's released source.

The wheel is read where it has been fetched into the git-ignored cache
(``pip download --no-deps vllm==0.18.1 -d .parityscope-cache/vllm``); without it the name check
is skipped and the mapping checks still run.
"""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest

from backend.ladder import vllm_patch
from tests.tiny_job import TINY_WORKLOAD, V1_INITIAL

WHEEL = next(iter((Path(__file__).parents[2] / ".parityscope-cache" / "vllm").glob("vllm-0.18.1-*.whl")), None)
REFERENCE = {"logprobs_mode": "processed", "prefix_caching": False, "async_scheduling": False,
             "weight_update": "blocking", "lm_head_dtype": "fp32"}


def test_patch_maps_through_the_v1_adapter() -> None:
    patch = vllm_patch("vllm-v1", V1_INITIAL, REFERENCE, TINY_WORKLOAD)
    assert patch["engine_args"] == {
        "logprobs_mode": "processed_logprobs", "enable_prefix_caching": False,
        "async_scheduling": False, "dtype": "float32",
    }
    assert patch["weight_update_calls"]["pause_generation"] == {"mode": "keep", "clear_cache": False}
    assert patch["sampling_params"]["temperature"] == TINY_WORKLOAD["temperature"]
    assert vllm_patch("torch", V1_INITIAL, REFERENCE) is None
    # Only what changes: a patch of prefix caching alone passes one argument.
    assert vllm_patch("vllm-v1", {**REFERENCE, "prefix_caching": True}, REFERENCE)["engine_args"] == {
        "enable_prefix_caching": False}


def _class_fields(source: str, name: str) -> set[str]:
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)
    return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def _function_kwargs(source: str, name: str) -> set[str]:
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef) and n.name == name)
    return {a.arg for a in node.args.kwonlyargs + node.args.args}


@pytest.mark.skipif(WHEEL is None, reason="vllm 0.18.1 wheel not in .parityscope-cache/vllm")
def test_patch_names_exist_in_vllm_0_18_1() -> None:
    with zipfile.ZipFile(WHEEL) as wheel:
        engine_args = _class_fields(wheel.read("vllm/engine/arg_utils.py").decode(), "EngineArgs")
        sampling = _class_fields(wheel.read("vllm/sampling_params.py").decode(), "SamplingParams")
        async_llm = wheel.read("vllm/v1/engine/async_llm.py").decode()
        model_config = wheel.read("vllm/config/model.py").decode()
    patch = vllm_patch("vllm-v1", V1_INITIAL, REFERENCE, TINY_WORKLOAD)
    assert set(patch["engine_args"]) <= engine_args
    assert set(patch["sampling_params"]) <= sampling
    assert set(patch["weight_update_calls"]["pause_generation"]) <= _function_kwargs(async_llm, "pause_generation")
    assert '"keep"' in async_llm
    assert '"processed_logprobs"' in model_config
