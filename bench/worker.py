"""Speed and outcome of the torch-engine worker on the demo workload.

    .venv/bin/python bench/worker.py speed     [--repeats 20] [--threads 1]
    .venv/bin/python bench/worker.py demo      [--steps 60]  [--threads 1]
    .venv/bin/python bench/worker.py ablation  [--steps 30]  [--threads 1]
    .venv/bin/python bench/worker.py sizes     [--steps 5]   [--threads 1]

``speed``: tokens/s of the torch engine sampling one demo batch (16 prompts × 4 samples, up to 5
tokens each) with the reference settings and with v1-initial's, next to transformers'
``generate()`` on the same model and batch (sampling, with scores to read the logprobs from) as
the baseline; trainer steps/s of ``Trainer.step`` on one demo batch, next to one plain supervised
forward/backward/AdamW step on the same tokens. Medians over ``--repeats``, wall and CPU time.

``demo``: the four demo legs from a fresh warm start in a temporary directory, as
``parityscope demo`` runs them, with per-leg means and the total time including the warm start.

``ablation``: the reference settings with one mechanism switched on at a time, then all of them
(v1-initial), each on the reference's sampling seed, so each row shows one mechanism's own effect.

``sizes``: for each policy size, the bf16 head alone against an fp32 trainer with one minibatch
(so the reference is exact and everything measured is the head): per-token |Δ| on lag-0 tokens,
the GSPO clip rate at the demo's ε, and seconds per RL step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workers.cpu_math import small_model_cpu_math  # noqa: E402
from workers.demo import DEMO_LEGS, DEMO_WORKLOAD  # noqa: E402
from workers.engines.base import EngineSettings, SamplingSettings  # noqa: E402
from workers.engines.torch_engine import TorchEngine  # noqa: E402
from workers.leg import run_leg  # noqa: E402
from workers.policy import load_policy  # noqa: E402
from workers.rollouts import RolloutBatch  # noqa: E402
from workers.task import EOS, PAD, get_task  # noqa: E402
from workers.trainer import Trainer  # noqa: E402
from workers.warm_start import warm_started_checkpoint  # noqa: E402
from workers.workload import Workload, task_for  # noqa: E402

REFERENCE = DEMO_LEGS[0].settings
V1_INITIAL = next(leg.settings for leg in DEMO_LEGS if leg.label == "v1-initial")


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def speed(repeats: int, checkpoint_dir: Path) -> None:
    workload = Workload.from_dict(DEMO_WORKLOAD)
    checkpoint = warm_started_checkpoint(workload, checkpoint_dir)
    task = task_for(workload)
    prompts = [p for p in task.rl_prompts(workload.seed, 0, workload.batch_size) for _ in range(workload.group_size)]
    sampling = SamplingSettings(workload.temperature, workload.top_p, workload.top_k, workload.max_tokens, EOS)

    rows = []
    for label, settings in (("torch engine, reference settings", REFERENCE),
                            ("torch engine, v1-initial settings", V1_INITIAL)):
        engine = TorchEngine.from_checkpoint(checkpoint, settings, sampling_seed=1)
        completions = engine.generate(prompts, sampling)
        tokens = sum(len(c.tokens) for c in completions)

        def one_batch(engine=engine, settings=settings):
            if settings.async_scheduling:
                # Keep the measured batch whole: an async engine starts it at submit.
                engine.submit(prompts, sampling)
                return engine.collect()
            return engine.generate(prompts, sampling)

        wall, cpu = timed(one_batch, repeats)
        rows.append((label, wall, cpu, tokens / wall))

    model = load_policy(checkpoint)
    ids = torch.tensor(prompts)
    generator_config = transformers.GenerationConfig(
        do_sample=True, temperature=workload.temperature, top_k=0, top_p=1.0, max_new_tokens=workload.max_tokens,
        eos_token_id=EOS, pad_token_id=PAD, output_scores=True, return_dict_in_generate=True,
    )

    def hf_generate():
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=generator_config)
            scores = torch.stack(out.scores, 1).log_softmax(-1)
            return scores.gather(-1, out.sequences[:, ids.shape[1]:, None])

    hf_tokens = hf_generate().numel()
    wall, cpu = timed(hf_generate, repeats)
    rows.append(("baseline: transformers generate()", wall, cpu, hf_tokens / wall))
    baseline = rows[-1][3]
    print(f"\nengine: one batch of {len(prompts)} sequences")
    baseline_cpu = rows[-1][2]
    print("| path | wall ms | CPU ms | tokens/s (wall) | ratio to baseline, wall | ratio, CPU |")
    print("|---|---|---|---|---|---|")
    for label, wall, cpu, rate in rows:
        print(f"| {label} | {wall * 1e3:.1f} | {cpu * 1e3:.1f} | {rate:,.0f} | {rate / baseline:.2f} | {baseline_cpu / cpu:.2f} |")

    engine = TorchEngine.from_checkpoint(checkpoint, REFERENCE, sampling_seed=1)
    completions = engine.generate(prompts, sampling)
    batch = RolloutBatch.from_completions(
        completions, [task.reward(c.prompt, c.tokens) for c in completions], workload.group_size, PAD
    )
    trainer = Trainer(load_policy(checkpoint), objective=workload.objective, epsilon_low=workload.epsilon_low,
                      epsilon_high=workload.epsilon_high, temperature=workload.temperature, lr=workload.lr,
                      minibatches=workload.minibatches)
    t_wall, t_cpu = timed(lambda: trainer.step(batch), repeats)

    plain = load_policy(checkpoint).train()
    optimizer = torch.optim.AdamW(plain.parameters(), lr=workload.lr, weight_decay=0.0)

    def supervised_step():
        logits = plain(input_ids=batch.input_ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.input_ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    b_wall, b_cpu = timed(supervised_step, repeats)
    print(f"\ntrainer: one step on {batch.size} sequences, {workload.minibatches} minibatches")
    print("| path | wall ms | CPU ms | steps/s (wall) | ratio to baseline, wall | ratio, CPU |")
    print("|---|---|---|---|---|---|")
    print(f"| Trainer.step ({workload.objective}) | {t_wall * 1e3:.1f} | {t_cpu * 1e3:.1f} | {1 / t_wall:.1f} "
          f"| {b_wall / t_wall:.2f} | {b_cpu / t_cpu:.2f} |")
    print(f"| baseline: one supervised step | {b_wall * 1e3:.1f} | {b_cpu * 1e3:.1f} | {1 / b_wall:.1f} | 1.00 | 1.00 |")


def leg_table(results: dict[str, tuple[list[dict[str, float]], float, float]]) -> None:
    print("| leg | wall s | CPU s | clip rate | KL (k3) | mean abs Δ | entropy | reward, first 10 steps | reward, last 10 steps | parity diff mean | parity abs diff mean | version lag |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, (metrics, seconds, cpu) in results.items():
        def mean(key: str, window: slice = slice(None), metrics=metrics) -> float:
            values = [m[key] for m in metrics[window]]
            return sum(values) / len(values)

        window = min(10, len(metrics))
        print(
            f"| {label} | {seconds:.1f} | {cpu:.1f} | {mean('clamp_log_ratio_new_old_indicator'):.3f} | {mean('kl_new_old'):.2e} "
            f"| {mean('mean_abs_log_ratio_new_old'):.2e} | {mean('entropy'):.3f} "
            f"| {mean('reward', slice(0, window)):.3f} | {mean('reward', slice(-window, None)):.3f} "
            f"| {mean('parity/logprob_diff_mean'):+.2e} | {mean('parity/logprob_abs_diff_mean'):.2e} "
            f"| {mean('parity/weight_version_lag'):.2f} |"
        )


def demo(steps: int, threads: int | None, device: str = "cpu") -> None:
    workload = {**DEMO_WORKLOAD, "steps": steps}
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as fresh:
        warm_started_checkpoint(Workload.from_dict(workload), Path(fresh))
        warm = time.perf_counter() - started
        results = {}
        for leg in DEMO_LEGS:
            cpu = time.process_time()
            result = run_leg(workload, leg.settings, leg.sampling_seed, checkpoint_dir=Path(fresh), torch_threads=threads,
                             device=device)
            results[leg.label] = (result.metrics, result.seconds, time.process_time() - cpu)
    total = time.perf_counter() - started
    cpu_total = time.process_time() - cpu_started
    print(f"\ndemo: {steps} steps per leg; warm start {warm:.1f} s; total {total:.1f} s wall, "
          f"{cpu_total:.1f} s CPU, including the warm start")
    leg_table(results)
    spread_table({label: metrics for label, (metrics, _, _) in results.items()})


def spread_table(legs: dict[str, list[dict[str, float]]]) -> None:
    """Each candidate's mean per-step distance from the reference pair's midpoint, over the
    pair's own mean per-step distance: about 0.9 for another replica, far above 1 for a mismatch."""
    keys = ("clamp_log_ratio_new_old_indicator", "kl_new_old", "mean_abs_log_ratio_new_old", "entropy", "reward")
    reference, replica = legs["reference"], legs["reference-replica"]
    print("\n| leg | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for label in ("v1-initial", "v1-fixed"):
        ratios = []
        for key in keys:
            spread = statistics.fmean(abs(a[key] - b[key]) for a, b in zip(reference, replica, strict=True))
            distance = statistics.fmean(
                abs(c[key] - (a[key] + b[key]) / 2) for a, b, c in zip(reference, replica, legs[label], strict=True)
            )
            ratios.append(distance / spread)
        print(f"| {label} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")


# One mechanism at a time on the reference's settings (docs/WORKERS.md, "One mechanism at a time").
ABLATION: dict[str, dict[str, object]] = {
    "reference": {},
    "+ raw logprobs": {"logprobs_mode": "raw"},
    "+ bf16 head": {"lm_head_dtype": "bf16"},
    "+ prefix caching": {"prefix_caching": True},
    "+ async scheduling": {"async_scheduling": True},
    "+ in-flight update": {"weight_update": "inflight"},
    "+ async + in-flight": {"async_scheduling": True, "weight_update": "inflight"},
    "v1-initial (all)": V1_INITIAL.to_dict(),
}


def ablation(steps: int, threads: int | None, checkpoint_dir: Path, device: str = "cpu") -> None:
    workload = {**DEMO_WORKLOAD, "steps": steps}
    results = {}
    for label, change in ABLATION.items():
        settings = EngineSettings.from_dict({**REFERENCE.to_dict(), **change})
        cpu = time.process_time()
        result = run_leg(workload, settings, DEMO_LEGS[0].sampling_seed, checkpoint_dir=checkpoint_dir, torch_threads=threads,
                         device=device)
        results[label] = (result.metrics, result.seconds, time.process_time() - cpu)
    print(f"\nablation: {steps} steps, reference sampling seed")
    leg_table(results)


def sizes(steps: int, threads: int | None, checkpoint_dir: Path) -> None:
    from workers.policy import POLICY_SIZES

    print(f"\nsizes: bf16 head alone, {steps} steps, one minibatch, ε = {DEMO_WORKLOAD['epsilon_low']}/{DEMO_WORKLOAD['epsilon_high']}")
    print("| model | parameters | hidden | vocab | per-token abs Δ (bf16 head) | clip rate (bf16 head) | clip rate (fp32 head) "
          "| abs Δ, bf16 output (teacher-forced) | abs Δ, bf16 operands only | CPU s per RL step |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, config in POLICY_SIZES.items():
        workload = {**DEMO_WORKLOAD, "model": name, "steps": steps, "minibatches": 1}
        fp32 = run_leg(workload, REFERENCE, 1, checkpoint_dir=checkpoint_dir, torch_threads=threads)
        cpu = time.process_time()
        bf16 = run_leg(workload, EngineSettings(lm_head_dtype="bf16"), 1, checkpoint_dir=checkpoint_dir, torch_threads=threads)
        cpu = time.process_time() - cpu
        parameters = sum(p.numel() for p in load_policy(Path(bf16.checkpoint)).parameters())

        def mean(result, key):
            return sum(m[key] for m in result.metrics) / len(result.metrics)

        rounded_output, rounded_operands = head_rounding(Path(bf16.checkpoint), workload)
        print(f"| {name} | {parameters:,} | {config.hidden_size} | {config.vocab_size} "
              f"| {mean(bf16, 'parity/logprob_abs_diff_mean'):.1e} | {mean(bf16, 'clamp_log_ratio_new_old_indicator'):.2f} "
              f"| {mean(fp32, 'clamp_log_ratio_new_old_indicator'):.2f} | {rounded_output:.1e} | {rounded_operands:.1e} "
              f"| {cpu / steps:.3f} |")


def head_rounding(checkpoint: Path, workload: dict) -> tuple[float, float]:
    """Mean |Δ logprob| against an fp32 head on 64 teacher-forced answers, for a head whose
    output is rounded to bf16 (what a bf16 engine returns) and for one that rounds only its
    operands and keeps an fp32 output."""
    model = load_policy(checkpoint)
    task = get_task(workload["task"])
    prompts = task.rl_prompts(workload["seed"], 0, 64)
    ids = torch.tensor([(*p, *task.target(p)) for p in prompts])
    start = task.prompt_length
    with torch.no_grad():
        hidden = model.model(input_ids=ids[:, :-1]).last_hidden_state[:, start - 1 :]
        weight = model.lm_head.weight
        targets = ids[:, start:, None]

        def logprobs(logits: torch.Tensor) -> torch.Tensor:
            return (logits / workload["temperature"]).log_softmax(-1).gather(-1, targets).squeeze(-1)

        exact = logprobs(hidden @ weight.T)
        output = logprobs((hidden.bfloat16() @ weight.bfloat16().T).float())
        operands = logprobs(hidden.bfloat16().float() @ weight.bfloat16().float().T)
    return float((output - exact).abs().mean()), float((operands - exact).abs().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("speed", "demo", "ablation", "sizes"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch's default")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path(tempfile.gettempdir()) / "parityscope-bench")
    parser.add_argument("--device", default="cpu", help="demo and ablation: cpu or cuda (see bench/gpu.py)")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    threads = args.threads or None
    print(f"torch {torch.__version__}, {threads or torch.get_num_threads()} intra-op thread(s)")
    if args.what == "speed":
        with small_model_cpu_math(threads):
            speed(args.repeats, args.checkpoint_dir)
    elif args.what == "demo":
        demo(args.steps or DEMO_WORKLOAD["steps"], threads, args.device)
    elif args.what == "ablation":
        ablation(args.steps or 30, threads, args.checkpoint_dir, args.device)
    else:
        sizes(args.steps or 5, threads, args.checkpoint_dir)


if __name__ == "__main__":
    main()
