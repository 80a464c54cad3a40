"""Parsing and validating a metrics request body into a ``PointBatch``.

Both body forms are accepted:
  rows:    {"points": [{"step": 0, "values": {"reward": 0.1}, "time": 1732600000.5}, ...]}
  columns: {"steps": [0, 1], "values": {"reward": [0.1, 0.2]}, "times": [..]}
Validation happens completely before anything is stored, so a rejected request stores nothing.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from backend.domain import PointBatch
from backend.errors import BadInput, TooLarge
from parityscope import wire
from parityscope.wire import MAX_STEP


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
    """``parityscope.wire.check_key`` with its refusal as ``BadInput``."""
    try:
        return wire.check_key(key, where)
    except wire.WireError as exc:
        raise BadInput(str(exc), field=exc.field) from None


def decode_value(raw: Any, where: str) -> float | None:
    """``parityscope.wire.decode_value`` with its refusal as ``BadInput``."""
    try:
        return wire.decode_value(raw, where)
    except wire.WireError as exc:
        raise BadInput(str(exc), field=exc.field) from None


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
