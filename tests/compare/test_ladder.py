"""Ladder verdicts from per-run metric verdicts (backend/compare/ladder.py): closing rung, patch,
and the reading of the ablation."""

from __future__ import annotations

from backend.compare.ladder import LegOutcome, MetricVerdict, judge_ladder
from backend.ladder import plan_ladder

REFERENCE = {"logprobs_mode": "processed", "async_scheduling": False, "weight_update": "blocking",
             "lm_head_dtype": "fp32"}
CANDIDATE = {"logprobs_mode": "raw", "async_scheduling": True, "weight_update": "inflight", "lm_head_dtype": "bf16"}


def verdicts(diverging: set[str]) -> dict[str, MetricVerdict]:
    return {m: MetricVerdict(m, m not in diverging, 3 if m in diverging else None, 2.0 if m in diverging else None,
                             0.5, 20) for m in ("clip_rate", "kl", "entropy", "reward")}


def judged(rung_diverging: list[set[str]], ablation_diverging: dict[str, set[str]], missing: set[str] = frozenset()):
    plan = plan_ladder("torch", REFERENCE, "torch", CANDIDATE).to_json()
    outcomes, by_run, run = {}, {}, 10
    for rung, diverging in zip(plan["rungs"], rung_diverging, strict=True):
        run += 1
        outcomes[rung["label"]] = LegOutcome("finished" if rung["label"] not in missing else "running", run)
        by_run[str(run)] = verdicts(diverging)
    for leg in plan["ablation"]:
        if leg["same_as_rung"] is None:
            run += 1
            outcomes[leg["label"]] = LegOutcome("finished", run)
            by_run[str(run)] = verdicts(ablation_diverging[leg["setting"]])
    return judge_ladder(plan, outcomes, by_run)


def test_the_demo_pattern_reads_as_it_should() -> None:
    # As the demo: each of logprobs, async, head breaks parity alone, the in-flight update does
    # not; only the last rung (head back to fp32) is at parity.
    ladder = judged([{"clip_rate", "kl"}, {"clip_rate"}, {"clip_rate"}, {"clip_rate"}, set()],
                    {"logprobs_mode": {"clip_rate"}, "async_scheduling": {"clip_rate"}, "weight_update": set()})
    assert ladder["status"] == "closed" and ladder["closing"]["rung"] == 4
    assert ladder["closing"]["settings"] == ["lm_head_dtype"]
    assert ladder["patch"]["engine_settings"] == REFERENCE
    assert ladder["patch"]["not_shown_needed"] == ["weight_update"]
    words = " ".join(ladder["interpretation"])
    assert "weight_update=inflight alone does not break parity; it is in the patch only because" in words
    assert "lm_head_dtype=bf16 alone breaks parity" in words  # the ablation leg is rung 3


def test_a_setting_that_matters_only_with_a_later_one() -> None:
    # Setting async back closes the gap though async alone is at parity: it interacts with the
    # settings still at the candidate's values.
    ladder = judged([{"clip_rate"}, {"clip_rate"}, set(), set(), set()],
                    {"logprobs_mode": {"clip_rate"}, "async_scheduling": set(), "weight_update": set()})
    assert ladder["closing"]["rung"] == 2
    words = " ".join(ladder["interpretation"])
    assert ("async_scheduling=on alone does not break parity, yet setting it back closed the gap: it matters "
            "only together with weight_update, lm_head_dtype") in words


def test_a_rung_at_parity_followed_by_one_that_is_not_does_not_close() -> None:
    ladder = judged([{"kl"}, set(), {"kl"}, set(), set()],
                    {"logprobs_mode": {"kl"}, "async_scheduling": set(), "weight_update": set()})
    assert ladder["closing"]["rung"] == 3


def test_pending_and_not_closed() -> None:
    pending = judged([{"kl"}, set(), set(), set(), set()], {k: set() for k in CANDIDATE}, missing={"rung-4 lm_head_dtype"})
    assert pending["status"] == "pending" and pending["closing"] is None and pending["patch"] is None
    never = judged([{"kl"}] * 5, {k: {"kl"} for k in CANDIDATE})
    assert never["status"] == "not-closed" and "No rung closes the gap" in never["interpretation"][0]
