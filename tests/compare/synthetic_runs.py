"""Synthetic runs shaped like the demo's: a reference pair, a broken and a fixed candidate.

Every metric is a known curve plus Gaussian noise drawn from the run's own generator, so a
divergence exists exactly where a test plants it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.compare.run_series import RunSeries

N_STEPS = 200
PLANTED_STEP = 40

REFERENCE_SETTINGS = {
    "logprobs_mode": "processed",
    "prefix_caching": "off",
    "async_scheduling": "off",
    "weight_update": "blocking",
    "lm_head_dtype": "fp32",
}
INITIAL_V1_SETTINGS = {
    "logprobs_mode": "raw",
    "prefix_caching": "on",
    "async_scheduling": "on",
    "weight_update": "inflight",
    "lm_head_dtype": "bf16",
}


def workload(seed: int = 1, **changes: Any) -> dict[str, Any]:
    config = {
        "model": "tiny-llama-0.4m",
        "task": "sort4",
        "seed": seed,
        "steps": N_STEPS,
        "batch_size": 64,
        "group_size": 8,
        "max_tokens": 8,
        "lr": 1e-3,
        "temperature": 0.7,
        "top_p": 1.0,
        "objective": "gspo",
        "epsilon_low": 3e-4,
        "epsilon_high": 4e-4,
    }
    config.update(changes)
    return config


def engine(settings: dict[str, str]) -> dict[str, Any]:
    return {"name": "torch", "version": "0.1.0", "settings": dict(settings)}


def curves(
    rng: np.random.Generator,
    *,
    shift_from: int | None = None,
    clip_shift: float = 0.0,
    kl_shift: float = 0.0,
    logprob_offset: float = 0.0,
    abs_diff_scale: float = 1.0,
    lag: float = 0.0,
    n_steps: int = N_STEPS,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """PipelineRL-named metrics; from ``shift_from`` on, clip rate and KL move by the shifts."""
    steps = np.arange(n_steps, dtype=np.int64)
    after = steps >= (n_steps if shift_from is None else shift_from)
    progress = steps / n_steps

    def noisy(mean: np.ndarray, scale: float) -> np.ndarray:
        return mean + rng.normal(0.0, scale, n_steps)

    lag_values = np.where(rng.random(n_steps) < lag, 1.0, 0.0)
    abs_diff = noisy(np.full(n_steps, 1e-4 * abs_diff_scale), 5e-6 * abs_diff_scale)
    return {
        "rl/clamp_log_ratio_new_old_indicator": (
            steps,
            noisy(0.02 + clip_shift * after, 0.003),
        ),
        "rl/kl_new_old": (steps, noisy(1e-3 + kl_shift * after, 1e-4)),
        "rl/entropy": (steps, noisy(1.5 - 0.5 * progress, 0.02)),
        "rl/reward": (steps, noisy(0.2 + 0.6 * progress, 0.03)),
        "parity/logprob_diff_mean": (steps, noisy(np.full(n_steps, logprob_offset), 1e-5)),
        "parity/logprob_abs_diff_mean": (steps, abs_diff + abs(logprob_offset)),
        "parity/logprob_abs_diff_max": (steps, 8 * (abs_diff + abs(logprob_offset))),
        "parity/weight_version_lag": (steps, lag_values),
    }


def demo_runs(seed: int = 0) -> dict[str, RunSeries]:
    """The demo's four runs: ``reference``, ``reference-replica``, ``v1-initial``, ``v1-fixed``."""
    rngs = [np.random.default_rng([seed, index]) for index in range(4)]
    return {
        "reference": RunSeries(
            "reference", "reference", "V0 reference", workload(seed=1),
            engine(REFERENCE_SETTINGS), curves(rngs[0]),
        ),
        "reference-replica": RunSeries(
            "reference-replica", "reference-replica", "V0 reference", workload(seed=2),
            engine(REFERENCE_SETTINGS), curves(rngs[1]),
        ),
        "v1-initial": RunSeries(
            "v1-initial", "v1-initial", "V1 candidate", workload(seed=1),
            engine(INITIAL_V1_SETTINGS),
            curves(
                rngs[2], shift_from=PLANTED_STEP, clip_shift=0.12, kl_shift=8e-3,
                logprob_offset=-0.05, abs_diff_scale=6.0, lag=0.5,
            ),
        ),
        "v1-fixed": RunSeries(
            "v1-fixed", "v1-fixed", "V1 candidate", workload(seed=1),
            engine(REFERENCE_SETTINGS), curves(rngs[3]),
        ),
    }  # fmt: skip
