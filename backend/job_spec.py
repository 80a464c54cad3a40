"""A paired job's submission turned into legs, validated with the worker package's own parsers.

The workload and the engine settings are checked by ``workers.workload.Workload`` and
``workers.engines.base.EngineSettings``, the same code a worker runs before it starts a leg, so a
job the API accepts is a job a worker can run, and an error names the field to fix. Those parsers
live with the worker extra (they resolve model sizes and tasks that need torch); a server
installed without it refuses job submissions with a 503 naming the extra rather than accept
jobs it cannot check.

The stored workload and settings are the parsers' normalised form: every default filled in and
every alias spelled canonically, so all legs and all runs record the same explicit values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backend.errors import BadInput, ParityScopeError

__all__ = ["JobValidationUnavailable", "LegPlan", "LegRequest", "plan_legs", "replica_label"]

MAX_LEGS = 32


class JobValidationUnavailable(ParityScopeError):
    status_code = 503


@dataclass(frozen=True)
class LegRequest:
    """One side of a submission as the API received it (``replicas`` only for the reference)."""

    engine: str
    settings: Mapping[str, Any]
    label: str
    replicas: int = 1


@dataclass(frozen=True)
class LegPlan:
    position: int
    role: str  # reference | candidate
    label: str
    engine: str
    settings: dict[str, Any]
    replica: int
    sampling_seed: int


def replica_label(label: str, replica: int) -> str:
    """``reference``, ``reference-replica``, ``reference-replica-2``, …"""
    if replica == 0:
        return label
    return f"{label}-replica" if replica == 1 else f"{label}-replica-{replica}"


def _worker_parsers() -> tuple[Any, Any, Any, Any]:
    try:
        from workers.engines.base import EngineSettings
        from workers.errors import InvalidEngineSettings, InvalidWorkload
        from workers.workload import Workload
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise JobValidationUnavailable(
            "jobs: this server cannot validate job workloads without the worker extra "
            f"(pip install 'parityscope[worker]'): {exc}"
        ) from exc
    return Workload, EngineSettings, InvalidWorkload, InvalidEngineSettings


def engine_names() -> tuple[str, ...]:
    """The engines a leg may ask for, as the worker package defines them."""
    try:
        from workers.leg import ENGINE_NAMES
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise JobValidationUnavailable(
            f"jobs: the worker package is not importable here: {exc}"
        ) from exc
    return ENGINE_NAMES


def normalise_workload(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The workload in the worker's normalised form, or ``BadInput`` naming ``workload.<field>``."""
    workload_cls, _, invalid_workload, _ = _worker_parsers()
    try:
        return workload_cls.from_dict(workload).to_dict()
    except invalid_workload as exc:
        raise BadInput(str(exc), field=f"workload.{exc.field}") from None


def _normalise_settings(where: str, engine: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    _, settings_cls, _, invalid_settings = _worker_parsers()
    try:
        parsed = settings_cls.from_dict(settings)
    except invalid_settings as exc:
        field = f"{where}.settings.{exc.field}"
        raise BadInput(f"{where}.{exc}", field=field) from None
    _check_supported(where, engine, parsed)
    return parsed.to_dict()


def _check_supported(where: str, engine: str, settings: Any) -> None:
    """Refuse what the engine's adapter would refuse when the leg starts (raw logprobs on V0...).

    The adapters' argument mapping is pure and needs no vLLM, so it runs here too.
    """
    from pathlib import Path

    from workers.errors import UnsupportedSetting

    if engine == "torch":
        from workers.engines.torch_engine import check_settings

        try:
            check_settings(settings)
        except UnsupportedSetting as exc:
            raise BadInput(f"{where}.settings.{exc.field}: {exc}", field=f"{where}.settings.{exc.field}") from None
        return
    if engine not in ("vllm-v0", "vllm-v1"):
        return
    if engine == "vllm-v0":
        from workers.engines.vllm_v0 import engine_kwargs
    else:
        from workers.engines.vllm_v1 import engine_kwargs
    try:
        engine_kwargs(settings, Path("checkpoint"), 0)
    except UnsupportedSetting as exc:
        raise BadInput(f"{where}.settings.{exc.field}: {exc}", field=f"{where}.settings.{exc.field}") from None


# -- what a vLLM leg needs of the workload (docs/VLLM.md) --------------------------------------
def _check_workload_for_engine(where: str, engine: str, workload: Mapping[str, Any]) -> None:
    """Refuse a workload that an engine's leg would refuse when it starts (vLLM legs need the
    shared instruction to fill two 16-token prefix blocks), naming the workload field."""
    if engine not in ("vllm-v0", "vllm-v1"):
        return
    workload_cls, _, invalid_workload, _ = _worker_parsers()
    from workers.leg import engine_options_for

    try:
        engine_options_for(engine, workload_cls.from_dict(workload))
    except invalid_workload as exc:
        raise BadInput(f"workload.{exc.field}: {where} runs on {engine}: {str(exc).split(': ', 1)[-1]}",
                       field=f"workload.{exc.field}") from None
# -----------------------------------------------------------------------------------------------


def plan_legs(reference: LegRequest, candidates: list[LegRequest],
              workload: Mapping[str, Any] | None = None) -> list[LegPlan]:
    """The job's legs in order: reference replicas first, then candidates.

    Each leg samples with its own seed (its position + 1), as two engines never share a random
    stream; everything else a leg needs comes from the shared workload (checked against each
    leg's engine when given).
    """
    known = engine_names()
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
