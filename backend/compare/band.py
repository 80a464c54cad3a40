"""The reference band: how far a run may stray from the reference and still be at parity.

The band answers "where would another run of the reference fall?", so its half-width is ``k``
times the standard deviation of a new run around the band's center. Two sources, and the band
says which it used:

``replicas`` (two or more reference runs)
    Over the steps every replica has: ``center`` is the per-step mean of the replicas and the
    half-width ``k · σ · √(1 + 1/r)`` for ``r`` replicas, where ``√(1 + 1/r)`` adds the
    uncertainty of the mean itself (a prediction interval for one more run). ``σ``, the
    run-to-run standard deviation, is estimated robustly and pooled over blocks of
    ``spread_window`` steps (default 201): ``σ = 1.4826 · median|y − mean| / √(1 − 1/r)`` over
    every replica and step of the block, interpolated between block centres and held at the
    ends. Pooling, because a standard deviation from two or three runs at one step is so noisy
    that it collapses towards zero at many steps (two replicas that happen to agree) and would
    flag a candidate as noisy as the replicas. Robust, because KL and clip rate are heavy-tailed
    (mostly near zero, with spikes when a minibatch moves the policy): a plain standard
    deviation is dominated by the spikes and widens the band until a candidate whose typical
    value sits an order of magnitude higher still looks inside. For Gaussian noise the robust
    and the plain estimate agree.

``within-run`` (one reference run)
    The reference's finite points are cut into consecutive blocks (the last block ends at the
    last point and may overlap its neighbour). ``center`` interpolates the medians of blocks of
    ``window`` points (default 21) linearly between block centres, extrapolating the end
    slopes so a trend does not bend at the edges. The noise scale is a robust spread of each
    step's residual around that level, ``r = y − center``, in blocks of ``spread_window``
    points: ``σ = 1.4826 · MAD(r)``, MAD being the median of ``|r − median(r)|``, interpolated
    between blocks and held at the ends, times ``√(1 + π / (2·window))`` for the uncertainty
    of a median of ``window`` points. Medians ignore isolated spikes and 1.4826 makes the MAD
    a standard deviation for Gaussian noise. Residuals around the level rather than
    step-to-step differences, because training curves are often autocorrelated and
    differences then understate the spread; the wide spread window keeps the estimate steady
    (a MAD of 20 points is off by a quarter often enough to fake a divergence somewhere in a
    long run). Blocks instead of a sliding window keep this at a few milliseconds for 100,000
    steps. One run cannot show run-to-run variation (another seed's persistent offset, noise
    correlated over many steps), so this band is narrower than a replica band and says so.

Every band also records how often the reference itself falls outside a band of this kind, the
rate a new run of the reference would be flagged at (``own_outside_steps`` of
``own_compared_steps``); divergence (``backend.compare.divergence``) judges a candidate's rate of
outside steps against it. With replicas each replica is held against the band of the others,
leave one out: ``|y_i − mean of the others| > k · σ · √(1 + 1/(r − 1))`` with the band's pooled
``σ``, since a replica sits inside its own band more often than a new run would. With one run,
the run's own points are held against its band.

A step where the band cannot be computed (a replica or the reference logged NaN or ±inf there)
has NaN ``center``/``lower``/``upper``; divergence skips such steps. The half-width never drops
below a tiny floor so that a reference that is exactly constant (a clip rate of 0) still lets
equal values count as inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from backend.compare.align import shared_steps, values_at
from backend.compare.run_series import Series
from backend.errors import BadInput

__all__ = [
    "DEFAULT_BAND_K",
    "DEFAULT_SPREAD_WINDOW",
    "DEFAULT_WINDOW",
    "BandSource",
    "ReferenceBand",
    "check_band_k",
    "reference_band",
    "reference_line",
]

BandSource = Literal["replicas", "within-run"]

_MAD_TO_SIGMA = 1.4826
_ABSOLUTE_FLOOR = 1e-12
_RELATIVE_FLOOR = 1e-9
_MIN_WINDOW_SAMPLES = 3
DEFAULT_BAND_K = 3.0
DEFAULT_WINDOW = 21
DEFAULT_SPREAD_WINDOW = 201


@dataclass(frozen=True)
class ReferenceBand:
    steps: np.ndarray
    center: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    source: BandSource
    k: float
    own_outside_steps: int = 0
    own_compared_steps: int = 0

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


def reference_band(
    references: Sequence[Series],
    k: float = DEFAULT_BAND_K,
    *,
    window: int = DEFAULT_WINDOW,
    spread_window: int = DEFAULT_SPREAD_WINDOW,
) -> ReferenceBand:
    """The band of the reference run (one series) or reference replicas (several series).

    ``window`` sets how local the within-run level is; ``spread_window`` how many steps one
    estimate of the noise scale pools (see the module docstring for both sources).
    """
    k = check_band_k(k)
    if not references:
        raise BadInput("at least one reference run is needed", field="reference")
    for name, size in (("window", window), ("spread_window", spread_window)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise BadInput(f"{name} must be a positive integer, got {size!r}", field=name)
    if len(references) >= 2:
        return _replica_band(references, k, spread_window)
    return _within_run_band(references[0], k, window, spread_window)


def _replica_band(references: Sequence[Series], k: float, spread_window: int) -> ReferenceBand:
    steps = shared_steps([steps for steps, _ in references])
    stacked = np.stack([values_at(series, steps) for series in references])
    defined = np.isfinite(stacked).all(axis=0)
    replicas = len(references)
    center = np.full(steps.size, np.nan)
    spread = np.full(steps.size, np.nan)
    if defined.any():
        values = stacked[:, defined]
        level = values.mean(axis=0)
        deviation = np.abs(values - level)
        blocks = _blocks(level.size, spread_window)
        pooled = deviation[:, blocks].transpose(1, 0, 2).reshape(blocks.shape[0], -1)
        # A replica's deviation from the mean of r has standard deviation σ·√(1 − 1/r).
        sigma = _MAD_TO_SIGMA * _row_medians(pooled) / math.sqrt(1.0 - 1.0 / replicas)
        position = np.arange(level.size, dtype=np.float64)
        center[defined] = level
        spread[defined] = _interpolate(position, blocks.mean(axis=1), sigma, extrapolate=False)
        own = _leave_one_out_outside(values, spread[defined], k)
        spread *= math.sqrt(1.0 + 1.0 / replicas)
        return replace(_band(steps, center, spread, defined, k, "replicas"), **own)
    return _band(steps, center, spread, defined, k, "replicas")


def _leave_one_out_outside(values: np.ndarray, sigma: np.ndarray, k: float) -> dict[str, int]:
    """How often each replica falls outside the band the other replicas would make."""
    replicas = values.shape[0]
    others = (values.sum(axis=0) - values) / (replicas - 1)
    half_width = k * sigma * math.sqrt(1.0 + 1.0 / (replicas - 1))
    usable = np.isfinite(half_width) & (half_width > 0)
    outside = (np.abs(values - others) > half_width) & usable
    return {
        "own_outside_steps": int(outside.sum()),
        "own_compared_steps": int(usable.sum()) * replicas,
    }


def _within_run_band(reference: Series, k: float, window: int, spread_window: int) -> ReferenceBand:
    steps, values = reference
    defined = np.isfinite(values)
    center = np.full(values.size, np.nan)
    spread = np.full(values.size, np.nan)
    finite_values = values[defined]
    if finite_values.size >= _MIN_WINDOW_SAMPLES:
        position = np.arange(finite_values.size, dtype=np.float64)
        level_at, level = _block_medians(finite_values, window)
        level_line = _interpolate(position, level_at, level, extrapolate=True)
        residual = finite_values - level_line
        residual_at, typical = _block_medians(residual, spread_window)
        blocks = _blocks(residual.size, spread_window)
        mad = _row_medians(np.abs(residual[blocks] - typical[:, None]))
        # A median of ``window`` Gaussian points has variance ≈ πσ²/(2·window).
        sigma = _MAD_TO_SIGMA * mad * math.sqrt(1.0 + math.pi / (2.0 * min(window, residual.size)))
        center[defined] = level_line
        spread[defined] = _interpolate(position, residual_at, sigma, extrapolate=False)
    band = _band(steps, center, spread, defined, k, "within-run")
    usable = np.isfinite(band.center)
    outside = (values[usable] < band.lower[usable]) | (values[usable] > band.upper[usable])
    return replace(
        band, own_outside_steps=int(outside.sum()), own_compared_steps=int(usable.sum())
    )


def _blocks(size: int, window: int) -> np.ndarray:
    """Index matrix of consecutive blocks of ``window`` (the last one ending at ``size``)."""
    window = min(window, size)
    starts = np.arange(0, size - window + 1, window)
    if starts[-1] + window < size:
        starts = np.append(starts, size - window)
    return starts[:, None] + np.arange(window)


def _block_medians(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per block: its centre position and the median of its values."""
    blocks = _blocks(values.size, window)
    return blocks.mean(axis=1), _row_medians(values[blocks])


def _row_medians(matrix: np.ndarray) -> np.ndarray:
    """Median of each row; a partial sort is several times faster than ``np.median`` here."""
    width = matrix.shape[1]
    middle = width // 2
    if width % 2:
        return np.partition(matrix, middle, axis=1)[:, middle]
    ordered = np.partition(matrix, (middle - 1, middle), axis=1)
    return (ordered[:, middle - 1] + ordered[:, middle]) / 2.0


def _interpolate(
    position: np.ndarray, known_at: np.ndarray, known: np.ndarray, *, extrapolate: bool
) -> np.ndarray:
    out = np.interp(position, known_at, known)
    if extrapolate and known.size >= 2:
        before = position < known_at[0]
        after = position > known_at[-1]
        first_slope = (known[1] - known[0]) / (known_at[1] - known_at[0])
        last_slope = (known[-1] - known[-2]) / (known_at[-1] - known_at[-2])
        out[before] = known[0] + first_slope * (position[before] - known_at[0])
        out[after] = known[-1] + last_slope * (position[after] - known_at[-1])
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
