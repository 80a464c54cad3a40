"""The ladder's plan (backend/ladder.py): layer order, generic settings, ablation dedup, cost."""

from __future__ import annotations

import pytest

from backend.errors import BadInput
from backend.ladder import plan_ladder

REFERENCE = {"logprobs_mode": "processed", "prefix_caching": False, "async_scheduling": False,
             "weight_update": "blocking", "lm_head_dtype": "fp32"}


def test_rungs_follow_layer_order_for_any_setting_the_engine_lists() -> None:
    # Settings an engine might add (a model dtype, an objective knob) are placed by the key
    # registry: dtype with the inference path, epsilon_high with the objective, whatever their
    # position in the dict.
    reference = {"epsilon_high": 4e-4, "dtype": "float32", **REFERENCE}
    candidate = {**reference, "epsilon_high": 2e-3, "dtype": "bfloat16", "lm_head_dtype": "bf16",
                 "logprobs_mode": "raw", "prefix_caching": True}
    plan = plan_ladder("torch", reference, "torch", candidate, ablation=False)
    assert [(d.name, d.layer) for d in plan.differences] == [
        ("logprobs_mode", "semantic"), ("dtype", "inference-path"), ("prefix_caching", "inference-path"),
        ("lm_head_dtype", "inference-path"), ("epsilon_high", "objective"),
    ]
    assert plan.rungs[-1].settings == reference
    assert plan.rungs[0].settings == candidate
    assert plan.leg_count == 2 + 6


def test_ablation_legs_that_equal_a_rung_are_not_run_twice() -> None:
    candidate = {**REFERENCE, "logprobs_mode": "raw", "lm_head_dtype": "bf16", "prefix_caching": True}
    plan = plan_ladder("torch", REFERENCE, "torch", candidate)
    assert [(a.setting, a.same_as_rung) for a in plan.ablation] == [
        ("logprobs_mode", None), ("prefix_caching", None), ("lm_head_dtype", 2),
    ]
    assert plan.leg_count == 2 + 4 + 2
    one = plan_ladder("torch", REFERENCE, "torch", {**REFERENCE, "async_scheduling": True})
    assert [(a.setting, a.same_as_rung) for a in one.ablation] == [("async_scheduling", 0)]
    assert one.leg_count == 4


def test_bad_plans_are_refused() -> None:
    with pytest.raises(BadInput, match="at least 2 reference runs"):
        plan_ladder("torch", REFERENCE, "torch", {**REFERENCE, "prefix_caching": True}, replicas=1)
    with pytest.raises(BadInput, match="no rung of settings can change"):
        plan_ladder("vllm-v0", REFERENCE, "vllm-v1", REFERENCE)
    with pytest.raises(BadInput, match="needs 4 legs to run") as refused:
        plan_ladder("torch", REFERENCE, "torch", {**REFERENCE, "prefix_caching": True}, max_legs=3)
    assert refused.value.field == "max_legs"
    assert plan_ladder("torch", REFERENCE, "torch", dict(REFERENCE)).already_at_parity
