"""Command-line tools for trainers' data: ``parityscope sync`` and ``parityscope import``.

Both talk to a server over HTTP with a project write token (``--url``/``PARITYSCOPE_URL``,
``--token``/``PARITYSCOPE_TOKEN``), like trainers and workers do; neither needs database access.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

__all__ = ["import_app", "sync"]

T = TypeVar("T")

import_app = typer.Typer(
    help="Import finished histories (TensorBoard, CSV, JSONL) as runs; importing again adds nothing, "
    "a longer export of the same run extends it.",
    no_args_is_help=True,
)

Url = Annotated[str, typer.Option(envvar="PARITYSCOPE_URL", help="the ParityScope server")]
Token = Annotated[str, typer.Option(envvar="PARITYSCOPE_TOKEN", help="a write token of the project")]
Project = Annotated[str, typer.Option(help="project slug")]
RunName = Annotated[str | None, typer.Option(help="run name (default: the file or directory name)")]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="a tag for the run (repeatable)")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="progress bars on stderr")]
StepColumn = Annotated[
    str | None, typer.Option(help="the column holding the step (default: _step, step or global_step)")
]
Update = Annotated[
    bool,
    typer.Option("--update", help="add to the project's run of the same name (extend or replace its points) "
                 "instead of importing as the source's own run"),
]
AllowPartial = Annotated[
    bool, typer.Option("--allow-partial", help="import what a damaged file holds up to the damage instead of failing")
]


def sync(
    url: Annotated[
        str | None,
        typer.Option(envvar="PARITYSCOPE_URL", help="server URL (default: the one each file was spooled for)"),
    ] = None,
    token: Annotated[str | None, typer.Option(envvar="PARITYSCOPE_TOKEN", help="a project write token")] = None,
    spool_dir: Annotated[
        Path | None,
        typer.Option(help="spool directory (default: PARITYSCOPE_SPOOL_DIR or ~/.cache/parityscope/spool)"),
    ] = None,
) -> None:
    """Send the metrics the Python client spooled while the server was unreachable."""
    from parityscope.cli import sync_spooled

    code = sync_spooled(url, token, spool_dir, lambda line, is_error: typer.echo(line, err=is_error))
    if code:
        raise typer.Exit(code=code)


# -- import ---------------------------------------------------------------------------------


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _retrying(call: Callable[[], T], what: str) -> T:
    """Retry while the server is unavailable (0.5 s doubling, 6 tries); a refusal is final."""
    from parityscope.client import ClientError, ServerUnavailable

    delay = 0.5
    for attempt in range(6):
        try:
            return call()
        except ServerUnavailable as exc:
            if attempt == 5:
                _fail(f"{what}: {exc}; run the same command again to finish (nothing is duplicated)")
            time.sleep(delay)
            delay *= 2
        except ClientError as exc:
            _fail(f"{what}: {exc}")
    raise AssertionError("unreachable")


def _target_run(connection: Any, project: str, body: dict[str, Any], update: bool) -> dict[str, Any]:
    """The run to import into: with ``update``, the project's one run of that name (an error
    when several have it); otherwise, or when there is none, the history's own run."""
    name = body["name"]
    if update:
        named = _retrying(lambda: connection.runs_named(project, name), f"finding run {name!r}")
        if len(named) > 1:
            ids = ", ".join(str(r["id"]) for r in named[:10])
            _fail(f"--update: {len(named)} runs of project {project} are named {name!r} (ids {ids}); "
                  "rename all but one, or import under another --run-name")
        if named:
            return named[0]
    return _retrying(lambda: connection.create_run(project, body), f"creating run {name!r}")


def upload(
    history: Any, *, project: str, run_name: str, tags: list[str], url: str, token: str, progress: bool,
    update: bool = False, allow_partial: bool = False,
) -> int:
    """Create (or find again) the history's run, post its points in batches, mark it finished."""
    from tqdm import tqdm

    from parityscope.connection import Connection
    from parityscope.wire import VALUES_PER_REQUEST

    for note in history.notes:
        typer.echo(f"{history.source}: note: {note}")
    if history.damage:
        if not allow_partial:
            _fail(f"{history.source}: damaged: {history.damage}; nothing was imported "
                  f"(--allow-partial imports the {history.points} points read before the damage)")
        typer.echo(f"{history.source}: damaged, importing what was read (--allow-partial): {history.damage}", err=True)
    if not history.points:  # no numeric column, or only columns without a value (a header-only CSV)
        skipped = f" (skipped: {', '.join(history.skipped[:10])})" if history.skipped else ""
        _fail(f"{history.source}: no numeric metric to import{skipped}")
    connection = Connection(url, token, timeout=120.0)
    body = {
        "name": run_name,
        "config": history.config,
        "tags": [f"imported:{history.format}", *tags],
        "external_id": history.external_id,
    }
    try:
        run = _target_run(connection, project, body, update)
        merged = {**run.get("config", {}), **history.config}
        if merged != run.get("config", {}):
            _retrying(lambda: connection.update_run(run["id"], {"config": merged}), f"run {run['id']}")
        with tqdm(total=history.points, unit="points", desc=f"sending {run_name}", disable=not progress) as bar:
            for request, count in history.bodies(VALUES_PER_REQUEST):
                _retrying(lambda r=request: connection.post_metrics(run["id"], r), f"run {run['id']}")
                bar.update(count)
        _retrying(lambda: connection.update_run(run["id"], {"status": "finished"}), f"run {run['id']}")
    finally:
        connection.close()
    skipped = f"; skipped (not numeric scalars): {', '.join(history.skipped)}" if history.skipped else ""
    typer.echo(f"{history.source}: {history.points} points of {len(history.columns)} keys in run {run['id']} ({run_name}){skipped}")
    return int(run["id"])


def _read(reader: Callable[[bytes, str, str | None], Any], file: Path, step_column: str | None) -> Any:
    from backend.errors import ParityScopeError

    if not file.is_file():
        _fail(f"{file}: no such file")
    try:
        return reader(file.read_bytes(), file.name, step_column)
    except ParityScopeError as exc:
        _fail(f"{file}: {exc.message}")


@import_app.command("csv")
def import_csv(
    file: Annotated[Path, typer.Argument(help="a CSV history export: a step column (_step or step) and metric columns")],
    project: Project,
    url: Url,
    token: Token,
    run_name: RunName = None,
    tag: Tags = None,
    step_column: StepColumn = None,
    update: Update = False,
    progress: Progress = True,
) -> None:
    """Import a CSV history export as one run (a W&B chart export: one run per run in it, each
    named as in W&B unless --run-name is given for a single one)."""
    from backend.importers import read_csv_runs

    histories = _read(read_csv_runs, file, step_column)
    if run_name is not None and len(histories) > 1:
        _fail(f"{file}: --run-name names one run, and this W&B chart export holds {len(histories)}")
    for history in histories:
        name = run_name or history.run_name or file.stem
        upload(history, project=project, run_name=name, tags=tag or [], url=url, token=token, progress=progress,
               update=update)


@import_app.command("jsonl")
def import_jsonl(
    file: Annotated[Path, typer.Argument(help="a JSONL history export: one object per step with _step or step")],
    project: Project,
    url: Url,
    token: Token,
    run_name: RunName = None,
    tag: Tags = None,
    step_column: StepColumn = None,
    update: Update = False,
    progress: Progress = True,
) -> None:
    """Import a JSONL history export as one run (nested objects flattened with '/')."""
    from backend.importers import read_jsonl

    history = _read(read_jsonl, file, step_column)
    upload(history, project=project, run_name=run_name or file.stem, tags=tag or [], url=url, token=token,
           progress=progress, update=update)


@import_app.command("tensorboard")
def import_tensorboard(
    path: Annotated[Path, typer.Argument(help="a log directory (searched recursively) or one event file")],
    project: Project,
    url: Url,
    token: Token,
    run_name: RunName = None,
    tag: Tags = None,
    update: Update = False,
    allow_partial: AllowPartial = False,
    progress: Progress = True,
) -> None:
    """Import the scalars of TensorBoard event files: one run per directory holding event files,
    with the subdirectories that add_scalars and add_hparams write folded into their run.

    With several runs, each is named by its path under PATH (prefixed by --run-name when given).
    A damaged file fails the import, naming what was read and what was not, unless
    --allow-partial."""
    from tqdm import tqdm

    from backend.errors import ParityScopeError
    from backend.importers import event_files, group_runs, read_event_files

    if not path.exists():
        _fail(f"{path}: no such file or directory")
    groups = event_files(path)
    if not groups:
        _fail(f"{path}: no TensorBoard event files (events.out.tfevents.*) found")
    root = path if path.is_dir() else path.parent
    histories = {}
    for directory, files in groups.items():
        relative = directory.relative_to(root).as_posix()
        try:
            with tqdm(unit="events", desc=f"reading {relative}", disable=not progress) as bar:
                histories[directory] = read_event_files(files, relative, on_event=lambda: bar.update(1))
        except ParityScopeError as exc:
            _fail(f"{directory}: {exc.message}")
    runs = group_runs(histories)
    damaged = [h for h in runs.values() if h.damage]
    if damaged and not allow_partial:
        for history in damaged:
            typer.echo(f"{history.source}: damaged: {history.damage}", err=True)
        _fail(f"{path}: {len(damaged)} of {len(runs)} runs have damaged event files; nothing was imported "
              "(--allow-partial imports what was read before the damage)")
    for directory, history in runs.items():
        relative = directory.relative_to(root).as_posix()
        if len(runs) == 1:
            name = run_name or (path.name if path.is_dir() else directory.name)
        else:
            name = f"{run_name}/{relative}" if run_name else relative
        history.source = name
        upload(history, project=project, run_name=name, tags=tag or [], url=url, token=token, progress=progress,
               update=update, allow_partial=allow_partial)
