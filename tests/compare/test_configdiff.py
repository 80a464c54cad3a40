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


def test_sampling_seeds_are_the_expected_difference_among_replicas():
    # The job records each leg's own seed next to the shared workload.
    references = [
        ({"workload": {"seed": 7}, "sampling_seed": 1}, {}),
        ({"workload": {"seed": 7}, "sampling_seed": 2}, {}),
    ]
    candidate = ({"workload": {"seed": 7}, "sampling_seed": 3}, {})
    (seed,) = config_diff(references, candidate, REGISTRY)
    assert (seed.key, seed.layer, seed.expected, seed.varies_among_references) == (
        "sampling_seed", "workload", True, True,
    )  # fmt: skip
    assert seed.replica_values == (1, 2)
    # Against one reference the seed is still expected to differ: every leg has its own.
    (alone,) = config_diff(references[:1], candidate, REGISTRY)
    assert alone.expected and not alone.varies_among_references and alone.replica_values == ()
    # The workload's own seed is not.
    (workload_seed,) = config_diff(
        references[:1], ({"workload": {"seed": 8}, "sampling_seed": 1}, {}), REGISTRY
    )
    assert workload_seed.key == "workload.seed" and not workload_seed.expected


def test_every_key_is_the_same_table_with_the_agreeing_keys_in_it():
    reference = ({"workload": {"seed": 7, "lr": 1e-3}, "sampling_seed": 1}, {"name": "torch"})
    candidate = ({"workload": {"seed": 7, "lr": 2e-3}, "sampling_seed": 3}, {"name": "torch"})
    differing = config_diff([reference], candidate, REGISTRY)
    table = config_diff([reference], candidate, REGISTRY, every_key=True)
    assert [d.key for d in differing] == ["sampling_seed", "workload.lr"]
    assert [(d.key, d.differs) for d in table] == [
        ("sampling_seed", True),
        ("workload.lr", True),
        ("workload.seed", False),
        ("engine.name", False),
    ]
    assert [d for d in table if d.differs] == differing


def test_an_expected_difference_does_not_fail_the_workload():
    from backend.compare.diagnosis import diagnose
    from backend.compare.parity import parity_findings

    differences = config_diff(
        [({"workload": {"seed": 7}, "sampling_seed": 1}, {})],
        ({"workload": {"seed": 7}, "sampling_seed": 3}, {}),
        REGISTRY,
    )
    diagnosis = diagnose(differences, parity_findings(None, None), {})
    workload = diagnosis.verdicts[0]
    assert workload.verdict == "pass" and diagnosis.like_for_like is True
    assert any("sampling_seed differs among the reference's replicas by design" in f.fact
               for f in workload.facts)  # fmt: skip
