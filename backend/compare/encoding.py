"""How numbers leave the comparison as JSON.

Two encodings, because the two consumers need different things:

* series, bands, diffs, effect sizes, config values and evidence use the API's value encoding:
  finite numbers as JSON numbers, NaN as the string ``"NaN"``, ±inf as ``"Infinity"`` /
  ``"-Infinity"``. A logged NaN is data (the trainer blew up) and must survive the trip, while
  JSON itself has no token for it;
* Plotly figure specs carry their arrays as Plotly's typed arrays, ``{"dtype", "bdata"}`` with
  the little-endian bytes in base64 (Plotly.js ≥ 2.28 reads them natively). That is about half
  the size of the same numbers written as decimal text, and exact: values go as float32 only
  when every one of them is a float32 value (what trainers computing in float32 log), otherwise
  as float64; steps go as int32 when they fit. Non-finite values become NaN, drawn as gaps.

Steps are integers and always finite.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from parityscope.wire import encode_value

__all__ = [
    "api_number",
    "api_numbers",
    "api_value",
    "decode_typed_array",
    "steps_list",
    "typed_array",
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


def typed_array(values: np.ndarray, *, integer: bool = False) -> dict[str, str]:
    """A Plotly typed-array spec holding ``values`` exactly, in the smallest exact dtype."""
    if integer:
        steps = np.asarray(values, dtype=np.int64)
        if len(steps) == 0 or (steps.min() >= -(2**31) and steps.max() < 2**31):
            raw, dtype = steps.astype("<i4"), "i4"
        else:
            raw, dtype = steps.astype("<f8"), "f8"
    else:
        # NaN is the gap marker in a typed array; infinities are drawn as gaps too.
        floats = np.asarray(values, dtype=np.float64)
        floats = np.where(np.isfinite(floats), floats, np.nan)
        narrow = floats.astype(np.float32)
        if np.array_equal(narrow.astype(np.float64), floats, equal_nan=True):
            raw, dtype = narrow.astype("<f4"), "f4"
        else:
            raw, dtype = floats.astype("<f8"), "f8"
    return {"dtype": dtype, "bdata": base64.b64encode(raw.tobytes()).decode("ascii")}


def decode_typed_array(spec: Mapping[str, str]) -> np.ndarray:
    """The numbers of a typed-array spec made by ``typed_array``, as float64 or int64."""
    raw = np.frombuffer(base64.b64decode(spec["bdata"]), dtype="<" + spec["dtype"])
    return raw.astype(np.int64 if spec["dtype"].startswith("i") else np.float64)


def api_number(value: float | None) -> float | str | None:
    """One number in the API encoding; None stays None (no value)."""
    if value is None:
        return None
    return encode_value(float(value))


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
