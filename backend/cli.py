"""The ``parityscope`` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from backend.db import Database, prepare_database, upgrade
from backend.domain import Scope
from backend.errors import ParityScopeError
from backend.settings import Settings
from backend.storage.projects import ProjectStore
from backend.storage.tokens import TokenStore

app = typer.Typer(help="ParityScope: compare RL runs across inference backends.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="PARITYSCOPE_DATABASE_URL", help="SQLAlchemy URL"),
]


def _settings(database_url: str | None) -> Settings:
    return Settings(database_url=database_url) if database_url else Settings()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _open(settings: Settings) -> Database:
    try:
        return Database(prepare_database(settings.database_url))
    except ParityScopeError as exc:
        _fail(exc.message)
        raise  # unreachable; keeps type checkers quiet


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the API and the dashboard."""
    import uvicorn

    from backend.app import create_app

    settings = _settings(database_url)
    database = _open(settings)
    typer.echo(f"ParityScope on http://{host}:{port}/  (database: {database.engine.url.render_as_string()})")
    uvicorn.run(create_app(settings, database), host=host, port=port, log_level="warning")


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply every pending migration."""
    settings = _settings(database_url)
    upgrade(settings.database_url)
    typer.echo("database is at the latest revision")


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


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="serve the dashboard afterwards")] = True,
    database_url: DatabaseUrl = None,
) -> None:
    """Set up an example project on the embedded database and serve it."""
    settings = _settings(database_url)
    database = _open(settings)
    with database.session() as session:
        projects = ProjectStore(session)
        try:
            project = projects.get_by_slug("demo")
        except ParityScopeError:
            project = projects.create("demo", "Demo: vLLM V0 → V1 parity")
        issued = TokenStore(session).issue(Scope.WRITE, project.id, label="demo")
    typer.echo(f"project: demo   API: http://{host}:{port}/api/v1/projects/demo/runs")
    typer.echo(f"write token for project demo:\n{issued.secret}")
    if serve_after:
        import uvicorn

        from backend.app import create_app

        typer.echo(f"serving on http://{host}:{port}/  (Ctrl-C to stop)")
        uvicorn.run(create_app(settings, database), host=host, port=port, log_level="warning")


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except ParityScopeError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(1)



if __name__ == "__main__":  # pragma: no cover
    main()
