"""Request bodies of the parity ladder: a ladder job and a ladder from runs (docs/API.md, "Parity
ladder"; the method in docs/LADDER.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag
from sqlalchemy.orm import Session

from backend.api.job_schemas import CandidateSpec, JobCreate, JobOut, ReferenceSpec
from backend.api.schemas import StrictModel
from backend.domain import Job
from backend.ladder import DEFAULT_MAX_LEGS
from backend.laddering import ladder_of

__all__ = ["JobSubmission", "LadderFromRuns", "LadderJobCreate", "job_out"]

MaxLegs = Annotated[int, Field(default=DEFAULT_MAX_LEGS, ge=1, le=32, description="refuse a ladder that needs more legs")]


class LadderReferenceSpec(ReferenceSpec):
    replicas: int = Field(default=2, ge=2, le=16, description="reference runs; their spread is the band")


class LadderCandidateSpec(CandidateSpec):
    workload: dict[str, Any] | None = Field(
        default=None, description="the candidate's own workload, when it was recorded apart; any difference is refused"
    )


class _LadderOptions(StrictModel):
    ablation: bool = Field(default=True, description="also run the reference with each candidate setting alone")
    stop_at_parity: bool = Field(default=False, description="skip the cumulative rungs after one at parity")
    max_legs: MaxLegs = DEFAULT_MAX_LEGS


class LadderJobCreate(_LadderOptions):
    kind: Literal["ladder"]
    project: str | None = Field(default=None, max_length=64, description="needed only with an admin token")
    workload: dict[str, Any]
    reference: LadderReferenceSpec
    candidate: LadderCandidateSpec


class LadderFromRuns(_LadderOptions):
    reference: list[int] = Field(min_length=1, max_length=16, description="reference run ids (replicas)")
    candidate: int
    dry_run: bool = Field(default=False, description="answer the plan and its leg count, create nothing")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("kind", "paired")
        return kind if isinstance(kind, str) else "?"
    return getattr(value, "kind", "paired")


JobSubmission = Annotated[
    Annotated[JobCreate, Tag("paired")] | Annotated[LadderJobCreate, Tag("ladder")],
    Discriminator(_kind, custom_error_type="job_kind", custom_error_message="kind: expected 'paired' or 'ladder'"),
]


def job_out(session: Session, job: Job) -> JobOut:
    """The job's JSON, with its ladder's plan and verdicts when it is a ladder job."""
    ladder = ladder_of(session, job)
    out = JobOut.of(job)
    if ladder is None:
        return out
    return out.model_copy(update={"kind": "ladder", "ladder": ladder})
