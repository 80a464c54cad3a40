import math

from backend.compare.configdiff import config_diff, flatten_config, run_settings
from backend.compare.registry import KeyRegistry

REGISTRY = KeyRegistry()


def test_flatten_nested_config():
    flat = flatten_config({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None})
    assert flat == {"a.b": 1, "a.c.d": [1, 2], "e": {}, "f": None}


def test_engine_description_lands_under_engine():
    settings = run_settings(
        {"seed": 1}, {"name": "torch", "version": "0.1", "settings": {"logprobs_mode": "raw"}}
    )
    assert settings == {
        "seed": 1,
        "engine.name": "torch",
        "engine.version": "0.1",
        "engine.settings.logprobs_mode": "raw",
    }


def test_each_differing_key_with_layer_and_both_values_in_layer_order():
    reference = (
        {"seed": 1, "vllm_kwargs": {"enable-prefix-caching": False}, "lr": 1e-3},
        {"name": "vllm", "version": "0.8.5"},
    )
    candidate = (
        {"seed": 1, "vllm_kwargs": {"enable_prefix_caching": True}, "lr": 2e-3, "extra": 1},
        {"name": "vllm", "version": "0.18.1"},
    )
    diff = config_diff([reference], candidate, REGISTRY)
    assert [(d.key, d.layer, d.reference_value, d.candidate_value) for d in diff] == [
        ("lr", "workload", 1e-3, 2e-3),
        ("engine.version", "inference-path", "0.8.5", "0.18.1"),
        ("vllm_kwargs.enable-prefix-caching", "inference-path", False, True),
        ("extra", "unclassified", None, 1),
    ]
    assert diff[-1].missing_in == "reference"


def test_keys_that_vary_among_replicas_are_marked():
    references = [({"seed": 1, "lr": 1}, {}), ({"seed": 2, "lr": 1}, {})]
    diff = config_diff(references, ({"seed": 3, "lr": 1}, {}), REGISTRY)
    assert len(diff) == 1 and diff[0].key == "seed" and diff[0].varies_among_references


def test_equal_values_including_nan_are_not_differences():
    same = ({"x": math.nan, "y": [1, 2], "z": 1.0}, {})
    assert config_diff([same], ({"x": math.nan, "y": [1, 2], "z": 1}, {}), REGISTRY) == []
