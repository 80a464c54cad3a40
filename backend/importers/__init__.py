"""Importers of finished metric histories: TensorBoard event files, CSV and JSONL exports.

Each reader returns an ``ImportedHistory``; the API (``POST /api/v1/projects/{slug}/imports``)
stores it in one transaction, the CLI (``parityscope import``) posts it over HTTP in batches.
Both create the run with the history's ``external_id``, derived from the source's identity, and
ingestion is idempotent per (run, key, step): importing the same file again adds nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from backend.errors import BadInput
from backend.importers.history import FORMATS, ImportedHistory
from backend.importers.table import read_csv, read_jsonl
from backend.importers.tensorboard import event_files, read_event_files

__all__ = ["FORMATS", "ImportedHistory", "event_files", "read_bytes", "read_csv", "read_event_files", "read_jsonl"]


def read_bytes(fmt: str, data: bytes, source: str) -> ImportedHistory:
    """One file's content in ``fmt`` (``tensorboard``: one event file)."""
    if fmt == "csv":
        return read_csv(data, source)
    if fmt == "jsonl":
        return read_jsonl(data, source)
    if fmt == "tensorboard":
        # tensorboard's reader reads paths.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.out.tfevents.upload"
            path.write_bytes(data)
            return read_event_files([path], source)
    raise BadInput(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", field="format")
