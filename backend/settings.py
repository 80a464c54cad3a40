"""All configuration in one pydantic-settings class, read from ``PARITYSCOPE_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_database_url() -> str:
    path = Path(user_data_dir("parityscope", appauthor=False)) / "parityscope.db"
    return f"sqlite:///{path}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARITYSCOPE_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    # None means: public reads on SQLite (one person, one machine), private on PostgreSQL.
    public_reads: bool | None = None
    # Where ``parityscope serve`` listens unless --host/--port say otherwise.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Request limits (the fixed ones are in backend/limits.py; docs/SECURITY.md lists them all).
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_values_per_request: int = Field(default=100_000, ge=1)
    # A body must arrive completely within this many seconds, or the request is a 408.
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    # Write requests (POST, PUT, PATCH, DELETE) per second per token; None turns the limit off.
    write_rate_per_second: float | None = Field(default=None, gt=0)
    write_rate_burst: int = Field(default=50, ge=1)
    # Database: how long one statement may run (PostgreSQL statement_timeout; on SQLite, how
    # long a statement waits for a lock), how long opening a connection may take, and the
    # Retry-After a 503 suggests while the database is unreachable (docs/RELIABILITY.md).
    db_statement_timeout_seconds: float = Field(default=30.0, gt=0)
    db_connect_timeout_seconds: int = Field(default=5, ge=1)
    retry_after_seconds: int = Field(default=2, ge=1)
    # Memory for full-resolution series kept between compare requests.
    series_cache_mb: int = 512
    # Job legs: how long a claim holds without a heartbeat, and how many claims a leg gets
    # before a leg whose workers keep vanishing is reported failed.
    leg_lease_seconds: int = Field(default=60, ge=1, le=3600)
    leg_max_attempts: int = Field(default=3, ge=1, le=100)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def reads_are_public(self) -> bool:
        if self.public_reads is not None:
            return self.public_reads
        return self.is_sqlite


@lru_cache
def get_settings() -> Settings:
    return Settings()
