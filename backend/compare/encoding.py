"""How numbers leave the comparison as JSON.

Two encodings, because the two consumers need different things:

* series, bands, diffs, effect sizes, config values and evidence use the API's value encoding:
  finite numbers as JSON numbers, NaN as the string ``"NaN"``, ±inf as ``"Infinity"`` /
  ``"-Infinity"``. A logged NaN is data (the trainer blew up) and must survive the trip, while
  JSON itself has no token for it;
* Plotly figure specs use ``null`` for every non-finite value: Plotly draws ``null`` as a gap and
  cannot draw a string on a numeric axis.

Steps are integers and always finite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "api_number",
    "api_numbers",
    "api_value",
    "figure_numbers",
    "steps_list",
]


def steps_list(steps: np.ndarray) -> list[int]:
    """Steps as plain Python ints."""
    return np.asarray(steps, dtype=np.int64).tolist()


def api_numbers(values: np.ndarray) -> list[float | str]:
    """Values in the API encoding (non-finite values as strings)."""
    values = np.asarray(values, dtype=np.float64)
    out: list[Any] = values.tolist()
    for index in np.flatnonzero(~np.isfinite(values)).tolist():
        out[index] = api_number(out[index])
    return out


def figure_numbers(values: np.ndarray) -> list[float | None]:
    """Values for a Plotly spec (non-finite values as None)."""
    values = np.asarray(values, dtype=np.float64)
    out: list[Any] = values.tolist()
    for index in np.flatnonzero(~np.isfinite(values)).tolist():
        out[index] = None
    return out


def api_number(value: float | None) -> float | str | None:
    """One number in the API encoding; None stays None (no value)."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def api_value(value: Any) -> Any:
    """A nested value (config value, evidence) with every non-finite float API-encoded."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float | np.floating):
        return api_number(float(value))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): api_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [api_value(item) for item in value]
    return str(value)
