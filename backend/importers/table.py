"""CSV and JSONL history exports (W&B's ``run.history()`` or any trainer's log): one row per step.

The step column is the one named by ``step_column``, else ``_step``, ``step`` or ``global_step``
(first found, any case); ``_timestamp`` (seconds since the epoch), when present, is each row's
wall time. Every other column whose name does not start with ``_`` (W&B's own bookkeeping, such
as ``_runtime``) is a metric: numbers, and the spellings ``NaN``, ``inf``, ``Infinity``,
``-Infinity`` for non-finite values; an empty cell (or ``null``) is no point. A column with no
number at all (text, booleans) is skipped and reported; a number column holding something else
is an error naming its line. Rows are read with polars; errors name the file's line.

The shapes real exports take:
- a W&B chart export (a panel's "Export CSV"): the x-axis column, then ``"<run> - <metric>"``,
  ``"<run> - <metric>__MIN"`` and ``"<run> - <metric>__MAX"`` per run and metric. Each run becomes
  its own history, named by ``<run>``, with the prefix stripped from its keys; the ``__MIN`` /
  ``__MAX`` columns (the chart's range per row) are dropped with a note;
- pandas' ``to_csv()`` with its default index: an unnamed first column, dropped with a note (or
  the step, when there is no other step column);
- nested objects in a JSONL file (``wandb-history.jsonl``): flattened with ``/``, so
  ``{"train": {"loss": 0.5}}`` is ``train/loss``; W&B's typed values (images, tables, histograms:
  objects with a ``_type``) are skipped and reported.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from backend.errors import BadInput
from backend.importers.history import ImportedHistory, content_identity, step_of

__all__ = ["read_csv", "read_csv_runs", "read_jsonl"]

STEP_COLUMNS = ("_step", "step", "global_step")
TIME_COLUMN = "_timestamp"
CHART_SEPARATOR = " - "  # W&B chart exports: "<run> - <metric>"
CHART_RANGE_SUFFIXES = ("__MIN", "__MAX")
INDEX_COLUMN = "(index)"  # pandas' unnamed index column, renamed so that it can be named in messages
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
            if not name.strip() and number > 1:  # an unnamed first column is pandas' index
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


def read_csv_runs(data: bytes, source: str, step_column: str | None = None) -> list[ImportedHistory]:
    """A CSV history export: one history, or one per run of a W&B chart export; ``BadInput``
    naming the line for anything malformed."""
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
    notes: list[str] = []
    if not header[0].strip():
        frame = frame.rename({frame.columns[0]: INDEX_COLUMN})
    chart = _chart_runs(frame.columns)
    if chart is None:
        return [_history(frame, lines, "csv", source, identity, step_column, notes)]
    histories = []
    x_axis = frame.columns[0]
    for run, metrics in chart.items():
        ranges = [c for c in metrics.values() if c.endswith(CHART_RANGE_SUFFIXES)]
        columns = {c: m for c, m in metrics.items() if not m.endswith(CHART_RANGE_SUFFIXES)}
        if not (x_axis.lower() == "step" and "_step" in columns.values()):  # else the same as the run's _step
            columns = {x_axis: x_axis, **columns}
        part = frame.select([pl.col(c).alias(m) for c, m in columns.items()])
        run_notes = [f"a W&B chart export: the run {run!r}, its keys without the {run + CHART_SEPARATOR!r} prefix"]
        if ranges:
            run_notes.append(
                f"dropped {len(ranges)} __MIN/__MAX columns (the chart's range of each row's metric; "
                "ParityScope keeps the values)" + _bucketed(frame, metrics)
            )
        history = _history(part, lines, "csv", source, content_identity(b"wandb-chart", run.encode()),
                           step_column, notes + run_notes)  # fmt: skip
        history.run_name = run
        histories.append(history)
    return histories


def read_csv(data: bytes, source: str, step_column: str | None = None) -> ImportedHistory:
    """A CSV history export of one run (``read_csv_runs`` reads a chart export of several)."""
    histories = read_csv_runs(data, source, step_column)
    if len(histories) > 1:
        names = ", ".join(repr(h.run_name) for h in histories[:5])
        raise BadInput(
            f"file: a W&B chart export of {len(histories)} runs ({names}); import it with "
            "`parityscope import csv`, which makes one run of each, or export one run",
            field="file",
        )
    return histories[0]


def _chart_runs(columns: Sequence[str]) -> dict[str, dict[str, str]] | None:
    """``{run: {column: metric}}`` when the columns are a W&B chart export's (every column after
    the x-axis is ``"<run> - <metric>"`` and at least one is a ``__MIN``/``__MAX``), else None."""
    rest = columns[1:]
    if not rest or not any(c.endswith(CHART_RANGE_SUFFIXES) for c in rest):
        return None
    runs: dict[str, dict[str, str]] = {}
    for column in rest:
        run, separator, metric = column.partition(CHART_SEPARATOR)
        if not separator or not run or not metric:
            return None
        runs.setdefault(run, {})[column] = metric
    return runs


def _bucketed(frame: pl.DataFrame, metrics: dict[str, str]) -> str:
    """A warning when a row's __MIN and __MAX differ: the chart merged several logged points
    into that row, so the export does not hold every point."""
    by_metric = {m: c for c, m in metrics.items()}
    for metric in by_metric:
        low, high = by_metric.get(metric + "__MIN"), by_metric.get(metric + "__MAX")
        if low is None or high is None:
            continue
        lows = frame[low].str.strip_chars().cast(pl.Float64, strict=False)
        highs = frame[high].str.strip_chars().cast(pl.Float64, strict=False)
        if ((lows != highs) & lows.is_not_null() & highs.is_not_null()).any():
            return (
                f"; rows of {metric!r} merge several logged points (their __MIN and __MAX differ): "
                "export the run's full history for every point"
            )
    return ""


# -- JSONL ------------------------------------------------------------------------------------


def read_jsonl(data: bytes, source: str, step_column: str | None = None) -> ImportedHistory:
    """A JSONL history export (one JSON object per line; blank lines ignored; nested objects
    flattened with ``/``)."""
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
    frame, typed = _flatten(frame)
    history = _history(frame, lines, "jsonl", source, content_identity(data), step_column, [])
    history.skipped.extend(typed)
    return history


def _flatten(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Nested objects as ``parent/child`` columns; W&B's typed values (an object with a
    ``_type``: an image, a table, a histogram) are removed and returned by name."""
    typed: list[str] = []
    while True:
        nested = [c for c in frame.columns if isinstance(frame.schema[c], pl.Struct)]
        if not nested:
            return frame, typed
        replaced = []
        for name in frame.columns:
            dtype = frame.schema[name]
            if not isinstance(dtype, pl.Struct):
                replaced.append(pl.col(name))
            elif any(f.name == "_type" for f in dtype.fields):
                typed.append(name)
            else:
                replaced.extend(pl.col(name).struct.field(f.name).alias(f"{name}/{f.name}") for f in dtype.fields)
        frame = frame.select(replaced)


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


def _step_name(frame: pl.DataFrame, step_column: str | None, notes: list[str]) -> str:
    if step_column is not None:
        if step_column not in frame.columns:
            found = ", ".join(repr(c) for c in frame.columns[:10])
            raise BadInput(f"line 1: no column {step_column!r} for the step (found {found})", field="step_column")
        return step_column
    by_lower = {c.lower(): c for c in frame.columns}
    step_name = next((by_lower[c] for c in STEP_COLUMNS if c in by_lower), None)
    if step_name is not None:
        return step_name
    if INDEX_COLUMN in frame.columns:
        notes.append("the unnamed first column (pandas' index) is the step: the file has no other step column")
        return INDEX_COLUMN
    raise BadInput(
        f"line 1: no step column; expected one of {', '.join(STEP_COLUMNS)} or --step-column "
        f"(found {', '.join(frame.columns[:10])})",
        field="file",
    )


def _history(
    frame: pl.DataFrame,
    lines: list[int],
    fmt: str,
    source: str,
    identity: str,
    step_column: str | None,
    notes: list[str],
) -> ImportedHistory:
    notes = list(notes)
    step_name = _step_name(frame, step_column, notes)
    if INDEX_COLUMN in frame.columns and step_name != INDEX_COLUMN:
        frame = frame.drop(INDEX_COLUMN)
        notes.append("dropped the unnamed first column (pandas' index)")
    history = ImportedHistory(format=fmt, identity=identity, source=source, notes=notes)
    steps_column = _as_numbers(frame, step_name, lines)
    if steps_column is None:
        raise BadInput(f"line {lines[0]}, column {step_name!r}: the step column holds no numbers", field="file")
    metric_names = [c for c in frame.columns if c != step_name and not c.startswith("_")]
    if steps_column.null_count():
        # Rows without a step are dropped when they hold no value either (in a W&B chart export
        # of several runs, each run's rows are the others' empty ones).
        holds = steps_column.is_not_null()
        for name in metric_names:
            cell = frame[name]
            present = cell.is_not_null()
            if cell.dtype == pl.String:
                present = present & (cell.str.strip_chars() != "")
            holds = holds | present
        keep = holds.arg_true().to_list()
        if len(keep) < frame.height:
            frame = frame[keep]
            lines = [lines[i] for i in keep]
            steps_column = steps_column.gather(keep)
    steps = [step_of(s, f"line {lines[i]}, column {step_name!r}") for i, s in enumerate(steps_column.to_list())]
    times: list[float | None] = [None] * len(steps)
    time_name = {c.lower(): c for c in frame.columns}.get(TIME_COLUMN)
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
