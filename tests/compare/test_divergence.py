import numpy as np
import pytest

from backend.compare.band import ReferenceBand, reference_band
from backend.compare.divergence import first_divergence
from backend.errors import BadInput

N = 600
STEPS = np.arange(N)


def run(seed, shift_from=None, shift=0.0, sigma=1.0):
    rng = np.random.default_rng(seed)
    values = np.sin(STEPS / 50.0) + rng.normal(0.0, sigma, N)
    if shift_from is not None:
        values[STEPS >= shift_from] += shift
    return STEPS, values


def flat_band(steps, half_width=1.0):
    center = np.zeros(steps.size)
    return ReferenceBand(steps, center, center - half_width, center + half_width, "replicas", 3.0)


@pytest.mark.parametrize("planted", [30, 250, 500])
@pytest.mark.parametrize("replicas", [1, 2])
def test_a_planted_divergence_is_found_within_k_steps(planted, replicas):
    band = reference_band([run(seed) for seed in range(replicas)])
    for seed in range(10, 15):
        found = first_divergence(band, run(seed, shift_from=planted, shift=10.0), k=5)
        assert found.first_divergence_step is not None
        assert planted <= found.first_divergence_step < planted + 5
        assert found.direction == "above"
        assert found.effect_size > 0


@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_noise_alone_never_diverges(replicas):
    band = reference_band([run(seed) for seed in range(replicas)])
    for seed in range(100, 130):
        found = first_divergence(band, run(seed), k=5)
        assert found.first_divergence_step is None
        assert found.effect_size is None
        assert found.compared_steps == N


def test_k_consecutive_outside_steps_are_needed():
    band = flat_band(STEPS[:20])
    values = np.zeros(20)
    values[5:9] = 3.0  # four steps out, then back in
    assert first_divergence(band, (STEPS[:20], values), k=5).first_divergence_step is None
    values[12:17] = -3.0
    found = first_divergence(band, (STEPS[:20], values), k=5)
    assert found.first_divergence_step == 12
    assert found.direction == "below"
    assert found.stretch_steps == 5


def test_missing_steps_are_skipped_not_filled_in():
    band = flat_band(STEPS[:20])
    candidate_steps = np.array([0, 1, 2, 10, 11, 13, 14, 16])  # 12 and 15 absent
    values = np.array([0.0, 0.0, 0.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    found = first_divergence(band, (candidate_steps, values), k=5)
    assert found.first_divergence_step == 10
    assert found.compared_steps == 8
    # Steps where the band is undefined are skipped the same way.
    band.center[[11, 13]] = np.nan
    assert first_divergence(band, (candidate_steps, values), k=5).first_divergence_step is None


def test_effect_size_is_the_distance_beyond_the_edge_in_half_widths():
    band = flat_band(STEPS[:10], half_width=2.0)
    values = np.array([0, 0, 4, 6, 8, 6, 4, 0, 0, 0], dtype=float)  # beyond by 2, 4, 6, 4, 2
    found = first_divergence(band, (STEPS[:10], values), k=5)
    assert found.first_divergence_step == 2
    assert found.effect_size == pytest.approx(np.mean([2, 4, 6, 4, 2]) / 2.0)


def test_a_candidate_that_logs_nan_where_the_reference_does_not_is_outside():
    band = flat_band(STEPS[:10])
    values = np.array([0, 0, np.nan, np.nan, np.inf, np.nan, 3.0, 0, 0, 0])
    found = first_divergence(band, (STEPS[:10], values), k=5)
    assert found.first_divergence_step == 2
    assert found.effect_size == pytest.approx(2.0)  # only step 6 (3.0) has a distance: 2 / 1
    all_nan = np.full(10, np.nan)
    assert first_divergence(band, (STEPS[:10], all_nan), k=5).effect_size is None


@pytest.mark.parametrize("k", [0, -2, 1.5, True])
def test_k_must_be_a_positive_integer(k):
    with pytest.raises(BadInput) as error:
        first_divergence(flat_band(STEPS[:5]), (STEPS[:5], np.zeros(5)), k=k)
    assert error.value.field == "divergence_k"
