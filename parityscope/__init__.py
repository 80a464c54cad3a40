"""Client-side tools for trainers: ``parityscope.client`` posts metrics to a ParityScope server,
``parityscope.callback`` plugs it into transformers' (and TRL's) Trainer, ``parityscope.wire`` is
the wire format every side shares, ``parityscope.connection`` the REST calls.

The module-level calls are those of wandb and trackio, so ``import parityscope as wandb`` runs a
wandb script's logging unchanged: ``init(project=, name=, config=)``, ``log(values, step=)``,
``config``, ``summary``, ``run`` and ``finish()`` (see ``parityscope.client``).
"""

from typing import Any

__version__ = "0.1.0"

from parityscope.client import ClientError, Run, finish, init, sync  # noqa: E402
from parityscope.client import log_values as log  # noqa: E402

__all__ = ["ClientError", "Run", "__version__", "config", "finish", "init", "log", "run", "summary", "sync"]


def __getattr__(name: str) -> Any:
    # The current run's, looked up on each use: ``parityscope.config`` follows ``init``.
    if name in ("run", "config", "summary"):
        from parityscope.client import current_attribute

        return current_attribute(name)
    raise AttributeError(f"module 'parityscope' has no attribute {name!r}")
