"""Why the ladder does not name the in-flight weight update alone (docs/LADDER.md, limits).

The reference has async scheduling on; the candidate adds ``weight_update=inflight``. Three
measurements on the suite's 12-step ladder workload (tests/ladder_local.py), each deterministic:

    .venv/bin/python bench/ladder_inflight.py positions            # mean |Δ| per token position
    .venv/bin/python bench/ladder_inflight.py lift --pieces 4 --set minibatches=1
    .venv/bin/python bench/ladder_inflight.py ladders --pieces 4 --set minibatches=1 \\
        --epsilons 3e-3 5e-3 --seeds 0 10 20

``positions``: the mean |Δ| (trainer logprob minus engine logprob) at each completion position,
per minibatch, for the blocking reference and the in-flight candidate with 2 and 4 pieces, at
GSPO's ε. ``lift``: the per-sequence GSPO ratios of three reference and two candidate legs,
thresholded at several ε: each clip rate, the lift and the per-step spread between two
reference replicas. ``ladders``: the ladder's own verdicts, one line per ladder, with each leg's
mean clip rate and each rung's departure from the band's centre (in half-widths).
"""

from __future__ import annotations

import argparse
import ast
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import workers.trainer as trainer_module  # noqa: E402
from tests.ladder_local import LADDER_WORKLOAD, run_ladder  # noqa: E402
from workers.leg import run_leg  # noqa: E402

REFERENCE = {"async_scheduling": True}
CANDIDATE = {"async_scheduling": True, "weight_update": "inflight"}
GSPO_EPSILON = {"epsilon_low": 3e-4, "epsilon_high": 4e-4}
CLIP = "clamp_log_ratio_new_old_indicator"


class DeltaSpy:
    """Records the Δ and mask the trainer hands to its ratio metrics, step by step."""

    def __init__(self) -> None:
        self.steps: list[tuple[np.ndarray, np.ndarray]] = []
        self._original = trainer_module.ratio_metrics

    def __enter__(self) -> DeltaSpy:
        def spy(delta: torch.Tensor, mask: torch.Tensor, *args: Any, **kwargs: Any) -> dict[str, float]:
            self.steps.append((delta.detach().cpu().double().numpy(), mask.detach().cpu().double().numpy()))
            return self._original(delta, mask, *args, **kwargs)

        trainer_module.ratio_metrics = spy
        return self

    def __exit__(self, *exc: object) -> None:
        trainer_module.ratio_metrics = self._original


def leg(workload: dict, settings: dict, seed: int, checkpoints: Path, pieces: int) -> tuple[list, list[dict]]:
    with DeltaSpy() as spy:
        metrics = run_leg(workload, settings, seed, checkpoint_dir=checkpoints,
                          engine_options={"inflight_pieces": pieces}).metrics
    return spy.steps, metrics


def positions(workload: dict, checkpoints: Path, seed: int) -> None:
    workload = {**workload, **GSPO_EPSILON}
    for pieces in (2, 4):
        for name, settings in (("blocking", REFERENCE), ("inflight", CANDIDATE)):
            steps, metrics = leg(workload, settings, seed, checkpoints, pieces)
            delta = np.stack([d for d, _ in steps[1:]])  # step 0 has no update before it
            mask = np.stack([m for _, m in steps[1:]])
            half = delta.shape[1] // 2
            rows = []
            for part in (slice(0, half), slice(half, None)):
                mean = (np.abs(delta[:, part]) * mask[:, part]).sum((0, 1)) / mask[:, part].sum((0, 1))
                rows.append(" ".join(f"{v:.2e}" for v in mean))
            clip = np.mean([m[CLIP] for m in metrics])
            lag = np.mean([m["parity/weight_version_lag"] for m in metrics])
            print(f"pieces {pieces} {name:<9} clip {clip:.3f} lag {lag:.2f} · mean |Δ| by position, "
                  f"minibatch 1: {rows[0]} · minibatch 2: {rows[1]}", flush=True)


def lift(workload: dict, checkpoints: Path, pieces: int, epsilons: list[float]) -> None:
    def ratios(settings: dict, seed: int) -> np.ndarray:
        steps, _ = leg(workload, settings, seed, checkpoints, pieces)
        return np.stack([(d * m).sum(1) / np.maximum(m.sum(1), 1.0) for d, m in steps])

    references = [ratios(REFERENCE, seed) for seed in (1, 2, 5)]
    candidates = [ratios(CANDIDATE, seed) for seed in (3, 6)]
    for eps in epsilons:
        ref = [(np.abs(r) > eps).mean(1) for r in references]
        cand = [(np.abs(c) > eps).mean(1) for c in candidates]
        spread = float(np.std(ref[0] - ref[1]) / np.sqrt(2))
        up = float(np.mean(cand) - np.mean(ref))
        print(f"eps {eps:.1e}: reference {' '.join(f'{r.mean():.3f}' for r in ref)} · candidate "
              f"{' '.join(f'{c.mean():.3f}' for c in cand)} · lift {up:+.3f} · per-step replica spread "
              f"{spread:.3f} · lift/spread {up / spread:.2f}", flush=True)


def ladders(workload: dict, checkpoints: Path, pieces: int, epsilons: list[float] | None, seeds: list[int]) -> None:
    for eps in epsilons or [None]:
        case = workload if eps is None else {**workload, "epsilon_low": eps, "epsilon_high": eps}
        for seed in seeds:
            started = time.perf_counter()
            ladder = run_ladder(REFERENCE, CANDIDATE, checkpoints, workload=case, seed_offset=seed,
                                engine_options={"inflight_pieces": pieces})
            closing = ladder["closing"]["settings"] if ladder["closing"] else None
            rungs = " | ".join(
                f"{r['index']}:{','.join(r['diverging']) or 'parity'} (clip departure "
                f"{r['metrics']['clip_rate']['departure']:.2f})" for r in ladder["rungs"]
            )
            print(f"eps {case['epsilon_low']:.1e} seed {seed:>3}: closing {closing} · rungs {rungs} · "
                  f"{time.perf_counter() - started:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("positions", "lift", "ladders"))
    parser.add_argument("--pieces", type=int, default=4, help="inflight_pieces (lift, ladders)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="workload overrides, e.g. minibatches=1 batch_size=64 lr=3e-4")
    parser.add_argument("--epsilons", type=float, nargs="+", default=None,
                        help="symmetric ε values (lift: default 3e-4 to 1.5e-2; ladders: the workload's own ε)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 10, 20])
    args = parser.parse_args()
    workload = dict(LADDER_WORKLOAD)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in workload:
            parser.error(f"--set {key}: not a key of the ladder workload ({', '.join(workload)})")
        workload[key] = ast.literal_eval(value)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as directory:
        checkpoints = Path(directory)
        if args.what == "positions":
            positions(workload, checkpoints, seed=1)
        elif args.what == "lift":
            lift(workload, checkpoints, args.pieces, args.epsilons or [3e-4, 1e-3, 3e-3, 5e-3, 1e-2, 1.5e-2])
        else:
            ladders(workload, checkpoints, args.pieces, args.epsilons, args.seeds)


if __name__ == "__main__":
    main()
