"""The worker package's exceptions.

A job that asks for something it may not raises the job spec's errors (``parityscope.jobspec``,
re-exported here); what only a worker can find wrong is a ``WorkerError``.
"""

from __future__ import annotations

from parityscope.jobspec import InvalidEngineSettings, InvalidWorkload, UnsupportedSetting

__all__ = [
    "EngineUnavailable",
    "InvalidEngineSettings",
    "InvalidWorkload",
    "UnsupportedSetting",
    "WorkerError",
]


class WorkerError(Exception):
    """Root of every error raised by the worker package."""


class EngineUnavailable(WorkerError):
    """The engine's runtime (for example vLLM) is not installed on this host."""
