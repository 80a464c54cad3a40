import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backend.compare.smoothing import check_smoothing, debiased_ema
from backend.errors import BadInput


def tensorboard_recurrence(values, weight):
    """The formula as TensorBoard's line chart writes it, one point at a time."""
    out = list(values)
    if all(v == values[0] for v in values):
        return out
    last, seen = 0.0, 0
    for index, value in enumerate(values):
        if not math.isfinite(value):
            continue
        last = last * weight + (1 - weight) * value
        seen += 1
        out[index] = last / (1 - weight**seen)
    return out


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.integers(1, 200),
        elements=st.one_of(
            st.floats(-1e3, 1e3, allow_nan=False), st.sampled_from([np.nan, np.inf, -np.inf])
        ),
    ),
    st.floats(0.0, 0.999),
)
def test_matches_the_tensorboard_recurrence(values, weight):
    expected = np.array(tensorboard_recurrence(values.tolist(), weight))
    got = debiased_ema(values, weight)
    finite = np.isfinite(values)
    assert np.array_equal(got[~finite], values[~finite], equal_nan=True)
    scale = max(1.0, float(np.abs(values[finite]).max())) if finite.any() else 1.0
    assert np.allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-9 * scale)


def test_first_point_is_not_pulled_towards_zero():
    assert debiased_ema(np.array([10.0, 10.0, 20.0]), 0.9)[0] == pytest.approx(10.0)


def test_weight_zero_and_constant_series_are_unchanged():
    y = np.array([1.0, 5.0, np.nan, 2.0])
    assert np.array_equal(debiased_ema(y, 0.0), y, equal_nan=True)
    flat = np.full(50, 0.1)
    assert np.array_equal(debiased_ema(flat, 0.99), flat)


def test_non_finite_points_neither_decay_nor_count():
    with_gap = debiased_ema(np.array([1.0, np.nan, 3.0]), 0.5)
    without = debiased_ema(np.array([1.0, 3.0]), 0.5)
    assert with_gap[2] == pytest.approx(without[1])


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan, math.inf, "0.5", None, True])
def test_weight_outside_zero_to_one_is_rejected(bad):
    with pytest.raises(BadInput) as error:
        check_smoothing(bad)
    assert error.value.field == "smoothing"
