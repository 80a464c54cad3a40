"""SQLAlchemy 2.0 tables. The schema itself is created only by the Alembic migrations in
``migrations/``; ``tests/test_migrations.py`` fails when the two drift apart.

Rows never leave the storage layer: ``backend.storage`` converts them to the plain
dataclasses of ``backend.domain``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from parityscope.wire import MAX_KEY_LENGTH


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL, JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ProjectRow(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiTokenRow(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL project with scope "admin" is a deployment-wide token.
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=True
    )
    scope: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RunRow(Base):
    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id", name="uq_run_project_external_id"),
        Index("ix_run_project_created", "project_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="running")
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # What produced the run: {"name": "torch", "version": ..., "settings": {...}}.
    engine: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    # For the project's slug: loaded from the session's identity map when the request has
    # already read the project, so most conversions cost no query.
    project: Mapped[ProjectRow] = relationship()


class LoggedModelRow(Base):
    """A model logged through MLflow's logged-model calls; its files are artifacts."""

    __tablename__ = "logged_model"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(32))
    # model_type, source, tags and params, as MLflow sends them.
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MetricKeyRow(Base):
    """Dictionary of metric names, so points store a small integer instead of the text."""

    __tablename__ = "metric_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), unique=True)


class MetricPointRow(Base):
    """One value per (run, key, step).

    NaN: SQLite cannot store it and turns it into NULL, so NULL means NaN there; PostgreSQL
    stores float8 NaN itself. A JSON ``null`` in a request means "no value" and is never stored,
    so reads treat NULL and NaN alike. ±Infinity is stored natively by both.

    No foreign keys on purpose: per-row referential checks made bulk COPY about three times
    slower. Ingestion verifies the run in the same transaction and resolves keys through the
    dictionary, so nothing can point nowhere; whoever deletes a run deletes its points.
    """

    __tablename__ = "metric_point"

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    wall_time: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)


class MetricSummaryRow(Base):
    """One bucket of the multi-resolution summary of a series (``backend/series_summary.py``).

    ``level`` is log2 of the bucket width in steps; ``bucket`` is ``step >> level``. Kept up to
    date by ingestion in the same transaction as the points. NULL in a value column means NaN
    or "no such value" (a bucket of only NaN has no minimum); NULL in ``min_step``,
    ``max_step`` or ``nan_step`` means no such point. The primary key starts with ``run_id``
    like ``metric_point``'s (docs/ARCHITECTURE.md, "Summaries"). No foreign keys, for the same
    reason as ``metric_point``.
    """

    __tablename__ = "metric_summary"

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_step: Mapped[int] = mapped_column(BigInteger)
    last_step: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    finite_count: Mapped[int] = mapped_column(Integer)
    first_value: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    last_value: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    min_value: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    min_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    max_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mean_value: Mapped[float | None] = mapped_column(Float(precision=53), nullable=True)
    nan_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MetricAliasRow(Base):
    """Per-project extension of the canonical metric alias table."""

    __tablename__ = "metric_alias"
    __table_args__ = (UniqueConstraint("project_id", "alias", name="uq_metric_alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    canonical: Mapped[str] = mapped_column(String(64))


class ConfigKeyRuleRow(Base):
    """Per-project extension of the config-key → layer registry."""

    __tablename__ = "config_key_rule"
    __table_args__ = (UniqueConstraint("project_id", "key", name="uq_config_key_rule"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    layer: Mapped[str] = mapped_column(String(32))


class SavedComparisonRow(Base):
    __tablename__ = "saved_comparison"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(500))
    reference_ids: Mapped[list[int]] = mapped_column(JSONType)
    candidate_ids: Mapped[list[int]] = mapped_column(JSONType)
    # View options: metrics, ranges, smoothing, mode, band k, divergence k.
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("job.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ShareLinkRow(Base):
    __tablename__ = "share_link"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The exact view: reference and candidate ids, metrics, x range, smoothing, mode...
    view: Mapped[dict[str, Any]] = mapped_column(JSONType)
    run_ids: Mapped[list[int]] = mapped_column(JSONType)
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    # For frozen links: the compare payload as it was, stored as JSON text.
    snapshot: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AnnotationRow(Base):
    """A note at a step, written by a person or by the diagnosis."""

    __tablename__ = "annotation"
    __table_args__ = (Index("ix_annotation_project_runs", "project_id", "run_set"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    # Sorted, comma-joined run ids of the comparison the note belongs to ("3,4,7").
    run_set: Mapped[str] = mapped_column(String(2000))
    step: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="person")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobRow(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    workload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    comparison_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    project: Mapped[ProjectRow] = relationship()


class WorkerRow(Base):
    __tablename__ = "worker"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    engines: Mapped[list[str]] = mapped_column(JSONType, default=list)
    description: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobLegRow(Base):
    __tablename__ = "job_leg"
    __table_args__ = (Index("ix_job_leg_claim", "status", "engine", "lease_expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # reference | candidate
    label: Mapped[str] = mapped_column(String(200))
    engine: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    replica: Mapped[int] = mapped_column(Integer, default=0)
    sampling_seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("run.id", ondelete="SET NULL"), nullable=True
    )
    worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("worker.id", ondelete="SET NULL"), nullable=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
