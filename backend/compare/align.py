"""Alignment of series by step. A step that one run lacks is dropped, never interpolated."""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce

import numpy as np

from backend.compare.run_series import Series

__all__ = ["align_pair", "intersect_sorted", "shared_steps", "values_at", "within_window"]


def within_window(series: Series, start: int | None, end: int | None) -> Series:
    """The part of a step-sorted series with ``start <= step <= end`` (either bound optional)."""
    steps, values = series
    lo = 0 if start is None else int(np.searchsorted(steps, start, side="left"))
    hi = steps.size if end is None else int(np.searchsorted(steps, end, side="right"))
    return steps[lo:hi], values[lo:hi]


def shared_steps(step_arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Steps present in every one of the sorted, duplicate-free step arrays."""
    if not step_arrays:
        return np.empty(0, dtype=np.int64)
    return reduce(lambda a, b: intersect_sorted(a, b)[0], step_arrays)


def intersect_sorted(
    first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, first_index, second_index)`` for two sorted, duplicate-free step arrays.

    Runs of the same trainer usually log the very same steps, so that case is answered in one
    comparison; otherwise a binary search of one array in the other, never a full re-sort.
    """
    if first.size == second.size and np.array_equal(first, second):
        index = np.arange(first.size)
        return first, index, index
    if first.size == 0 or second.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return first[:0], empty, empty
    position = np.minimum(np.searchsorted(second, first), second.size - 1)
    hit = second[position] == first
    return first[hit], np.flatnonzero(hit), position[hit]


def values_at(series: Series, steps: np.ndarray) -> np.ndarray:
    """Values of ``series`` at ``steps``, which must all be present in it."""
    own_steps, values = series
    if own_steps.size == steps.size and np.array_equal(own_steps, steps):
        return values
    return values[np.searchsorted(own_steps, steps)]


def align_pair(first: Series, second: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, first_values, second_values)`` over the steps both series have."""
    steps, first_index, second_index = intersect_sorted(first[0], second[0])
    return steps, first[1][first_index], second[1][second_index]
