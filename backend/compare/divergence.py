"""First divergence: the step from which a candidate stays outside the reference band.

Only steps where both the candidate has a value and the band is defined are compared; a step
missing on either side is skipped, never filled in, so "k consecutive steps" means k
consecutive compared steps. A candidate value of NaN or ±inf where the band is defined counts
as outside: the candidate's trainer blew up where the reference did not.

Effect size: over the stretch of consecutive outside steps that starts at the first divergence
(it runs until the candidate comes back inside), the mean of
``(|candidate − center| − half_width) / half_width``: how far beyond the band the candidate
sits, in band half-widths. 0 means just at the edge, 1 means one half-width beyond it. Steps of
the stretch with a non-finite candidate value have no distance and are left out of the mean;
a stretch of only such steps has no effect size (None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from backend.compare.align import intersect_sorted
from backend.compare.band import ReferenceBand
from backend.compare.run_series import Series
from backend.errors import BadInput

__all__ = ["DEFAULT_DIVERGENCE_K", "Divergence", "check_divergence_k", "first_divergence"]

DEFAULT_DIVERGENCE_K = 5


@dataclass(frozen=True)
class Divergence:
    first_divergence_step: int | None
    effect_size: float | None
    direction: Literal["above", "below", "mixed"] | None
    stretch_steps: int
    compared_steps: int
    outside_steps: int


def check_divergence_k(k: int) -> int:
    """Return ``k`` if it is an integer of at least 1, else raise ``BadInput``."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise BadInput(
            f"divergence_k must be an integer of at least 1, got {k!r}", field="divergence_k"
        )
    return int(k)


def first_divergence(
    band: ReferenceBand, candidate: Series, k: int = DEFAULT_DIVERGENCE_K
) -> Divergence:
    """Where ``candidate`` first leaves ``band`` for ``k`` consecutive compared steps."""
    k = check_divergence_k(k)
    candidate_steps, candidate_values = candidate
    steps, band_index, candidate_index = intersect_sorted(band.steps, candidate_steps)
    band_defined = np.isfinite(band.center[band_index])
    band_index = band_index[band_defined]
    steps = steps[band_defined]
    values = candidate_values[candidate_index[band_defined]]
    center = band.center[band_index]
    lower = band.lower[band_index]
    upper = band.upper[band_index]

    outside = ~np.isfinite(values) | (values < lower) | (values > upper)
    n_outside = int(outside.sum())
    start = _first_run_start(outside, k)
    if start is None:
        return Divergence(None, None, None, 0, int(steps.size), n_outside)

    comes_back = np.flatnonzero(~outside[start:])
    stop = start + (int(comes_back[0]) if comes_back.size else outside.size - start)
    stretch = slice(start, stop)
    stretch_values = values[stretch]
    finite = np.isfinite(stretch_values)
    effect_size = None
    direction = None
    if finite.any():
        half_width = ((upper - lower) / 2.0)[stretch][finite]
        offset = stretch_values[finite] - center[stretch][finite]
        effect_size = float(np.mean((np.abs(offset) - half_width) / half_width))
        above, below = bool((offset > 0).any()), bool((offset < 0).any())
        direction = "mixed" if above and below else ("above" if above else "below")
    return Divergence(
        first_divergence_step=int(steps[start]),
        effect_size=effect_size,
        direction=direction,
        stretch_steps=stop - start,
        compared_steps=int(steps.size),
        outside_steps=n_outside,
    )


def _first_run_start(outside: np.ndarray, k: int) -> int | None:
    """Index where the first run of at least ``k`` True values begins."""
    if outside.size < k:
        return None
    counts = np.concatenate(([0], np.cumsum(outside, dtype=np.int64)))
    full = np.flatnonzero(counts[k:] - counts[:-k] == k)
    return int(full[0]) if full.size else None
