"""Verdicts from the metrics alone, and evidence that supports them.

The runs are the repository's torch engine's (``tests/compare/torch_runs.py``): the demo's four
legs and one leg per V1 default, recorded with no configuration, so every finding comes from the
parity metrics and the curves.
"""

import re

import pytest

from backend.compare.comparison import build_comparison
from backend.compare.configdiff import config_diff
from backend.compare.diagnosis import diagnose
from backend.compare.divergence import Divergence
from backend.compare.parity import parity_findings, summarise_parity
from backend.compare.registry import KeyRegistry
from backend.compare.response import comparison_to_json

from .synthetic_runs import INITIAL_V1_SETTINGS, REFERENCE_SETTINGS, engine, workload
from .torch_runs import load_torch_runs

RUNS = load_torch_runs()
REFERENCES = [RUNS["reference"], RUNS["reference-replica"]]


def diagnosis_of(label):
    comparison = build_comparison(REFERENCES, [RUNS[label]], figures=())
    return comparison.diagnosis[label]


def verdicts(diagnosis):
    return {v.layer: v.verdict for v in diagnosis.verdicts}


def test_the_recorded_runs_carry_no_configuration():
    assert all(not run.config and not run.engine for run in RUNS.values())


def test_raw_logprobs_without_config_are_semantic():
    # Offset about a third of the absolute difference, as raw logprobs at T = 0.7 give.
    diagnosis = diagnosis_of("raw-logprobs")
    assert diagnosis.starting_layer == "semantic"
    semantic = diagnosis.verdicts[1]
    assert semantic.verdict == "fail"
    offset = next(f for f in semantic.facts if f.unit == "nats")
    assert offset.value < -0.04
    significance = next(f for f in semantic.facts if f.unit == "standard errors")
    assert significance.value > 3 and "not significant" not in significance.fact


def test_a_bf16_head_without_config_is_numerics_not_semantic():
    diagnosis = diagnosis_of("bf16-head")
    assert verdicts(diagnosis)["semantic"] == "pass"
    assert diagnosis.starting_layer == "inference-path"
    inference = diagnosis.verdicts[2]
    assert "numerics" in inference.sentence and "update path" not in inference.sentence


@pytest.mark.parametrize("label", ["prefix-caching", "async-scheduling"])
def test_stale_prefix_cache_and_async_scheduling_without_config_are_the_update_path(label):
    diagnosis = diagnosis_of(label)
    assert verdicts(diagnosis)["semantic"] == "pass"
    assert diagnosis.starting_layer == "inference-path"
    inference = diagnosis.verdicts[2]
    assert "update path" in inference.sentence and "numerics" not in inference.sentence


def test_v1_initial_without_config_starts_at_semantic_and_v1_fixed_passes():
    initial = diagnosis_of("v1-initial")
    assert initial.starting_layer == "semantic"
    assert verdicts(initial)["inference-path"] == "fail"  # its lag alone shows the update path
    fixed = diagnosis_of("v1-fixed")
    assert fixed.starting_layer is None
    assert verdicts(fixed)["semantic"] == verdicts(fixed)["inference-path"] == "pass"


def test_the_issue_case_semantic_fail_with_an_offset_a_third_of_the_absolute_difference():
    # Config says raw; the parity metrics show -0.039 nats against an absolute 0.11: the
    # evidence must say the offset is significant, never that there is none.
    differences = config_diff(
        [(workload(), engine(REFERENCE_SETTINGS))],
        (workload(), engine(INITIAL_V1_SETTINGS)),
        KeyRegistry(),
    )
    candidate = {k.split("/")[1]: v for k, v in RUNS["v1-initial"].series.items() if "/" in k}
    references = [
        {k.split("/")[1]: v for k, v in run.series.items() if "/" in k} for run in REFERENCES
    ]
    findings = parity_findings(summarise_parity([candidate]), summarise_parity(references))
    diagnosis = diagnose(differences, findings, {"kl": Divergence(0, 5.0, "above", 60, 60, 60)})
    semantic = diagnosis.verdicts[1]
    assert semantic.verdict == "fail"
    texts = " ".join(f.fact for f in semantic.facts)
    assert "logprobs_mode" in texts and "significant" in texts and "not significant" not in texts


SIGNIFICANT = re.compile(r"(?<![\w.])-?(\d+\.\d+|\d+)(e[-+]\d+)?(?![\w.])")
RAW_FLAGS = ("mean_offset", "numerics_excess", "update_path", "True", "False", "effect size")


def significant_digits(number: str) -> int:
    mantissa = number.split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return len(mantissa)


@pytest.mark.parametrize("label", [label for label in RUNS if not label.startswith("reference")])
def test_every_fact_is_plain_defined_and_three_significant_digits(label):
    body = comparison_to_json(build_comparison(REFERENCES, [RUNS[label]], figures=()))
    for verdict in body["diagnosis"][label]["verdicts"]:
        assert verdict["facts"], (verdict["layer"], "a verdict without facts")
        for fact in verdict["facts"]:
            assert set(fact) == {"fact", "quantity", "value", "unit", "definition"}
            if fact["value"] is not None:
                assert fact["unit"] and fact["definition"], fact
            for flag in RAW_FLAGS:
                assert flag not in fact["fact"], fact
            for match in SIGNIFICANT.finditer(fact["fact"]):
                if "." in match.group(1) or match.group(2):
                    assert significant_digits(match.group(0)) <= 3, (match.group(0), fact["fact"])
        if verdict["verdict"] == "fail":
            for fact in verdict["facts"]:
                assert "not significant" not in fact["fact"] and "at parity" not in fact["fact"]
        if verdict["verdict"] == "pass":
            for fact in verdict["facts"]:
                assert ": significant" not in fact["fact"]


def test_the_demo_with_the_configs_a_job_records():
    # A job records {"workload": ..., "sampling_seed": ...} per leg: every leg its own seed.
    def with_config(label, sampling_seed):
        run = RUNS[label]
        config = {"workload": {"model": "llama-0.4m", "seed": 7, "minibatches": 2},
                  "sampling_seed": sampling_seed}  # fmt: skip
        return type(run)(label, label, "", config, {}, run.series)

    references = [with_config("reference", 1), with_config("reference-replica", 2)]
    comparison = build_comparison(
        references, [with_config("v1-initial", 3), with_config("v1-fixed", 4)], figures=()
    )
    for label in ("v1-initial", "v1-fixed"):
        (seed,) = comparison.config_diff[label]
        assert seed.key == "sampling_seed" and seed.expected and seed.replica_values == (1, 2)
        assert comparison.diagnosis[label].like_for_like is True
    assert comparison.diagnosis["v1-initial"].starting_layer == "semantic"
    assert comparison.diagnosis["v1-fixed"].starting_layer is None
    table = comparison.config_table["v1-fixed"]
    assert {row.key for row in table} == {
        "sampling_seed", "workload.model", "workload.seed", "workload.minibatches",
    }  # fmt: skip
    assert [row.key for row in table if row.differs] == ["sampling_seed"]
