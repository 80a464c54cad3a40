"""The installed ``parityscope`` command.

``parityscope sync`` is the client's command (``parityscope.cli``) and needs only the client's
install. Every other command is the server's command line, ``backend.cli.main``, which needs the
``server`` extra; without it the command says which extra to install instead of failing with a
traceback. This module imports nothing beyond the standard library and the client until it hands
over to ``backend.cli``.
"""

from __future__ import annotations

import sys

from parityscope.cli import client_only, sync_main

__all__ = ["main"]

_OUR_PACKAGES = ("backend", "workers", "parityscope")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "sync":
        sys.exit(sync_main(args[1:]))
    try:
        from backend.cli import main as server_main
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] in _OUR_PACKAGES:
            raise
        sys.exit(client_only(args, exc.name))
    sys.argv = [sys.argv[0], *args]
    server_main()
