"""A parity ladder run in process on the torch engine: the same plan, legs and verdicts as a
ladder job, without the server or the job loop (docs/LADDER.md). Used by the attribution tests
and bench/ladder.py."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from backend.compare.ladder import LegOutcome, judge_ladder, judge_runs
from backend.compare.run_series import RunSeries
from backend.ladder import plan_ladder
from workers.engines.base import EngineSettings
from workers.leg import run_leg

__all__ = ["LADDER_WORKLOAD", "run_ladder"]

# Small enough for the suite (a leg takes about a second on one core), with two minibatches so
# the reference replicas have a seed-to-seed band (docs/WORKERS.md).
LADDER_WORKLOAD: dict[str, Any] = {
    "model": "llama-0.4m",
    "task": "sort4",
    "seed": 7,
    "steps": 12,
    "batch_size": 16,
    "group_size": 4,
    "max_tokens": 5,
    "lr": 1e-4,
    "temperature": 0.7,
    "top_p": 1.0,
    "objective": "gspo",
    "epsilon_low": 1e-3,
    "epsilon_high": 1e-3,
    "minibatches": 2,
    "warm_start_steps": 10,
}


def _series(run_id: int, label: str, metrics: list[dict[str, float]]) -> RunSeries:
    keys = sorted({k for step in metrics for k in step})
    series = {}
    for key in keys:
        steps = np.array([i for i, step in enumerate(metrics) if key in step], dtype=np.int64)
        values = np.array([metrics[i][key] for i in steps], dtype=np.float64)
        series[key] = (steps, values)
    return RunSeries(run_id=run_id, name=label, label=label, config={}, engine={}, series=series)


_RUNS: dict[tuple[Any, ...], list[dict[str, float]]] = {}


def _metrics(
    workload: Mapping[str, Any], settings: Mapping[str, Any], seed: int, checkpoint_dir: Path,
    engine_options: Mapping[str, Any],
) -> list[dict[str, float]]:
    # A leg is deterministic in (workload, settings, seed, engine options), so reference legs
    # that several ladders share are run once.
    key = (tuple(sorted(workload.items())), tuple(sorted(settings.items())), seed, str(checkpoint_dir),
           tuple(sorted(engine_options.items())))
    if key not in _RUNS:
        _RUNS[key] = run_leg(dict(workload), dict(settings), seed, checkpoint_dir=checkpoint_dir,
                             engine_options=dict(engine_options)).metrics
    return _RUNS[key]


def run_ladder(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any],
    checkpoint_dir: Path,
    *,
    workload: Mapping[str, Any] = LADDER_WORKLOAD,
    replicas: int = 2,
    ablation: bool = True,
    seed_offset: int = 0,
    engine_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Plan the ladder, run every leg on the torch engine, judge it: the job's ``ladder`` JSON.

    ``engine_options`` are the torch engine's constructor options, the same for every leg."""
    reference_settings = EngineSettings.from_dict(dict(reference)).to_dict()
    candidate_settings = EngineSettings.from_dict(dict(candidate)).to_dict()
    plan = plan_ladder("torch", reference_settings, "torch", candidate_settings,
                       replicas=replicas, ablation=ablation, max_legs=32)
    legs = [(f"reference-{i}", reference_settings, "reference") for i in range(replicas if plan.differences else 0)]
    legs += [(rung.label, rung.settings, "rung") for rung in plan.rungs]
    legs += [(leg.label, leg.settings, "ablation") for leg in plan.ablation if leg.same_as_rung is None]
    outcomes: dict[str, LegOutcome] = {}
    references, others = [], []
    for position, (label, settings, role) in enumerate(legs):
        metrics = _metrics(workload, settings, seed_offset + position + 1, checkpoint_dir, engine_options or {})
        run = _series(position + 1, label, metrics)
        (references if role == "reference" else others).append(run)
        outcomes[label] = LegOutcome("finished", position + 1)
    verdicts = judge_runs(references, others) if references else {}
    return judge_ladder(plan.to_json(), outcomes, verdicts)
