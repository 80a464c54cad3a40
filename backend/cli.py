"""The ``parityscope`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from backend.db import Database, prepare_database, upgrade
from backend.domain import Scope
from backend.errors import ParityScopeError
from backend.settings import Settings
from backend.storage.projects import ProjectStore
from backend.storage.tokens import TokenStore
from parityscope.jobspec import ENGINE_NAMES

app = typer.Typer(help="ParityScope: compare RL runs across inference backends.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
project_app = typer.Typer(help="Projects.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(project_app, name="project")
app.add_typer(token_app, name="token")

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="PARITYSCOPE_DATABASE_URL", help="SQLAlchemy URL"),
]


def _settings(database_url: str | None) -> Settings:
    try:
        return Settings(database_url=database_url) if database_url else Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"PARITYSCOPE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        _fail(problems)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _open(settings: Settings) -> Database:
    try:
        return Database(
            prepare_database(
                settings.database_url,
                statement_timeout=settings.db_statement_timeout_seconds,
                connect_timeout=settings.db_connect_timeout_seconds,
            )
        )
    except ParityScopeError as exc:
        _fail(exc.message)
        raise  # unreachable; keeps type checkers quiet


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="interface to bind [default: PARITYSCOPE_HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port [default: PARITYSCOPE_PORT or 8000]")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="server processes [default: PARITYSCOPE_WORKERS or 1]"),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the API and the dashboard."""
    import os

    import uvicorn

    from backend.app import create_app

    settings = _settings(database_url)
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    workers = settings.workers if workers is None else workers
    database = _open(settings)
    where = database.engine.url.render_as_string()
    typer.echo(f"ParityScope on http://{host}:{port}/  (database: {where}, {workers} worker(s))")
    if workers == 1:
        uvicorn.run(create_app(settings, database), host=host, port=port, log_level="warning")
        return
    # Each worker process builds its own app from the environment, so the database chosen here
    # (perhaps by --database-url) travels to it there; the schema was checked above, once.
    database.engine.dispose()
    os.environ["PARITYSCOPE_DATABASE_URL"] = settings.database_url
    uvicorn.run("backend.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning")


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply every pending migration."""
    settings = _settings(database_url)
    upgrade(settings.database_url)
    typer.echo("database is at the latest revision")


@db_app.command("rebuild-summaries")
def db_rebuild_summaries(
    run: Annotated[
        list[int] | None, typer.Option("--run", help="only this run (repeatable) [default: every run]")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Recompute the multi-resolution summaries of runs from their points (after a bulk load
    that bypassed the API, for example), one run per transaction."""
    from sqlalchemy import select

    from backend.models import RunRow
    from backend.storage.summaries import SummaryStore

    database = _open(_settings(database_url))
    with database.session() as session:
        known = set(session.execute(select(RunRow.id)).scalars())
    missing = sorted(set(run or ()) - known)
    if missing:
        _fail(f"--run: no run {missing[0]}")
    ids = sorted(set(run) if run else known)
    points = 0
    for run_id in ids:
        with database.session() as session:
            points += SummaryStore(session).rebuild(run_id)
    typer.echo(f"summaries of {len(ids)} run(s) rebuilt from {points} points")


@project_app.command("create")
def project_create(
    slug: Annotated[str, typer.Argument(help="1-64 lowercase letters, digits, '-' or '_'")],
    name: Annotated[str | None, typer.Option(help="display name (default: the slug)")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a project (what POST /api/v1/projects does with an admin token)."""
    display = slug if name is None else name.strip()
    if not display or len(display) > 200:
        _fail("name: a project name is 1-200 characters")
    database = _open(_settings(database_url))
    try:
        with database.session() as session:
            created = ProjectStore(session).create(slug, display)
    except ParityScopeError as exc:
        _fail(exc.message)
        return
    typer.echo(f"project {created.id}: {created.slug} ({created.name})")


@project_app.command("list")
def project_list(database_url: DatabaseUrl = None) -> None:
    """List every project: id, slug and name."""
    database = _open(_settings(database_url))
    with database.session() as session:
        projects = ProjectStore(session).list()
    for each in projects:
        typer.echo(f"{each.id}\t{each.slug}\t{each.name}")


@token_app.command("create")
def token_create(
    scope: Annotated[Scope, typer.Option(help="admin | write | read")],
    project: Annotated[str | None, typer.Option(help="project slug (not for admin)")] = None,
    label: Annotated[str | None, typer.Option(help="a note to recognise the token by")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a token; the secret is printed alone on the last line, and only once."""
    database = _open(_settings(database_url))
    try:
        with database.session() as session:
            project_id = ProjectStore(session).get_by_slug(project).id if project else None
            issued = TokenStore(session).issue(scope, project_id, label)
    except ParityScopeError as exc:
        _fail(exc.message)
        return
    where = f"project {project}" if project else "the whole deployment"
    typer.echo(f"token {issued.id}: {scope.value} on {where}")
    typer.echo(issued.secret)


@token_app.command("revoke")
def token_revoke(token_id: int, database_url: DatabaseUrl = None) -> None:
    """Revoke a token by its id."""
    database = _open(_settings(database_url))
    try:
        with database.session() as session:
            TokenStore(session).revoke(token_id)
    except ParityScopeError as exc:
        _fail(exc.message)
        return
    typer.echo(f"token {token_id} revoked")


WorkerUrl = Annotated[
    str, typer.Option("--url", envvar="PARITYSCOPE_URL", help="the ParityScope server")
]
WorkerToken = Annotated[
    str, typer.Option("--token", envvar="PARITYSCOPE_TOKEN", help="a project write token")
]


@app.command()
def worker(
    url: WorkerUrl,
    token: WorkerToken,
    engines: Annotated[str, typer.Option(help="comma-separated engines this host runs: " + ", ".join(ENGINE_NAMES))] = "torch",
    once: Annotated[bool, typer.Option("--once", help="run at most one leg, then exit")] = False,
    name: Annotated[str | None, typer.Option(help="worker name (default host-pid)")] = None,
    lease_seconds: Annotated[int, typer.Option(min=1, max=3600, help="lease per claim; heartbeats every third")] = 60,
    poll_seconds: Annotated[float, typer.Option(min=0.05, help="wait between claims when idle")] = 2.0,
    checkpoint_dir: Annotated[Path | None, typer.Option(envvar="PARITYSCOPE_CHECKPOINT_DIR", help="where warm-started checkpoints are cached")] = None,
    flush_steps: Annotated[int, typer.Option(min=1, help="post metrics every N steps (and every 2 s)")] = 10,
    torch_threads: Annotated[int, typer.Option(min=0, help="torch intra-op threads (0: torch's default)")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="a progress bar per leg")] = True,
    device: Annotated[str, typer.Option(help="torch engine and trainer device: auto (cuda when available), cpu or cuda")] = "auto",
) -> None:
    """Claim job legs for ENGINES over HTTP, run them, post their metrics."""
    from workers.job_loop import Worker, check_engines_available

    if not token:
        _fail("token: give --token or set PARITYSCOPE_TOKEN (a project write token)")
    declared = [e.strip() for e in engines.split(",") if e.strip()]
    try:
        check_engines_available(declared)
    except ValueError as exc:
        _fail(str(exc))
    runner = Worker(url, token, name=name, engines=declared, lease_seconds=lease_seconds,
                    checkpoint_dir=checkpoint_dir, poll_seconds=poll_seconds, flush_steps=flush_steps,
                    progress=progress, torch_threads=torch_threads or None, log=typer.echo,
                    device=None if device == "auto" else device)
    typer.echo(f"worker {runner.name}: engines {', '.join(declared)} at {url}")
    try:
        if once:
            outcome = runner.run_once()
            typer.echo("no leg to claim" if outcome is None else f"leg {outcome}")
            if outcome in ("failed", "lost"):
                raise typer.Exit(code=1)
        else:
            runner.run()
    except KeyboardInterrupt:
        typer.echo("stopped; a leg in progress is requeued when its lease runs out")
    finally:
        runner.close()


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the job as JSON")],
    url: Annotated[str, typer.Option("--url", envvar="PARITYSCOPE_URL")] = "http://127.0.0.1:8000",
    token: WorkerToken = "",
    wait: Annotated[bool, typer.Option("--wait", help="wait until the job finishes or fails")] = False,
) -> None:
    """Submit a paired job (the body of POST /api/v1/jobs) and print its legs."""
    import json
    import time

    from parityscope.connection import ClientError
    from workers.job_loop import job_connection

    try:
        body = json.loads(file.read_text())
    except ValueError as exc:
        _fail(f"{file}: not valid JSON: {exc}")
    if not token:
        _fail("token: give --token or set PARITYSCOPE_TOKEN")
    api = job_connection(url, token)
    try:
        job = api.submit(body)
        typer.echo(f"job {job['id']} in project {job['project']}: {job['status']}")
        for leg in job["legs"]:
            typer.echo(f"  leg {leg['id']}: {leg['label']} ({leg['role']}, {leg['engine']}, seed {leg['sampling_seed']})")
        while wait and job["status"] in ("queued", "running"):
            time.sleep(2)
            job = api.job(job["id"])
        if wait:
            typer.echo(f"job {job['id']}: {job['status']}"
                       + (f", comparison {job['comparison_id']}" if job["comparison_id"] else ""))
            if job["status"] != "finished":
                raise typer.Exit(code=1)
    except ClientError as exc:
        _fail(str(exc))
    finally:
        api.close()


@app.command()
def demo(
    steps: Annotated[int | None, typer.Option(min=1, help="RL steps per leg (default: the demo workload's)")] = None,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="serve the dashboard afterwards")] = True,
    host: Annotated[str | None, typer.Option(help="[default: PARITYSCOPE_HOST or 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="[default: PARITYSCOPE_PORT or 8000]")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="a progress bar per leg")] = True,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the paired demo job (four legs on the torch engine, CPU) and serve the dashboard."""
    from backend.app import create_app
    from backend.demo import BackgroundServer, run_demo

    settings = _settings(database_url)
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    database = _open(settings)
    try:
        server = BackgroundServer(create_app(settings, database), host, port).start()
    except ParityScopeError as exc:
        _fail(exc.message)
        return
    try:
        result = run_demo(settings, database, server, steps=steps, progress=progress, echo=typer.echo)
    except ParityScopeError as exc:
        server.stop()
        _fail(exc.message)
        return
    except BaseException:
        server.stop()
        raise
    typer.echo(f"\njob {result.job['id']} finished in {result.seconds:.0f} s; "
               f"saved comparison {result.job['comparison_id']}")
    typer.echo(f"{'leg':<20} {'run':>5} {'clip rate':>10} {'KL':>10} {'reward first → last':>22}")
    for row in result.summary:
        typer.echo(f"{row['label']:<20} {row['run_id']:>5} {row['clip_rate']:>10.4f} {row['kl']:>10.2e} "
                   f"{row['reward_first']:>11.3f} → {row['reward_last']:.3f}")
    if result.ladder_job is not None:
        from backend.ladder_cli import ladder_lines

        typer.echo(f"\nparity ladder over v1-initial (job {result.ladder_job['id']}):")
        for line in ladder_lines(result.ladder_job["ladder"]):
            typer.echo(line)
    typer.echo(f"\ncomparison: {result.url}{result.compare_path}")
    typer.echo(f"dashboard:  {result.url}/   (project {result.job['project']})")
    typer.echo(f"write token for project {result.job['project']}:\n{result.token}")
    if not serve_after:
        server.stop()
        return
    typer.echo("serving; Ctrl-C to stop")
    server.wait()


# Trainer integrations: sending spooled client metrics, importing histories.
from backend.trainer_commands import import_app, sync  # noqa: E402

app.command("sync")(sync)
app.add_typer(import_app, name="import")

# The parity ladder (docs/LADDER.md).
from backend.ladder_cli import ladder  # noqa: E402

app.command("ladder")(ladder)


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except ParityScopeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(1)



if __name__ == "__main__":  # pragma: no cover
    main()
