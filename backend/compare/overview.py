"""The overview of a long window, computed from bucket summaries instead of points.

The window ``[lo, hi]`` is cut into ``pixels`` equal step ranges, the same for every run of a
metric, and each run's summary rows (``backend/series_summary.py``) are merged per pixel. From
the pixels:

- the drawn line keeps, per pixel, the point of its minimum and of its maximum (and of its
  first NaN, when the metric has one), plus the window's first and last point: a spike is never
  hidden and the last point is always drawn, as in ``backend.compare.downsample``;
- the compared series (band, divergence, diff, smoothing) is the pixel means at the pixel's
  first step, NaN where the pixel holds a non-finite value, so a divergence is located to
  within one pixel (docs/COMPARE.md, "Long runs").
"""

from __future__ import annotations

import numpy as np

from backend.compare.downsample import DownsampledSeries
from backend.compare.run_series import Series
from backend.series_summary import NO_STEP, BucketStats, merge_buckets

__all__ = ["Grid", "compared_series", "drawn_series", "grid_for", "pixel_rows"]


class Grid:
    """``pixels`` step ranges over ``lo..hi``: pixel ``p`` holds the steps with
    ``(step − lo) · pixels // width == p``."""

    def __init__(self, lo: int, hi: int, pixels: int) -> None:
        self.lo, self.hi = int(lo), int(hi)
        self.width = self.hi - self.lo + 1
        self.pixels = max(1, min(int(pixels), self.width))

    def pixel_of(self, steps: np.ndarray) -> np.ndarray:
        return ((steps - self.lo) * self.pixels) // self.width

    def first_step(self, pixel: np.ndarray) -> np.ndarray:
        return self.lo + (pixel * self.width + self.pixels - 1) // self.pixels


def grid_for(lo: int, hi: int, max_points: int, rows: list[BucketStats]) -> Grid:
    """The grid of one metric: two drawn points per pixel, three when any run has a NaN."""
    has_nan = any(bool(np.any(r.nan_step != NO_STEP)) for r in rows)
    return Grid(lo, hi, (max_points - 2) // (3 if has_nan else 2))


def pixel_rows(rows: BucketStats, grid: Grid) -> BucketStats:
    """The rows merged per pixel; ``bucket`` is the pixel index. Rows outside the grid are
    dropped."""
    inside = (rows.first_step >= grid.lo) & (rows.last_step <= grid.hi)
    rows = rows.take(np.flatnonzero(inside))
    if len(rows) == 0:
        return rows
    return merge_buckets(rows, grid.pixel_of(rows.first_step))


def drawn_series(pixels: BucketStats) -> DownsampledSeries:
    """The line to draw: each pixel's min, max and first NaN point, the first and last point."""
    parts_x = [pixels.first_step[:1], pixels.last_step[-1:]]
    parts_y = [pixels.first_value[:1], pixels.last_value[-1:]]
    parts_low = [pixels.first_value[:1], pixels.last_value[-1:]]
    parts_high = [pixels.first_value[:1], pixels.last_value[-1:]]
    for at, value in (
        (pixels.min_step, pixels.min_value),
        (pixels.max_step, pixels.max_value),
        (pixels.nan_step, np.full(len(pixels), np.nan)),
    ):
        present = at != NO_STEP
        parts_x.append(at[present])
        parts_y.append(value[present])
        parts_low.append(pixels.min_value[present])
        parts_high.append(pixels.max_value[present])
    x = np.concatenate(parts_x)
    order = np.argsort(x, kind="stable")
    x = x[order]
    keep = np.ones(x.size, dtype=bool)
    keep[1:] = x[1:] != x[:-1]
    pick = order[keep]
    return DownsampledSeries(
        x=x[keep],
        y=np.concatenate(parts_y)[pick],
        y_min=np.concatenate(parts_low)[pick],
        y_max=np.concatenate(parts_high)[pick],
    )


def compared_series(pixels: BucketStats, grid: Grid) -> Series:
    """Pixel means at each pixel's first step; NaN where a pixel holds a non-finite value."""
    means = np.where(pixels.finite_count == pixels.count, pixels.mean_value, np.nan)
    return grid.first_step(pixels.bucket), means
