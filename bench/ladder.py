"""The ladder's attribution at full size: every single-setting case, two-setting cases and the
noise check on the demo workload (60 steps, GSPO's ε), several seeds each. The suite runs the
same checks on a 12-step workload (tests/workers/test_ladder_attribution.py).

    .venv/bin/python bench/ladder.py              # every case, seeds 0 and 100
    .venv/bin/python bench/ladder.py --seeds 0    # one seed
    .venv/bin/python bench/ladder.py --cases noise --seeds 0 100 200   # the noise check, three seeds
    .venv/bin/python bench/ladder.py --cases weight_update --inflight-pieces 4   # a finer in-flight copy

Prints one line per ladder: the closing rung and setting, each rung's diverging metrics, the
ablation's verdicts, and the wall time. Results go in docs/LADDER.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ladder_local import run_ladder  # noqa: E402
from workers.cpu_math import small_model_cpu_math  # noqa: E402
from workers.demo import DEMO_WORKLOAD  # noqa: E402

CASES: list[tuple[str, dict, dict, list[str]]] = [
    ("logprobs_mode", {}, {"logprobs_mode": "raw"}, ["logprobs_mode"]),
    ("prefix_caching", {}, {"prefix_caching": True}, ["prefix_caching"]),
    ("async_scheduling", {}, {"async_scheduling": True}, ["async_scheduling"]),
    ("weight_update (async on)", {"async_scheduling": True},
     {"async_scheduling": True, "weight_update": "inflight"}, ["weight_update"]),
    ("lm_head_dtype", {}, {"lm_head_dtype": "bf16"}, ["lm_head_dtype"]),
    ("logprobs + head", {}, {"logprobs_mode": "raw", "lm_head_dtype": "bf16"}, ["lm_head_dtype"]),
    ("async + inflight", {}, {"async_scheduling": True, "weight_update": "inflight"}, ["async_scheduling"]),
    ("noise (inflight alone)", {}, {"weight_update": "inflight"}, []),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 100])
    parser.add_argument("--steps", type=int, default=DEMO_WORKLOAD["steps"])
    parser.add_argument("--cases", nargs="+", default=None,
                        help="run only the cases whose name contains one of these words")
    parser.add_argument("--inflight-pieces", type=int, default=None,
                        help="the torch engine's inflight_pieces for every leg (engine default: 2)")
    args = parser.parse_args()
    cases = [c for c in CASES if args.cases is None or any(word in c[0] for word in args.cases)]
    if not cases:
        parser.error(f"--cases matches no case; the cases: {', '.join(c[0] for c in CASES)}")
    engine_options = {} if args.inflight_pieces is None else {"inflight_pieces": args.inflight_pieces}
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    workload = {**DEMO_WORKLOAD, "steps": args.steps}
    failures = 0
    with tempfile.TemporaryDirectory() as checkpoints, small_model_cpu_math():
        for name, reference, candidate, expected in cases:
            for seed in args.seeds:
                started = time.perf_counter()
                ladder = run_ladder(reference, candidate, Path(checkpoints), workload=workload, seed_offset=seed,
                                    engine_options=engine_options)
                closing = ladder["closing"]
                got = closing["settings"] if closing else None
                ok = got == expected
                failures += not ok
                rungs = " | ".join(f"{r['index']}:{','.join(r['diverging']) or 'parity'}" for r in ladder["rungs"])
                ablation = ", ".join(f"{a['setting']}={'breaks' if a['breaks_parity'] else 'parity'}"
                                     for a in ladder["ablation"])
                print(f"{'ok ' if ok else 'BAD'} {name:<26} seed {seed:>3}: closing {got} · rungs {rungs} · "
                      f"ablation {ablation} · {time.perf_counter() - started:.1f} s", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
