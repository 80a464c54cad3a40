"""Importers of finished metric histories: TensorBoard event files, CSV and JSONL exports.

Each reader returns an ``ImportedHistory``; the API (``POST /api/v1/projects/{slug}/imports``)
stores it in one transaction, the CLI (``parityscope import``) posts it over HTTP in batches.
Both create the run with the history's ``external_id``, derived from the source's identity (the
content of a CSV or JSONL file, the run name of a W&B chart export, the first record of a
TensorBoard run), or, asked to ``update``, add to the project's run of the same name. Ingestion
is idempotent per (run, key, step): importing the same file again adds nothing, and a longer
export of the same run extends it (a value at a step already stored replaces it).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from backend.errors import BadInput
from backend.importers.history import FORMATS, ImportedHistory
from backend.importers.table import read_csv, read_csv_runs, read_jsonl
from backend.importers.tensorboard import event_files, group_runs, read_event_files

__all__ = [
    "FORMATS",
    "ImportedHistory",
    "event_files",
    "group_runs",
    "read_bytes",
    "read_csv",
    "read_csv_runs",
    "read_event_files",
    "read_jsonl",
]


def read_bytes(fmt: str, data: bytes, source: str, step_column: str | None = None) -> ImportedHistory:
    """One file's content in ``fmt`` (``tensorboard``: one event file)."""
    if fmt == "csv":
        return read_csv(data, source, step_column)
    if fmt == "jsonl":
        return read_jsonl(data, source, step_column)
    if fmt == "tensorboard":
        if step_column is not None:
            raise BadInput("step_column: TensorBoard events carry their own step", field="step_column")
        # tensorboard's reader reads paths.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.out.tfevents.upload"
            path.write_bytes(data)
            return read_event_files([path], source)
    raise BadInput(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
