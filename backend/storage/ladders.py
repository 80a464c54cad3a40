"""Jobs of kind ``ladder``: their plan, held and skipped rungs, and the leg behind a run.

A ladder job is a paired job (``storage/jobs.py``) whose spec carries ``kind: "ladder"`` and the
plan (docs/LADDER.md). With ``stop_at_parity`` its cumulative rungs after rung 0 start
``waiting`` (no worker can claim them) and are released one at a time, or ``skipped`` once a
rung has reached parity; a skipped leg counts as done when the job's end is decided.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, update

from backend.domain import JobStatus, LegStatus
from backend.errors import BadInput, NotFound
from backend.models import JobLegRow, JobRow, RunRow, utcnow
from backend.storage.comparisons import ComparisonStore

__all__ = ["LEG_SKIPPED", "LEG_WAITING", "LadderStore"]

LEG_WAITING = LegStatus.WAITING.value
LEG_SKIPPED = LegStatus.SKIPPED.value
_LEG_RUN = re.compile(r"^job-(\d+)-leg-(\d+)$")


class LadderStore:
    def __init__(self, session: Any) -> None:
        self.session = session

    def spec(self, job_id: int) -> dict[str, Any]:
        """The job's stored submission (``kind`` is ``ladder`` for a ladder job)."""
        row = self.session.get(JobRow, job_id)
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return dict(row.spec or {})

    def hold(self, job_id: int, labels: list[str]) -> None:
        """Make the named queued legs unclaimable until :meth:`release`."""
        if labels:
            self.session.execute(
                update(JobLegRow)
                .where(JobLegRow.job_id == job_id, JobLegRow.label.in_(labels),
                       JobLegRow.status == LegStatus.QUEUED.value)
                .values(status=LEG_WAITING)
                .execution_options(synchronize_session=False)
            )
            self.session.flush()

    def adopt(self, job_id: int, label: str, run_id: int) -> None:
        """Make an existing run the named leg's result: the leg is finished without running."""
        self.session.execute(
            update(JobLegRow)
            .where(JobLegRow.job_id == job_id, JobLegRow.label == label)
            .values(status=LegStatus.FINISHED.value, run_id=run_id, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        self.session.flush()

    def release(self, job_id: int, label: str) -> None:
        self._move(job_id, [label], LEG_WAITING, LegStatus.QUEUED.value)

    def skip(self, job_id: int, labels: list[str]) -> None:
        """Mark waiting legs skipped, and finish the job if nothing else is left to run."""
        self._move(job_id, labels, LEG_WAITING, LEG_SKIPPED)
        self.finish_if_done(job_id)

    def _move(self, job_id: int, labels: list[str], old: str, new: str) -> None:
        if not labels:
            return
        self.session.execute(
            update(JobLegRow)
            .where(JobLegRow.job_id == job_id, JobLegRow.label.in_(labels), JobLegRow.status == old)
            .values(status=new, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        self.session.flush()

    def finish_if_done(self, job_id: int) -> None:
        """Finish an open job whose legs are all finished or skipped, saving its comparison."""
        job = self.session.get(JobRow, job_id, populate_existing=True)
        if job is None or job.status not in (JobStatus.QUEUED.value, JobStatus.RUNNING.value):
            return
        legs = list(self.session.scalars(
            select(JobLegRow).where(JobLegRow.job_id == job_id).order_by(JobLegRow.position)
            .execution_options(populate_existing=True)
        ))
        if any(leg.status not in (LegStatus.FINISHED.value, LEG_SKIPPED) for leg in legs):
            return
        ran = [leg for leg in legs if leg.status == LegStatus.FINISHED.value and leg.run_id is not None]
        if ran:
            saved = ComparisonStore(self.session).save(
                job.project_id,
                name=f"job {job.id}: ladder",
                reference_ids=[leg.run_id for leg in ran if leg.role == "reference"],
                candidate_ids=[leg.run_id for leg in ran if leg.role == "candidate"],
                job_id=job.id,
            )
            job.comparison_id = saved.id
        job.status = JobStatus.FINISHED.value
        job.finished_at = utcnow()
        self.session.flush()

    def leg_of_run(self, run_id: int, field: str) -> tuple[int, int]:
        """``(job_id, leg_id)`` of the leg that produced the run, or ``BadInput`` saying why a
        ladder needs one: its legs rerun the run's recorded workload and settings."""
        run = self.session.get(RunRow, run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        match = _LEG_RUN.match(run.external_id or "")
        leg = self.session.get(JobLegRow, int(match.group(2))) if match else None
        if leg is None or leg.job_id != int(match.group(1)) or leg.run_id != run_id:
            raise BadInput(
                f"{field}: run {run_id} ({run.name!r}) did not come from a job, so ParityScope has no "
                "recorded workload and engine settings to rerun it with; a ladder reruns both sides "
                "with one setting changed at a time and needs reproducible legs (submit the runs "
                "as a job, POST /api/v1/jobs, to bisect them)",
                field=field,
            )
        return leg.job_id, leg.id
