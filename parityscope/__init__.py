"""Client-side tools for trainers: ``parityscope.client`` posts metrics to a ParityScope server,
``parityscope.callback`` plugs it into transformers' (and TRL's) Trainer, ``parityscope.wire`` is
the wire format every side shares, ``parityscope.connection`` the REST calls."""

__version__ = "0.1.0"

from parityscope.client import ClientError, Run, init, sync  # noqa: E402

__all__ = ["ClientError", "Run", "__version__", "init", "sync"]
