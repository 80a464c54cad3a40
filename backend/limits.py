"""Size limits on what a request may carry and what a run may accumulate (docs/SECURITY.md).

Every limit the API enforces on a field that can grow is declared here once. The body size and
the per-request value count are settings (``PARITYSCOPE_MAX_BODY_BYTES``,
``PARITYSCOPE_MAX_VALUES_PER_REQUEST``) because deployments tune them; the rest are part of the
API's contract and fixed.
"""

from __future__ import annotations

__all__ = [
    "MAX_ANONYMOUS_BODY_BYTES",
    "MAX_BAND_K",
    "MAX_CONFIG_BYTES",
    "MAX_DIVERGENCE_K",
    "MAX_ENGINE_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_INTEGER",
    "MAX_KEYS_PER_REQUEST",
    "MAX_KEYS_PER_RUN",
    "MAX_NAME_LENGTH",
    "MAX_NOTE_LENGTH",
    "MAX_OPTIONS_BYTES",
    "MAX_ROW_ID",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "ROW_ID_TEXT",
    "is_row_id",
    "row_id_text",
]

# A request without a token may still carry a body (an MLflow run search on a deployment with
# public reads), but never a large one: bytes beyond this are not read before a 401.
MAX_ANONYMOUS_BODY_BYTES = 64 * 1024

# JSON documents stored with a run or a job and sent back in every listing of them.
MAX_CONFIG_BYTES = 256 * 1024  # a run's config, serialized
MAX_ENGINE_BYTES = 16 * 1024  # a run's or a worker's engine description, serialized
MAX_OPTIONS_BYTES = 16 * 1024  # a saved comparison's options, a job's workload or leg settings
# Deeper than this, a value would be stored and then never serialized back.
MAX_JSON_DEPTH = 64
# Integers JavaScript and every JSON reader hold exactly (Number.MAX_SAFE_INTEGER + 1).
MAX_JSON_INTEGER = 2**53

MAX_NAME_LENGTH = 500  # a run's name
MAX_NOTE_LENGTH = 2000
MAX_TAGS = 100
MAX_TAG_LENGTH = 100

# Distinct metric keys: in one ingest request, and in one run over its lifetime. Both stay
# below what one SQL statement can bind (32,766 on SQLite, 65,535 on PostgreSQL).
MAX_KEYS_PER_REQUEST = 10_000
MAX_KEYS_PER_RUN = 20_000

# Comparison query bounds: consecutive steps outside the band before a divergence is called,
# and the band's width in standard deviations.
MAX_DIVERGENCE_K = 100_000
MAX_BAND_K = 1000.0

# Row ids are 32-bit on PostgreSQL; a path id beyond them names nothing (404, not 422).
MAX_ROW_ID = 2**31 - 1


def _decimal_at_most(limit: int) -> str:
    """A regular expression of the decimal numbers 0..``limit`` (leading zeros allowed)."""
    digits = str(limit)
    alternatives = [f"[0-9]{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        low = "1" if i == 0 else "0"
        if int(digit) > int(low):
            rest = len(digits) - i - 1
            alternatives.append(f"{digits[:i]}[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    alternatives.append(digits)
    return f"^0*(?:{'|'.join(alternatives)})$"


# A row id as text (a cursor of the runs list): ASCII digits whose value is at most MAX_ROW_ID.
ROW_ID_TEXT = _decimal_at_most(MAX_ROW_ID)


def row_id_text(text: str) -> int | None:
    """The number ``text`` spells if it matches ``ROW_ID_TEXT``, else None."""
    digits = text.lstrip("0") or "0"
    if not (text.isascii() and text.isdigit() and len(digits) <= len(str(MAX_ROW_ID))):
        return None
    value = int(digits)
    return value if value <= MAX_ROW_ID else None


def is_row_id(value: int) -> bool:
    """Whether ``value`` can be the id of a stored row; any other names nothing."""
    return 1 <= value <= MAX_ROW_ID
