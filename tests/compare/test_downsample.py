import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backend.compare.downsample import (
    bucket_edges,
    check_max_points,
    downsample_band,
    downsample_series,
)
from backend.errors import BadInput

values = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)


@st.composite
def series_and_budget(draw):
    n = draw(st.integers(min_value=1, max_value=400))
    y = draw(hnp.arrays(np.float64, n, elements=values))
    gaps = draw(hnp.arrays(np.int64, n, elements=st.integers(1, 5)))
    x = np.cumsum(gaps)
    max_points = draw(st.integers(min_value=10, max_value=60))
    return x, y, max_points


@settings(max_examples=60, deadline=None)
@given(series_and_budget())
def test_downsampling_keeps_bucket_extremes_and_ends(case):
    x, y, max_points = case
    out = downsample_series(x, y, max_points)

    assert out.x.size <= max_points
    assert np.all(np.diff(out.x) > 0)
    assert out.x[0] == x[0] and out.x[-1] == x[-1]
    assert np.array_equal(out.y[[0, -1]], y[[0, -1]], equal_nan=True)
    kept = dict(zip(out.x.tolist(), range(out.x.size), strict=True))
    # Every output point is an input point, value unchanged.
    index = np.searchsorted(x, out.x)
    assert np.array_equal(out.y, y[index], equal_nan=True)

    if y.size <= max_points:
        assert np.array_equal(out.y, y, equal_nan=True)
        return
    edges = bucket_edges(y.size, max_points, has_nan=bool(np.isnan(y[1:-1]).any()))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        bucket = y[lo:hi]
        ordered = bucket[~np.isnan(bucket)]
        if ordered.size:
            at_min = lo + int(np.flatnonzero(bucket == ordered.min())[0])
            at_max = lo + int(np.flatnonzero(bucket == ordered.max())[0])
            for at in (at_min, at_max):
                assert x[at] in kept
                position = kept[x[at]]
                assert out.y_min[position] == ordered.min()
                assert out.y_max[position] == ordered.max()
        if np.isnan(bucket).any():
            first_nan = lo + int(np.flatnonzero(np.isnan(bucket))[0])
            assert x[first_nan] in kept


def test_a_single_spike_among_100000_points_survives():
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, 100_000)
    y[54_321] = 1e3
    y[77_777] = -1e3
    out = downsample_series(np.arange(y.size), y, 2000)
    assert out.x.size <= 2000
    assert 54_321 in out.x and 77_777 in out.x
    assert out.y.max() == 1e3 and out.y.min() == -1e3


def test_nan_points_are_kept_as_gaps_and_never_become_extremes():
    y = np.linspace(0, 1, 1000)
    y[500] = np.nan
    out = downsample_series(np.arange(1000), y, 20)
    assert 500 in out.x
    assert np.isnan(out.y[out.x == 500][0])
    assert not np.isnan(out.y_min[out.x != 500]).any()
    assert out.x.size <= 20


def test_short_series_pass_through_with_equal_min_and_max():
    x, y = np.arange(5), np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    out = downsample_series(x, y, 10)
    assert np.array_equal(out.y, y, equal_nan=True)
    assert np.array_equal(out.y_min, y, equal_nan=True)
    assert np.array_equal(out.y_max, y, equal_nan=True)


def test_band_envelope_is_never_narrower_than_the_band():
    x = np.arange(10_000)
    center = np.sin(x / 300.0)
    half = 0.1 + 0.05 * np.cos(x / 17.0)
    out = downsample_band(x, center - half, center, center + half, 100)
    assert out.x.size <= 100
    for step in range(0, 10_000, 37):
        right = np.searchsorted(out.x, step, side="right")
        left = max(right - 1, 0)
        low = min(out.lower[left], out.lower[min(right, out.x.size - 1)])
        high = max(out.upper[left], out.upper[min(right, out.x.size - 1)])
        assert low <= center[step] - half[step] + 1e-12
        assert high >= center[step] + half[step] - 1e-12


@pytest.mark.parametrize("bad", [0, 9, 20001, 2.5, True, "2000"])
def test_max_points_outside_the_range_is_rejected(bad):
    with pytest.raises(BadInput) as error:
        check_max_points(bad)
    assert error.value.field == "max_points"
