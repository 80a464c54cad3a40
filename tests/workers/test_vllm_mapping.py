"""The vLLM adapters' pure mapping from engine settings to vLLM arguments (no vLLM needed).

Every name these mappings produce is checked against the released vLLM sources by the contract
tier (tests/vllm_contract); here the mapping's logic is checked.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from workers.demo import DEMO_LEGS, DEMO_WORKLOAD
from workers.engines import vllm_common, vllm_v0, vllm_v1
from workers.engines.base import EngineSettings, SamplingSettings
from workers.engines.vllm_head import HEAD_DTYPE_ENV, METHOD_NAME
from workers.errors import EngineUnavailable, InvalidWorkload, UnsupportedSetting
from workers.leg import describe_leg, engine_options_for, run_leg
from workers.workload import Workload, task_for

CHECKPOINT = Path("/ckpt/sort4")
REFERENCE = EngineSettings()
V1_INITIAL = next(leg.settings for leg in DEMO_LEGS if leg.label == "v1-initial")
VLLM_WORKLOAD = {**DEMO_WORKLOAD, "instruction_tokens": 32, "prefix_block_size": 16}


def test_adapters_import_vllm_lazily():
    assert "vllm" not in sys.modules


def test_v0_reference_maps_to_vllm_085_engine_args():
    assert vllm_v0.engine_env(REFERENCE) == {"VLLM_USE_V1": "0", HEAD_DTYPE_ENV: "float32"}
    assert vllm_v0.engine_kwargs(REFERENCE, CHECKPOINT, 11) == {
        "model": "/ckpt/sort4",
        "skip_tokenizer_init": True,
        "dtype": "float32",
        "enable_prefix_caching": False,
        "block_size": 16,
        "seed": 11,
        "max_model_len": 64,
        "enforce_eager": True,
        "gpu_memory_utilization": 0.25,
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"logprobs_mode": "raw"}, "logprobs_mode"),
        ({"async_scheduling": True}, "async_scheduling"),
        ({"weight_update": "inflight"}, "weight_update"),
    ],
)
def test_v0_refuses_what_085_cannot_do(change, field):
    with pytest.raises(UnsupportedSetting) as caught:
        vllm_v0.engine_kwargs(EngineSettings(**change), CHECKPOINT, 1)
    assert caught.value.field == field and "vllm-v0" in str(caught.value)


@pytest.mark.parametrize("adapter", [vllm_v0, vllm_v1])
def test_lm_head_dtype_is_the_head_alone_and_dtype_the_model(adapter):
    """A head in another dtype than the model runs through the head-only method, on V0 and V1."""
    cases = {
        ("fp32", "float32"): {"dtype": "float32"},
        ("bf16", "bfloat16"): {"dtype": "bfloat16"},
        ("fp32", "bfloat16"): {"dtype": "bfloat16", "quantization": METHOD_NAME},  # PipelineRL's setup
        ("bf16", "float32"): {"dtype": "float32", "quantization": METHOD_NAME},
    }
    for (head, model), expected in cases.items():
        settings = EngineSettings(lm_head_dtype=head, dtype=model)
        kwargs = adapter.engine_kwargs(settings, CHECKPOINT, 1)
        assert {k: kwargs[k] for k in ("dtype", "quantization") if k in kwargs} == expected
        assert "hf_overrides" not in kwargs  # 0.18.1 honours head_dtype for pooling models only
        assert adapter.engine_env(settings)[HEAD_DTYPE_ENV] == {"fp32": "float32", "bf16": "bfloat16"}[head]


def test_v1_maps_each_setting_to_its_engine_argument():
    initial = vllm_v1.engine_kwargs(V1_INITIAL, CHECKPOINT, 3)
    fixed = vllm_v1.engine_kwargs(REFERENCE, CHECKPOINT, 3)
    assert (initial["logprobs_mode"], fixed["logprobs_mode"]) == ("raw_logprobs", "processed_logprobs")
    assert (initial["enable_prefix_caching"], fixed["enable_prefix_caching"]) == (True, False)
    assert (initial["async_scheduling"], fixed["async_scheduling"]) == (True, False)
    # v1-initial: a bf16 head on the fp32 model, the head alone, as on the torch engine.
    assert (initial["dtype"], initial["quantization"], fixed["dtype"]) == ("float32", METHOD_NAME, "float32")


def test_v1_does_not_set_vllm_use_v1_which_0181_no_longer_knows():
    assert "VLLM_USE_V1" not in vllm_v1.engine_env(REFERENCE)
    assert "VLLM_USE_V1" not in vllm_v1.describe(REFERENCE)["settings"]
    assert vllm_v1.engine_env(REFERENCE)["VLLM_ALLOW_INSECURE_SERIALIZATION"] == "1"


def test_v1_weight_update_brackets_for_a_serving_engine():
    assert vllm_v1.weight_update_calls(REFERENCE) == {
        "pause_generation": {"mode": "keep", "clear_cache": False},
        "resume_generation": {},
    }
    assert vllm_v1.weight_update_calls(V1_INITIAL) == {"pause_generation": None, "resume_generation": None}


def test_sampling_params_ask_for_the_sampled_tokens_logprob_and_token_ids_only():
    sampling = SamplingSettings(temperature=0.7, top_p=0.9, max_tokens=5, stop_token_id=11)
    v0 = vllm_v0.sampling_kwargs(sampling)
    v1 = vllm_v1.sampling_kwargs(sampling)
    for kwargs in (v0, v1):
        assert kwargs["temperature"] == 0.7 and kwargs["top_p"] == 0.9 and kwargs["max_tokens"] == 5
        assert kwargs["logprobs"] == 1 and kwargs["detokenize"] is False
        assert kwargs["stop_token_ids"] == [11]
    # vLLM 0.8.5 rejects top_k=0 and disables with -1; V1 disables with 0.
    assert (v0["top_k"], v1["top_k"]) == (-1, 0)
    assert vllm_v0.sampling_kwargs(SamplingSettings(temperature=1.0, top_k=20))["top_k"] == 20


def test_descriptions_say_vllm_the_driver_and_nothing_loaded_before_the_engine_starts():
    v0 = vllm_v0.describe(REFERENCE)
    v1 = vllm_v1.describe(V1_INITIAL)
    assert v0["name"] == v1["name"] == "vllm"
    assert (v0["driver"], v1["driver"]) == ("LLM", "AsyncLLM")
    assert v0["settings"]["VLLM_USE_V1"] == 0
    assert v1["settings"]["weight_update"] == "inflight" and v1["settings"]["dtype"] == "float32"
    # What the engine honoured is only known once it has loaded the model and run.
    assert v0["loaded"] is None and v1["loaded"] is None
    assert v0["update_paths"] == v1["update_paths"] == {}
    assert isinstance(v0["version"], str) and v0["version"]


@pytest.mark.parametrize(
    ("version", "accepted"),
    [("0.10.1", False), ("0.10.0", False), ("0.9.2", False), ("0.10.2", True), ("0.18.1", True),
     ("0.18.1+cu128", True), ("0.11.0rc1", True)],
)
def test_v1_needs_vllm_0_10_2_where_processed_logprobs_include_temperature(monkeypatch, version, accepted):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else None)
    monkeypatch.setattr(vllm_common, "installed_vllm_version", lambda missing: version)
    if accepted:
        assert vllm_common.require_vllm("vllm-v1", minimum=vllm_v1.VLLM_V1_MIN_VERSION) == version
    else:
        with pytest.raises(EngineUnavailable, match=r"vLLM >= 0\.10\.2; this host has vLLM " + version):
            vllm_v1.VllmV1Engine(CHECKPOINT, REFERENCE, 1)


def test_v0_is_refused_on_a_vllm_without_v0(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else None)
    monkeypatch.setattr(vllm_common, "installed_vllm_version", lambda missing: "0.18.1")
    with pytest.raises(EngineUnavailable, match=r"vLLM >= 0\.8\.5, < 0\.9"):
        vllm_v0.VllmV0Engine(CHECKPOINT, REFERENCE, 1)


def test_a_host_without_vllm_refuses_the_vllm_engines():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    with pytest.raises(EngineUnavailable, match="needs vLLM installed"):
        vllm_v1.VllmV1Engine(CHECKPOINT, REFERENCE, 1)


def test_vllm_legs_need_two_full_16_token_blocks_of_shared_instruction():
    workload = Workload.from_dict(VLLM_WORKLOAD)
    assert task_for(workload).prompt_length == workload.prompt_length == 32 + 5
    options = engine_options_for("vllm-v1", workload)
    assert options == {"max_model_len": 37 + 5, "block_size": 16}
    # The torch engine caches in the same blocks when the workload says so.
    assert engine_options_for("torch", workload, "cpu")["prefix_block_size"] == 16
    assert describe_leg(REFERENCE, "torch", workload=workload, device="cpu")["emulation"]["prefix_block_size"] == 16

    with pytest.raises(InvalidWorkload, match="workload.instruction_tokens: vllm-v0 legs need a shared instruction"):
        run_leg({**VLLM_WORKLOAD, "instruction_tokens": 8}, REFERENCE, 1, engine_name="vllm-v0")
    with pytest.raises(InvalidWorkload, match="workload.prefix_block_size: vllm-v1 legs cache 16-token blocks"):
        run_leg(DEMO_WORKLOAD, REFERENCE, 1, engine_name="vllm-v1")
