import pytest

from backend.compare.configdiff import config_diff
from backend.compare.diagnosis import diagnose
from backend.compare.divergence import Divergence
from backend.compare.parity import parity_findings, summarise_parity
from backend.compare.registry import KeyRegistry

from .parity_series import parity_series
from .synthetic_runs import INITIAL_V1_SETTINGS, REFERENCE_SETTINGS, engine, workload

AT_PARITY = Divergence(None, None, None, 0, 200, 0)
DIVERGED = Divergence(37, 4.2, "above", 30, 200, 30)


def judge(candidate_config, candidate_engine, *, candidate_parity=None, divergences=None,
          reference_engine=None, reference_parity=True, **kwargs):  # fmt: skip
    reference = (workload(), reference_engine or engine(REFERENCE_SETTINGS))
    differences = config_diff([reference], (candidate_config, candidate_engine), KeyRegistry())
    findings = parity_findings(
        summarise_parity([candidate_parity]) if candidate_parity is not None else None,
        summarise_parity([parity_series(99)]) if reference_parity else None,
    )
    divergences = {"clip_rate": AT_PARITY, "kl": AT_PARITY} if divergences is None else divergences
    return diagnose(differences, findings, divergences, **kwargs)


def verdicts(diagnosis):
    return {v.layer: v.verdict for v in diagnosis.verdicts}


def test_layers_come_in_fixed_order():
    diagnosis = judge(workload(), engine(REFERENCE_SETTINGS), candidate_parity=parity_series(1))
    assert [v.layer for v in diagnosis.verdicts] == [
        "workload",
        "semantic",
        "inference-path",
        "objective",
    ]
    assert all(v.sentence for v in diagnosis.verdicts)


def test_a_workload_difference_is_not_like_for_like_and_comes_first():
    diagnosis = judge(
        workload(lr=3e-3),
        engine(INITIAL_V1_SETTINGS),
        candidate_parity=parity_series(1, offset=-0.05),
    )
    assert diagnosis.starting_layer == "workload"
    assert diagnosis.like_for_like is False
    first = diagnosis.verdicts[0]
    assert first.verdict == "fail" and first.sentence.startswith("Not like-for-like")
    assert first.evidence["differing_keys"] == [
        {"key": "lr", "reference_value": 1e-3, "candidate_value": 3e-3}
    ]


def test_a_logprobs_mode_difference_names_the_semantic_layer():
    settings = dict(REFERENCE_SETTINGS, logprobs_mode="raw")
    diagnosis = judge(workload(), engine(settings), candidate_parity=parity_series(1, offset=-0.05),
                      divergences={"clip_rate": DIVERGED})  # fmt: skip
    assert diagnosis.starting_layer == "semantic"
    assert verdicts(diagnosis) == {
        "workload": "pass", "semantic": "fail", "inference-path": "pass", "objective": "unknown",
    }  # fmt: skip
    semantic = diagnosis.verdicts[1]
    assert "logprobs_mode" in semantic.sentence and "mean offset" in semantic.sentence
    assert [f.quantity for f in semantic.facts] == [
        "engine.settings.logprobs_mode",
        "mean rollout − trainer logprob difference",
        "offset beyond the reference's",
    ]
    # Divergences decide only the objective layer, and are its evidence.
    assert "divergence" not in semantic.evidence
    objective = diagnosis.verdicts[3]
    assert objective.evidence["divergence"]["clip_rate"]["first_divergence_step"] == 37
    # Objective advice waits until the lower layers pass.
    assert "importance sampling" not in objective.sentence


def test_a_mean_offset_alone_fails_the_semantic_layer():
    diagnosis = judge(
        workload(), engine(REFERENCE_SETTINGS), candidate_parity=parity_series(1, offset=0.2)
    )
    assert diagnosis.starting_layer == "semantic"
    assert "effective logprobs_mode" in diagnosis.verdicts[1].sentence


def test_the_initial_v1_settings_start_at_semantic_and_fail_inference_path_too():
    diagnosis = judge(
        workload(),
        engine(INITIAL_V1_SETTINGS),
        candidate_parity=parity_series(1, offset=-0.05, lag_share=0.5),
    )
    assert diagnosis.starting_layer == "semantic"
    inference = diagnosis.verdicts[2]
    assert inference.verdict == "fail"
    keys = {d["key"] for d in inference.evidence["differing_keys"]}
    assert keys == {
        f"engine.settings.{name}"
        for name in ("prefix_caching", "async_scheduling", "weight_update", "lm_head_dtype")
    }


@pytest.mark.parametrize(
    ("setting", "parity"),
    [
        ({"prefix_caching": "on"}, {}),
        ({}, {"abs_diff": 7e-4}),  # numerics: larger |Δ| with no offset
        ({}, {"lag_share": 0.5}),  # update path: staler weights
    ],
)
def test_inference_path_mismatches(setting, parity):
    diagnosis = judge(
        workload(),
        engine(dict(REFERENCE_SETTINGS, **setting)),
        candidate_parity=parity_series(1, **parity),
    )
    assert verdicts(diagnosis)["semantic"] == "pass"
    assert diagnosis.starting_layer == "inference-path"
    assert diagnosis.verdicts[2].sentence.startswith("Inference-path mismatch")


def test_backend_parity_with_diverging_curves_points_at_the_objective():
    diagnosis = judge(workload(), engine(REFERENCE_SETTINGS), candidate_parity=parity_series(1),
                      divergences={"clip_rate": DIVERGED, "kl": AT_PARITY})  # fmt: skip
    assert diagnosis.starting_layer == "objective"
    objective = diagnosis.verdicts[3]
    assert objective.verdict == "fail"
    assert "truncated importance sampling" in objective.sentence and "step 37" in objective.sentence


def test_a_differing_objective_setting_is_reported_even_below_a_failing_layer():
    diagnosis = judge(
        workload(epsilon_high=0.2), engine(dict(REFERENCE_SETTINGS, logprobs_mode="raw"))
    )
    assert diagnosis.starting_layer == "semantic"
    objective = diagnosis.verdicts[3]
    assert objective.verdict == "fail" and "epsilon_high" in objective.sentence
    assert "importance sampling" not in objective.sentence


def test_everything_at_parity():
    diagnosis = judge(workload(), engine(REFERENCE_SETTINGS), candidate_parity=parity_series(1))
    assert diagnosis.starting_layer is None and diagnosis.like_for_like is True
    assert set(verdicts(diagnosis).values()) == {"pass"}


def test_a_different_engine_version_alone_is_judged_by_parity_metrics():
    v1 = {"name": "vllm", "version": "0.18.1", "settings": dict(REFERENCE_SETTINGS)}
    v0 = {"name": "vllm", "version": "0.8.5", "settings": dict(REFERENCE_SETTINGS)}
    with_parity = judge(workload(), v1, reference_engine=v0, candidate_parity=parity_series(1))
    assert verdicts(with_parity)["inference-path"] == "pass"
    assert "differ by design" in with_parity.verdicts[2].sentence
    without = judge(
        workload(), v1, reference_engine=v0, reference_parity=False, logprobs_mode_recorded=True
    )
    assert verdicts(without)["inference-path"] == "unknown"
    # Both engines describe their effective logprobs_mode, and it is the same.
    assert verdicts(without)["semantic"] == "pass"


def test_without_parity_metrics_or_a_recorded_logprobs_mode_semantic_is_unknown():
    diagnosis = diagnose(
        config_diff(
            [({"seed": 1}, {"name": "vllm", "version": "0.8.5"})],
            ({"seed": 1}, {"name": "vllm", "version": "0.18.1"}),
            KeyRegistry(),
        ),
        parity_findings(None, None),
        {"kl": AT_PARITY},
    )
    assert verdicts(diagnosis)["semantic"] == "unknown"
    assert verdicts(diagnosis)["objective"] == "unknown"
    assert diagnosis.starting_layer is None


def test_no_configuration_leaves_the_workload_unknown():
    diagnosis = diagnose([], parity_findings(None, None), {}, has_config=False)
    assert verdicts(diagnosis)["workload"] == "unknown" and diagnosis.like_for_like is None


def test_unclassified_keys_are_listed_without_failing_anything():
    differences = config_diff(
        [({"output_dir": "/a"}, {})], ({"output_dir": "/b"}, {}), KeyRegistry()
    )
    diagnosis = diagnose(differences, parity_findings(None, None), {"kl": AT_PARITY})
    assert diagnosis.unclassified_keys == ["output_dir"]
    assert verdicts(diagnosis)["workload"] == "pass"
