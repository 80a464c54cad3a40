"""The parity ladder's verdicts: each rung and ablation leg against the reference band.

Pure: the plan (as ``backend.ladder.LadderPlan.to_json`` writes it), each leg's status and run,
and the runs' series in; the ``ladder`` section of a job's JSON out (docs/LADDER.md).

Every verdict comes from the comparison engine itself: :func:`judge_runs` runs
``build_comparison`` with the reference runs as the reference group and the rungs' runs as its
candidates, so a rung is "at parity" on a metric exactly when the compare page would draw no
first-divergence marker for it, under the same band and the same divergence rule.

- A rung is at parity when every canonical metric (clip rate, KL, entropy, reward) is.
- The closing rung is the first cumulative rung from which every rung, that one and every later
  one that ran, is at parity; the settings it applied are the gap's cause, and the settings
  applied from rung 1 up to it are the patch.
- An ablation leg (the reference with one candidate setting) says whether that setting alone
  breaks parity; read against the rungs it separates a setting that matters alone from one that
  matters only together with another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.compare.aliases import DEFAULT_METRICS, PARITY_METRICS
from backend.compare.align import intersect_sorted
from backend.compare.band import ReferenceBand
from backend.compare.comparison import build_comparison
from backend.compare.run_series import RunSeries

__all__ = ["LegOutcome", "MetricVerdict", "judge_ladder", "judge_runs"]

LADDER_METRICS: tuple[str, ...] = (*DEFAULT_METRICS, *PARITY_METRICS)


@dataclass(frozen=True)
class MetricVerdict:
    metric: str
    at_parity: bool | None  # None: the run or the reference has no values to compare
    first_divergence_step: int | None
    effect_size: float | None  # beyond the band, in band half-widths, over the first diverging stretch
    departure: float | None  # mean |run − band centre| over the compared steps, in band half-widths
    compared_steps: int

    def to_json(self) -> dict[str, Any]:
        return {
            "at_parity": self.at_parity,
            "first_divergence_step": self.first_divergence_step,
            "effect_size": _finite(self.effect_size),
            "departure": _finite(self.departure),
            "compared_steps": self.compared_steps,
        }


@dataclass(frozen=True)
class LegOutcome:
    status: str  # a leg status: queued, waiting, running, finished, failed, skipped
    run_id: int | None


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _departure(band: ReferenceBand, series: tuple[np.ndarray, np.ndarray]) -> float | None:
    steps, band_index, run_index = intersect_sorted(band.steps, series[0])
    half = band.half_width[band_index]
    values = series[1][run_index]
    usable = np.isfinite(band.center[band_index]) & np.isfinite(values) & (half > 0)
    if not usable.any():
        return None
    return float(np.mean(np.abs(values[usable] - band.center[band_index][usable]) / half[usable]))


def judge_runs(
    references: Sequence[RunSeries],
    runs: Sequence[RunSeries],
    *,
    extra_aliases: Mapping[str, object] | None = None,
) -> dict[str, dict[str, MetricVerdict]]:
    """Per run id (as a string), per metric: at parity with the reference band or not."""
    if not runs:
        return {}
    comparison = build_comparison(
        references, runs, list(LADDER_METRICS), extra_aliases=extra_aliases, figures=()
    )
    by_run: dict[str, dict[str, MetricVerdict]] = {str(run.run_id): {} for run in runs}
    series_of = {str(run.run_id): run for run in runs}
    for metric in comparison.metrics:
        keys = {str(r.run_id): r.key for r in metric.runs}
        for candidate in metric.candidates:
            run_id = str(candidate.run_id)
            divergence = candidate.divergence
            key = keys.get(run_id)
            if divergence is None or metric.band is None or key is None:
                by_run[run_id][metric.metric] = MetricVerdict(metric.metric, None, None, None, None, 0)
                continue
            diverged = divergence.first_divergence_step is not None
            by_run[run_id][metric.metric] = MetricVerdict(
                metric=metric.metric,
                at_parity=None if divergence.compared_steps == 0 else not diverged,
                first_divergence_step=divergence.first_divergence_step,
                effect_size=divergence.effect_size if diverged else None,
                departure=_departure(metric.band, series_of[run_id].series[key]),
                compared_steps=divergence.compared_steps,
            )
    return by_run


def _leg_json(
    label: str, outcomes: Mapping[str, LegOutcome], verdicts: Mapping[str, Mapping[str, MetricVerdict]]
) -> dict[str, Any]:
    outcome = outcomes.get(label, LegOutcome("queued", None))
    metrics = verdicts.get(str(outcome.run_id), {}) if outcome.status == "finished" else {}
    canonical = [metrics.get(m) for m in DEFAULT_METRICS]
    at_parity = None
    if outcome.status == "finished" and all(v is not None and v.at_parity is not None for v in canonical):
        at_parity = all(v.at_parity for v in canonical if v is not None)
    diverging = [m for m in DEFAULT_METRICS if metrics.get(m) is not None and metrics[m].at_parity is False]
    return {
        "label": label,
        "status": outcome.status,
        "run_ids": [outcome.run_id] if outcome.run_id is not None else [],
        "metrics": {m: v.to_json() for m, v in metrics.items()},
        "at_parity": at_parity,
        "diverging": diverging,
    }


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def judge_ladder(
    plan: Mapping[str, Any],
    outcomes: Mapping[str, LegOutcome],
    verdicts: Mapping[str, Mapping[str, MetricVerdict]],
) -> dict[str, Any]:
    """The ``ladder`` section of the job's JSON: rungs, ablation, closing rung, patch, words."""
    differences = {d["setting"]: d for d in plan["differences"]}
    rungs = []
    for rung in plan["rungs"]:
        entry = _leg_json(rung["label"], outcomes, verdicts)
        rungs.append({"index": rung["index"], "applied": rung["applied"], "settings": rung["settings"], **entry})
    rung_by_index = {r["index"]: r for r in rungs}
    ablation = []
    for leg in plan["ablation"]:
        source = rung_by_index[leg["same_as_rung"]]["label"] if leg["same_as_rung"] is not None else leg["label"]
        entry = _leg_json(source, outcomes, verdicts)
        entry["label"] = leg["label"]
        ablation.append({
            "setting": leg["setting"], "layer": leg["layer"], "settings": leg["settings"],
            "same_as_rung": leg["same_as_rung"],
            "value": differences[leg["setting"]]["candidate"],
            **entry,
            "breaks_parity": None if entry["at_parity"] is None else not entry["at_parity"],
        })

    result: dict[str, Any] = {
        "plan": plan,
        "leg_count": plan["leg_count"],
        "rungs": rungs,
        "ablation": ablation,
        "closing": None,
        "patch": None,
        "status": "pending",
        "interpretation": [],
    }
    if not plan["differences"]:
        result["status"] = "already-at-parity"
        result["interpretation"] = [
            "Already at parity: the candidate's engine settings equal the reference's, so there is "
            "no setting to bisect and no leg was run."
        ]
        result["patch"] = {"engine_settings": {}}
        return result

    closing = _closing_rung(rungs)
    if closing is None:
        failed = [r for r in rungs if r["status"] == "failed"]
        waiting = [r for r in rungs if r["status"] not in ("finished", "skipped", "failed")]
        if failed:
            result["status"] = "failed"
            result["interpretation"] = [f"Rung {failed[0]['index']} failed, so the ladder cannot name a closing rung."]
        elif waiting:
            result["status"] = "pending"
            result["interpretation"] = [f"{len(waiting)} of {len(rungs)} rungs are still to run."]
        else:
            result["status"] = "not-closed"
            last = rungs[-1]
            result["interpretation"] = [
                "No rung closes the gap: even the last rung, the reference's settings on the "
                f"{plan['candidate_engine']} engine, leaves the band on "
                f"{', '.join(last['diverging']) or 'a metric without data'}; what remains is not an "
                "engine setting (the engine itself, or the workload)."
            ]
        result["interpretation"] += _ablation_words(ablation, None, plan)
        return result

    index = closing["index"]
    applied = [name for r in rungs[1 : index + 1] for name in r["applied"]]
    result["status"] = "closed"
    result["closing"] = {
        "rung": index,
        "settings": closing["applied"],
        "label": closing["label"],
        "values": {name: differences[name]["reference"] for name in closing["applied"]},
    }
    # Settings of the patch that neither closed the gap nor break parity alone: the ladder does
    # not show they are needed (an interaction with a later setting is not ruled out either).
    alone = {a["setting"]: a["breaks_parity"] for a in ablation}
    unproven = [n for n in applied if n not in closing["applied"] and alone.get(n) is False]
    result["patch"] = {"engine_settings": {name: differences[name]["reference"] for name in applied},
                       "not_shown_needed": unproven}
    words = []
    if index == 0:
        words.append("The candidate is at parity as it is: every canonical metric stays inside the "
                     "reference band on rung 0, so no setting needs changing.")
    else:
        changed = ", ".join(f"{name}={_value(differences[name]['reference'])}" for name in closing["applied"])
        before = rungs[index - 1]
        words.append(
            f"Rung {index} closes the gap: setting {changed} brings every canonical metric inside "
            f"the reference band, in that rung and every later one "
            f"(rung {index - 1} still left it on {', '.join(before['diverging']) or 'no metric'})."
        )
        if len(applied) > len(closing["applied"]):
            words.append("The patch is every setting applied up to that rung, in layer order: "
                         + ", ".join(f"{n}={_value(differences[n]['reference'])}" for n in applied) + ".")
    skipped = [r["index"] for r in rungs if r["status"] == "skipped"]
    if skipped:
        words.append(f"Rungs {', '.join(map(str, skipped))} were skipped (stop_at_parity): their settings "
                     "were not needed.")
    result["interpretation"] = words + _ablation_words(ablation, index, plan)
    return result


def _closing_rung(rungs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first rung from which every rung that ran is at parity; None while one is unjudged."""
    ran = [r for r in rungs if r["status"] != "skipped"]
    if any(r["at_parity"] is None for r in ran):
        return None
    closing = None
    for rung in reversed(ran):
        if not rung["at_parity"]:
            break
        closing = rung
    return closing


def _ablation_words(ablation: list[dict[str, Any]], closing: int | None, plan: Mapping[str, Any]) -> list[str]:
    order = [d["setting"] for d in plan["differences"]]
    words = []
    for leg in ablation:
        name = leg["setting"]
        value = _value(leg["value"])
        if leg["breaks_parity"] is None:
            continue
        applied_at = order.index(name) + 1
        needed = closing is not None and applied_at <= closing
        if leg["breaks_parity"]:
            where = ", ".join(
                f"{m} from step {leg['metrics'][m]['first_divergence_step']}" for m in leg["diverging"]
            )
            if needed or closing is None:
                words.append(f"{name}={value} alone breaks parity ({where}): it matters on its own.")
            else:
                words.append(
                    f"{name}={value} alone breaks parity ({where}), yet the rungs from {closing} on keep "
                    "it and stay at parity: another setting the candidate still has there masks it."
                )
        elif needed and applied_at == closing:
            partners = order[applied_at:]
            with_text = f" together with {', '.join(partners)}" if partners else " together with another setting"
            words.append(
                f"{name}={value} alone does not break parity, yet setting it back closed the gap: it "
                f"matters only{with_text}."
            )
        elif needed:
            words.append(
                f"{name}={value} alone does not break parity; it is in the patch only because it comes "
                f"before the closing rung in layer order (rung {applied_at} still left the band), so the "
                "ladder does not show that it is needed."
            )
        else:
            words.append(f"{name}={value} alone does not break parity.")
    return words
