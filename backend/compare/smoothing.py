"""TensorBoard's debiased exponential moving average, point for point.

TensorBoard (``resmoothDataset`` in its line chart) keeps ``last = w·last + (1−w)·y`` over the
finite points only and shows ``last / (1 − wⁿ)``, where ``n`` counts the finite points seen so
far; a non-finite point is shown unchanged and neither decays nor advances the average; a series
whose values are all equal is shown unchanged (so rounding never wiggles a flat line).

The debiased value equals the adjusted exponentially weighted mean with ``alpha = 1 − w`` over
the finite points, which polars computes in one vectorised pass; ``tests/compare`` checks it
against the recurrence above.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from backend.errors import BadInput

__all__ = ["check_smoothing", "debiased_ema"]


def check_smoothing(weight: float) -> float:
    """Return ``weight`` as a float if it lies in [0, 1), else raise ``BadInput``."""
    if isinstance(weight, bool) or not isinstance(weight, int | float | np.floating):
        raise BadInput("smoothing must be a number in [0, 1)", field="smoothing")
    weight = float(weight)
    if not (math.isfinite(weight) and 0.0 <= weight < 1.0):
        raise BadInput(f"smoothing must be in [0, 1), got {weight}", field="smoothing")
    return weight


def debiased_ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Smooth ``values`` with TensorBoard's debiased EMA of weight ``weight`` in [0, 1)."""
    weight = check_smoothing(weight)
    values = np.asarray(values, dtype=np.float64)
    if weight == 0.0 or values.size == 0 or np.all(values == values[0]):
        return values.copy()
    finite = np.isfinite(values)
    if not finite.any():
        return values.copy()
    masked = pl.Series(values).set(pl.Series(~finite), None)
    smoothed = masked.ewm_mean(
        alpha=1.0 - weight, adjust=True, ignore_nulls=True, min_samples=1
    ).to_numpy()
    return np.where(finite, smoothed, values)
