"""The vLLM adapters' pure mapping from engine settings to vLLM arguments (no vLLM needed)."""

import sys
from pathlib import Path

import pytest

from workers.demo import DEMO_LEGS
from workers.engines import vllm_v0, vllm_v1
from workers.engines.base import EngineSettings, SamplingSettings
from workers.errors import UnsupportedSetting

CHECKPOINT = Path("/ckpt/sort4")
REFERENCE = EngineSettings()
V1_INITIAL = next(leg.settings for leg in DEMO_LEGS if leg.label == "v1-initial")


def test_adapters_import_vllm_lazily():
    assert "vllm" not in sys.modules


def test_v0_reference_maps_to_vllm_085_engine_args():
    assert vllm_v0.engine_env(REFERENCE) == {"VLLM_USE_V1": "0"}
    assert vllm_v0.engine_kwargs(REFERENCE, CHECKPOINT, 11) == {
        "model": "/ckpt/sort4",
        "skip_tokenizer_init": True,
        "dtype": "float32",
        "enable_prefix_caching": False,
        "seed": 11,
        "max_model_len": 32,
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


def test_v0_prefix_caching_and_bf16_head():
    kwargs = vllm_v0.engine_kwargs(EngineSettings(prefix_caching=True, lm_head_dtype="bf16"), CHECKPOINT, 1)
    assert kwargs["enable_prefix_caching"] is True and kwargs["dtype"] == "bfloat16"


def test_fp32_head_on_a_bf16_model_needs_v1s_head_dtype_override():
    with pytest.raises(UnsupportedSetting, match="lm_head_dtype"):
        vllm_v0.engine_kwargs(REFERENCE, CHECKPOINT, 1, model_dtype="bfloat16")
    kwargs = vllm_v1.engine_kwargs(REFERENCE, CHECKPOINT, 1, model_dtype="bfloat16")
    assert kwargs["dtype"] == "bfloat16"
    assert kwargs["hf_overrides"] == {"head_dtype": "float32"}
    assert "hf_overrides" not in vllm_v1.engine_kwargs(REFERENCE, CHECKPOINT, 1)


def test_v1_maps_each_setting_to_its_engine_argument():
    initial = vllm_v1.engine_kwargs(V1_INITIAL, CHECKPOINT, 3)
    fixed = vllm_v1.engine_kwargs(REFERENCE, CHECKPOINT, 3)
    assert (initial["logprobs_mode"], fixed["logprobs_mode"]) == ("raw_logprobs", "processed_logprobs")
    assert (initial["enable_prefix_caching"], fixed["enable_prefix_caching"]) == (True, False)
    assert (initial["async_scheduling"], fixed["async_scheduling"]) == (True, False)
    assert (initial["dtype"], fixed["dtype"]) == ("bfloat16", "float32")
    assert vllm_v1.engine_env(REFERENCE)["VLLM_USE_V1"] == "1"


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


def test_descriptions_say_vllm_and_which_engine_generation():
    v0 = vllm_v0.describe(REFERENCE)
    v1 = vllm_v1.describe(V1_INITIAL)
    assert v0["name"] == v1["name"] == "vllm"
    assert v0["settings"]["VLLM_USE_V1"] == 0 and v1["settings"]["VLLM_USE_V1"] == 1
    assert v1["settings"]["requested_weight_update"] == "inflight"
    assert v1["settings"]["weight_update"] == "between-batches"
    assert isinstance(v0["version"], str) and v0["version"]
