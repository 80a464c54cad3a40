"""Per-step parity metrics with a chosen offset, spread and staleness."""

from __future__ import annotations

import numpy as np


def parity_series(
    seed: int,
    *,
    offset: float = 0.0,
    abs_diff: float = 1e-4,
    lag_share: float = 0.0,
    stale_factor: float = 1.0,
    n_steps: int = 100,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    steps = np.arange(n_steps, dtype=np.int64)
    lag = (rng.random(n_steps) < lag_share).astype(np.float64)
    absolute = (
        abs_diff * (1 + 0.05 * rng.normal(size=n_steps)) * np.where(lag > 0, stale_factor, 1.0)
    )
    return {
        "logprob_diff_mean": (steps, offset + 0.02 * abs_diff * rng.normal(size=n_steps)),
        "logprob_abs_diff_mean": (steps, absolute + abs(offset)),
        "logprob_abs_diff_max": (steps, 10 * (absolute + abs(offset))),
        "weight_version_lag": (steps, lag),
    }
