"""Facts for people: each finding said in plain words, with its number, unit and definition.

A ``Fact`` is one line of a verdict's or a marker's evidence. ``fact`` is the sentence shown
(numbers to three significant digits, with their unit), ``quantity`` names the number it
carries, ``value`` and ``unit`` are that number for machines (full precision) and
``definition`` says what the quantity is, for a tooltip. docs/COMPARE.md lists every quantity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Fact", "sig3"]


@dataclass(frozen=True)
class Fact:
    fact: str
    quantity: str | None = None
    value: float | int | str | None = None
    unit: str | None = None
    definition: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "fact": self.fact,
            "quantity": self.quantity,
            "value": self.value,
            "unit": self.unit,
            "definition": self.definition,
        }


def sig3(value: float | int | None) -> str:
    """``value`` to three significant digits, trailing zeros kept ("3.00", "0.0392", "1.20e-05")."""
    if value is None:
        return "—"
    if isinstance(value, int | bool) and not isinstance(value, bool) and abs(value) < 1000:
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("∞" if value > 0 else "−∞")
    if value == 0:
        return "0"
    text = f"{value:#.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa.rstrip('.')}e{exponent}"
    return text.rstrip(".")
