"""Metric values as the database holds them. NaN is SQL NULL on SQLite and a float8 NaN on
PostgreSQL (see ``MetricPointRow``); infinities are stored as themselves. The wire encoding is
``parityscope.wire``'s.
"""

from __future__ import annotations

import math


def from_storage(value: float | None) -> float:
    return math.nan if value is None else value
