"""A metric history read from a file, before it becomes a run: columns of (step, value, time) per
key, the keys that were skipped, and an identity that names the source file."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from backend.domain import PointBatch
from backend.errors import BadInput
from backend.ingest import check_key
from parityscope.wire import MAX_STEP, iter_column_batches

__all__ = ["FORMATS", "ImportedHistory", "MetricColumn", "content_identity", "step_of"]

FORMATS = ("tensorboard", "csv", "jsonl")


@dataclass
class MetricColumn:
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)


@dataclass
class ImportedHistory:
    """``identity`` is a hash of what identifies the source (see ``external_id``)."""

    format: str
    identity: str
    source: str
    columns: dict[str, MetricColumn] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader changed or left out, and why
    config: dict[str, Any] = field(default_factory=dict)  # a TensorBoard run's hparams
    run_name: str | None = None  # the name the source gives the run (a W&B chart export's)
    damage: str | None = None  # what could not be read of a damaged file; None when whole

    @property
    def external_id(self) -> str:
        """The run's idempotency key: importing the same source again reuses the same run."""
        return f"import:{self.format}:{self.identity}"

    @property
    def points(self) -> int:
        return sum(len(c.steps) for c in self.columns.values())

    def column(self, key: str, where: str) -> MetricColumn:
        existing = self.columns.get(key)
        if existing is None:
            check_key(key, where)
            existing = self.columns[key] = MetricColumn()
        return existing

    def batch(self) -> PointBatch:
        """Every point as one batch (the last value of a repeated (key, step) wins)."""
        batch = PointBatch()
        for key, column in self.columns.items():
            times = [math.nan if t is None else t for t in column.times]
            batch.extend(key, column.steps, column.values, times)
        return batch

    def bodies(self, max_values: int) -> Iterator[tuple[dict[str, Any], int]]:
        """Column-form request bodies of at most ``max_values`` values, with their point counts.
        Keys logged at the same steps and times share bodies (so no body carries a null)."""
        groups: dict[tuple[tuple[int, ...], tuple[float | None, ...]], list[str]] = {}
        for key, column in self.columns.items():
            groups.setdefault((tuple(column.steps), tuple(column.times)), []).append(key)
        for (steps, times), keys in groups.items():
            columns = [self.columns[k].values for k in keys]
            rows = ((step, dict(zip(keys, (c[i] for c in columns), strict=True)), times[i])
                    for i, step in enumerate(steps))
            for body in iter_column_batches(rows, max_values):
                yield body, len(body["steps"]) * len(body["values"])


def content_identity(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:40]


def step_of(raw: Any, where: str) -> int:
    """A step read from a file: an integer (or an integral float) in 0..2^53."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        raise BadInput(f"{where}: the step is missing", field="step")
    if isinstance(raw, float):
        if not raw.is_integer():
            raise BadInput(f"{where}: step {raw!r} is not an integer", field="step")
        raw = int(raw)
    if not 0 <= raw <= MAX_STEP:
        raise BadInput(f"{where}: step {raw} is outside 0..2^53", field="step")
    return raw
