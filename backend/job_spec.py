"""A paired job's submission turned into legs, validated with the job spec the workers use.

The workload and the engine settings are checked by ``parityscope.jobspec``, the same code a
worker runs before it starts a leg, so a job the API accepts is a job a worker can run, and an
error names the field to fix. That module needs only the standard library, so validating a job
never imports torch.

The stored workload and settings are the parsers' normalised form: every default filled in and
every alias spelled canonically, so all legs and all runs record the same explicit values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backend.domain import LegPlan
from backend.errors import BadInput
from parityscope.jobspec import (
    ENGINE_NAMES,
    MAX_LEGS,
    EngineSettings,
    InvalidEngineSettings,
    InvalidWorkload,
    UnsupportedSetting,
    Workload,
    check_supported,
    check_workload_for_engine,
)

__all__ = ["LegRequest", "normalise_workload", "plan_legs", "replica_label"]


@dataclass(frozen=True)
class LegRequest:
    """One side of a submission as the API received it (``replicas`` only for the reference)."""

    engine: str
    settings: Mapping[str, Any]
    label: str
    replicas: int = 1


def replica_label(label: str, replica: int) -> str:
    """``reference``, ``reference-replica``, ``reference-replica-2``, …"""
    if replica == 0:
        return label
    return f"{label}-replica" if replica == 1 else f"{label}-replica-{replica}"


def normalise_workload(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The workload in the worker's normalised form, or ``BadInput`` naming ``workload.<field>``."""
    try:
        return Workload.from_dict(workload).to_dict()
    except InvalidWorkload as exc:
        raise BadInput(str(exc), field=f"workload.{exc.field}") from None


def _normalise_settings(where: str, engine: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    try:
        parsed = EngineSettings.from_dict(settings)
    except InvalidEngineSettings as exc:
        field = f"{where}.settings.{exc.field}"
        raise BadInput(f"{where}.{exc}", field=field) from None
    try:
        check_supported(engine, parsed)
    except UnsupportedSetting as exc:
        field = f"{where}.settings.{exc.field}"
        raise BadInput(f"{field}: {exc}", field=field) from None
    return parsed.to_dict()


def _check_workload_for_engine(where: str, engine: str, workload: Mapping[str, Any]) -> None:
    """Refuse a workload that an engine's leg would refuse when it starts (vLLM legs need the
    shared instruction to fill two 16-token prefix blocks), naming the workload field."""
    try:
        check_workload_for_engine(engine, Workload.from_dict(workload))
    except InvalidWorkload as exc:
        raise BadInput(f"workload.{exc.field}: {where} runs on {engine}: {str(exc).split(': ', 1)[-1]}",
                       field=f"workload.{exc.field}") from None


def plan_legs(reference: LegRequest, candidates: list[LegRequest],
              workload: Mapping[str, Any] | None = None) -> list[LegPlan]:
    """The job's legs in order: reference replicas first, then candidates.

    Each leg samples with its own seed (its position + 1), as two engines never share a random
    stream; everything else a leg needs comes from the shared workload (checked against each
    leg's engine when given).
    """
    known = ENGINE_NAMES
    sides = [("reference", reference)] + [(f"candidates[{i}]", c) for i, c in enumerate(candidates)]
    total = reference.replicas + len(candidates)
    if total > MAX_LEGS:
        raise BadInput(f"candidates: a job has at most {MAX_LEGS} legs, this one has {total}",
                       field="candidates")
    plans: list[LegPlan] = []
    labels: dict[str, str] = {}
    for where, side in sides:
        if side.engine not in known:
            raise BadInput(
                f"{where}.engine: unknown engine {side.engine!r}; known: {', '.join(known)}",
                field=f"{where}.engine",
            )
        settings = _normalise_settings(where, side.engine, side.settings)
        if workload is not None:
            _check_workload_for_engine(where, side.engine, workload)
        role = "reference" if where == "reference" else "candidate"
        for replica in range(side.replicas):
            label = replica_label(side.label, replica)
            if label in labels:
                raise BadInput(
                    f"{where}.label: {label!r} is already the label of {labels[label]}; "
                    "every leg needs its own label",
                    field=f"{where}.label",
                )
            labels[label] = where
            position = len(plans)
            plans.append(
                LegPlan(
                    position=position,
                    role=role,
                    label=label,
                    engine=side.engine,
                    settings=settings,
                    replica=replica,
                    sampling_seed=position + 1,
                )
            )
    return plans
