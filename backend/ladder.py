"""The parity ladder's plan: which legs prove which setting closes the gap (docs/LADDER.md).

Pure: two normalised settings dicts (and workloads) in, a plan out; no storage, no HTTP. The
settings are whatever the engine settings list holds, in its own order, and each is placed by
the layer the key registry gives it (``backend.compare.registry``), so a setting added to the
engines is laddered without a change here.

- **Cumulative rungs.** Rung 0 is the candidate as it is; rung ``i`` applies the reference's
  value for one more differing setting, semantic settings first, then the inference path one
  setting at a time, then the objective. The last rung has the reference's settings (on the
  candidate's engine).
- **Single-setting ablation.** For each differing setting, the reference's settings with only
  that one of the candidate's values. An ablation leg whose settings equal a rung's (with one
  difference, rung 0; the last setting's, the rung before the last) is not run twice: it reads
  that rung's runs.
- **Legs.** The reference's replicas, then the rungs, then the ablation legs that are not a
  rung. Workload differences are never rungs: :func:`workload_differences` names them so the
  caller can refuse the ladder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.compare.registry import KeyRegistry
from backend.errors import BadInput

__all__ = [
    "DEFAULT_MAX_LEGS",
    "LADDER_LAYERS",
    "AblationPlan",
    "LadderPlan",
    "RungPlan",
    "SettingDifference",
    "plan_ladder",
    "vllm_patch",
    "workload_differences",
]

DEFAULT_MAX_LEGS = 16
MIN_REPLICAS = 2
# The order rungs apply settings in: correctness before corrections (docs/ARCHITECTURE.md §1).
LADDER_LAYERS: tuple[str, ...] = ("semantic", "inference-path", "objective")
# An engine setting the registry does not place is engine-side, so it goes with the inference path.
_DEFAULT_LAYER = "inference-path"


@dataclass(frozen=True)
class SettingDifference:
    name: str
    layer: str
    reference_value: Any
    candidate_value: Any


@dataclass(frozen=True)
class RungPlan:
    index: int
    applied: tuple[str, ...]  # the settings this rung sets to the reference's value (none for rung 0)
    settings: dict[str, Any]
    label: str


@dataclass(frozen=True)
class AblationPlan:
    setting: str
    layer: str
    settings: dict[str, Any]
    label: str
    same_as_rung: int | None  # the rung whose runs this leg reads instead of running its own


@dataclass(frozen=True)
class LadderPlan:
    reference_engine: str
    candidate_engine: str
    reference_settings: dict[str, Any]
    candidate_settings: dict[str, Any]
    replicas: int
    differences: list[SettingDifference]
    rungs: list[RungPlan]
    ablation: list[AblationPlan]
    stop_at_parity: bool
    max_legs: int
    reused: int = 0  # legs whose run already exists (the runs a ladder from runs was asked about)
    leg_count: int = field(init=False)  # legs to run

    def __post_init__(self) -> None:
        own_ablation = sum(1 for a in self.ablation if a.same_as_rung is None)
        legs = self.replicas + len(self.rungs) + own_ablation - self.reused if self.differences else 0
        object.__setattr__(self, "leg_count", legs)

    @property
    def already_at_parity(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        """The plan as stored with the job and returned before any leg runs."""
        return {
            "reference_engine": self.reference_engine,
            "candidate_engine": self.candidate_engine,
            "reference_settings": self.reference_settings,
            "candidate_settings": self.candidate_settings,
            "replicas": self.replicas,
            "differences": [
                {"setting": d.name, "layer": d.layer, "reference": d.reference_value, "candidate": d.candidate_value}
                for d in self.differences
            ],
            "rungs": [
                {"index": r.index, "applied": list(r.applied), "settings": r.settings, "label": r.label}
                for r in self.rungs
            ],
            "ablation": [
                {"setting": a.setting, "layer": a.layer, "settings": a.settings, "label": a.label,
                 "same_as_rung": a.same_as_rung}
                for a in self.ablation
            ],
            "stop_at_parity": self.stop_at_parity,
            "max_legs": self.max_legs,
            "leg_count": self.leg_count,
            "reused_legs": self.reused if self.differences else 0,
        }


def workload_differences(reference: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[str]:
    """The workload keys whose values differ (a key only one side has counts), sorted."""
    return sorted(k for k in set(reference) | set(candidate) if reference.get(k) != candidate.get(k))


def _layer_of(name: str, classify: Callable[[str], str]) -> str:
    layer = classify(name)
    return layer if layer in LADDER_LAYERS else _DEFAULT_LAYER


def plan_ladder(
    reference_engine: str,
    reference_settings: Mapping[str, Any],
    candidate_engine: str,
    candidate_settings: Mapping[str, Any],
    *,
    replicas: int = MIN_REPLICAS,
    ablation: bool = True,
    stop_at_parity: bool = False,
    max_legs: int = DEFAULT_MAX_LEGS,
    extra_rules: Mapping[str, str] | None = None,
    field_prefix: str = "",
    label_prefix: str = "",
    reused: int = 0,
) -> LadderPlan:
    """The rungs and ablation legs between two normalised settings dicts.

    Both dicts hold every engine setting (the parsers' normalised form), in the engine's own
    order. Raises ``BadInput`` when the replicas are fewer than two, when the engines differ but
    no setting does (no rung could change anything), or when the ladder needs more than
    ``max_legs`` legs (the message gives the count).
    """
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < MIN_REPLICAS:
        raise BadInput(
            f"{field_prefix}reference.replicas: a ladder needs at least {MIN_REPLICAS} reference runs "
            "to judge parity against their spread", field=f"{field_prefix}reference.replicas",
        )
    names = list(candidate_settings) + [k for k in reference_settings if k not in candidate_settings]
    registry = KeyRegistry(extra_rules)
    differences = [
        SettingDifference(name, _layer_of(name, registry.classify), reference_settings.get(name),
                          candidate_settings.get(name))
        for name in names
        if reference_settings.get(name) != candidate_settings.get(name)
    ]
    # A stable sort keeps the engine list's own order inside each layer.
    differences.sort(key=lambda d: LADDER_LAYERS.index(d.layer))
    if not differences and reference_engine != candidate_engine:
        raise BadInput(
            f"{field_prefix}candidate.settings: no engine setting differs from the reference's; the engines "
            f"differ ({reference_engine} vs {candidate_engine}), which no rung of settings can change",
            field=f"{field_prefix}candidate.settings",
        )

    rungs: list[RungPlan] = []
    current = dict(candidate_settings)
    rungs_by_settings: dict[tuple[tuple[str, Any], ...], int] = {}
    if differences:
        rungs.append(RungPlan(0, (), dict(current), f"{label_prefix}rung-0"))
        rungs_by_settings[_frozen(current)] = 0
        for index, difference in enumerate(differences, start=1):
            current[difference.name] = difference.reference_value
            rungs.append(RungPlan(index, (difference.name,), dict(current), f"{label_prefix}rung-{index} {difference.name}"))
            rungs_by_settings[_frozen(current)] = index

    ablations: list[AblationPlan] = []
    if ablation:
        for difference in differences:
            settings = {**reference_settings, difference.name: difference.candidate_value}
            ablations.append(
                AblationPlan(
                    difference.name, difference.layer, settings, f"{label_prefix}ablation {difference.name}",
                    rungs_by_settings.get(_frozen(settings)),
                )
            )
    plan = LadderPlan(
        reference_engine=reference_engine,
        candidate_engine=candidate_engine,
        reference_settings=dict(reference_settings),
        candidate_settings=dict(candidate_settings),
        replicas=replicas,
        differences=differences,
        rungs=rungs,
        ablation=ablations,
        stop_at_parity=stop_at_parity,
        max_legs=max_legs,
        reused=reused,
    )
    if plan.leg_count > max_legs:
        own_ablation = sum(1 for a in ablations if a.same_as_rung is None)
        reuse = f", {reused} of them already run" if reused else ""
        raise BadInput(
            f"{field_prefix}max_legs: this ladder needs {plan.leg_count} legs to run ({replicas} reference, "
            f"{len(rungs)} rungs, {own_ablation} ablation{reuse}) and max_legs is "
            f"{max_legs}; raise max_legs or set ablation to false",
            field=f"{field_prefix}max_legs",
        )
    return plan


def _frozen(settings: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(settings.items()))


def vllm_patch(
    engine: str,
    candidate_settings: Mapping[str, Any],
    patched_settings: Mapping[str, Any],
    workload: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The patch as vLLM arguments: the engine arguments the adapter for ``engine`` passes
    differently once the patch is applied, the ``AsyncLLM`` calls around a weight update when
    they change, and the ``SamplingParams`` arguments the legs sampled with (from the workload,
    which every leg shares: no engine setting maps onto them). The mapping is the adapter's own
    (``workers/engines/vllm_v0.py``, ``vllm_v1.py``); None for other engines or without the
    worker package.
    """
    if engine not in ("vllm-v0", "vllm-v1"):
        return None
    try:
        from pathlib import Path

        from workers.engines.base import EngineSettings, SamplingSettings
        from workers.errors import UnsupportedSetting, WorkerError

        if engine == "vllm-v0":
            from workers.engines import vllm_v0 as adapter
        else:
            from workers.engines import vllm_v1 as adapter
    except ImportError:  # pragma: no cover - depends on the installed extras
        return None
    try:
        before = EngineSettings.from_dict(dict(candidate_settings))
        after = EngineSettings.from_dict(dict(patched_settings))
        args_before = adapter.engine_kwargs(before, Path("checkpoint"), 0)
        args_after = adapter.engine_kwargs(after, Path("checkpoint"), 0)
    except (UnsupportedSetting, WorkerError, ValueError) as exc:
        return {"engine": engine, "error": str(exc)}
    patch: dict[str, Any] = {
        "engine": engine,
        "engine_args": {k: v for k, v in args_after.items() if args_before.get(k) != v},
        "removed_engine_args": sorted(k for k in args_before if k not in args_after),
    }
    if workload is not None:
        sampling = SamplingSettings(
            temperature=workload["temperature"], top_p=workload.get("top_p", 1.0),
            top_k=workload.get("top_k", 0), max_tokens=workload["max_tokens"],
        )
        patch["sampling_params"] = adapter.sampling_kwargs(sampling)
    calls = getattr(adapter, "weight_update_calls", None)
    if calls is not None and calls(before) != calls(after):
        patch["weight_update_calls"] = calls(after)
    return patch
