import numpy as np
import pytest

from backend.compare.band import reference_band, reference_line
from backend.errors import BadInput

STEPS = np.arange(2000)


def noisy(seed, sigma=1.0, steps=STEPS):
    rng = np.random.default_rng(seed)
    return steps, 0.002 * steps + rng.normal(0.0, sigma, steps.size)


def test_replicas_give_a_replica_band_over_shared_steps_only():
    first = (np.array([0, 1, 2, 3]), np.array([1.0, 2.0, 3.0, 4.0]))
    second = (np.array([1, 2, 3, 4]), np.array([3.0, 4.0, 5.0, 6.0]))
    band = reference_band([first, second], k=2.0)
    assert band.source == "replicas"
    assert band.steps.tolist() == [1, 2, 3]
    assert band.center.tolist() == [2.5, 3.5, 4.5]
    # Each replica sits 0.5 from the mean of two: σ = 1.4826 · 0.5 / √(1 − ½); one more run
    # around a mean of two adds √1.5.
    sigma = 1.4826 * 0.5 / np.sqrt(0.5)
    assert np.allclose(band.half_width, 2.0 * sigma * np.sqrt(1.5))


def test_one_reference_gives_a_within_run_band_of_its_own_noise():
    band = reference_band([noisy(1, sigma=0.5)], k=3.0)
    assert band.source == "within-run"
    assert np.nanmedian(band.half_width) / 3.0 == pytest.approx(0.5, rel=0.15)
    # The level follows the trend, not the noise.
    assert np.nanmax(np.abs(band.center - 0.002 * STEPS)) < 0.5


def test_replica_band_estimates_the_run_to_run_spread():
    band = reference_band([noisy(seed, sigma=0.2) for seed in range(3)], k=1.0)
    expected = 0.2 * np.sqrt(1 + 1 / 3)
    assert np.nanmedian(band.half_width) == pytest.approx(expected, rel=0.15)


def test_spikes_in_a_replica_do_not_widen_the_replica_band():
    runs = [noisy(seed, sigma=0.1) for seed in range(2)]
    calm = reference_band(runs)
    spiky_values = runs[1][1].copy()
    spiky_values[::40] += 50.0  # heavy tail: rare large excursions, as KL has
    spiky = reference_band([runs[0], (runs[1][0], spiky_values)])
    assert np.nanmedian(spiky.half_width) < 1.3 * np.nanmedian(calm.half_width)


def test_a_spike_in_the_reference_does_not_widen_the_within_run_band():
    steps, values = noisy(2)
    calm = reference_band([(steps, values)])
    values = values.copy()
    values[1000] = 1e6
    spiky = reference_band([(steps, values)])
    assert np.nanmax(spiky.half_width) < 1.5 * np.nanmax(calm.half_width)


def test_steps_where_a_replica_logged_nan_have_no_band():
    first, second = noisy(3), noisy(4)
    values = second[1].copy()
    values[10] = np.nan
    band = reference_band([first, (second[0], values)])
    assert np.isnan(band.center[10]) and np.isnan(band.upper[10])
    assert np.isfinite(band.center[11])


def test_a_constant_reference_has_a_tiny_but_nonzero_band():
    band = reference_band([(STEPS, np.zeros(STEPS.size))])
    assert np.all(band.half_width > 0) and np.all(band.half_width < 1e-9)
    assert np.all((band.lower <= 0) & (band.upper >= 0))


def test_too_short_a_reference_has_no_band():
    band = reference_band([(np.arange(2), np.array([1.0, 2.0]))])
    assert np.isnan(band.center).all()


def test_reference_line_is_the_run_or_the_replicas_mean():
    single = noisy(5)
    assert reference_line([single]) is single
    steps, mean = reference_line([(np.array([0, 1]), np.array([1.0, 2.0])),
                                  (np.array([1, 2]), np.array([4.0, 5.0]))])  # fmt: skip
    assert steps.tolist() == [1] and mean.tolist() == [3.0]


@pytest.mark.parametrize("k", [0, -1, float("nan"), float("inf"), "3", True])
def test_band_k_must_be_a_positive_number(k):
    with pytest.raises(BadInput) as error:
        reference_band([noisy(6)], k=k)
    assert error.value.field == "band_k"


def test_no_reference_is_rejected():
    with pytest.raises(BadInput) as error:
        reference_band([])
    assert error.value.field == "reference"
