"""Smoke test for a GPU host with vLLM: a 2-step paired job on the vLLM adapters.

Runs the demo workload for two steps as three legs, each in its own process (vLLM's V0/V1 choice
and its GPU memory are per process):

- ``reference``  on ``--reference-engine`` (default ``vllm-v0``) with the reference settings;
- ``v1-initial`` on ``vllm-v1`` with V1's initial settings (raw logprobs, bf16 head, prefix
  caching, async scheduling);
- ``v1-fixed``   on ``vllm-v1`` with the reference settings.

It prints each step's metrics as they come and a summary. With ``--url`` and ``--token`` it also
creates one run per leg in ``--project`` and posts the metrics over the REST API, like any
trainer would.

Examples::

    # V0 and V1 in one environment is rarely possible; point each at its own interpreter:
    python -m workers.vllm_smoke --reference-python /opt/vllm085/bin/python \\
        --candidate-python /opt/vllm-v1/bin/python
    # Only V1 installed: use V1 with the reference settings as the reference.
    python -m workers.vllm_smoke --reference-engine vllm-v1
    # Post to a ParityScope server as well:
    python -m workers.vllm_smoke --url http://localhost:8000 --token $TOKEN --project vllm-smoke

Every interpreter needs this package importable (``pip install -e .[worker]`` in each env).
The checkpoint is the torch-built warm-started policy, saved with ``save_pretrained``; it is
built on first use under ``--checkpoint-dir`` (shared by the legs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from parityscope.wire import encode_value
from workers.demo import DEMO_LEGS, DEMO_WORKLOAD
from workers.leg import describe_leg, run_leg
from workers.warm_start import default_checkpoint_dir, warm_started_checkpoint
from workers.workload import Workload

_MARK = "PARITYSCOPE-STEP "
_ENGINE_MARK = "PARITYSCOPE-ENGINE "
# vLLM caches full 16-token blocks only: a shared instruction of two blocks makes prefix caching
# real on vLLM (workers.leg.engine_options_for).
VLLM_WORKLOAD_OPTIONS = {"instruction_tokens": 32, "prefix_block_size": 16}
_SUMMARY_KEYS = (
    "clamp_log_ratio_new_old_indicator",
    "kl_new_old",
    "reward",
    "parity/logprob_diff_mean",
    "parity/logprob_abs_diff_mean",
)


def smoke_legs(reference_engine: str) -> list[dict[str, Any]]:
    settings = {leg.label: leg.settings for leg in DEMO_LEGS}
    return [
        {"label": "reference", "engine": reference_engine, "settings": settings["reference"], "seed": 1},
        {"label": "v1-initial", "engine": "vllm-v1", "settings": settings["v1-initial"], "seed": 3},
        {"label": "v1-fixed", "engine": "vllm-v1", "settings": settings["v1-fixed"], "seed": 4},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--reference-engine", choices=("vllm-v0", "vllm-v1"), default="vllm-v0")
    parser.add_argument("--reference-python", default=sys.executable)
    parser.add_argument("--candidate-python", default=sys.executable)
    parser.add_argument("--checkpoint-dir", type=Path, default=None)
    parser.add_argument("--url", help="ParityScope server to post the runs to")
    parser.add_argument("--token", help="project-scoped write token for --url")
    parser.add_argument("--project", default="vllm-smoke", help="project slug for --url")
    parser.add_argument("--run-leg", help=argparse.SUPPRESS)
    parser.add_argument("--leg-engine", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if bool(args.url) != bool(args.token):
        parser.error("--url and --token go together")

    workload = dict(DEMO_WORKLOAD, steps=args.steps, **VLLM_WORKLOAD_OPTIONS)
    checkpoint_dir = args.checkpoint_dir or default_checkpoint_dir()
    if args.run_leg:
        return _child(args.run_leg, args.leg_engine, workload, checkpoint_dir, args.reference_engine)

    # Build the shared checkpoint once, before any vLLM process starts.
    print("checkpoint:", warm_started_checkpoint(Workload.from_dict(workload), checkpoint_dir), flush=True)
    results: dict[str, list[dict[str, float]]] = {}
    engines: dict[str, dict[str, Any]] = {}
    for leg in smoke_legs(args.reference_engine):
        python = args.reference_python if leg["label"] == "reference" else args.candidate_python
        command = [
            python, "-m", "workers.vllm_smoke", "--run-leg", leg["label"], "--leg-engine", leg["engine"],
            "--steps", str(args.steps), "--checkpoint-dir", str(checkpoint_dir),
            "--reference-engine", args.reference_engine,
        ]
        print(f"== {leg['label']} on {leg['engine']} ({python})", flush=True)
        steps = []
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith(_ENGINE_MARK):
                    engines[leg["label"]] = json.loads(line[len(_ENGINE_MARK):])
                    print(f"  engine: {json.dumps(engines[leg['label']])}", flush=True)
                if line.startswith(_MARK):
                    record = json.loads(line[len(_MARK):])
                    steps.append(record["metrics"])
                    print(f"  step {record['step']}: " + ", ".join(
                        f"{k}={record['metrics'][k]:.3g}" for k in _SUMMARY_KEYS), flush=True)
        if child.returncode != 0:
            print(f"leg {leg['label']} failed with exit code {child.returncode}", file=sys.stderr)
            return child.returncode
        results[leg["label"]] = steps

    if args.url:
        _post(args.url, args.token, args.project, workload, results, engines, args.reference_engine)
    return 0


def _child(label: str, engine: str, workload: dict[str, Any], checkpoint_dir: Path, reference_engine: str) -> int:
    leg = next(leg for leg in smoke_legs(reference_engine) if leg["label"] == label)

    def report(step: int, metrics: dict[str, float]) -> None:
        print(_MARK + json.dumps({"step": step, "metrics": metrics}), flush=True)

    result = run_leg(workload, leg["settings"], leg["seed"], engine_name=engine, on_step=report,
                     checkpoint_dir=checkpoint_dir)
    # What the engine loaded and which weight-update paths it exercised (docs/VLLM.md).
    print(_ENGINE_MARK + json.dumps(result.engine), flush=True)
    return 0


def _post(url: str, token: str, project: str, workload: dict[str, Any],
          results: dict[str, list[dict[str, float]]], engines: dict[str, dict[str, Any]],
          reference_engine: str) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for leg in smoke_legs(reference_engine):
            response = client.post(f"/api/v1/projects/{project}/runs", json={
                "name": f"vllm-smoke {leg['label']}",
                "label": leg["label"],
                "config": {"workload": workload, "engine_settings": leg["settings"].to_dict()},
                "engine": engines.get(leg["label"]) or describe_leg(leg["settings"], leg["engine"]),
                "tags": ["vllm-smoke"],
            })
            response.raise_for_status()
            run_id = response.json()["id"]
            points = [{"step": step, "values": {k: encode_value(float(v)) for k, v in metrics.items()}}
                      for step, metrics in enumerate(results[leg["label"]])]
            client.post(f"/api/v1/runs/{run_id}/metrics", json={"points": points}).raise_for_status()
            print(f"posted {leg['label']} as run {run_id}")


if __name__ == "__main__":
    raise SystemExit(main())
