"""CSV and JSONL history exports (W&B's ``run.history()`` or any trainer's log): one row per step.

The step column is ``_step``, ``step`` or ``global_step`` (first found, any case); ``_timestamp``
(seconds since the epoch), when present, is each row's wall time. Every other column whose name
does not start with ``_`` (W&B's own bookkeeping, such as ``_runtime``) is a metric: numbers, and
the spellings ``NaN``, ``inf``, ``Infinity``, ``-Infinity`` for non-finite values; an empty cell (or
``null``) is no point. A column with no number at all (text, nested objects, booleans) is skipped
and reported; a number column holding something else is an error naming its line. Rows are read
with polars; errors name the file's line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any

import polars as pl

from backend.errors import BadInput
from backend.importers.history import ImportedHistory, content_identity, step_of

__all__ = ["read_csv", "read_jsonl"]

STEP_COLUMNS = ("_step", "step", "global_step")
TIME_COLUMN = "_timestamp"
_NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(f"line {line}: not UTF-8 text", field="file") from None


def _first_polars_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# -- CSV --------------------------------------------------------------------------------------


def _csv_lines(text: str) -> tuple[list[str], list[int], set[int]]:
    """Check the file's structure with the csv module: the header, then every row's field count.
    Returns the header, the line each data row starts on, and the indexes of blank rows."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise BadInput("line 1: the file is empty; expected a header row", field="file")
        seen: set[str] = set()
        for number, name in enumerate(header, start=1):
            if not name.strip():
                raise BadInput(f"line 1: column {number} has no name", field="file")
            if name in seen:
                raise BadInput(f"line 1: column {name!r} appears twice", field="file")
            seen.add(name)
        lines: list[int] = []
        blank: set[int] = set()
        start = reader.line_num + 1
        for row in reader:
            if not row:
                blank.add(len(lines))
            elif len(row) != len(header):
                raise BadInput(
                    f"line {start}: expected {len(header)} fields as in the header, found {len(row)}",
                    field="file",
                )
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise BadInput(f"line {reader.line_num}: {exc}", field="file") from None
    return header, lines, blank


def read_csv(data: bytes, source: str) -> ImportedHistory:
    """A CSV history export; ``BadInput`` naming the line for anything malformed."""
    header, lines, blank = _csv_lines(_text(data))
    identity = content_identity(data)
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        frame = pl.read_csv(data, infer_schema=False, encoding="utf8-lossy")
    except pl.exceptions.PolarsError as exc:
        raise BadInput(f"CSV: {_first_polars_line(exc)}", field="file") from None
    if frame.height != len(lines) or frame.columns != header:
        raise BadInput("CSV: the rows polars read do not match the file's lines", field="file")
    if blank:
        keep = [i for i in range(frame.height) if i not in blank]
        frame = frame[keep]
        lines = [lines[i] for i in keep]
    return _history(frame, lines, "csv", source, identity)


# -- JSONL ------------------------------------------------------------------------------------


def read_jsonl(data: bytes, source: str) -> ImportedHistory:
    """A JSONL history export (one JSON object per line; blank lines ignored)."""
    text = _text(data)
    lines = [n for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    if not lines:
        raise BadInput("line 1: the file is empty; expected one JSON object per line", field="file")
    try:
        frame = pl.read_ndjson(data, infer_schema_length=None)
    except pl.exceptions.PolarsError:
        # polars refuses what Python's json accepts (NaN and Infinity literals) and says little
        # about where a line is broken: read line by line, then let polars build the columns.
        rows = _json_rows(text)
        try:
            frame = pl.from_dicts(rows, infer_schema_length=None)
        except OverflowError:
            raise BadInput("JSONL: an integer is too large for a 64-bit number", field="file") from None
        except pl.exceptions.PolarsError as exc:  # a column mixing numbers and lists, say
            raise BadInput(f"JSONL: {_first_polars_line(exc)[:200]}", field="file") from None
    if frame.height != len(lines):
        raise BadInput("JSONL: the rows polars read do not match the file's lines", field="file")
    return _history(frame, lines, "jsonl", source, content_identity(data))


def _json_rows(text: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})", field="file") from None
        except RecursionError:
            raise BadInput(f"line {number}: JSON nested too deeply to read", field="file") from None
        if not isinstance(row, dict):
            raise BadInput(f"line {number}: expected a JSON object, got {type(row).__name__}", field="file")
        rows.append(row)
    return rows


# -- both -------------------------------------------------------------------------------------


def _as_numbers(frame: pl.DataFrame, name: str, lines: list[int]) -> pl.Series | None:
    """The column as Float64 (null where empty), None when it holds no number at all;
    ``BadInput`` naming the first line of a number column that holds something else."""
    column = frame[name]
    if column.dtype in _NUMERIC:
        return column.cast(pl.Float64)
    if column.dtype != pl.String:
        return None  # booleans, nested objects, lists, all-null columns
    text = column.str.strip_chars()
    numbers = text.cast(pl.Float64, strict=False)
    bad = (text.is_not_null() & (text != "") & numbers.is_null()).arg_true()
    if len(bad) == 0:
        return numbers
    if numbers.is_not_null().sum() == 0:
        return None  # a text column
    row = int(bad[0])
    raise BadInput(f"line {lines[row]}, column {name!r}: {column[row]!r} is not a number", field="file")


def _history(frame: pl.DataFrame, lines: list[int], fmt: str, source: str, identity: str) -> ImportedHistory:
    by_lower = {c.lower(): c for c in frame.columns}
    step_name = next((by_lower[c] for c in STEP_COLUMNS if c in by_lower), None)
    if step_name is None:
        raise BadInput(
            f"line 1: no step column; expected one of {', '.join(STEP_COLUMNS)} "
            f"(found {', '.join(frame.columns[:10])})",
            field="file",
        )
    history = ImportedHistory(format=fmt, identity=identity, source=source)
    steps_column = _as_numbers(frame, step_name, lines)
    if steps_column is None:
        raise BadInput(f"line {lines[0]}, column {step_name!r}: the step column holds no numbers", field="file")
    steps = [step_of(s, f"line {lines[i]}, column {step_name!r}") for i, s in enumerate(steps_column.to_list())]
    times: list[float | None] = [None] * len(steps)
    time_name = by_lower.get(TIME_COLUMN)
    if time_name is not None:
        stamps = _as_numbers(frame, time_name, lines)
        if stamps is not None:
            times = [None if t is None or t != t else t for t in stamps.to_list()]
    for name in frame.columns:
        if name in (step_name, time_name):
            continue
        if name.startswith("_"):
            history.skipped.append(name)
            continue
        numbers = _as_numbers(frame, name, lines)
        if numbers is None:
            history.skipped.append(name)
            continue
        column = history.column(name, f"line 1, column {name!r}")
        present = numbers.is_not_null().arg_true().to_list()
        values = numbers.to_list()
        column.steps = [steps[i] for i in present]
        column.values = [values[i] for i in present]
        column.times = [times[i] for i in present]
    return history
