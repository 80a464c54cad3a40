"""TensorBoard event files: every scalar, with its step and wall time, read with tensorboard's
own event file reader (``EventFileLoader``, which also turns legacy ``simple_value`` summaries
into scalar tensors). Images, histograms, text and other non-scalar summaries are skipped and
reported. One directory of event files is one run; when a tag has several values at one step
(a restarted writer), the one read last wins.

Two layouts of the writers (torch's ``SummaryWriter`` and tensorboardX's) put part of a run in
subdirectories, and ``group_runs`` puts them back:
- ``add_scalars(main_tag, {sub: value})`` writes each ``sub`` under the tag ``main_tag`` to
  ``<run>/<main_tag>_<sub>/`` (torch) or ``<run>/<main_tag>/<sub>/`` (tensorboardX): it becomes
  the key ``main_tag/sub`` of the run;
- ``add_hparams(hparams, metrics)`` writes to ``<run>/<name>/`` the hparams plugin's summaries
  and the metrics as scalars: the hparams become the run's config, the metrics its keys.

A damaged file (a bad checksum, a truncated record) is read up to the damage; ``damage`` on the
history says what was read and what was not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.errors import BadInput
from backend.importers.history import ImportedHistory, MetricColumn, content_identity, step_of
from backend.ingest import check_key

__all__ = ["event_files", "group_runs", "read_event_files"]

SCALARS_PLUGIN = "scalars"
HPARAMS_PLUGIN = "hparams"
RECORD_FRAMING = 16  # bytes around each record: length (8), its checksum (4), data checksum (4)

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


def _loader(file: Path) -> Any:
    """tensorboard's ``EventFileLoader`` that also counts the bytes of the records it read."""
    from tensorboard.backend.event_processing.event_file_loader import (
        EventFileLoader,
        RawEventFileLoader,
    )

    class CountingRecords(RawEventFileLoader):
        bytes_read = 0

        def Load(self):  # noqa: N802 - tensorboard's name
            for record in super().Load():
                self.bytes_read += len(record) + RECORD_FRAMING
                yield record

    class CountingLoader(EventFileLoader, CountingRecords):
        pass

    return CountingLoader(str(file))


def _hparams(content: bytes) -> dict[str, Any]:
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content)
    if not data.HasField("session_start_info"):
        return {}
    config: dict[str, Any] = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        config[name] = None if kind in (None, "null_value") else getattr(value, kind)
    return config


def read_event_files(
    files: list[Path], source: str, on_event: Callable[[], None] | None = None
) -> ImportedHistory:
    """The scalars (and hparams) of one run's event files. The run's identity is its first
    file's first event (the writer's file-version record, which carries the time the writer
    started), so a directory read again later — even with more events or more files — is the
    same run."""
    from tensorboard.util import tensor_util

    history = ImportedHistory(format="tensorboard", identity=content_identity(_first_record(files[0])), source=source)
    plugins: dict[str, str] = {}
    points: dict[str, dict[int, tuple[float, float]]] = {}
    damage = []
    for file in files:
        loader = _loader(file)
        events = 0
        for event in loader.Load():
            events += 1
            if on_event is not None:
                on_event()
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin:
                    plugins[value.tag] = plugin
                if plugin == HPARAMS_PLUGIN:
                    history.config.update(_hparams(value.metadata.plugin_data.content))
                    continue
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
        size = file.stat().st_size
        if loader.bytes_read < size:
            damage.append(
                f"{file.name}: read {events} events ({loader.bytes_read} of {size} bytes); the remaining "
                f"{size - loader.bytes_read} bytes are damaged (a bad checksum or a cut record) and were skipped"
            )
    for tag, by_step in points.items():
        steps = sorted(by_step)
        history.columns[tag] = MetricColumn(
            steps=steps,
            values=[by_step[s][0] for s in steps],
            times=[by_step[s][1] for s in steps],
        )
    history.skipped = sorted(t for t, plugin in plugins.items() if plugin not in (SCALARS_PLUGIN, HPARAMS_PLUGIN))
    history.damage = "; ".join(damage) or None
    return history


def _scalars_home(directory: Path, tag: str) -> tuple[Path, str] | None:
    """``(run directory, "main_tag/sub")`` when ``directory`` is where ``add_scalars(main_tag,
    {sub: ...})`` wrote ``sub`` under the tag ``main_tag``, else None. torch writes
    ``<run>/<main_tag with / as _>_<sub>``, tensorboardX ``<run>/<main_tag>/<sub>``."""
    prefix = tag.replace("/", "_") + "_"
    if directory.name.startswith(prefix) and len(directory.name) > len(prefix):
        return directory.parent, f"{tag}/{directory.name[len(prefix):]}"
    parts = tag.split("/")
    if len(directory.parts) > len(parts) + 1 and list(directory.parts[-len(parts) - 1 : -1]) == parts:
        return directory.parents[len(parts)], f"{tag}/{directory.name}"
    return None


def group_runs(histories: dict[Path, ImportedHistory]) -> dict[Path, ImportedHistory]:
    """Fold the subdirectories that ``add_scalars`` and ``add_hparams`` write into the run
    they belong to (the directory above them that holds event files too)."""
    runs = dict(histories)
    # Deepest first, so a subdirectory is folded before its parent is (possibly) folded in turn.
    for directory in sorted(histories, key=lambda d: len(d.parts), reverse=True):
        child = runs[directory]
        if child.config:
            parent = runs.get(directory.parent)
            if parent is None:
                continue
            _fold(parent, child, {tag: tag for tag in child.columns})
            parent.config.update(child.config)
            parent.notes.append(f"hparams and their metrics from {directory.name}/ (add_hparams)")
        else:
            homes = {tag: _scalars_home(directory, tag) for tag in child.columns}
            found = {home[0] for home in homes.values() if home is not None}
            if not homes or None in homes.values() or len(found) != 1 or next(iter(found)) not in runs:
                continue  # a run of its own
            home = next(iter(found))
            parent = runs[home]
            keys = {tag: home_key[1] for tag, home_key in homes.items() if home_key is not None}
            _fold(parent, child, keys)
            where = directory.relative_to(home).as_posix()
            parent.notes.append(f"{', '.join(sorted(keys.values()))} from {where}/ (add_scalars)")
        del runs[directory]
    return runs


def _fold(parent: ImportedHistory, child: ImportedHistory, keys: dict[str, str]) -> None:
    for tag, key in keys.items():
        if key in parent.columns:
            parent.notes.append(f"{key} of {child.source} left out: the run logs {key} itself")
            continue
        check_key(key, f"tag {key!r}")
        parent.columns[key] = child.columns[tag]
    parent.skipped.extend(s for s in child.skipped if s not in parent.skipped)
    if child.damage:
        parent.damage = "; ".join(d for d in (parent.damage, child.damage) if d)
