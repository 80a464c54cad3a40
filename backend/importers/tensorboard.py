"""TensorBoard event files: every scalar, with its step and wall time, read with tensorboard's
own event file reader (``EventFileLoader``, which also turns legacy ``simple_value`` summaries
into scalar tensors). Images, histograms, text and other non-scalar summaries are skipped and
reported. One directory of event files is one run; when a tag has several values at one step
(a restarted writer), the one read last wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from backend.errors import BadInput
from backend.importers.history import ImportedHistory, MetricColumn, content_identity, step_of
from backend.ingest import check_key

__all__ = ["event_files", "read_event_files"]

SCALARS_PLUGIN = "scalars"

# tensorboard falls back to its TensorFlow stub and says so at INFO/WARNING level; that's expected.
logging.getLogger("tensorboard").setLevel(logging.ERROR)


def event_files(path: Path) -> dict[Path, list[Path]]:
    """Event files at ``path`` (a file, or a directory searched recursively), grouped by the
    directory holding them (each group is one run), each group in writing order."""
    if path.is_file():
        return {path.parent: [path]}
    groups: dict[Path, list[Path]] = {}
    for file in sorted(path.rglob("*tfevents*")):
        if file.is_file():
            groups.setdefault(file.parent, []).append(file)
    return groups


def _first_record(file: Path) -> bytes:
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

    for record in RawEventFileLoader(str(file)).Load():
        return record
    raise BadInput(f"{file.name}: not a TensorBoard event file (no readable event)", field="file")


def read_event_files(
    files: list[Path], source: str, on_event: Callable[[], None] | None = None
) -> ImportedHistory:
    """The scalars of one run's event files. The run's identity is its first file's first event
    (the writer's file-version record, which carries the time the writer started), so a
    directory read again later — even with more events or more files — is the same run."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    history = ImportedHistory(format="tensorboard", identity=content_identity(_first_record(files[0])), source=source)
    plugins: dict[str, str] = {}
    points: dict[str, dict[int, tuple[float, float]]] = {}
    for file in files:
        for event in EventFileLoader(str(file)).Load():
            if on_event is not None:
                on_event()
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name:
                    plugins[value.tag] = value.metadata.plugin_data.plugin_name
                if plugins.get(value.tag) != SCALARS_PLUGIN or not value.HasField("tensor"):
                    continue
                array = tensor_util.make_ndarray(value.tensor)
                if array.size != 1:
                    continue
                where = f"{file.name}: tag {value.tag!r}"
                if value.tag not in points:
                    check_key(value.tag, where)
                    points[value.tag] = {}
                points[value.tag][step_of(event.step, where)] = (float(array.reshape(())), event.wall_time)
    for tag, by_step in points.items():
        steps = sorted(by_step)
        history.columns[tag] = MetricColumn(
            steps=steps,
            values=[by_step[s][0] for s in steps],
            times=[by_step[s][1] for s in steps],
        )
    history.skipped = sorted(t for t, plugin in plugins.items() if plugin != SCALARS_PLUGIN)
    return history
