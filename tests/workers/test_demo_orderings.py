"""The demo's claim, measured on a short run of its four legs (docs/WORKERS.md, "The demo, measured").

- ``v1-initial``'s clip rate and KL stand above the reference's from the first steps;
- ``v1-fixed`` stays within the seed-to-seed spread of the reference and its replica, while
  ``v1-initial`` is far outside it by the same measure.

The spread is the mean per-step distance between the two reference replicas; a leg's distance
is its mean per-step distance from the replicas' midpoint. A third replica from the same
distribution has an expected ratio below 1 (√1.5/√2 ≈ 0.87), so 2 leaves room for noise, and a
backend mismatch lands one to two orders of magnitude higher.
"""

import pytest

from workers.demo import DEMO_LEGS, DEMO_WORKLOAD
from workers.leg import run_leg

STEPS = 10
FIRST = 3
METRICS = ("clamp_log_ratio_new_old_indicator", "kl_new_old")


@pytest.fixture(scope="module")
def legs(checkpoint_dir, demo_checkpoint) -> dict[str, list[dict[str, float]]]:
    workload = {**DEMO_WORKLOAD, "steps": STEPS}
    return {
        leg.label: run_leg(workload, leg.settings, leg.sampling_seed, checkpoint_dir=checkpoint_dir).metrics
        for leg in DEMO_LEGS
    }


def series(legs, label: str, metric: str) -> list[float]:
    return [step[metric] for step in legs[label]]


def distance_over_spread(legs, label: str, metric: str) -> float:
    reference, replica = series(legs, "reference", metric), series(legs, "reference-replica", metric)
    spread = sum(abs(a - b) for a, b in zip(reference, replica, strict=True)) / STEPS
    midpoint = [(a + b) / 2 for a, b in zip(reference, replica, strict=True)]
    distance = sum(abs(x - m) for x, m in zip(series(legs, label, metric), midpoint, strict=True)) / STEPS
    return distance / spread


@pytest.mark.parametrize("metric", METRICS)
def test_v1_initial_stands_above_the_reference_from_the_first_steps(legs, metric):
    initial = series(legs, "v1-initial", metric)
    highest_reference = [max(a, b) for a, b in zip(series(legs, "reference", metric),
                                                   series(legs, "reference-replica", metric), strict=True)]
    for step in range(FIRST):
        assert initial[step] > highest_reference[step], f"step {step}"
    assert sum(initial) / STEPS > 1.5 * sum(highest_reference) / STEPS


@pytest.mark.parametrize("metric", METRICS)
def test_v1_fixed_stays_within_the_reference_spread_and_v1_initial_does_not(legs, metric):
    assert distance_over_spread(legs, "v1-fixed", metric) < 2.0
    assert distance_over_spread(legs, "v1-initial", metric) > 10.0


def test_parity_metrics_point_at_the_right_layers(legs):
    def mean(label, metric):
        return sum(series(legs, label, metric)) / STEPS

    reference_abs = max(mean("reference", "parity/logprob_abs_diff_mean"),
                        mean("reference-replica", "parity/logprob_abs_diff_mean"))
    # Raw logprobs: a mean offset (layer 1); async scheduling: a version lag (layer 2).
    assert mean("v1-initial", "parity/logprob_diff_mean") < -100 * reference_abs
    assert mean("v1-initial", "parity/weight_version_lag") > 0.3
    assert mean("v1-fixed", "parity/weight_version_lag") == 0.0
    assert mean("v1-fixed", "parity/logprob_abs_diff_mean") < 10 * reference_abs
