"""The multi-resolution summary of a metric series: per bucket of steps, what a chart needs.

A bucket at level ``s`` holds the points with ``step >> s == bucket``, i.e. ``2**s`` consecutive
steps. Per bucket: the first and last step and value, the point count, the count of finite
values, the minimum and maximum (NaN excluded, ±inf ordered like any value) with the first step
attaining each, the mean of the finite values and the first NaN step. Merging consecutive
buckets gives exactly the statistics of their union (the mean up to rounding), so a coarser
bucket, or one pixel of a chart, is computed from finer rows without reading their points.

Pure numpy, shared by the storage layer (which keeps the summaries up to date at ingest) and the
comparison (which draws and compares from them); see docs/ARCHITECTURE.md, "Summaries".
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["LEVELS", "NO_STEP", "BucketStats", "level_for", "merge_buckets", "point_buckets"]

LEVELS: tuple[int, ...] = (4, 6, 8, 10, 12, 14, 16)
"""log2 of the bucket width in steps of each stored level: 16 steps up to 65,536 steps."""

NO_STEP = np.iinfo(np.int64).max
"""``min_step``/``max_step``/``nan_step`` of a bucket that has no such point."""


@dataclass(frozen=True)
class BucketStats:
    """Parallel arrays, one element per bucket, buckets in step order."""

    bucket: np.ndarray
    first_step: np.ndarray
    last_step: np.ndarray
    count: np.ndarray
    finite_count: np.ndarray
    first_value: np.ndarray
    last_value: np.ndarray
    min_value: np.ndarray
    min_step: np.ndarray
    max_value: np.ndarray
    max_step: np.ndarray
    mean_value: np.ndarray
    nan_step: np.ndarray

    def __len__(self) -> int:
        return int(self.bucket.size)

    def take(self, index: np.ndarray) -> BucketStats:
        return BucketStats(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[BucketStats]) -> BucketStats:
        if not parts:
            return point_buckets(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))
        return BucketStats(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(BucketStats)}
        )


def _bounds(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1)).astype(np.int64)
    ends = np.append(starts[1:], group.size)
    return starts, ends


def point_buckets(steps: np.ndarray, values: np.ndarray, bucket: np.ndarray) -> BucketStats:
    """Statistics of points (sorted by step) per ``bucket`` id (non-decreasing along steps)."""
    steps = np.asarray(steps, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    bucket = np.asarray(bucket, dtype=np.int64)
    if steps.size == 0:
        empty_i, empty_f = np.empty(0, np.int64), np.empty(0, np.float64)
        return BucketStats(empty_i, empty_i, empty_i, empty_i, empty_i, empty_f, empty_f,
                           empty_f, empty_i, empty_f, empty_i, empty_f, empty_i)
    starts, ends = _bounds(bucket)
    sizes = ends - starts
    owner = np.repeat(np.arange(starts.size), sizes)
    nan = np.isnan(values)
    finite = np.isfinite(values)
    for_min = np.where(nan, np.inf, values)
    for_max = np.where(nan, -np.inf, values)
    low = np.minimum.reduceat(for_min, starts)
    high = np.maximum.reduceat(for_max, starts)
    ordered = np.add.reduceat((~nan).astype(np.int64), starts) > 0
    at_low = (for_min == low[owner]) & ~nan
    at_high = (for_max == high[owner]) & ~nan
    finite_count = np.add.reduceat(finite.astype(np.int64), starts)
    total = np.add.reduceat(np.where(finite, values, 0.0), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite_count > 0, total / np.maximum(finite_count, 1), np.nan)
    return BucketStats(
        bucket=bucket[starts],
        first_step=steps[starts],
        last_step=steps[ends - 1],
        count=sizes,
        finite_count=finite_count,
        first_value=values[starts],
        last_value=values[ends - 1],
        min_value=np.where(ordered, low, np.nan),
        min_step=np.minimum.reduceat(np.where(at_low, steps, NO_STEP), starts),
        max_value=np.where(ordered, high, np.nan),
        max_step=np.minimum.reduceat(np.where(at_high, steps, NO_STEP), starts),
        mean_value=mean,
        nan_step=np.minimum.reduceat(np.where(nan, steps, NO_STEP), starts),
    )


def merge_buckets(
    rows: BucketStats, group: np.ndarray, bucket: np.ndarray | None = None
) -> BucketStats:
    """Rows (in step order) merged per ``group`` id (non-decreasing): the union's statistics.

    The merged ``bucket`` is ``bucket`` (one per row, constant within a group) or the group id.
    """
    group = np.asarray(group, dtype=np.int64)
    if len(rows) == 0:
        return rows
    starts, ends = _bounds(group)
    owner = np.repeat(np.arange(starts.size), ends - starts)
    for_min = np.where(np.isnan(rows.min_value), np.inf, rows.min_value)
    for_max = np.where(np.isnan(rows.max_value), -np.inf, rows.max_value)
    low = np.minimum.reduceat(for_min, starts)
    high = np.maximum.reduceat(for_max, starts)
    has_low = ~np.isnan(rows.min_value)
    ordered = np.add.reduceat(has_low.astype(np.int64), starts) > 0
    at_low = has_low & (for_min == low[owner])
    at_high = has_low & (for_max == high[owner])
    finite_count = np.add.reduceat(rows.finite_count, starts)
    weighted = np.where(rows.finite_count > 0, rows.mean_value * rows.finite_count, 0.0)
    total = np.add.reduceat(weighted, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite_count > 0, total / np.maximum(finite_count, 1), np.nan)
    return BucketStats(
        bucket=(group if bucket is None else np.asarray(bucket, dtype=np.int64))[starts],
        first_step=rows.first_step[starts],
        last_step=rows.last_step[ends - 1],
        count=np.add.reduceat(rows.count, starts),
        finite_count=finite_count,
        first_value=rows.first_value[starts],
        last_value=rows.last_value[ends - 1],
        min_value=np.where(ordered, low, np.nan),
        min_step=np.minimum.reduceat(np.where(at_low, rows.min_step, NO_STEP), starts),
        max_value=np.where(ordered, high, np.nan),
        max_step=np.minimum.reduceat(np.where(at_high, rows.max_step, NO_STEP), starts),
        mean_value=mean,
        nan_step=np.minimum.reduceat(rows.nan_step, starts),
    )


def level_for(window_steps: int, pixels: int) -> int | None:
    """The coarsest stored level whose buckets are no wider than one of ``pixels`` pixels over
    ``window_steps`` steps, or None when even the finest is too coarse (read the points)."""
    width = window_steps / max(pixels, 1)
    usable = [level for level in LEVELS if 2**level <= width]
    return usable[-1] if usable else None
