"""The overview from bucket summaries: downsampling properties, and agreement with points."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backend.compare.comparison import build_comparison
from backend.compare.overview import Grid, drawn_series, grid_for, pixel_rows
from backend.compare.run_series import RunSeries
from backend.series_summary import LEVELS, merge_buckets, point_buckets

values = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([np.nan, np.inf, -np.inf]),
)


def summary_rows(steps, values, level):
    """What the storage layer keeps for one series at ``level``."""
    return point_buckets(steps, values, steps >> level)


@st.composite
def series_and_budget(draw):
    n = draw(st.integers(min_value=1, max_value=400))
    y = draw(hnp.arrays(np.float64, n, elements=values))
    gaps = draw(hnp.arrays(np.int64, n, elements=st.integers(1, 40)))
    x = np.cumsum(gaps)
    max_points = draw(st.integers(min_value=10, max_value=60))
    level = draw(st.sampled_from([0, 1, 2, 4]))
    return x, y, max_points, level


@settings(max_examples=80, deadline=None)
@given(series_and_budget())
def test_overview_from_summaries_keeps_pixel_extremes_and_ends(case):
    x, y, max_points, level = case
    rows = summary_rows(x, y, level)
    grid = grid_for(int(x[0]), int(x[-1]), max_points, [rows])
    pixels = pixel_rows(rows, grid)
    out = drawn_series(pixels)

    assert out.x.size <= max_points
    assert np.all(np.diff(out.x) > 0)
    assert out.x[0] == x[0] and out.x[-1] == x[-1]
    assert np.array_equal(out.y[[0, -1]], y[[0, -1]], equal_nan=True)
    # Every drawn point is a point of the series, value unchanged.
    index = np.searchsorted(x, out.x)
    assert np.array_equal(out.y, y[index], equal_nan=True)
    # Per pixel (a bucket lies in the pixel of its first step), the extremes and the first NaN
    # are drawn, and every point drawn in the pixel carries its min and max.
    bucket_pixel = grid.pixel_of(rows.first_step)
    point_pixel = np.repeat(bucket_pixel, rows.count)
    kept = dict(zip(out.x.tolist(), range(out.x.size), strict=True))
    for pixel in np.unique(point_pixel):
        mine = point_pixel == pixel
        px, py = x[mine], y[mine]
        ordered = ~np.isnan(py)
        if np.isnan(py).any():
            assert px[np.isnan(py)][0] in kept
        if ordered.any():
            low, high = py[ordered].min(), py[ordered].max()
            for at in (px[ordered][py[ordered] == low][0], px[ordered][py[ordered] == high][0]):
                assert at in kept
                position = kept[at]
                if 0 < position < out.x.size - 1:
                    assert out.y_min[position] == low
                    assert out.y_max[position] == high


@settings(max_examples=60, deadline=None)
@given(series_and_budget())
def test_coarser_levels_merged_from_finer_equal_levels_from_points(case):
    x, y, _, _ = case
    finer = summary_rows(x, y, LEVELS[0])
    for level in LEVELS[1:3]:
        merged = merge_buckets(finer, finer.bucket >> (level - LEVELS[0]), finer.bucket >> (level - LEVELS[0]))
        direct = summary_rows(x, y, level)
        for name in ("bucket", "first_step", "last_step", "count", "finite_count", "min_step",
                     "max_step", "nan_step"):
            assert np.array_equal(getattr(merged, name), getattr(direct, name)), name
        for name in ("first_value", "last_value", "min_value", "max_value"):
            assert np.array_equal(getattr(merged, name), getattr(direct, name), equal_nan=True), name
        assert np.allclose(merged.mean_value, direct.mean_value, equal_nan=True, rtol=1e-9)


def _runs(n_steps, shift_at, seed, *, replicas=2, shift=0.4):
    rng = np.random.default_rng(seed)
    steps = np.arange(n_steps, dtype=np.int64)
    trend = 1.0 + 0.2 * steps / n_steps
    runs = []
    for index in range(replicas + 1):
        values = trend + rng.normal(0, 0.05, n_steps)
        if index == replicas:
            values = values + np.where(steps >= shift_at, shift, 0.0)
        runs.append((f"r{index}", steps, values))
    return runs


def _compare(runs, summaries, max_points=2000):
    built = []
    for name, steps, values in runs:
        if summaries:
            level = 6
            rows = summary_rows(steps, values, level)
            built.append(RunSeries(run_id=name, name=name, summaries={"reward": rows}))
        else:
            built.append(RunSeries(run_id=name, name=name, series={"reward": (steps, values)}))
    window = (0, int(runs[0][1][-1])) if summaries else None
    return build_comparison(built[:-1], built[-1:], ["reward"], max_points=max_points,
                            figures=(), window=window)


def test_divergence_from_summaries_agrees_with_points_within_one_pixel():
    n_steps = 200_000
    for seed, shift_at in ((1, 120_037), (2, 61_500), (3, 150_001)):
        runs = _runs(n_steps, shift_at, seed)
        full = _compare(runs, summaries=False).metrics[0].candidates[0].divergence
        coarse = _compare(runs, summaries=True).metrics[0].candidates[0].divergence
        grid = Grid(0, n_steps - 1, (2000 - 2) // 2)
        assert full.first_divergence_step is not None
        assert coarse.first_divergence_step is not None
        # The summary's step is its bucket's first step; the full-resolution step lies in the
        # same bucket or the next one.
        full_bucket, coarse_bucket = grid.pixel_of(
            np.array([full.first_divergence_step, coarse.first_divergence_step])
        )
        assert coarse.first_divergence_step == grid.first_step(coarse_bucket)
        assert abs(int(full_bucket) - int(coarse_bucket)) <= 1, (
            seed, full.first_divergence_step, coarse.first_divergence_step
        )


def test_no_divergence_from_summaries_when_the_candidate_is_another_replica():
    runs = _runs(200_000, 10**9, 4)
    coarse = _compare(runs, summaries=True).metrics[0].candidates[0].divergence
    full = _compare(runs, summaries=False).metrics[0].candidates[0].divergence
    assert full.first_divergence_step is None
    assert coarse.first_divergence_step is None


def test_overview_comparison_of_twenty_runs_draws_every_run_within_the_budget():
    rng = np.random.default_rng(5)
    steps = np.arange(0, 100_000, 3, dtype=np.int64)
    runs = [
        RunSeries(run_id=i, name=f"run {i}",
                  summaries={"reward": summary_rows(steps, rng.normal(0, 1, steps.size), 4)})
        for i in range(20)
    ]
    comparison = build_comparison(runs[:3], runs[3:], ["reward"], max_points=500, figures=("overlay",),
                                  window=(0, int(steps[-1])))
    metric = comparison.metrics[0]
    assert len(metric.runs) == 20
    for run in metric.runs:
        assert run.downsampled and run.series is not None
        assert run.series.x.size <= 500
        assert run.series.x[-1] == steps[-1]
    assert len(metric.candidates) == 17
    assert len(metric.figures["overlay"]["data"]) >= 20


def test_a_shift_too_small_to_leave_the_band_step_by_step_is_found_no_later_from_summaries():
    # 1.6 noise σ: single steps leave a ±3σ band only now and then, pixel means always do.
    runs = _runs(200_000, 120_037, 1, shift=0.08)
    full = _compare(runs, summaries=False).metrics[0].candidates[0].divergence
    coarse = _compare(runs, summaries=True).metrics[0].candidates[0].divergence
    assert coarse.first_divergence_step is not None
    assert coarse.first_divergence_step <= 120_037 < coarse.first_divergence_step + 201
    assert full.first_divergence_step is None or full.first_divergence_step >= coarse.first_divergence_step
