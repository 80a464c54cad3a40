"""Min/max downsampling: at most ``max_points`` per series without hiding a spike.

The points between the first and the last are cut into contiguous buckets of (nearly) equal
point count. Each bucket emits the points where its minimum and its maximum occur, in step
order, so the drawn line passes through both extremes; the first and last points of the series
are always kept. Every output point carries its bucket's ``y_min`` and ``y_max`` for hover text
(kept points that form their own bucket have ``y_min == y_max == y``).

NaN (the trainer logged NaN) has no place in an ordering, so it never becomes a bucket's min or
max. A NaN is still an event nobody should miss: when a series contains NaN, buckets get a third
slot for their first NaN point, and the bucket count shrinks so the total stays within
``max_points``. A bucket of only NaN emits that NaN point alone with NaN ``y_min``/``y_max``.
±Infinity is ordered and takes part in min and max like any value.

Bucketing uses point count rather than step ranges, so every bucket is non-empty and the whole
computation is a handful of vectorised numpy reductions (100,000 points in about a millisecond).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.errors import BadInput

__all__ = [
    "DEFAULT_MAX_POINTS",
    "MAX_POINTS_LIMIT",
    "MIN_POINTS_LIMIT",
    "DownsampledBand",
    "DownsampledSeries",
    "bucket_edges",
    "check_max_points",
    "downsample_band",
    "downsample_series",
]

DEFAULT_MAX_POINTS = 2000
MIN_POINTS_LIMIT = 10
MAX_POINTS_LIMIT = 20000


@dataclass(frozen=True)
class DownsampledSeries:
    x: np.ndarray
    y: np.ndarray
    y_min: np.ndarray
    y_max: np.ndarray


@dataclass(frozen=True)
class DownsampledBand:
    x: np.ndarray
    lower: np.ndarray
    center: np.ndarray
    upper: np.ndarray


def check_max_points(max_points: int) -> int:
    """Return ``max_points`` if it lies in [10, 20000], else raise ``BadInput``."""
    if isinstance(max_points, bool) or not isinstance(max_points, int | np.integer):
        raise BadInput("max_points must be an integer", field="max_points")
    if not MIN_POINTS_LIMIT <= max_points <= MAX_POINTS_LIMIT:
        raise BadInput(
            f"max_points must be between {MIN_POINTS_LIMIT} and {MAX_POINTS_LIMIT}, "
            f"got {max_points}",
            field="max_points",
        )
    return int(max_points)


def bucket_edges(n_points: int, max_points: int, *, has_nan: bool) -> np.ndarray:
    """Bucket boundaries as indices into the whole series (first and last excluded).

    Bucket ``i`` covers indices ``edges[i]:edges[i + 1]``. Empty when no downsampling is needed.
    """
    if n_points <= max_points:
        return np.empty(0, dtype=np.int64)
    slots = 3 if has_nan else 2
    n_buckets = (max_points - 2) // slots
    inner = n_points - 2
    return 1 + (np.arange(n_buckets + 1, dtype=np.int64) * inner) // n_buckets


def downsample_series(
    x: np.ndarray, y: np.ndarray, max_points: int = DEFAULT_MAX_POINTS
) -> DownsampledSeries:
    """Reduce ``(x, y)`` to at most ``max_points`` points keeping each bucket's min and max."""
    check_max_points(max_points)
    n_points = y.size
    if n_points <= max_points:
        return DownsampledSeries(x=x, y=y, y_min=y, y_max=y)

    nan = np.isnan(y)
    has_nan = bool(nan[1:-1].any())
    edges = bucket_edges(n_points, max_points, has_nan=has_nan)
    starts = edges[:-1]
    inner = slice(1, n_points - 1)
    inner_y = y[inner]
    inner_nan = nan[inner]
    positions = np.arange(inner_y.size, dtype=np.int64)
    sentinel = inner_y.size
    local_starts = starts - 1
    bucket_of = np.repeat(np.arange(starts.size), np.diff(edges))

    for_min = np.where(inner_nan, np.inf, inner_y)
    for_max = np.where(inner_nan, -np.inf, inner_y)
    bucket_min = np.minimum.reduceat(for_min, local_starts)
    bucket_max = np.maximum.reduceat(for_max, local_starts)
    # First position attaining the bucket's extreme; NaN positions never qualify, so a
    # bucket of only NaN gets the sentinel.
    at_min = (for_min == bucket_min[bucket_of]) & ~inner_nan
    at_max = (for_max == bucket_max[bucket_of]) & ~inner_nan
    min_pos = np.minimum.reduceat(np.where(at_min, positions, sentinel), local_starts)
    max_pos = np.minimum.reduceat(np.where(at_max, positions, sentinel), local_starts)
    picked = [min_pos, max_pos]
    if has_nan:
        picked.append(np.minimum.reduceat(np.where(inner_nan, positions, sentinel), local_starts))
    # Buckets are contiguous and in order, so sorting within each bucket orders everything;
    # a repeat (min and max at one point) or a sentinel is dropped.
    per_bucket = np.sort(np.stack(picked, axis=1), axis=1).ravel()
    keep = per_bucket < sentinel
    keep[1:] &= per_bucket[1:] != per_bucket[:-1]
    chosen = per_bucket[keep]

    all_nan = min_pos == sentinel
    bucket_min = np.where(all_nan, np.nan, bucket_min)
    bucket_max = np.where(all_nan, np.nan, bucket_max)
    chosen_bucket = bucket_of[chosen]
    index = np.concatenate(([0], chosen + 1, [n_points - 1]))
    return DownsampledSeries(
        x=x[index],
        y=y[index],
        y_min=np.concatenate(([y[0]], bucket_min[chosen_bucket], [y[-1]])),
        y_max=np.concatenate(([y[0]], bucket_max[chosen_bucket], [y[-1]])),
    )


def downsample_band(
    x: np.ndarray,
    lower: np.ndarray,
    center: np.ndarray,
    upper: np.ndarray,
    max_points: int = DEFAULT_MAX_POINTS,
) -> DownsampledBand:
    """Reduce a band to at most ``max_points`` points as a per-bucket envelope.

    Each bucket is drawn at its first and last step with the lowest ``lower`` and the highest
    ``upper`` of the bucket, so the shaded band is never narrower than the full-resolution band
    anywhere; ``center`` is taken at those two steps. Undefined (NaN) band values are ignored
    inside a bucket; a bucket with no defined value stays NaN, which draws as a gap.
    """
    check_max_points(max_points)
    n_points = x.size
    if n_points <= max_points:
        return DownsampledBand(x=x, lower=lower, center=center, upper=upper)
    n_buckets = max_points // 2
    starts = (np.arange(n_buckets, dtype=np.int64) * n_points) // n_buckets
    ends = np.append(starts[1:], n_points) - 1
    defined = ~(np.isnan(lower) | np.isnan(upper))
    low = np.minimum.reduceat(np.where(defined, lower, np.inf), starts)
    high = np.maximum.reduceat(np.where(defined, upper, -np.inf), starts)
    empty = np.add.reduceat(defined.astype(np.int64), starts) == 0
    low = np.where(empty, np.nan, low)
    high = np.where(empty, np.nan, high)
    index = np.stack([starts, ends], axis=1).ravel()
    keep = np.ones(index.size, dtype=bool)
    keep[1::2] = ends != starts
    return DownsampledBand(
        x=x[index][keep],
        lower=np.repeat(low, 2)[keep],
        center=center[index][keep],
        upper=np.repeat(high, 2)[keep],
    )
