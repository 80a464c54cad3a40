import pytest

from workers.engines.base import Completion, EngineSettings, SamplingSettings
from workers.errors import InvalidEngineSettings


def test_defaults_are_the_reference_settings():
    assert EngineSettings.from_dict(None) == EngineSettings.from_dict({}) == EngineSettings(
        logprobs_mode="processed", prefix_caching=False, async_scheduling=False,
        weight_update="blocking", lm_head_dtype="fp32",
    )


def test_json_dicts_with_engine_spellings_parse_to_canonical_values():
    settings = EngineSettings.from_dict({
        "logprobs_mode": "raw_logprobs",
        "prefix_caching": "on",
        "async_scheduling": True,
        "weight_update": "in-flight",
        "lm_head_dtype": "bfloat16",
        "dtype": "bf16",
    })
    assert settings.to_dict() == {
        "logprobs_mode": "raw",
        "prefix_caching": True,
        "async_scheduling": True,
        "weight_update": "inflight",
        "lm_head_dtype": "bf16",
        "dtype": "bfloat16",
    }
    assert EngineSettings.from_dict(settings.to_dict()) == settings


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"logprobs_mode": "logits"}, "logprobs_mode"),
        ({"prefix_caching": 1}, "prefix_caching"),
        ({"prefix_caching": "yes"}, "prefix_caching"),
        ({"async_scheduling": [True]}, "async_scheduling"),
        ({"weight_update": None}, "weight_update"),
        ({"lm_head_dtype": "fp16"}, "lm_head_dtype"),
        ({"kv_cache_dtype": "fp8"}, "kv_cache_dtype"),
    ],
)
def test_bad_values_name_the_setting(payload, field):
    with pytest.raises(InvalidEngineSettings) as caught:
        EngineSettings.from_dict(payload)
    assert caught.value.field == field
    assert f"settings.{field}" in str(caught.value)


def test_direct_construction_is_validated_too():
    with pytest.raises(InvalidEngineSettings, match="settings.prefix_caching"):
        EngineSettings(prefix_caching="off")


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        EngineSettings().logprobs_mode = "raw"


def test_sampling_settings_refuse_greedy_and_bad_filters():
    with pytest.raises(ValueError, match="temperature"):
        SamplingSettings(temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(temperature=1.0, top_p=0.0)


def test_completion_fields_must_align():
    with pytest.raises(ValueError, match="same length"):
        Completion((1,), (2, 3), (-0.1,), (0, 0))
