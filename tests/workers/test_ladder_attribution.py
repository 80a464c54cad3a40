"""The parity ladder names the setting that causes a divergence, on the torch engine's real
mechanisms (docs/LADDER.md). A tiny workload keeps each ladder to a few seconds; bench/ladder.py
runs the same checks on the demo workload."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import BadInput
from backend.ladder import plan_ladder, workload_differences
from tests.ladder_local import LADDER_WORKLOAD, run_ladder

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ladder-attribution")]


def closing_settings(ladder: dict) -> list[str]:
    assert ladder["status"] == "closed", ladder["interpretation"]
    return ladder["closing"]["settings"]


# GSPO's own ε for the in-flight update's case, as the demo runs it. With async scheduling on in
# both legs the reference's clip rate is already 0.92 on average at this ε, which leaves the
# torn tokens little room (docs/LADDER.md, limits, has the measurements).
GSPO_EPSILON = {**LADDER_WORKLOAD, "epsilon_low": 3e-4, "epsilon_high": 4e-4}


@pytest.mark.parametrize(
    ("reference", "candidate", "setting"),
    [
        ({}, {"logprobs_mode": "raw"}, "logprobs_mode"),
        ({}, {"prefix_caching": True}, "prefix_caching"),
        ({}, {"async_scheduling": True}, "async_scheduling"),
        # An in-flight update matters only while something is in flight: with async scheduling.
        pytest.param(
            {"async_scheduling": True}, {"async_scheduling": True, "weight_update": "inflight"}, "weight_update",
            marks=pytest.mark.xfail(
                strict=True,
                reason="the torn tokens add little to the offset every token of an async reference already "
                "carries: mean clip-rate lift +0.003 over a saturated 0.92 reference here, at most +0.15 (about "
                "twice the replica spread per step) over the workloads tried, which the comparison's divergence rule "
                "does not flag; only parity/weight_version_lag departs (docs/LADDER.md, limits)",
            ),
        ),
        ({}, {"lm_head_dtype": "bf16"}, "lm_head_dtype"),
    ],
    ids=["logprobs_mode", "prefix_caching", "async_scheduling", "weight_update", "lm_head_dtype"],
)
def test_one_differing_setting_is_named_as_the_closing_one(
    reference: dict, candidate: dict, setting: str, checkpoint_dir: Path
) -> None:
    workload = GSPO_EPSILON if setting == "weight_update" else LADDER_WORKLOAD
    ladder = run_ladder(reference, candidate, checkpoint_dir, workload=workload)
    assert [r["at_parity"] for r in ladder["rungs"]] == [False, True]
    assert closing_settings(ladder) == [setting]
    assert list(ladder["patch"]["engine_settings"]) == [setting]
    # With one difference the ablation leg is rung 0 itself: it says the setting alone breaks parity.
    assert [(a["setting"], a["breaks_parity"], a["same_as_rung"]) for a in ladder["ablation"]] == [(setting, True, 0)]


def test_two_settings_that_both_matter_close_on_the_second_rung(checkpoint_dir: Path) -> None:
    ladder = run_ladder({}, {"logprobs_mode": "raw", "lm_head_dtype": "bf16"}, checkpoint_dir)
    assert [r["applied"] for r in ladder["rungs"]] == [[], ["logprobs_mode"], ["lm_head_dtype"]]
    assert [r["at_parity"] for r in ladder["rungs"]] == [False, False, True]
    assert ladder["closing"]["rung"] == 2
    assert closing_settings(ladder) == ["lm_head_dtype"]
    assert ladder["patch"]["engine_settings"] == {"logprobs_mode": "processed", "lm_head_dtype": "fp32"}
    assert {a["setting"]: a["breaks_parity"] for a in ladder["ablation"]} == {
        "logprobs_mode": True, "lm_head_dtype": True,
    }


def test_ablation_separates_a_setting_that_matters_alone_from_one_that_does_not(checkpoint_dir: Path) -> None:
    ladder = run_ladder({}, {"async_scheduling": True, "weight_update": "inflight"}, checkpoint_dir)
    # Async scheduling is set back first (engine order); with it off the in-flight update has
    # nothing in flight, so that rung already closes the gap.
    assert closing_settings(ladder) == ["async_scheduling"]
    assert ladder["patch"]["engine_settings"] == {"async_scheduling": False}
    assert {a["setting"]: a["breaks_parity"] for a in ladder["ablation"]} == {
        "async_scheduling": True, "weight_update": False,
    }
    words = " ".join(ladder["interpretation"])
    assert "async_scheduling=on alone breaks parity" in words
    assert "weight_update=inflight alone does not break parity" in words


def test_identical_settings_are_already_at_parity_with_no_legs(checkpoint_dir: Path) -> None:
    ladder = run_ladder({"prefix_caching": "off"}, {}, checkpoint_dir)
    assert ladder["status"] == "already-at-parity"
    assert ladder["leg_count"] == 0
    assert ladder["rungs"] == [] and ladder["ablation"] == []


def test_a_workload_difference_is_refused_naming_the_key() -> None:
    other = {**LADDER_WORKLOAD, "lr": 3e-4, "seed": 8}
    assert workload_differences(LADDER_WORKLOAD, other) == ["lr", "seed"]
    with pytest.raises(BadInput, match="max_legs: this ladder needs 12 legs"):
        plan_ladder("torch", {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, "torch",
                    {"a": 2, "b": 2, "c": 2, "d": 2, "e": 2}, max_legs=11)


@pytest.mark.parametrize("seed_offset", [0, 10, 20])
def test_no_false_closing_on_noise(seed_offset: int, checkpoint_dir: Path) -> None:
    # Without async scheduling an in-flight update has nothing in flight: the candidate is the
    # reference in distribution, only its sampling seed differs. No rung may diverge.
    ladder = run_ladder({}, {"weight_update": "inflight"}, checkpoint_dir, seed_offset=seed_offset)
    assert [r["at_parity"] for r in ladder["rungs"]] == [True, True]
    assert all(r["metrics"][m]["at_parity"] for r in ladder["rungs"] for m in ("clip_rate", "kl", "entropy", "reward"))
    assert ladder["closing"]["rung"] == 0
    assert ladder["patch"]["engine_settings"] == {}
