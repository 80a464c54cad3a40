"""What the parity metrics say about the backend, read as DESIGN.md §5 prescribes.

Workers (and some trainers) log, per step, over the tokens generated with the trainer's current
weights: ``logprob_diff_mean`` (rollout − trainer), ``logprob_abs_diff_mean``,
``logprob_abs_diff_max``, and ``weight_version_lag``. Three findings come out of them:

mean offset (layer 1, semantic)
    The candidate's rollout − trainer mean is significantly away from zero (beyond three
    standard errors over steps, and beyond the reference's own offset), it makes up at least
    half of the absolute difference (a systematic shift, not noise that happens to average
    away slowly) and it exceeds ``MIN_LOGPROB_EFFECT`` nats.
numerics excess (layer 2, numerics)
    With no mean offset, the candidate's absolute difference on fresh-weight steps is at least
    ``EXCESS_RATIO`` times the reference's, significantly and by more than
    ``MIN_LOGPROB_EFFECT``. Needs the reference's parity metrics.
update path (layer 2, weight updates)
    The candidate runs on staler weights than the reference (mean lag larger by more than
    ``LAG_TOLERANCE`` versions and by three standard errors), or its absolute difference on
    steps with lag > 0 is at least ``EXCESS_RATIO`` times that on steps with lag 0.

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
_OFFSET_SHARE = 0.5
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

    def as_evidence(self) -> dict[str, Any]:
        return {
            "logprob_diff_mean": _value(self.diff_mean),
            "logprob_abs_diff_mean": _value(self.abs_diff_mean),
            "logprob_abs_diff_max": self.abs_diff_max,
            "weight_version_lag_mean": _value(self.lag_mean),
            "logprob_abs_diff_mean_fresh": _value(self.abs_diff_fresh),
            "logprob_abs_diff_mean_stale": _value(self.abs_diff_stale),
        }


@dataclass(frozen=True)
class ParityFindings:
    mean_offset: bool | None = None
    numerics_excess: bool | None = None
    update_path: bool | None = None
    candidate: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

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
    return ParitySummary(
        diff_mean=_mean(diff),
        abs_diff_mean=_mean(absolute),
        abs_diff_max=float(maximum.max()) if maximum.size else None,
        lag_mean=_mean(lag),
        abs_diff_fresh=_mean(np.concatenate(fresh_parts)) if fresh_parts else None,
        abs_diff_stale=_mean(np.concatenate(stale_parts)) if stale_parts else None,
    )


def parity_findings(
    candidate: ParitySummary | None, reference: ParitySummary | None
) -> ParityFindings:
    """The three findings of the module docstring from the two summaries."""
    if candidate is None:
        return ParityFindings(notes=["the candidate logged no parity metrics"])
    notes: list[str] = []
    if reference is None:
        notes.append("the reference logged no parity metrics")

    mean_offset = _mean_offset(candidate, reference)
    numerics_excess = None
    if mean_offset is False and reference is not None:
        mine = candidate.abs_diff_fresh or candidate.abs_diff_mean
        theirs = reference.abs_diff_fresh or reference.abs_diff_mean
        numerics_excess = _exceeds(mine, theirs)
    return ParityFindings(
        mean_offset=mean_offset,
        numerics_excess=numerics_excess,
        update_path=_update_path(candidate, reference),
        candidate=candidate.as_evidence(),
        reference=reference.as_evidence() if reference else None,
        notes=notes,
    )


def _mean_offset(candidate: ParitySummary, reference: ParitySummary | None) -> bool | None:
    mine = candidate.diff_mean
    if mine is None or mine.steps < _MIN_STEPS:
        return None
    size = abs(mine.value)
    noise = mine.standard_error
    if reference is not None and reference.diff_mean is not None:
        size -= abs(reference.diff_mean.value)
        noise = math.hypot(noise, reference.diff_mean.standard_error)
    systematic = (
        candidate.abs_diff_mean is None
        or abs(mine.value) >= _OFFSET_SHARE * candidate.abs_diff_mean.value
    )
    return bool(size > _SIGNIFICANCE * noise and size > MIN_LOGPROB_EFFECT and systematic)


def _update_path(candidate: ParitySummary, reference: ParitySummary | None) -> bool | None:
    lag_excess = None
    mine = candidate.lag_mean
    theirs = reference.lag_mean if reference is not None else None
    if mine is not None and theirs is not None and min(mine.steps, theirs.steps) >= _MIN_STEPS:
        gap = mine.value - theirs.value
        noise = math.hypot(mine.standard_error, theirs.standard_error)
        lag_excess = gap > LAG_TOLERANCE and gap > _SIGNIFICANCE * noise
    growth = _exceeds(candidate.abs_diff_stale, candidate.abs_diff_fresh)
    if lag_excess is None and growth is None:
        return None
    return bool(lag_excess or growth)


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
