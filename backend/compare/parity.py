"""What the parity metrics say about the backend, read as docs/ARCHITECTURE.md §1 ("The canonical metrics") and docs/COMPARE.md describe.

Workers (and some trainers) log, per step, over the tokens generated with the trainer's current
weights: ``logprob_diff_mean`` (rollout − trainer), ``logprob_abs_diff_mean``,
``logprob_abs_diff_max``, and ``weight_version_lag``. Three findings come out of them:

mean offset (layer 1, semantic)
    The candidate's rollout − trainer mean is farther from zero than the reference's by more
    than three standard errors (the two means' standard errors over steps, combined) and by
    more than ``MIN_LOGPROB_EFFECT`` nats. Significance alone decides: the offset is not
    required to be any share of the absolute difference (raw vs processed logprobs at
    T = 0.7 give an offset of about a third of it, docs/WORKERS.md).
numerics excess (layer 2, numerics)
    With no mean offset, the candidate's absolute difference on fresh-weight steps is at least
    ``EXCESS_RATIO`` times the reference's, significantly and by more than
    ``MIN_LOGPROB_EFFECT``, and it is there from the first step, before any weight update.
    Needs the reference's parity metrics.
update path (layer 2, weight updates)
    The candidate runs on staler weights than the reference (mean lag larger by more than
    ``LAG_TOLERANCE`` versions and by three standard errors), or its absolute difference on
    steps with lag > 0 is at least ``EXCESS_RATIO`` times that on steps with lag 0, or it is
    at the reference's level on the first step (before any weight update) and exceeds it
    afterwards: what a prefix cache that outlives weight updates does, with no lag at all.

"The first step" is the first step in the compared window; it comes before any weight update
when the window starts at the run's first step.

Each finding is True, False, or None when the metrics needed for it are missing. A reference
group is summarised by pooling the replicas' steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.compare.align import align_pair
from backend.compare.run_series import Series

__all__ = [
    "EXCESS_RATIO",
    "LAG_TOLERANCE",
    "MIN_LOGPROB_EFFECT",
    "ParityFindings",
    "ParitySummary",
    "parity_findings",
    "summarise_parity",
]

MIN_LOGPROB_EFFECT = 1e-5
EXCESS_RATIO = 1.5
LAG_TOLERANCE = 0.1
_SIGNIFICANCE = 3.0
_MIN_STEPS = 3


@dataclass(frozen=True)
class _Mean:
    value: float
    standard_error: float
    steps: int


@dataclass(frozen=True)
class ParitySummary:
    diff_mean: _Mean | None
    abs_diff_mean: _Mean | None
    abs_diff_max: float | None
    lag_mean: _Mean | None
    abs_diff_fresh: _Mean | None
    abs_diff_stale: _Mean | None
    abs_diff_first: float | None = None
    abs_diff_later: _Mean | None = None

    def as_evidence(self) -> dict[str, Any]:
        return {
            "logprob_diff_mean": _value(self.diff_mean),
            "logprob_abs_diff_mean": _value(self.abs_diff_mean),
            "logprob_abs_diff_max": self.abs_diff_max,
            "weight_version_lag_mean": _value(self.lag_mean),
            "logprob_abs_diff_mean_fresh": _value(self.abs_diff_fresh),
            "logprob_abs_diff_mean_stale": _value(self.abs_diff_stale),
            "logprob_abs_diff_mean_first_step": self.abs_diff_first,
        }


@dataclass(frozen=True)
class ParityFindings:
    mean_offset: bool | None = None
    numerics_excess: bool | None = None
    update_path: bool | None = None
    candidate: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    candidate_summary: ParitySummary | None = None
    reference_summary: ParitySummary | None = None
    offset_z: float | None = None
    lag_excess: bool | None = None
    grows_with_lag: bool | None = None
    appears_after_updates: bool | None = None

    @property
    def available(self) -> bool:
        return self.candidate is not None


def summarise_parity(runs: Sequence[dict[str, Series]]) -> ParitySummary | None:
    """Pool the parity series of one run (or of reference replicas) into a summary.

    Each element of ``runs`` maps the canonical parity names (``logprob_diff_mean``, ...) to
    the run's series; absent names are simply missing. None when no run has any of them.
    """
    if not any(runs):
        return None
    diff = _pooled(runs, "logprob_diff_mean")
    absolute = _pooled(runs, "logprob_abs_diff_mean")
    maximum = _pooled(runs, "logprob_abs_diff_max")
    lag = _pooled(runs, "weight_version_lag")
    fresh_parts, stale_parts = [], []
    for run in runs:
        if "logprob_abs_diff_mean" in run and "weight_version_lag" in run:
            _, abs_values, lag_values = align_pair(
                run["logprob_abs_diff_mean"], run["weight_version_lag"]
            )
            usable = np.isfinite(abs_values) & np.isfinite(lag_values)
            fresh_parts.append(abs_values[usable & (lag_values == 0)])
            stale_parts.append(abs_values[usable & (lag_values > 0)])
    first, later = _first_and_later(runs)
    return ParitySummary(
        diff_mean=_mean(diff),
        abs_diff_mean=_mean(absolute),
        abs_diff_max=float(maximum.max()) if maximum.size else None,
        lag_mean=_mean(lag),
        abs_diff_fresh=_mean(np.concatenate(fresh_parts)) if fresh_parts else None,
        abs_diff_stale=_mean(np.concatenate(stale_parts)) if stale_parts else None,
        abs_diff_first=first,
        abs_diff_later=later,
    )


def _first_and_later(runs: Sequence[dict[str, Series]]) -> tuple[float | None, _Mean | None]:
    """The absolute difference at each run's first finite step (the largest over replicas),
    and pooled over every later step."""
    firsts, later = [], []
    for run in runs:
        if "logprob_abs_diff_mean" not in run:
            continue
        values = run["logprob_abs_diff_mean"][1]
        finite = values[np.isfinite(values)]
        if finite.size:
            firsts.append(float(finite[0]))
            later.append(finite[1:])
    if not firsts:
        return None, None
    return max(firsts), _mean(np.concatenate(later))


def parity_findings(
    candidate: ParitySummary | None, reference: ParitySummary | None
) -> ParityFindings:
    """The three findings of the module docstring from the two summaries."""
    if candidate is None:
        return ParityFindings(notes=["the candidate logged no parity metrics"])
    notes: list[str] = []
    if reference is None:
        notes.append("the reference logged no parity metrics")

    offset_z = _offset_z(candidate, reference)
    mean_offset = _mean_offset(candidate, reference, offset_z)
    after_updates = _appears_after_updates(candidate, reference)
    numerics_excess = None
    if mean_offset is False and reference is not None:
        mine = candidate.abs_diff_fresh or candidate.abs_diff_mean
        theirs = reference.abs_diff_fresh or reference.abs_diff_mean
        numerics_excess = _exceeds(mine, theirs)
        if numerics_excess and after_updates:
            numerics_excess = False
    lag_excess = _lag_excess(candidate, reference)
    grows = _exceeds(candidate.abs_diff_stale, candidate.abs_diff_fresh)
    known = [f for f in (lag_excess, grows, after_updates) if f is not None]
    return ParityFindings(
        mean_offset=mean_offset,
        numerics_excess=numerics_excess,
        update_path=any(known) if known else None,
        candidate=candidate.as_evidence(),
        reference=reference.as_evidence() if reference else None,
        notes=notes,
        candidate_summary=candidate,
        reference_summary=reference,
        offset_z=offset_z,
        lag_excess=lag_excess,
        grows_with_lag=grows,
        appears_after_updates=after_updates,
    )


def _offset_z(candidate: ParitySummary, reference: ParitySummary | None) -> float | None:
    """How many standard errors the candidate's offset lies beyond the reference's."""
    mine = candidate.diff_mean
    if mine is None or mine.steps < _MIN_STEPS:
        return None
    size = abs(mine.value)
    noise = mine.standard_error
    if reference is not None and reference.diff_mean is not None:
        size -= abs(reference.diff_mean.value)
        noise = math.hypot(noise, reference.diff_mean.standard_error)
    if noise == 0:
        return math.inf if size > 0 else 0.0
    return size / noise


def _mean_offset(
    candidate: ParitySummary, reference: ParitySummary | None, offset_z: float | None
) -> bool | None:
    if offset_z is None or candidate.diff_mean is None:
        return None
    size = abs(candidate.diff_mean.value)
    if reference is not None and reference.diff_mean is not None:
        size -= abs(reference.diff_mean.value)
    return bool(offset_z > _SIGNIFICANCE and size > MIN_LOGPROB_EFFECT)


def _lag_excess(candidate: ParitySummary, reference: ParitySummary | None) -> bool | None:
    mine = candidate.lag_mean
    theirs = reference.lag_mean if reference is not None else None
    if mine is None or theirs is None or min(mine.steps, theirs.steps) < _MIN_STEPS:
        return None
    gap = mine.value - theirs.value
    noise = math.hypot(mine.standard_error, theirs.standard_error)
    return bool(gap > LAG_TOLERANCE and gap > _SIGNIFICANCE * noise)


def _appears_after_updates(
    candidate: ParitySummary, reference: ParitySummary | None
) -> bool | None:
    """At the reference's level on the first step, beyond it on the later ones."""
    if reference is None or reference.abs_diff_mean is None:
        return None
    first, later = candidate.abs_diff_first, candidate.abs_diff_later
    if first is None or later is None:
        return None
    level = reference.abs_diff_mean.value
    at_parity_first = first <= EXCESS_RATIO * level + MIN_LOGPROB_EFFECT
    return bool(at_parity_first and _exceeds(later, reference.abs_diff_mean))


def _exceeds(mine: _Mean | None, theirs: _Mean | None) -> bool | None:
    """Whether ``mine`` is at least EXCESS_RATIO times ``theirs``, significantly and visibly."""
    if mine is None or theirs is None or min(mine.steps, theirs.steps) < _MIN_STEPS:
        return None
    gap = mine.value - theirs.value
    noise = math.hypot(mine.standard_error, theirs.standard_error)
    return bool(
        mine.value >= EXCESS_RATIO * theirs.value
        and gap > _SIGNIFICANCE * noise
        and gap > MIN_LOGPROB_EFFECT
    )


def _pooled(runs: Sequence[dict[str, Series]], name: str) -> np.ndarray:
    parts = [run[name][1] for run in runs if name in run]
    if not parts:
        return np.empty(0)
    values = np.concatenate(parts)
    return values[np.isfinite(values)]


def _mean(values: np.ndarray | None) -> _Mean | None:
    if values is None or values.size == 0:
        return None
    error = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.inf
    return _Mean(value=float(values.mean()), standard_error=error, steps=int(values.size))


def _value(mean: _Mean | None) -> float | None:
    return None if mean is None else mean.value
