"""Config values compared by meaning: what MLflow's text params and typed JSON configs share."""

from __future__ import annotations

import math

import pytest

from backend.compare.config_values import ABSENT, same_meaning
from backend.compare.configdiff import config_diff
from backend.compare.registry import KeyRegistry


@pytest.mark.parametrize(
    ("logged_as_text", "typed"),
    [("0.1", 0.1), ("1e-05", 1e-5), ("4", 4), ("True", True), ("false", False), ("None", None),
     ("[1, 2]", [1, 2]), ("{'a': 1}", {"a": 1}), ('{"a": "b"}', {"a": "b"}), ("nan", math.nan), ("bf16", "bf16")],
)
def test_text_params_equal_their_typed_values(logged_as_text: str, typed: object) -> None:
    assert same_meaning(logged_as_text, typed)
    assert same_meaning(typed, logged_as_text)


def test_absent_equals_null_and_different_meanings_differ() -> None:
    assert same_meaning(ABSENT, None) and same_meaning("None", ABSENT)
    for first, second in [("0.1", 0.2), ("True", 1), (True, 1.0), ("1", True), ("bf16", "fp16"), ([1, 2], "[1, 3]"),
                          (ABSENT, 0.0), (ABSENT, False)]:
        assert not same_meaning(first, second), (first, second)


def test_the_config_diff_compares_by_meaning() -> None:
    mlflow_path = ({"learning_rate": "0.1", "bf16": "True", "dtype": "None", "max_steps": "4"}, {})
    typed_path = ({"learning_rate": 0.1, "bf16": True, "max_steps": 4}, {})
    assert config_diff([mlflow_path], typed_path, KeyRegistry()) == []
    changed = ({"learning_rate": 0.2, "bf16": True, "max_steps": 4}, {})
    (difference,) = config_diff([mlflow_path], changed, KeyRegistry())
    assert difference.key == "learning_rate"


def test_text_mappings_flatten_like_typed_ones_and_bookkeeping_is_left_out() -> None:
    as_text = ({"accelerator_config": "{'split_batches': False, 'dispatch_batches': None}", "report_to": "['mlflow']",
                "mlflow_tags": {"mlflow.user": "me"}}, {})
    typed = ({"accelerator_config": {"split_batches": False, "dispatch_batches": None}, "report_to": []}, {})
    assert config_diff([as_text], typed, KeyRegistry()) == []
    changed = ({"accelerator_config": {"split_batches": True}}, {})
    (difference,) = config_diff([as_text], changed, KeyRegistry())
    assert difference.key == "accelerator_config.split_batches"
    # Text that is not a mapping stays text.
    assert config_diff([({"note": "{not a dict"}, {})], ({"note": "{not a dict"}, {}), KeyRegistry()) == []
