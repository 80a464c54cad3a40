import numpy as np
import pytest

from backend.compare.align import align_pair, intersect_sorted, shared_steps, within_window
from backend.compare.run_series import checked_series
from backend.errors import BadInput


def test_pairs_only_steps_both_runs_have():
    first = (np.array([0, 1, 2, 4, 8]), np.array([0.0, 1.0, 2.0, 4.0, 8.0]))
    second = (np.array([1, 3, 4, 8, 9]), np.array([10.0, 30.0, 40.0, 80.0, 90.0]))
    steps, a, b = align_pair(first, second)
    assert steps.tolist() == [1, 4, 8]
    assert a.tolist() == [1.0, 4.0, 8.0]
    assert b.tolist() == [10.0, 40.0, 80.0]


def test_identical_and_empty_step_arrays():
    steps = np.arange(5)
    got, first_index, second_index = intersect_sorted(steps, steps)
    assert got.tolist() == steps.tolist() and first_index.tolist() == second_index.tolist()
    assert intersect_sorted(steps, np.array([], dtype=np.int64))[0].size == 0


def test_shared_steps_of_several_runs():
    arrays = [np.array([1, 2, 3, 5]), np.array([2, 3, 5, 7]), np.array([0, 3, 5])]
    assert shared_steps(arrays).tolist() == [3, 5]


def test_window_is_inclusive_on_both_ends():
    series = (np.arange(10), np.arange(10.0))
    assert within_window(series, 3, 6)[0].tolist() == [3, 4, 5, 6]
    assert within_window(series, None, 1)[0].tolist() == [0, 1]
    assert within_window(series, 8, None)[0].tolist() == [8, 9]


def test_checked_series_sorts_and_rejects_bad_shapes():
    steps, values = checked_series([3, 1, 2], [30.0, 10.0, 20.0], field="s")
    assert steps.tolist() == [1, 2, 3] and values.tolist() == [10.0, 20.0, 30.0]
    with pytest.raises(BadInput, match="appears more than once"):
        checked_series([1, 2, 1], [0.0, 0.0, 0.0], field="s")
    with pytest.raises(BadInput, match="3 steps but 2 values"):
        checked_series([1, 2, 3], [0.0, 0.0], field="s")
    with pytest.raises(BadInput, match="integers"):
        checked_series([1.5, 2.0], [0.0, 0.0], field="s")
