"""The client's commands: ``parityscope sync``, which runs with the client's install alone
(httpx), and what the installed command says when the server's commands are not installed.
The installed command itself is ``backend.console.main``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["SERVER_INSTALL", "client_only", "sync_main", "sync_spooled"]

SERVER_INSTALL = "pip install 'parityscope[server]'"
SYNC_HELP = "Send the metrics the Python client spooled while the server was unreachable."


def sync_spooled(
    url: str | None,
    token: str | None,
    spool_dir: Path | None,
    echo: Callable[[str, bool], None],
) -> int:
    """Send the spool files and report each one through ``echo(line, is_error)``; the exit code."""
    from parityscope.client import sync

    results = sync(url, token, spool_dir)
    if not results:
        echo("nothing to send", False)
        return 0
    failed = 0
    for result in results:
        if result.error is None:
            echo(f"{result.path.name}: {result.points} points sent to run {result.run_id}", False)
        else:
            failed += 1
            echo(f"{result.path.name}: not sent: {result.error}", True)
    return 1 if failed else 0


def _print(line: str, is_error: bool) -> None:
    print(line, file=sys.stderr if is_error else sys.stdout)


def _sync_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parityscope sync", description=SYNC_HELP)
    parser.add_argument(
        "--url",
        default=os.environ.get("PARITYSCOPE_URL"),
        help="server URL (default: PARITYSCOPE_URL, else the one each file was spooled for)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("PARITYSCOPE_TOKEN"), help="a project write token (default: PARITYSCOPE_TOKEN)"
    )
    parser.add_argument(
        "--spool-dir",
        type=Path,
        default=None,
        help="spool directory (default: PARITYSCOPE_SPOOL_DIR or ~/.cache/parityscope/spool)",
    )
    return parser


def sync_main(args: list[str]) -> int:
    """``parityscope sync ARGS``; the exit code."""
    options = _sync_parser().parse_args(args)
    return sync_spooled(options.url, options.token, options.spool_dir, _print)


def client_only(args: list[str], missing: str) -> int:
    """The installed command without the server's dependencies (``missing`` names one): help
    naming what this install can do, or a refusal naming the extra to install; the exit code."""
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: parityscope COMMAND [OPTIONS]\n\n"
            f"  sync    {SYNC_HELP}\n\n"
            "This is the client's install. The server's commands (serve, db, token, worker, submit,\n"
            f"import, demo) need the server's dependencies: {SERVER_INSTALL}"
        )
        return 0
    print(
        f"error: parityscope {args[0]} needs the server's dependencies ({missing} is not installed): "
        f"{SERVER_INSTALL}",
        file=sys.stderr,
    )
    return 1
