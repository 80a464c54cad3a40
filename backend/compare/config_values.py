"""Whether two config values mean the same thing, whichever path logged them.

MLflow params arrive as text (transformers' ``report_to="mlflow"`` logs ``str(value)``), while
the Python client and the Trainer callback send typed JSON. So ``"0.1"`` equals ``0.1``,
``"True"`` equals ``true``, ``"None"`` or an absent key equals ``null``, and ``"[1, 2]"`` equals
``[1, 2]`` (docs/ARCHITECTURE.md, "A compare"). Text that reads as none of these is compared as
text.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["ABSENT", "expand_text_mappings", "is_bookkeeping", "same_meaning"]

ABSENT: Any = object()

_WORDS = {"true": True, "false": False, "none": None, "null": None, "": None}


def _meaning(value: Any) -> Any:
    """The typed value a logged value stands for."""
    if value is ABSENT:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _WORDS:
            return _WORDS[text.lower()]
        try:
            return float(text)
        except ValueError:
            pass
        if text[:1] in "[{":
            try:
                return _meaning(json.loads(text))
            except ValueError:
                pass
            try:  # Python's repr of a list or dict, as str() writes it
                return _meaning(ast.literal_eval(text))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                pass
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_meaning(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _meaning(v) for k, v in value.items()}
    return value


def same_meaning(first: Any, second: Any) -> bool:
    """Equal once both are read as typed values; NaN equals NaN."""
    a, b = _meaning(first), _meaning(second)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def expand_text_mappings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with every text value that spells a mapping (``"{'split_batches': False}"``,
    as MLflow params hold a nested argument) replaced by that mapping, so it flattens into the
    same dotted keys as a typed config does."""
    expanded: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            expanded[key] = expand_text_mappings(value)
        elif isinstance(value, str) and value.strip()[:1] == "{":
            meaning = _meaning(value)
            expanded[key] = expand_text_mappings(meaning) if isinstance(meaning, dict) else value
        else:
            expanded[key] = value
    return expanded


# Where a run's logs were sent and how it was labelled, not how it trained: the MLflow tags
# (the callback's tags are not in its config either; MLflow's client adds ``mlflow.user`` and
# ``mlflow.source.*``) and transformers' ``report_to``, which is the one training argument that
# necessarily differs between a run reported to MLflow and one sent by the callback.
_BOOKKEEPING_PREFIXES = ("mlflow_tags.",)
_BOOKKEEPING_KEYS = frozenset({"mlflow_tags", "report_to"})


def is_bookkeeping(flat_key: str) -> bool:
    """Whether a flattened config key records logging rather than training."""
    return flat_key in _BOOKKEEPING_KEYS or flat_key.startswith(_BOOKKEEPING_PREFIXES)
