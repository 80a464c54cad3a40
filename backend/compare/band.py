"""The reference band: how far a run may stray from the reference and still be at parity.

Two sources, and the band says which it used:

``replicas`` (two or more reference runs)
    Over the steps every replica has: ``center`` is the per-step mean of the replicas and the
    half-width is ``k`` times their standard deviation. A per-step standard deviation from two
    or three runs is itself so noisy that it collapses towards zero at many steps (two replicas
    that happen to agree), which would flag a candidate that is as noisy as the replicas. So
    the per-step sample variance (ddof=1) is pooled over a centred window of neighbouring steps
    (``window``, default 21) before the square root; ``window=1`` gives the raw per-step value.

``within-run`` (one reference run)
    ``center`` is the rolling median of the reference over a centred window. The noise scale is
    a rolling robust spread of the step-to-step residuals ``d = y[i] − y[i−1]``:
    ``σ = 1.4826 · MAD(d) / √2``, where MAD is the rolling median of ``|d − median(d)|``.
    Differences cancel a slow trend, the median ignores isolated spikes, 1.4826 makes the MAD
    a standard deviation for Gaussian noise, and ``√2`` undoes the doubling of variance in a
    difference. One run cannot show run-to-run variation (another seed's persistent offset),
    so this band is narrower than a replica band and says so through its source.

A step where the band cannot be computed (a replica or the reference logged NaN or ±inf there)
has NaN ``center``/``lower``/``upper``; divergence skips such steps. The half-width never drops
below a tiny floor so that a reference that is exactly constant (a clip rate of 0) still lets
equal values count as inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from backend.compare.align import shared_steps, values_at
from backend.compare.run_series import Series
from backend.errors import BadInput

__all__ = ["BandSource", "ReferenceBand", "check_band_k", "reference_band", "reference_line"]

BandSource = Literal["replicas", "within-run"]

_MAD_TO_SIGMA = 1.4826
_ABSOLUTE_FLOOR = 1e-12
_RELATIVE_FLOOR = 1e-9
_MIN_WINDOW_SAMPLES = 3


@dataclass(frozen=True)
class ReferenceBand:
    steps: np.ndarray
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    source: BandSource
    k: float

    @property
    def half_width(self) -> np.ndarray:
        return (self.upper - self.lower) / 2.0


def check_band_k(k: float) -> float:
    """Return ``k`` as a float if it is finite and positive, else raise ``BadInput``."""
    if isinstance(k, bool) or not isinstance(k, int | float | np.floating):
        raise BadInput("band_k must be a positive number", field="band_k")
    if not (math.isfinite(k) and k > 0):
        raise BadInput(f"band_k must be a positive number, got {k}", field="band_k")
    return float(k)


def reference_line(references: Sequence[Series]) -> Series:
    """The reference a candidate is diffed against: the run itself, or the replicas' mean.

    With replicas only the steps they all share are kept; a step where any replica is NaN has
    a NaN mean.
    """
    if len(references) == 1:
        return references[0]
    steps = shared_steps([steps for steps, _ in references])
    stacked = np.stack([values_at(series, steps) for series in references])
    return steps, stacked.mean(axis=0)


def reference_band(references: Sequence[Series], k: float = 3.0, window: int = 21) -> ReferenceBand:
    """The band of the reference run (one series) or reference replicas (several series)."""
    k = check_band_k(k)
    if not references:
        raise BadInput("at least one reference run is needed", field="reference")
    if len(references) >= 2:
        return _replica_band(references, k, window)
    return _within_run_band(references[0], k, window)


def _replica_band(references: Sequence[Series], k: float, window: int) -> ReferenceBand:
    steps = shared_steps([steps for steps, _ in references])
    stacked = np.stack([values_at(series, steps) for series in references])
    defined = np.isfinite(stacked).all(axis=0)
    with np.errstate(invalid="ignore"):
        center = stacked.mean(axis=0)
        variance = stacked.var(axis=0, ddof=1)
    pooled = _rolling(variance, defined, window, "mean", min_samples=1)
    spread = np.sqrt(pooled)
    return _band(steps, np.where(defined, center, np.nan), spread, defined, k, "replicas")


def _within_run_band(reference: Series, k: float, window: int) -> ReferenceBand:
    steps, values = reference
    defined = np.isfinite(values)
    center = _rolling(values, defined, window, "median", min_samples=1)
    finite_values = values[defined]
    step_residual = np.diff(finite_values)
    if step_residual.size:
        # Residual i belongs to the i-th finite point; the first point borrows the next one's.
        step_residual = np.concatenate((step_residual[:1], step_residual))
    residual_defined = np.ones(step_residual.size, dtype=bool)
    typical = _rolling(step_residual, residual_defined, window, "median", _MIN_WINDOW_SAMPLES)
    mad = _rolling(
        np.abs(step_residual - typical), residual_defined, window, "median", _MIN_WINDOW_SAMPLES
    )
    spread = np.full(values.size, np.nan)
    spread[defined] = _MAD_TO_SIGMA * mad / math.sqrt(2.0)
    return _band(steps, center, spread, defined, k, "within-run")


def _rolling(
    values: np.ndarray, defined: np.ndarray, window: int, statistic: str, min_samples: int
) -> np.ndarray:
    """A centred rolling statistic over the defined values, NaN where it is not defined."""
    if values.size == 0:
        return values.astype(np.float64)
    series = pl.Series(values, dtype=pl.Float64).set(pl.Series(~defined), None)
    min_samples = min(min_samples, window)
    if statistic == "median":
        rolled = series.rolling_median(window, center=True, min_samples=min_samples)
    else:
        rolled = series.rolling_mean(window, center=True, min_samples=min_samples)
    out = rolled.to_numpy().astype(np.float64)
    out[~defined] = np.nan
    return out


def _band(
    steps: np.ndarray,
    center: np.ndarray,
    spread: np.ndarray,
    defined: np.ndarray,
    k: float,
    source: BandSource,
) -> ReferenceBand:
    with np.errstate(invalid="ignore"):
        floor = _ABSOLUTE_FLOOR + _RELATIVE_FLOOR * np.abs(center)
        half_width = np.maximum(k * spread, floor)
    usable = defined & np.isfinite(center) & np.isfinite(half_width)
    center = np.where(usable, center, np.nan)
    half_width = np.where(usable, half_width, np.nan)
    return ReferenceBand(
        steps=steps,
        center=center,
        lower=center - half_width,
        upper=center + half_width,
        source=source,
        k=k,
    )
