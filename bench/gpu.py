"""The torch engine and trainer on one GPU: the paired demo job and the single-setting ablation at
the 15M-parameter size, where the bf16 head alone clearly lifts GSPO's clip rate.

    .venv/bin/python bench/gpu.py [--demo-steps 60] [--ablation-steps 30] [--model llama-15m]

It refuses to run without a CUDA device and says why. It prints the same tables as
``bench/worker.py demo`` and ``ablation`` (docs/WORKERS.md), then the total time; on one
current GPU it is meant to finish in well under five minutes. The warm start is built on the CPU
(as every host builds it, so the checkpoint is the same everywhere) and cached under
``--checkpoint-dir``; the RL legs run on ``cuda``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker import ABLATION, REFERENCE, leg_table, spread_table  # noqa: E402

from workers.demo import DEMO_LEGS, DEMO_WORKLOAD  # noqa: E402
from workers.engines.base import EngineSettings  # noqa: E402
from workers.leg import run_leg  # noqa: E402
from workers.warm_start import warm_started_checkpoint  # noqa: E402
from workers.workload import Workload  # noqa: E402

BUDGET_SECONDS = 300


def why_no_gpu() -> str | None:
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support; install a CUDA build of torch"
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device "
                "(no GPU on this host, CUDA_VISIBLE_DEVICES hides it, or the driver is missing)")
    return None


def run(label_settings: dict[str, tuple[EngineSettings, int]], workload: dict, checkpoint_dir: Path):
    results = {}
    for label, (settings, seed) in label_settings.items():
        torch.cuda.synchronize()
        cpu = time.process_time()
        result = run_leg(workload, settings, seed, checkpoint_dir=checkpoint_dir, device="cuda")
        torch.cuda.synchronize()
        results[label] = (result.metrics, result.seconds, time.process_time() - cpu)
        print(f"  {label}: {len(result.metrics)} steps in {result.seconds:.1f} s", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-15m")
    parser.add_argument("--demo-steps", type=int, default=DEMO_WORKLOAD["steps"])
    parser.add_argument("--ablation-steps", type=int, default=30)
    parser.add_argument("--checkpoint-dir", type=Path, default=Path(tempfile.gettempdir()) / "parityscope-bench-gpu")
    args = parser.parse_args()
    reason = why_no_gpu()
    if reason is not None:
        print(f"bench/gpu.py needs a GPU: {reason}.", file=sys.stderr)
        return 2
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    started = time.perf_counter()
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}; model {args.model}")

    workload = {**DEMO_WORKLOAD, "model": args.model}
    warm = time.perf_counter()
    warm_started_checkpoint(Workload.from_dict(workload), args.checkpoint_dir)
    print(f"warm start (CPU, cached): {time.perf_counter() - warm:.1f} s", flush=True)

    print(f"\ndemo: {args.demo_steps} steps per leg on cuda", flush=True)
    demo = run({leg.label: (leg.settings, leg.sampling_seed) for leg in DEMO_LEGS},
               {**workload, "steps": args.demo_steps}, args.checkpoint_dir)
    leg_table(demo)
    spread_table({label: metrics for label, (metrics, _, _) in demo.items()})

    print(f"\nablation: {args.ablation_steps} steps, reference sampling seed, on cuda", flush=True)
    seed = DEMO_LEGS[0].sampling_seed
    ablation = run({label: (EngineSettings.from_dict({**REFERENCE.to_dict(), **change}), seed)
                    for label, change in ABLATION.items()},
                   {**workload, "steps": args.ablation_steps}, args.checkpoint_dir)
    leg_table(ablation)

    total = time.perf_counter() - started
    print(f"\ntotal {total:.1f} s wall" + ("" if total < BUDGET_SECONDS else f" (over the {BUDGET_SECONDS} s budget)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
