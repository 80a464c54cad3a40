"""Query parameters that several routes parse the same way."""

from __future__ import annotations

from backend.comparing import MAX_RUNS_PER_COMPARISON
from backend.errors import BadInput
from backend.limits import ROW_ID_TEXT

__all__ = ["CURSOR", "RUN_IDS", "parse_run_ids"]

# What ``parse_run_ids`` accepts, published in /openapi.json: 1 to MAX_RUNS_PER_COMPARISON ASCII
# run ids separated by commas, each part optionally padded with spaces.
# The parsing below keeps its own messages; the pattern only publishes the rule.
RUN_IDS = {"pattern": rf"^ *[0-9]+ *(, *[0-9]+ *){{0,{MAX_RUNS_PER_COMPARISON - 1}}}$"}


# A cursor of the runs lists: the id of the last run of the page before (empty: the first page).
CURSOR = {
    "pattern": f"^(?:{ROW_ID_TEXT[1:-1]})?$",
    "description": "next_cursor of the page before; one past the last run gives an empty page",
}


def parse_run_ids(raw: str | None, field: str, *, required: bool) -> list[int]:
    """Comma-separated run ids, or ``BadInput`` naming ``field``."""
    if raw is None or not raw.strip(" "):
        if required:
            raise BadInput(f"{field}: give at least one run id", field=field)
        return []
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip(" ")
        # isdigit() alone accepts characters such as '²' that int() refuses.
        if not (part.isascii() and part.isdigit()):
            raise BadInput(f"{field}: {part!r} is not a run id", field=field)
        ids.append(int(part))
    if len(ids) > MAX_RUNS_PER_COMPARISON:
        raise BadInput(f"{field}: at most {MAX_RUNS_PER_COMPARISON} runs", field=field)
    return ids
