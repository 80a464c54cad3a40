"""The wire format of metric points, shared by the client, the workers and the server.

A metric value on the wire is a JSON number, ``null`` (nothing logged at that step) or one of the
strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. A metrics request body in column form is
``{"steps": [...], "values": {key: [...]}, "times": [...]}``; ``column_batches`` cuts logged rows
into such bodies under a per-request limit. Keys and steps obey ``check_key`` and ``MAX_STEP``.

Depends on nothing but the standard library, so that every side can import it: the client
package installs with httpx alone (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_STEP",
    "VALUES_PER_REQUEST",
    "WireError",
    "check_key",
    "column_batches",
    "decode_value",
    "encode_value",
    "iter_column_batches",
]

MAX_STEP = 2**53
MAX_KEY_LENGTH = 250
VALUES_PER_REQUEST = 50_000  # half the server's default limit per request

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_MISSING = object()

Row = tuple[int, Mapping[str, float], float | None]


class WireError(ValueError):
    """A key or value the wire format does not allow; ``field`` names where it was found."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def check_key(key: Any, where: str) -> str:
    """A metric key is 1..``MAX_KEY_LENGTH`` printable characters; raises ``WireError``."""
    if not isinstance(key, str) or not key:
        raise WireError(f"{where}: metric keys must be non-empty strings, got {key!r}", where)
    if len(key) > MAX_KEY_LENGTH:
        raise WireError(f"{where}: metric key is {len(key)} characters, the limit is {MAX_KEY_LENGTH}", where)
    if not key.isprintable():
        raise WireError(f"{where}: metric key {key[:40]!r} contains non-printable characters", where)
    return key


def encode_value(value: float | None) -> float | str:
    """A value → its wire form. ``None`` (a stored NULL) is NaN."""
    if value is None or value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_value(raw: Any, where: str) -> float | None:
    """A wire value → float; ``None`` means "no value". Raises ``WireError`` naming ``where``."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise WireError(f"{where}: expected a number, got a boolean", where)
    if isinstance(raw, int | float):
        if isinstance(raw, int) and abs(raw) > 2**1023:
            raise WireError(f"{where}: number out of range", where)
        return float(raw)
    if isinstance(raw, str):
        special = _NON_FINITE.get(raw, _MISSING)
        if special is _MISSING:
            raise WireError(
                f'{where}: expected a number or "NaN", "Infinity", "-Infinity", got {raw[:40]!r}', where
            )
        return special  # type: ignore[return-value]
    raise WireError(f"{where}: expected a number, got {type(raw).__name__}", where)


def iter_column_batches(rows: Iterable[Row], max_values: int = VALUES_PER_REQUEST) -> Iterator[dict[str, Any]]:
    """Rows ``(step, {key: value}, time)`` as column-form request bodies in order, each of at
    most ``max_values`` values (nulls included). A key missing from a row is ``null`` there (no
    point); a row with more keys than ``max_values`` is sent in several bodies. ``times`` is left
    out of a body whose rows all have none (the server stamps the time of receipt)."""
    pending: list[Row] = []
    keys: dict[str, None] = {}
    for row in rows:
        if len(row[1]) > max_values:
            if pending:
                yield _body(pending, keys)
                pending, keys = [], {}
            step, values, time = row
            names = list(values)
            for first in range(0, len(names), max_values):
                part = {k: values[k] for k in names[first : first + max_values]}
                yield _body([(step, part, time)], dict.fromkeys(part))
            continue
        new = [k for k in row[1] if k not in keys]
        if pending and (len(pending) + 1) * (len(keys) + len(new)) > max_values:
            yield _body(pending, keys)
            pending, keys = [], {}
            new = list(row[1])
        keys.update(dict.fromkeys(new))
        pending.append(row)
    if pending:
        yield _body(pending, keys)


def column_batches(rows: Iterable[Row], max_values: int = VALUES_PER_REQUEST) -> list[dict[str, Any]]:
    """``iter_column_batches`` as a list."""
    return list(iter_column_batches(rows, max_values))


def _body(rows: list[Row], keys: Mapping[str, None]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "steps": [step for step, _, _ in rows],
        "values": {
            key: [None if (v := values.get(key)) is None else encode_value(v) for _, values, _ in rows]
            for key in keys
        },
    }
    times = [t for _, _, t in rows]
    if any(t is not None for t in times):
        body["times"] = times
    return body
