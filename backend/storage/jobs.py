"""Paired jobs and their legs: creation, the claim with its lease, heartbeats, completion.

The contract a worker relies on:

- A claim is one ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``
  statement. On PostgreSQL concurrent claims skip each other's locked rows; SQLite renders the
  same statement without the locking clause and runs it under its single write lock (the
  statement opens the write transaction, so no other writer can slip in between the pick and
  the update). Either way no leg is handed to two workers.
- A leg goes only to a worker that declared its engine, and only from the worker's project
  (an admin token's worker serves every project).
- A claim holds a lease until ``lease_expires_at``; heartbeats extend it. A leg whose lease ran
  out is claimable again (its ``attempts`` grows) and its re-run posts into the same run, so
  steps are replaced, never duplicated. After ``max_attempts`` claims that all ran out the leg
  is reported failed instead of handed out forever.
- The current claim is (worker name, attempt). A heartbeat, completion or failure from anything
  else — a worker whose lease expired or was taken over, or another worker — is a ``Conflict``.
- When the last leg finishes, the job records a saved comparison of its runs (every reference
  replica as the reference group, the candidates in order) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, aliased

from backend.domain import ClaimedLeg, Job, JobLeg, JobStatus, LegPlan, LegStatus, RunStatus
from backend.errors import Conflict, NotFound
from backend.limits import is_row_id
from backend.models import JobLegRow, JobRow, RunRow, WorkerRow, utcnow
from backend.storage.comparisons import ComparisonStore
from backend.storage.runs import RunStore

__all__ = ["JobStore", "leg_run_external_id"]

_OPEN_JOB = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def leg_run_external_id(job_id: int, leg_id: int) -> str:
    """The run's idempotency key: a re-run of the leg finds the same run."""
    return f"job-{job_id}-leg-{leg_id}"


def _leg(row: JobLegRow, worker: str | None) -> JobLeg:
    return JobLeg(
        id=row.id,
        job_id=row.job_id,
        position=row.position,
        role=row.role,
        label=row.label,
        engine=row.engine,
        settings=dict(row.settings or {}),
        replica=row.replica,
        sampling_seed=row.sampling_seed,
        status=LegStatus(row.status),
        run_id=row.run_id,
        worker=worker,
        attempts=row.attempts,
        lease_expires_at=row.lease_expires_at,
        heartbeat_at=row.heartbeat_at,
        progress=dict(row.progress or {}),
        error=row.error,
    )


class JobStore:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- jobs -------------------------------------------------------------------------------

    def create(
        self, project_id: int, workload: dict[str, Any], legs: list[LegPlan], spec: dict[str, Any]
    ) -> Job:
        """Store a job and its legs, all queued. The caller has validated everything."""
        job = JobRow(project_id=project_id, status=JobStatus.QUEUED.value, workload=workload, spec=spec)
        self.session.add(job)
        self.session.flush()
        for plan in legs:
            self.session.add(
                JobLegRow(
                    job_id=job.id,
                    position=plan.position,
                    role=plan.role,
                    label=plan.label,
                    engine=plan.engine,
                    settings=plan.settings,
                    replica=plan.replica,
                    sampling_seed=plan.sampling_seed,
                    status=LegStatus.QUEUED.value,
                    attempts=0,
                    progress={},
                )
            )
        self.session.flush()
        return self.get(job.id)

    def get(self, job_id: int) -> Job:
        """The job with its legs in order, or ``NotFound``."""
        row = self.session.get(JobRow, job_id, populate_existing=True) if is_row_id(job_id) else None
        if row is None:
            raise NotFound(f"job {job_id} not found")
        legs = self.session.execute(
            select(JobLegRow, WorkerRow.name)
            .outerjoin(WorkerRow, WorkerRow.id == JobLegRow.worker_id)
            .where(JobLegRow.job_id == job_id)
            .order_by(JobLegRow.position)
            .execution_options(populate_existing=True)
        ).all()
        return Job(
            id=row.id,
            project_id=row.project_id,
            project_slug=row.project.slug,
            status=JobStatus(row.status),
            workload=dict(row.workload),
            comparison_id=row.comparison_id,
            created_at=row.created_at,
            finished_at=row.finished_at,
            legs=[_leg(leg, name) for leg, name in legs],
        )

    def project_of_leg(self, leg_id: int) -> int:
        """The project a leg belongs to, or ``NotFound``."""
        if not is_row_id(leg_id):
            raise NotFound(f"leg {leg_id} not found")
        project_id = self.session.scalar(
            select(JobRow.project_id).join(JobLegRow, JobLegRow.job_id == JobRow.id).where(JobLegRow.id == leg_id)
        )
        if project_id is None:
            raise NotFound(f"leg {leg_id} not found")
        return project_id

    # -- claims ------------------------------------------------------------------------------

    def claim(
        self,
        project_id: int | None,
        worker: str,
        engines: Iterable[str],
        lease_seconds: int,
        max_attempts: int,
        description: dict[str, Any] | None = None,
    ) -> ClaimedLeg | None:
        """Lease the oldest claimable leg whose engine the worker declared, or None.

        ``project_id`` None (an admin worker) serves every project. The leg's run is created at
        its first claim and reused by every later one.
        """
        engines = sorted(set(engines))
        now = utcnow()
        self.fail_exhausted(max_attempts, now=now)
        worker_id = self._register_worker(worker, engines, description or {}, now)

        leg = aliased(JobLegRow)
        expired = and_(
            leg.status == LegStatus.RUNNING.value,
            leg.lease_expires_at < now,
            leg.attempts < max_attempts,
        )
        pick = (
            select(leg.id)
            .join(JobRow, JobRow.id == leg.job_id)
            .where(
                JobRow.status.in_(_OPEN_JOB),
                leg.engine.in_(engines),
                or_(leg.status == LegStatus.QUEUED.value, expired),
            )
            .order_by(leg.job_id, leg.position)
            .limit(1)
            .with_for_update(skip_locked=True, of=leg)
        )
        if project_id is not None:
            pick = pick.where(JobRow.project_id == project_id)
        lease_expires_at = now + timedelta(seconds=lease_seconds)
        claimed_id = self.session.execute(
            update(JobLegRow)
            .where(JobLegRow.id == pick.scalar_subquery())
            .values(
                status=LegStatus.RUNNING.value,
                worker_id=worker_id,
                attempts=JobLegRow.attempts + 1,
                lease_expires_at=lease_expires_at,
                heartbeat_at=now,
                updated_at=now,
                error=None,
            )
            .returning(JobLegRow.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        if claimed_id is None:
            return None

        row = self.session.get(JobLegRow, claimed_id, populate_existing=True)
        assert row is not None
        job = self.session.get(JobRow, row.job_id, populate_existing=True)
        assert job is not None
        if job.status == JobStatus.QUEUED.value:
            job.status = JobStatus.RUNNING.value
        runs = RunStore(self.session)
        if row.run_id is None:
            run, _ = runs.create(
                job.project_id,
                name=f"{row.label} · job {job.id}",
                # Only what configures the run: which job and leg it came from is bookkeeping
                # (tags and external_id), and would show up in the config diff as noise.
                config={"workload": dict(job.workload), "sampling_seed": row.sampling_seed},
                tags=[f"job-{job.id}", row.role],
                external_id=leg_run_external_id(job.id, row.id),
                # What the leg asks for; the worker replaces it with the engine's own
                # description (name, version, settings in effect) once the engine is up.
                engine={"name": row.engine, "settings": dict(row.settings)},
                label=row.label,
            )
            row.run_id = run.id
        else:
            runs.update(row.run_id, status=RunStatus.RUNNING)
        self.session.flush()
        return ClaimedLeg(
            leg=_leg(row, worker),
            project_slug=job.project.slug,
            workload=dict(job.workload),
            lease_expires_at=lease_expires_at,
        )

    def _register_worker(
        self, name: str, engines: list[str], description: dict[str, Any], now: datetime
    ) -> int:
        row = self.session.scalar(select(WorkerRow).where(WorkerRow.name == name).order_by(WorkerRow.id).limit(1))
        if row is None:
            row = WorkerRow(name=name, engines=engines, description=description, last_seen_at=now)
            self.session.add(row)
        else:
            row.engines = engines
            if description:
                row.description = description
            row.last_seen_at = now
        self.session.flush()
        return row.id

    def fail_exhausted(self, max_attempts: int, *, job_id: int | None = None, now: datetime | None = None) -> None:
        """Report failed every leg whose last allowed claim ran out, and fail its job."""
        now = now or utcnow()
        stmt = (
            update(JobLegRow)
            .where(
                JobLegRow.status == LegStatus.RUNNING.value,
                JobLegRow.lease_expires_at < now,
                JobLegRow.attempts >= max_attempts,
            )
            .values(
                status=LegStatus.FAILED.value,
                error=f"the lease ran out on each of {max_attempts} claims; no worker finished the leg",
                updated_at=now,
            )
            .returning(JobLegRow.job_id, JobLegRow.run_id)
            .execution_options(synchronize_session=False)
        )
        if job_id is not None:
            stmt = stmt.where(JobLegRow.job_id == job_id)
        for failed_job, run_id in self.session.execute(stmt).all():
            self._fail_job(failed_job, run_id, now)

    # -- the current claim's reports --------------------------------------------------------------

    def heartbeat(
        self,
        leg_id: int,
        worker: str,
        attempt: int,
        lease_seconds: int,
        progress: dict[str, Any] | None = None,
        engine: dict[str, Any] | None = None,
    ) -> JobLeg:
        """Extend the lease of the caller's current claim and record its progress."""
        now = utcnow()
        values: dict[str, Any] = {
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "heartbeat_at": now,
            "updated_at": now,
        }
        if progress is not None:
            values["progress"] = progress
        row = self._update_own_claim(leg_id, worker, attempt, now, values)
        if engine is not None and row.run_id is not None:
            self._set_run_engine(row.run_id, engine)
        return _leg(row, worker)

    def complete(
        self,
        leg_id: int,
        worker: str,
        attempt: int,
        engine: dict[str, Any] | None = None,
        progress: dict[str, Any] | None = None,
    ) -> JobLeg:
        """Finish the caller's claim; the last leg of a job records the job's comparison."""
        now = utcnow()
        job_id = self._lock_job_of(leg_id)
        values: dict[str, Any] = {"status": LegStatus.FINISHED.value, "lease_expires_at": None, "updated_at": now}
        if progress is not None:
            values["progress"] = progress
        row = self._update_own_claim(leg_id, worker, attempt, now, values)
        if row.run_id is not None:
            if engine is not None:
                self._set_run_engine(row.run_id, engine)
            RunStore(self.session).update(row.run_id, status=RunStatus.FINISHED)
        self._finish_job_if_done(job_id, now)
        return _leg(row, worker)

    def fail(self, leg_id: int, worker: str, attempt: int, error: str) -> JobLeg:
        """Fail the caller's claim, its run and its job; other legs' results are kept."""
        now = utcnow()
        self._lock_job_of(leg_id)
        row = self._update_own_claim(
            leg_id, worker, attempt, now,
            {"status": LegStatus.FAILED.value, "lease_expires_at": None, "error": error, "updated_at": now},
        )
        self._fail_job(row.job_id, row.run_id, now)
        return _leg(row, worker)

    def _lock_job_of(self, leg_id: int) -> int:
        # Two legs finishing at once must not both miss that the other is done: the job row
        # lock orders them, and the second one sees the first one's commit.
        job_id = self.session.scalar(select(JobLegRow.job_id).where(JobLegRow.id == leg_id))
        if job_id is None:
            raise NotFound(f"leg {leg_id} not found")
        self.session.execute(select(JobRow.id).where(JobRow.id == job_id).with_for_update())
        return job_id

    def _update_own_claim(
        self, leg_id: int, worker: str, attempt: int, now: datetime, values: dict[str, Any]
    ) -> JobLegRow:
        own_worker = select(WorkerRow.id).where(WorkerRow.name == worker)
        updated = self.session.execute(
            update(JobLegRow)
            .where(
                JobLegRow.id == leg_id,
                JobLegRow.status == LegStatus.RUNNING.value,
                JobLegRow.attempts == attempt,
                JobLegRow.lease_expires_at >= now,
                JobLegRow.worker_id.in_(own_worker),
            )
            .values(**values)
            .returning(JobLegRow.id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        row = self.session.get(JobLegRow, leg_id, populate_existing=True)
        if row is None:
            raise NotFound(f"leg {leg_id} not found")
        if updated is None:
            raise Conflict(self._why_not_yours(row, worker, attempt, now), field="attempt")
        return row

    def _why_not_yours(self, row: JobLegRow, worker: str, attempt: int, now: datetime) -> str:
        holder = None
        if row.worker_id is not None:
            holder = self.session.scalar(select(WorkerRow.name).where(WorkerRow.id == row.worker_id))
        prefix = f"leg {row.id}: worker {worker!r} does not hold this leg's lease"
        if row.status != LegStatus.RUNNING.value:
            return f"{prefix}; the leg is {row.status}"
        if row.attempts != attempt or holder != worker:
            return f"{prefix}; it is claim {row.attempts}, held by {holder!r} (you sent claim {attempt})"
        expired = row.lease_expires_at.isoformat() if row.lease_expires_at else "never set"
        return f"{prefix}; the lease expired at {expired}"

    def _set_run_engine(self, run_id: int, engine: dict[str, Any]) -> None:
        run = self.session.get(RunRow, run_id)
        if run is not None:
            run.engine = engine

    # -- job outcome ---------------------------------------------------------------------------

    def _finish_job_if_done(self, job_id: int, now: datetime) -> None:
        job = self.session.get(JobRow, job_id, populate_existing=True)
        assert job is not None
        legs = list(
            self.session.scalars(
                select(JobLegRow)
                .where(JobLegRow.job_id == job_id)
                .order_by(JobLegRow.position)
                .execution_options(populate_existing=True)
            )
        )
        # A ladder's skipped rung (docs/LADDER.md) is done without a run.
        done = (LegStatus.FINISHED.value, LegStatus.SKIPPED.value)
        if job.status != JobStatus.RUNNING.value or any(leg.status not in done for leg in legs):
            return
        reference_ids = [leg.run_id for leg in legs if leg.role == "reference" and leg.run_id is not None]
        candidate_ids = [leg.run_id for leg in legs if leg.role == "candidate" and leg.run_id is not None]
        labels = ", ".join(leg.label for leg in legs if leg.role == "candidate")
        saved = ComparisonStore(self.session).save(
            job.project_id,
            name=f"job {job.id}: {legs[0].label} vs {labels}",
            reference_ids=reference_ids,
            candidate_ids=candidate_ids,
            job_id=job.id,
        )
        job.status = JobStatus.FINISHED.value
        job.finished_at = now
        job.comparison_id = saved.id
        self.session.flush()

    def _fail_job(self, job_id: int, run_id: int | None, now: datetime) -> None:
        if run_id is not None:
            RunStore(self.session).update(run_id, status=RunStatus.FAILED)
        job = self.session.get(JobRow, job_id)
        if job is not None and job.status in _OPEN_JOB:
            job.status = JobStatus.FAILED.value
            job.finished_at = now
        self.session.flush()
