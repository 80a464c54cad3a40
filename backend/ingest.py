"""Parsing and validating a metrics request body into a ``PointBatch``.

Both body forms are accepted:
  rows:    {"points": [{"step": 0, "values": {"reward": 0.1}, "time": 1732600000.5}, ...]}
  columns: {"steps": [0, 1], "values": {"reward": [0.1, 0.2]}, "times": [..]}
Validation happens completely before anything is stored, so a rejected request stores nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from backend.errors import BadInput, TooLarge
from backend.limits import MAX_KEYS_PER_REQUEST
from backend.storage.values import decode_value

MAX_STEP = 2**53
MAX_KEY_LENGTH = 250


class PointBatch:
    """Validated points in columns, de-duplicated per (key, step): the last value posted wins.

    ``times`` holds NaN where the caller gave no wall time; storage fills in the time of receipt.
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._keys: list[int] = []
        self._steps: list[int] = []
        self._values: list[float] = []
        self._times: list[float] = []
        self._final: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def key_index(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            if len(self.names) >= MAX_KEYS_PER_REQUEST:
                raise TooLarge(
                    f"keys: more than {MAX_KEYS_PER_REQUEST} distinct metric keys in one request",
                    field="keys",
                )
            index = self._index[key] = len(self.names)
            self.names.append(key)
        return index

    def add(self, key: str, step: int, value: float, time: float | None) -> None:
        self._keys.append(self.key_index(key))
        self._steps.append(step)
        self._values.append(value)
        self._times.append(math.nan if time is None else time)
        self._final = None

    def extend(self, key: str, steps: list[int], values: list[float], times: list[float]) -> None:
        """Append a whole column of one key (values already decoded, ``None`` entries removed)."""
        index = self.key_index(key)
        self._keys.extend([index] * len(steps))
        self._steps.extend(steps)
        self._values.extend(values)
        self._times.extend(times)
        self._final = None

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(key_index int32, step int64, value float64, time float64)`` sorted by key and step."""
        if self._final is None:
            keys = np.asarray(self._keys, dtype=np.int32)
            steps = np.asarray(self._steps, dtype=np.int64)
            values = np.asarray(self._values, dtype=np.float64)
            times = np.asarray(self._times, dtype=np.float64)
            order = np.lexsort((np.arange(len(keys)), steps, keys))
            keys, steps, values, times = keys[order], steps[order], values[order], times[order]
            if len(keys) > 1:
                # Within a run of equal (key, step) the stable sort put the last-posted value last.
                last = np.ones(len(keys), dtype=bool)
                last[:-1] = (keys[1:] != keys[:-1]) | (steps[1:] != steps[:-1])
                keys, steps, values, times = keys[last], steps[last], values[last], times[last]
            self._final = (keys, steps, values, times)
        return self._final


def parse_body(body: bytes, *, max_bytes: int, max_values: int) -> PointBatch:
    if len(body) > max_bytes:
        raise TooLarge(f"body: {len(body)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"body: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadInput("body: expected a JSON object with 'points' or 'steps' and 'values'")
    if "points" in doc:
        extra = set(doc) - {"points"}
        if extra:
            raise BadInput(f"body: unexpected field {sorted(extra)[0]!r} beside 'points'")
        return _parse_rows(doc["points"], max_values)
    if "steps" in doc or "values" in doc:
        extra = set(doc) - {"steps", "values", "times"}
        if extra:
            raise BadInput(f"body: unexpected field {sorted(extra)[0]!r}")
        return _parse_columns(doc, max_values)
    raise BadInput("body: expected either 'points' (rows) or 'steps' and 'values' (columns)")


def check_key(key: Any, where: str) -> str:
    if not isinstance(key, str) or not key:
        raise BadInput(f"{where}: metric key must be a non-empty string", field=where)
    if len(key) > MAX_KEY_LENGTH:
        raise BadInput(
            f"{where}: metric key is {len(key)} characters, the limit is {MAX_KEY_LENGTH}",
            field=where,
        )
    if not key.isprintable():
        raise BadInput(f"{where}: metric key {key[:40]!r} contains non-printable characters", field=where)
    return key


def check_step(step: Any, where: str) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        else:
            raise BadInput(f"{where}: step must be an integer, got {step!r}", field=where)
    if step < 0 or step > MAX_STEP:
        raise BadInput(f"{where}: step {step} is outside 0..2^53", field=where)
    return step


def check_time(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise BadInput(f"{where}: time must be a number of seconds since the epoch", field=where)
    return float(raw)


def _too_many(count: int, max_values: int) -> TooLarge:
    return TooLarge(f"values: {count} values exceed the limit of {max_values} per request")


def _parse_rows(points: Any, max_values: int) -> PointBatch:
    if not isinstance(points, list):
        raise BadInput("points: expected a list", field="points")
    batch = PointBatch()
    count = 0
    keys_seen: set[str] = set()
    for i, point in enumerate(points):
        where = f"points[{i}]"
        if not isinstance(point, dict):
            raise BadInput(f"{where}: expected an object", field=where)
        extra = set(point) - {"step", "values", "time"}
        if extra:
            raise BadInput(f"{where}: unexpected field {sorted(extra)[0]!r}", field=where)
        if "step" not in point:
            raise BadInput(f"{where}.step: missing", field=f"{where}.step")
        step = check_step(point["step"], f"{where}.step")
        time = check_time(point.get("time"), f"{where}.time")
        values = point.get("values")
        if not isinstance(values, dict):
            raise BadInput(f"{where}.values: expected an object of key: value", field=f"{where}.values")
        count += len(values)
        if count > max_values:
            raise _too_many(count, max_values)
        for key, raw in values.items():
            if key not in keys_seen:
                check_key(key, f"{where}.values")
                keys_seen.add(key)
            value = decode_value(raw, f"{where}.values.{key}")
            if value is not None:
                batch.add(key, step, value, time)
    return batch


def _parse_columns(doc: dict[str, Any], max_values: int) -> PointBatch:
    steps_raw = doc.get("steps")
    values = doc.get("values")
    times_raw = doc.get("times")
    if not isinstance(steps_raw, list):
        raise BadInput("steps: expected a list of integers", field="steps")
    if not isinstance(values, dict):
        raise BadInput("values: expected an object of key: list of values", field="values")
    n = len(steps_raw)
    count = n * len(values)
    if count > max_values:
        raise _too_many(count, max_values)
    steps = [check_step(s, f"steps[{i}]") for i, s in enumerate(steps_raw)]
    if times_raw is None:
        times: list[float | None] = [None] * n
    else:
        if not isinstance(times_raw, list) or len(times_raw) != n:
            raise BadInput(f"times: expected a list of {n} numbers, one per step", field="times")
        times = [check_time(t, f"times[{i}]") for i, t in enumerate(times_raw)]
    times_filled = [math.nan if t is None else t for t in times]
    batch = PointBatch()
    for key, column in values.items():
        check_key(key, "values")
        if not isinstance(column, list) or len(column) != n:
            raise BadInput(
                f"values.{key}: expected a list of {n} values, one per step", field=f"values.{key}"
            )
        if all(type(v) is float for v in column):
            # The common case, every entry a plain JSON float: no per-value decoding needed.
            batch.extend(key, steps, column, times_filled)
            continue
        kept_steps, kept_values, kept_times = [], [], []
        for i, raw in enumerate(column):
            value = decode_value(raw, f"values.{key}[{i}]")
            if value is not None:
                kept_steps.append(steps[i])
                kept_values.append(value)
                kept_times.append(times_filled[i])
        batch.extend(key, kept_steps, kept_values, kept_times)
    return batch
