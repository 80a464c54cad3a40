"""The plain input of a comparison: one run's identity, configuration and metric series.

The storage layer converts its rows into these objects; nothing here knows about a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.errors import BadInput
from backend.series_summary import BucketStats

__all__ = ["RunSeries", "Series", "checked_series"]

Series = tuple[np.ndarray, np.ndarray]
"""``(steps, values)``: int64 steps and float64 values of one metric, NaN meaning "logged NaN"."""


@dataclass(frozen=True)
class RunSeries:
    """One run as the comparison sees it.

    ``engine`` is the engine's self-description ``{"name", "version", "settings"}``; ``series``
    maps a raw metric key (as the trainer logged it) to its ``(steps, values)``.
    """

    run_id: str | int
    name: str
    label: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    engine: Mapping[str, Any] = field(default_factory=dict)
    series: Mapping[str, Series] = field(default_factory=dict)
    summaries: Mapping[str, BucketStats] = field(default_factory=dict)
    """For a long window: raw key → its bucket rows covering the window exactly, instead of
    ``series`` (``backend.compare.overview``)."""

    def keys(self) -> list[str]:
        return [*self.series, *(k for k in self.summaries if k not in self.series)]


def checked_series(steps: Any, values: Any, *, field: str) -> Series:
    """Return ``(steps, values)`` as 1-D int64/float64 arrays sorted by step.

    Raises ``BadInput`` naming ``field`` for mismatched lengths, non-integer steps or a step
    logged twice (storage keeps one value per run, key and step, so a duplicate is a caller bug
    that would otherwise silently pick one of the two values).
    """
    steps_array = np.asarray(steps)
    values_array = np.asarray(values, dtype=np.float64)
    if steps_array.ndim != 1 or values_array.ndim != 1:
        raise BadInput("steps and values must be one-dimensional", field=field)
    if steps_array.shape != values_array.shape:
        raise BadInput(f"{steps_array.size} steps but {values_array.size} values", field=field)
    if steps_array.size and not np.issubdtype(steps_array.dtype, np.integer):
        raise BadInput("steps must be integers", field=field)
    steps_array = steps_array.astype(np.int64, copy=False)
    if steps_array.size > 1 and not np.all(steps_array[1:] > steps_array[:-1]):
        order = np.argsort(steps_array, kind="stable")
        steps_array = steps_array[order]
        values_array = values_array[order]
        repeated = steps_array[1:] == steps_array[:-1]
        if repeated.any():
            step = int(steps_array[1:][repeated][0])
            raise BadInput(f"step {step} appears more than once", field=field)
    return steps_array, values_array
