"""The worker package's exceptions, rooted in one class so callers can catch them together."""

from __future__ import annotations

__all__ = [
    "EngineUnavailable",
    "InvalidEngineSettings",
    "InvalidWorkload",
    "UnsupportedSetting",
    "WorkerError",
]


class WorkerError(Exception):
    """Root of every error raised by the worker package."""


class InvalidWorkload(WorkerError, ValueError):
    """A workload dict is malformed; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"workload.{field}: {message}")
        self.field = field


class InvalidEngineSettings(WorkerError, ValueError):
    """Engine settings are malformed; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"settings.{field}: {message}")
        self.field = field


class UnsupportedSetting(WorkerError):
    """The engine cannot honour a valid setting (for example raw logprobs on vLLM V0)."""

    def __init__(self, engine: str, field: str, message: str) -> None:
        super().__init__(f"{engine} cannot honour settings.{field}: {message}")
        self.engine = engine
        self.field = field


class EngineUnavailable(WorkerError):
    """The engine's runtime (for example vLLM) is not installed on this host."""
