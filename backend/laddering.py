"""A parity ladder end to end: the job from a submission or from two runs, its verdicts, and the
``stop_at_parity`` steps between legs (docs/LADDER.md).

``backend/ladder.py`` plans the rungs (pure), ``backend/compare/ladder.py`` judges them (pure),
``backend/storage/ladders.py`` keeps their state; this module owns the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backend.compare.ladder import LADDER_METRICS, LegOutcome, judge_ladder, judge_runs
from backend.comparing import load_run_series
from backend.domain import Job, LegStatus
from backend.errors import BadInput, NotFound
from backend.job_spec import LegRequest, normalise_workload, plan_legs
from backend.ladder import LadderPlan, plan_ladder, vllm_patch, workload_differences
from backend.storage.jobs import JobStore
from backend.storage.ladders import LadderStore
from backend.storage.registry import ProjectRegistryStore
from backend.storage.runs import RunStore

__all__ = [
    "LadderRequest",
    "advance_ladder",
    "create_ladder_job",
    "ladder_of",
    "ladder_of_view",
    "ladder_request_from_runs",
]


@dataclass(frozen=True)
class LadderRequest:
    workload: dict[str, Any]
    reference: LegRequest
    candidate: LegRequest
    candidate_workload: dict[str, Any] | None = None
    ablation: bool = True
    stop_at_parity: bool = False
    max_legs: int = 16
    # Runs that already are legs of this ladder: the reference replicas and rung 0 (the candidate
    # as it is) of a ladder from runs. They are adopted, not run again.
    reference_runs: tuple[int, ...] = ()
    candidate_run: int | None = None

    @property
    def reused(self) -> int:
        return len(self.reference_runs) + (self.candidate_run is not None)


def _normalised_settings(request: LadderRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    # plan_legs validates both sides (engine, settings, what the engine can honour) and returns
    # the settings in their normalised form, every engine setting present.
    try:
        legs = plan_legs(
            LegRequest(request.reference.engine, request.reference.settings, request.reference.label),
            [LegRequest(request.candidate.engine, request.candidate.settings, request.candidate.label)],
        )
    except BadInput as exc:
        # A ladder has one candidate: name it as its body does.
        raise BadInput(exc.message.replace("candidates[0]", "candidate"),
                       field=(exc.field or "").replace("candidates[0]", "candidate") or None) from None
    return legs[0].settings, legs[1].settings


def plan_request(request: LadderRequest, extra_rules: dict[str, str] | None = None) -> tuple[dict[str, Any], LadderPlan]:
    """The normalised workload and the ladder's plan, or ``BadInput`` naming what to fix."""
    workload = normalise_workload(request.workload)
    if request.candidate_workload is not None:
        differing = workload_differences(workload, normalise_workload(request.candidate_workload))
        if differing:
            raise BadInput(
                f"candidate.workload: the candidate's workload differs from the reference's in "
                f"{', '.join(differing)}; no engine setting can make a comparison that is not "
                "like-for-like agree, so there is no ladder to run",
                field="candidate.workload",
            )
    reference_settings, candidate_settings = _normalised_settings(request)
    plan = plan_ladder(
        request.reference.engine, reference_settings, request.candidate.engine, candidate_settings,
        replicas=request.reference.replicas, ablation=request.ablation,
        stop_at_parity=request.stop_at_parity, max_legs=request.max_legs, extra_rules=extra_rules,
        label_prefix=f"{request.candidate.label} ", reused=request.reused,
    )
    return workload, plan


def create_ladder_job(session: Session, project_id: int, request: LadderRequest) -> Job:
    """Store the ladder's job and its legs (none when the settings are already equal)."""
    extra_rules = ProjectRegistryStore(session).rules(project_id)
    workload, plan = plan_request(request, extra_rules)
    legs = []
    if not plan.already_at_parity:
        reference = LegRequest(request.reference.engine, plan.reference_settings, request.reference.label,
                               request.reference.replicas)
        others = [LegRequest(plan.candidate_engine, rung.settings, rung.label) for rung in plan.rungs]
        others += [LegRequest(plan.candidate_engine, leg.settings, leg.label)
                   for leg in plan.ablation if leg.same_as_rung is None]
        legs = plan_legs(reference, others)
    spec = {
        "kind": "ladder",
        "reference": {"engine": request.reference.engine, "label": request.reference.label,
                      "replicas": request.reference.replicas},
        "candidate": {"engine": request.candidate.engine, "label": request.candidate.label},
        "ladder": plan.to_json(),
    }
    store = JobStore(session)
    job = store.create(project_id, workload, legs, spec)
    ladders = LadderStore(session)
    if plan.already_at_parity:
        ladders.finish_if_done(job.id)
    else:
        adopted = [(leg.label, run) for leg, run in zip(
            [leg for leg in legs if leg.role == "reference"], request.reference_runs, strict=False)]
        if request.candidate_run is not None:
            adopted.append((plan.rungs[0].label, request.candidate_run))
        for label, run_id in adopted:
            ladders.adopt(job.id, label, run_id)
        if plan.stop_at_parity:
            ladders.hold(job.id, [rung.label for rung in plan.rungs[1:]])
            advance_ladder(session, job.id)  # adopted legs may already decide the next rung
    return store.get(job.id)


def ladder_request_from_runs(
    session: Session, reference_ids: list[int], candidate_id: int, *, ablation: bool = True,
    stop_at_parity: bool = False, max_legs: int = 16,
) -> tuple[int, LadderRequest]:
    """The ladder between runs that came from jobs: their recorded workload, engine and settings.

    Returns the runs' project and the request. The reference runs must share engine and
    settings (they are replicas); their number is the ladder's replicas (at least two).
    """
    if not reference_ids:
        raise BadInput("reference: give at least one reference run", field="reference")
    if candidate_id in reference_ids:
        raise BadInput(f"candidate: run {candidate_id} is also a reference", field="candidate")
    ladders = LadderStore(session)
    jobs = JobStore(session)

    def leg_and_job(run_id: int, field: str) -> tuple[Any, Job]:
        job_id, leg_id = ladders.leg_of_run(run_id, field)
        job = jobs.get(job_id)
        return next(leg for leg in job.legs if leg.id == leg_id), job

    references = [leg_and_job(run_id, "reference") for run_id in reference_ids]
    candidate_leg, candidate_job = leg_and_job(candidate_id, "candidate")
    projects = {job.project_id for _, job in references} | {candidate_job.project_id}
    if len(projects) > 1:
        raise BadInput("runs: the reference and the candidate must belong to one project", field="runs")
    first_leg, first_job = references[0]
    for leg, job in references[1:]:
        if (leg.engine, leg.settings, job.workload) != (first_leg.engine, first_leg.settings, first_job.workload):
            raise BadInput(
                f"reference: run {leg.run_id} is not a replica of run {first_leg.run_id} (its engine, "
                "settings or workload differ); give reference runs of one setting",
                field="reference",
            )
    request = LadderRequest(
        workload=first_job.workload,
        reference=LegRequest(first_leg.engine, first_leg.settings, "reference", max(2, len(reference_ids))),
        reference_runs=tuple(reference_ids),
        candidate_run=candidate_id,
        candidate=LegRequest(candidate_leg.engine, candidate_leg.settings, candidate_leg.label),
        candidate_workload=candidate_job.workload,
        ablation=ablation,
        stop_at_parity=stop_at_parity,
        max_legs=max_legs,
    )
    return projects.pop(), request


def ladder_of(session: Session, job: Job, *, verdicts: bool = True) -> dict[str, Any] | None:
    """The ``ladder`` section of a ladder job's JSON (None for a paired job)."""
    spec = LadderStore(session).spec(job.id)
    if spec.get("kind") != "ladder":
        return None
    plan = spec["ladder"]
    outcomes = {leg.label: LegOutcome(leg.status.value, leg.run_id) for leg in job.legs}
    judged = _verdicts(session, job) if verdicts else {}
    result = judge_ladder(plan, outcomes, judged)
    result["reference"] = {
        "label": spec["reference"]["label"],
        "run_ids": [leg.run_id for leg in job.legs if leg.role == "reference" and leg.run_id is not None],
        "engine": plan["reference_engine"],
    }
    if result["patch"] is not None:
        patched = {**plan["candidate_settings"], **result["patch"]["engine_settings"]}
        result["patch"]["vllm"] = vllm_patch(plan["candidate_engine"], plan["candidate_settings"], patched,
                                             job.workload)
    return result


def ladder_of_view(session: Session, job_id: int, project_id: int) -> dict[str, Any]:
    """The ladder a share link shows with its comparison, or ``BadInput`` naming ``view.ladder``."""
    try:
        job = JobStore(session).get(job_id)
    except NotFound:
        job = None
    ladder = ladder_of(session, job) if job is not None and job.project_id == project_id else None
    if ladder is None:
        raise BadInput(f"view.ladder: job {job_id} is not a ladder job of these runs' project", field="view.ladder")
    return ladder


def _verdicts(session: Session, job: Job) -> dict[str, Any]:
    finished = [leg for leg in job.legs if leg.status == LegStatus.FINISHED and leg.run_id is not None]
    reference_legs = [leg for leg in job.legs if leg.role == "reference"]
    if not reference_legs or any(leg.status != LegStatus.FINISHED for leg in reference_legs):
        return {}
    runs = RunStore(session)
    aliases = ProjectRegistryStore(session).aliases(job.project_id)
    reference_runs = runs.get_many([leg.run_id for leg in reference_legs])
    rung_runs = runs.get_many([leg.run_id for leg in finished if leg.role == "candidate"])
    names = list(LADDER_METRICS)
    references = load_run_series(session, reference_runs, names, aliases)
    candidates = load_run_series(session, rung_runs, names, aliases)
    return judge_runs(references, candidates, extra_aliases=aliases)


def advance_ladder(session: Session, job_id: int) -> None:
    """After a leg completes: with ``stop_at_parity``, skip the rungs after one that reached
    parity, or release the next rung once the previous one is judged."""
    ladders = LadderStore(session)
    spec = ladders.spec(job_id)
    if spec.get("kind") != "ladder" or not spec["ladder"].get("stop_at_parity"):
        return
    job = JobStore(session).get(job_id)
    status = {leg.label: leg.status for leg in job.legs}
    waiting = [r for r in spec["ladder"]["rungs"] if status.get(r["label"]) == LegStatus.WAITING]
    if not waiting:
        return
    previous = spec["ladder"]["rungs"][waiting[0]["index"] - 1]
    if status.get(previous["label"]) != LegStatus.FINISHED:
        return
    ladder = ladder_of(session, job)
    assert ladder is not None
    judged = next(r for r in ladder["rungs"] if r["index"] == previous["index"])
    if judged["at_parity"] is None:
        return  # the reference is not finished yet; its last leg's completion comes back here
    if judged["at_parity"]:
        ladders.skip(job_id, [r["label"] for r in waiting])
    else:
        ladders.release(job_id, waiting[0]["label"])
