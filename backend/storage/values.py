"""The wire encoding of metric values, shared by ingestion and reads.

On the wire a value is a JSON number, ``null`` (nothing logged at that step) or one of the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"``. In the database NaN is SQL NULL on SQLite and a float8
NaN on PostgreSQL (see ``MetricPointRow``); infinities are stored as themselves.
"""

from __future__ import annotations

import math
from typing import Any

from backend.errors import BadInput

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_MISSING = object()


def decode_value(raw: Any, where: str) -> float | None:
    """Wire value → float; ``None`` means "no value". Raises ``BadInput`` naming ``where``."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise BadInput(f"{where}: expected a number, got a boolean", field=where)
    if isinstance(raw, int | float):
        value = float(raw)
        if isinstance(raw, int) and abs(raw) > 2**1023:
            raise BadInput(f"{where}: number out of range", field=where)
        return value
    if isinstance(raw, str):
        special = _NON_FINITE.get(raw, _MISSING)
        if special is _MISSING:
            raise BadInput(
                f'{where}: expected a number or "NaN", "Infinity", "-Infinity", got {raw[:40]!r}',
                field=where,
            )
        return special  # type: ignore[return-value]
    raise BadInput(f"{where}: expected a number, got {type(raw).__name__}", field=where)


def encode_value(value: float | None) -> float | str:
    """Stored value → wire value. A stored NULL is NaN."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def to_storage(value: float) -> float | None:
    return None if math.isnan(value) else value


def from_storage(value: float | None) -> float:
    return math.nan if value is None else value
