"""Client-side tools for trainers: ``parityscope.client`` posts metrics to a ParityScope server,
``parityscope.callback`` plugs it into transformers' (and TRL's) Trainer."""

from parityscope.client import ClientError, Run, init, sync

__all__ = ["ClientError", "Run", "init", "sync"]
