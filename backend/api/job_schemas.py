"""Request and response bodies of the jobs and legs endpoints (docs/API.md, "Jobs and workers")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from backend.api.schemas import EngineObject, JsonObject, StrictModel
from backend.domain import ClaimedLeg, Job, JobLeg, JobStatus, LegStatus
from parityscope.jobspec import MAX_LEGS, MAX_REPLICAS

__all__ = [
    "CandidateSpec",
    "ClaimBody",
    "ClaimOut",
    "CompleteBody",
    "FailBody",
    "HeartbeatBody",
    "JobCreate",
    "JobOut",
    "LegOut",
    "ReferenceSpec",
]

EngineName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=180, pattern=r"^[^\x00-\x1f\x7f]+$")]
WorkerName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
LeaseSeconds = Annotated[int, Field(ge=1, le=3600)]


class ReferenceSpec(StrictModel):
    engine: EngineName = Field(examples=["torch"])
    settings: JsonObject = Field(default_factory=dict)
    label: Label = "reference"
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS, description="runs of the reference, each on its own sampling seed")


class CandidateSpec(StrictModel):
    engine: EngineName = Field(examples=["vllm-v1"])
    settings: JsonObject = Field(default_factory=dict)
    label: Label


class JobCreate(StrictModel):
    kind: Literal["paired"] = "paired"
    project: str | None = Field(default=None, max_length=64, description="needed only with an admin token")
    workload: JsonObject
    reference: ReferenceSpec
    candidates: list[CandidateSpec] = Field(min_length=1, max_length=MAX_LEGS - 1)


class LegOut(BaseModel):
    id: int
    job_id: int
    position: int
    role: str
    label: str
    engine: str
    settings: dict[str, Any]
    replica: int
    sampling_seed: int
    status: LegStatus
    run_id: int | None
    worker: str | None
    attempts: int
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    progress: dict[str, Any]
    error: str | None

    @classmethod
    def of(cls, leg: JobLeg) -> LegOut:
        return cls(
            id=leg.id,
            job_id=leg.job_id,
            position=leg.position,
            role=leg.role,
            label=leg.label,
            engine=leg.engine,
            settings=leg.settings,
            replica=leg.replica,
            sampling_seed=leg.sampling_seed,
            status=leg.status,
            run_id=leg.run_id,
            worker=leg.worker,
            attempts=leg.attempts,
            lease_expires_at=leg.lease_expires_at,
            heartbeat_at=leg.heartbeat_at,
            progress=leg.progress,
            error=leg.error,
        )


class JobOut(BaseModel):
    id: int
    project: str
    status: JobStatus
    workload: dict[str, Any]
    comparison_id: int | None
    created_at: datetime
    finished_at: datetime | None
    legs: list[LegOut]
    # A ladder job's plan and verdicts (docs/LADDER.md); None for a paired job.
    kind: str = "paired"
    ladder: dict[str, Any] | None = None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            project=job.project_slug,
            status=job.status,
            workload=job.workload,
            comparison_id=job.comparison_id,
            created_at=job.created_at,
            finished_at=job.finished_at,
            legs=[LegOut.of(leg) for leg in job.legs],
        )


class ClaimBody(StrictModel):
    worker: WorkerName
    engines: list[EngineName] = Field(min_length=1, max_length=16)
    lease_seconds: LeaseSeconds | None = None
    description: EngineObject = Field(default_factory=dict, description="the worker's host and versions")


class ClaimOut(LegOut):
    """The claimed leg with what running it takes; ``attempt`` identifies this claim."""

    project: str
    workload: dict[str, Any]
    attempt: int
    lease_seconds: int

    @classmethod
    def of_claim(cls, claimed: ClaimedLeg, lease_seconds: int) -> ClaimOut:
        leg = LegOut.of(claimed.leg).model_dump()
        leg["lease_expires_at"] = claimed.lease_expires_at
        return cls(
            **leg,
            project=claimed.project_slug,
            workload=claimed.workload,
            attempt=claimed.leg.attempts,
            lease_seconds=lease_seconds,
        )


class _ClaimReport(StrictModel):
    worker: WorkerName
    attempt: int = Field(ge=1, description="the claim's attempt number, from the claim response")


class HeartbeatBody(_ClaimReport):
    progress: JsonObject | None = Field(default=None, description='e.g. {"step": 12, "steps": 30}')
    engine: EngineObject | None = Field(default=None, description="the engine's own description for the run")
    lease_seconds: LeaseSeconds | None = None


class CompleteBody(_ClaimReport):
    engine: EngineObject | None = None
    progress: JsonObject | None = None


class FailBody(_ClaimReport):
    error: str = Field(min_length=1, max_length=20_000)
