"""Runs of the repository's torch engine, recorded once, for the compare package's tests.

The four demo legs (``reference``, ``reference-replica``, ``v1-initial``, ``v1-fixed``) with the
demo's workload, seeds and 60 steps, exactly as ``parityscope demo`` runs them, and one leg per
mechanism (the reference settings with one V1 default switched on, on ``v1-initial``'s sampling
seed): ``raw-logprobs``, ``bf16-head``, ``prefix-caching``, ``async-scheduling``. Every metric
is what the trainer computed (docs/WORKERS.md); nothing is scaled by hand.

Regenerate (about a minute on two cores; the legs are deterministic on one machine)::

    .venv/bin/python -m tests.compare.torch_runs

``load_torch_runs()`` reads the recorded file into ``RunSeries`` with no config and no engine
description, so what a comparison finds comes from the metrics alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from backend.compare.run_series import RunSeries

DATA = Path(__file__).parent / "data" / "torch_runs.json"

MECHANISMS = {
    "raw-logprobs": {"logprobs_mode": "raw"},
    "bf16-head": {"lm_head_dtype": "bf16"},
    "prefix-caching": {"prefix_caching": True},
    "async-scheduling": {"async_scheduling": True},
}


def load_torch_runs() -> dict[str, RunSeries]:
    """Every recorded leg by label, with its metrics under the names the worker posts."""
    recorded = json.loads(DATA.read_text())
    runs = {}
    for label, leg in recorded["legs"].items():
        steps = np.arange(len(leg["metrics"]), dtype=np.int64)
        series = {
            name: (steps, np.array([np.nan if v is None else v for v in values], dtype=np.float64))
            for name, values in _columns(leg["metrics"]).items()
        }
        runs[label] = RunSeries(label, label, "", {}, {}, series)
    return runs


def _columns(rows: list[dict[str, float | None]]) -> dict[str, list[float | None]]:
    return {name: [row.get(name) for row in rows] for name in rows[0]}


def _record() -> None:
    import math
    import tempfile

    from workers.demo import DEMO_LEGS, DEMO_WORKLOAD
    from workers.leg import run_leg

    reference = DEMO_LEGS[0].settings.to_dict()
    seed = next(leg.sampling_seed for leg in DEMO_LEGS if leg.label == "v1-initial")
    legs = [(leg.label, leg.settings.to_dict(), leg.sampling_seed) for leg in DEMO_LEGS]
    legs += [(label, {**reference, **change}, seed) for label, change in MECHANISMS.items()]
    recorded: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as checkpoints:
        for label, settings, sampling_seed in legs:
            result = run_leg(DEMO_WORKLOAD, settings, sampling_seed, checkpoint_dir=Path(checkpoints))
            rows = [
                {k: (None if not math.isfinite(v) else float(f"{v:.9g}")) for k, v in step.items()}
                for step in result.metrics
            ]
            recorded[label] = {"settings": settings, "sampling_seed": sampling_seed, "metrics": rows}
            print(label, f"{result.seconds:.1f} s", flush=True)
    _write({"workload": DEMO_WORKLOAD, "legs": recorded})


def _write(recorded: dict) -> None:
    """One line per step, so the file reads and diffs as a table."""
    lines = ["{", f'"workload": {json.dumps(recorded["workload"])},', '"legs": {']
    for index, (label, leg) in enumerate(recorded["legs"].items()):
        lines.append(
            f'{json.dumps(label)}: {{"settings": {json.dumps(leg["settings"])}, '
            f'"sampling_seed": {leg["sampling_seed"]}, "metrics": ['
        )
        rows = [json.dumps(row, separators=(",", ":")) for row in leg["metrics"]]
        lines.append(",\n".join(rows))
        lines.append("]}" + ("," if index < len(recorded["legs"]) - 1 else ""))
    lines += ["}", "}"]
    DATA.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    _record()
