"""First divergence: the step from which a candidate leaves the reference band more often than
the reference itself does.

Only steps where both the candidate has a value and the band is defined are compared; a step
missing on either side is skipped, never filled in. A candidate value of NaN or ±inf where the
band is defined counts as outside: the candidate's trainer blew up where the reference did not.

The rule (docs/COMPARE.md has the derivation and the measured false-alarm rate) is a Bernoulli
CUSUM on the outside/inside sequence. ``p0`` is the reference's own out-of-band rate (see
``backend.compare.band``: how often a run of the reference falls outside such a band),
estimated as ``(outside + 1) / (compared + 2)`` (the Gaussian ``P(|z| > k)`` for a band that
records no run of its own) and never below ``MIN_REFERENCE_RATE``; ``p1``
is the rate a person calls "mostly outside", ``max(ALARM_RATE, 3 · p0)`` (at most 0.95). Each
compared step adds ``ln(p1/p0)`` when outside and ``ln((1 − p1)/(1 − p0))`` when inside; the sum
is held at zero from below. An alarm is raised when the sum reaches ``h = ln(n / FALSE_ALARM)``
for ``n`` compared steps and the current excursion (the steps since the sum last stood at zero)
holds at least ``k`` outside steps. Under noise with rate ``p0`` a CUSUM started at any one step
reaches ``h`` with probability at most ``e^-h``, so over ``n`` steps the chance of a false
alarm is at most ``FALSE_ALARM``; ``k`` keeps a lone pair of spikes from counting as a
divergence. A run of ``k`` consecutive outside steps, an intermittent excursion (18 of 24 steps
outside) and a gradual drift whose outside rate climbs all raise the sum.

The divergence is reported where a person would point: the first step of the excursion that
raised the alarm (the first outside step after the sum last stood at zero). Its *stretch* runs
from there to the last outside step before the sum returns to zero (or the last outside step of
the run), and the evidence is counted over it: ``stretch_steps`` compared steps,
``stretch_outside`` of them outside, ``above`` / ``below`` the band, ``direction`` (``above``,
``below`` or ``mixed`` when both occur; non-finite values count as outside with no side).

``effect_size`` (shown as "distance beyond the band"): the median, over the stretch's outside
steps with a finite value, of ``(|candidate − center| − half_width) / half_width``: how far
beyond the band's edge the candidate sits, in band half-widths (0 at the edge, 1 one half-width
beyond it). None when every outside step of the stretch is non-finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from backend.compare.align import intersect_sorted
from backend.compare.band import ReferenceBand
from backend.compare.facts import Fact, sig3
from backend.compare.run_series import Series
from backend.errors import BadInput

__all__ = [
    "ALARM_RATE",
    "DEFAULT_DIVERGENCE_K",
    "FALSE_ALARM",
    "MARKER_DEFINITIONS",
    "MIN_REFERENCE_RATE",
    "Divergence",
    "check_divergence_k",
    "divergence_fact",
    "first_divergence",
    "marker_words",
    "reference_rate",
]

DEFAULT_DIVERGENCE_K = 5
FALSE_ALARM = 0.002
MIN_REFERENCE_RATE = 0.01
ALARM_RATE = 0.5
_MAX_ALARM_RATE = 0.95


@dataclass(frozen=True)
class Divergence:
    first_divergence_step: int | None
    effect_size: float | None
    direction: Literal["above", "below", "mixed"] | None
    stretch_steps: int
    compared_steps: int
    outside_steps: int
    stretch_outside: int = 0
    above: int = 0
    below: int = 0
    last_step: int | None = None
    reference_rate: float | None = None
    bucket_steps: int = 1
    """Steps per compared point: 1 point by point; over a long window the CUSUM runs on the
    means of buckets of this many steps (docs/COMPARE.md, "Long windows")."""


def check_divergence_k(k: int) -> int:
    """Return ``k`` if it is an integer of at least 1, else raise ``BadInput``."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise BadInput(
            f"divergence_k must be an integer of at least 1, got {k!r}", field="divergence_k"
        )
    return int(k)


def reference_rate(band: ReferenceBand) -> float:
    """The out-of-band rate a run of the reference is expected to have (``p0`` above).

    A band that records no run of its own (built by hand) is taken at its Gaussian rate,
    ``P(|z| > k)``.
    """
    if band.own_compared_steps == 0:
        return max(MIN_REFERENCE_RATE, math.erfc(band.k / math.sqrt(2.0)))
    estimate = (band.own_outside_steps + 1) / (band.own_compared_steps + 2)
    return max(MIN_REFERENCE_RATE, estimate)


def first_divergence(
    band: ReferenceBand, candidate: Series, k: int = DEFAULT_DIVERGENCE_K
) -> Divergence:
    """Where ``candidate``'s rate of outside steps first rises beyond the reference's own."""
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

    finite = np.isfinite(values)
    above_band = finite & (values > upper)
    below_band = finite & (values < lower)
    outside = ~finite | above_band | below_band
    n_outside = int(outside.sum())
    p0 = reference_rate(band)
    found = _cusum_alarm(outside, p0, k)
    if found is None:
        return Divergence(None, None, None, 0, int(steps.size), n_outside, reference_rate=p0)

    start, stop = found
    stretch = slice(start, stop)
    out = outside[stretch]
    above = int(above_band[stretch].sum())
    below = int(below_band[stretch].sum())
    stretch_values = values[stretch]
    finite_out = out & np.isfinite(stretch_values)
    effect_size = None
    if finite_out.any():
        half_width = ((upper - lower) / 2.0)[stretch][finite_out]
        offset = np.abs(stretch_values[finite_out] - center[stretch][finite_out])
        effect_size = float(np.median((offset - half_width) / half_width))
    direction: Literal["above", "below", "mixed"] | None = None
    if above or below:
        direction = "mixed" if above and below else ("above" if above else "below")
    return Divergence(
        first_divergence_step=int(steps[start]),
        effect_size=effect_size,
        direction=direction,
        stretch_steps=stop - start,
        compared_steps=int(steps.size),
        outside_steps=n_outside,
        stretch_outside=int(out.sum()),
        above=above,
        below=below,
        last_step=int(steps[stop - 1]),
        reference_rate=p0,
    )


def _cusum_alarm(outside: np.ndarray, p0: float, k: int) -> tuple[int, int] | None:
    """``(start, stop)`` indices of the stretch whose excursion raised the alarm, or None.

    Vectorised: with the walk ``X`` (``X[0] = 0``, then the running sum of the increments) the
    CUSUM after ``j`` steps is ``X[j] − min(X[0..j])``, and its excursion began right after the
    last position of that minimum.
    """
    n = outside.size
    if n < k:
        return None
    p1 = min(_MAX_ALARM_RATE, max(ALARM_RATE, 3.0 * p0))
    if p1 <= p0:
        return None
    up = math.log(p1 / p0)
    down = math.log((1.0 - p1) / (1.0 - p0))
    threshold = math.log(max(n, 2) / FALSE_ALARM)
    walk = np.concatenate(([0.0], np.cumsum(np.where(outside, up, down))))
    low = np.minimum.accumulate(walk)
    positions = np.arange(walk.size)
    last_low = np.maximum.accumulate(np.where(walk <= low, positions, 0))
    counts = np.concatenate(([0], np.cumsum(outside, dtype=np.int64)))
    raised = (walk - low >= threshold) & (counts - counts[last_low] >= k)
    alarms = np.flatnonzero(raised)
    if alarms.size == 0:
        return None
    alarm = int(alarms[0])
    start = int(last_low[alarm])
    later = np.flatnonzero(last_low[alarm:] != start)
    # Candidate indices start .. end - 1 make the excursion; it ends where the sum is back at 0.
    end = alarm + int(later[0]) if later.size else n
    last_outside = start + int(np.flatnonzero(outside[start:end])[-1])
    return start, last_outside + 1


def marker_words(metric: str, divergence: Divergence) -> tuple[str, str]:
    """The marker's summary ("reward: 18 of 24 steps below the band from step 36 to step 59")
    and its detail (distance beyond the band, the reference's own rate), in plain words."""
    step, last = divergence.first_divergence_step, divergence.last_step
    side = {"above": "above", "below": "below"}.get(divergence.direction or "", "outside")
    counted = "steps"
    if divergence.bucket_steps > 1:
        counted = f"means of {divergence.bucket_steps:,} steps"
    summary = (
        f"{metric}: {divergence.stretch_outside} of {divergence.stretch_steps} {counted} {side} "
        f"the band from step {step}"
    )
    if last is not None and last != step:
        summary += f" to step {last}"
    parts = []
    if divergence.direction == "mixed":
        parts.append(f"{divergence.above} above and {divergence.below} below")
    not_finite = divergence.stretch_outside - divergence.above - divergence.below
    if not_finite:
        parts.append(f"{not_finite} not a finite number")
    if parts:
        summary += f" ({', '.join(parts)})"
    detail = []
    if divergence.effect_size is not None:
        detail.append(
            f"median distance beyond the band: {sig3(divergence.effect_size)} band half-widths"
        )
    if divergence.reference_rate is not None:
        detail.append(
            f"runs of the reference fall outside at {sig3(100 * divergence.reference_rate)}% "
            "of steps"
        )
    return summary, "; ".join(detail)


MARKER_DEFINITIONS = {
    "step": "The first step of the stretch from which the candidate falls outside the reference "
    "band far more often than runs of the reference do (docs/COMPARE.md).",
    "outside_steps": "Steps of the stretch where the candidate is outside the band (or not a "
    "finite number), out of the stretch's compared steps (stretch_steps).",
    "distance": "Median, over the stretch's outside steps, of how far beyond the band's edge the "
    "candidate is, in band half-widths: 0 at the edge, 1 one half-width beyond it.",
    "reference_rate": "Share of steps at which runs of the reference themselves fall outside "
    "such a band (each replica against the band of the others); the candidate is judged "
    "against it. Never below 1 %.",
    "band_half_width": "Half the band's width: k times the standard deviation another run of "
    "the reference would have around the band's center.",
}

DIVERGENCE_DEFINITION = (
    "The first step of the stretch from which the candidate falls outside the reference band "
    "far more often than runs of the reference do (a CUSUM of outside steps against the "
    "reference's own out-of-band rate; docs/COMPARE.md)."
)


def divergence_fact(metric: str, divergence: Divergence) -> Fact:
    """The divergence of one metric as a fact of a verdict's evidence."""
    summary, detail = marker_words(metric, divergence)
    return Fact(
        fact=f"{summary}; {detail}." if detail else f"{summary}.",
        quantity=f"{metric}: first divergence step",
        value=divergence.first_divergence_step,
        unit="step",
        definition=DIVERGENCE_DEFINITION,
    )
