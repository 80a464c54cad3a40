"""Command-line tools for trainers' data: ``parityscope sync`` and ``parityscope import``.

Both talk to a server over HTTP with a project write token (``--url``/``PARITYSCOPE_URL``,
``--token``/``PARITYSCOPE_TOKEN``), like trainers and workers do; neither needs database access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["sync"]


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
    from parityscope.client import sync as send_spooled

    results = send_spooled(url, token, spool_dir)
    if not results:
        typer.echo("nothing to send")
        return
    failed = 0
    for result in results:
        if result.error is None:
            typer.echo(f"{result.path.name}: {result.points} points sent to run {result.run_id}")
        else:
            failed += 1
            typer.echo(f"{result.path.name}: not sent: {result.error}", err=True)
    if failed:
        raise typer.Exit(code=1)
