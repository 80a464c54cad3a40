"""False-alarm rate and detection delay of the divergence rule (backend/compare/divergence.py).

    .venv/bin/python bench/divergence.py [--pairs 400] [--seed 0]

False alarms: for every kind of noise, run length and replica count below, ``--pairs`` noise-only
pairs, each a fresh reference (its replicas) and a fresh candidate drawn from the same process;
a pair is a false alarm when ``first_divergence`` marks the candidate. Noise kinds: Gaussian,
heavy-tailed (Student t with 3 degrees of freedom, as clip-rate and KL spikes are), and
autocorrelated (AR(1) with φ = 0.5, as curves of a slowly moving policy are), each on a slow
trend. Detection: a shift planted at step n/2, intermittent (each step after it lands outside
the band with probability q, 3 band half-widths out) or gradual (the mean climbs by one noise
σ every 10 steps), and the delay from the planted step to the marker's step and to the alarm.

The figures go in docs/COMPARE.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.compare.band import reference_band  # noqa: E402
from backend.compare.divergence import first_divergence  # noqa: E402

LENGTHS = (60, 200, 1000, 10000)
REPLICAS = (1, 2, 3)
KINDS = ("gaussian", "student-t3", "ar1-0.5")


def noise(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind == "gaussian":
        return rng.normal(size=n)
    if kind == "student-t3":
        return rng.standard_t(3, size=n) / np.sqrt(3.0)
    values = np.empty(n)
    innovations = rng.normal(size=n) * np.sqrt(1 - 0.25)
    values[0] = rng.normal()
    for i in range(1, n):
        values[i] = 0.5 * values[i - 1] + innovations[i]
    return values


def run(rng: np.random.Generator, kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    steps = np.arange(n)
    return steps, np.sin(steps / max(n / 6, 10)) + noise(rng, kind, n)


def false_alarms(pairs: int, seed: int) -> tuple[int, int]:
    print("| noise | steps | replicas | pairs | false alarms | rate |")
    print("|---|---|---|---|---|---|")
    total = alarms_total = 0
    for kind in KINDS:
        for n in LENGTHS:
            for replicas in REPLICAS:
                rng = np.random.default_rng([seed, KINDS.index(kind), n, replicas])
                count = pairs if n <= 1000 else max(pairs // 4, 50)
                alarms = 0
                for _ in range(count):
                    band = reference_band([run(rng, kind, n) for _ in range(replicas)])
                    alarms += first_divergence(band, run(rng, kind, n)).first_divergence_step is not None
                total += count
                alarms_total += alarms
                print(f"| {kind} | {n} | {replicas} | {count} | {alarms} | {alarms / count:.2%} |")
    print(f"\nall noise-only pairs: {alarms_total} false alarms in {total} pairs = {alarms_total / total:.2%}")
    return alarms_total, total


def detection(pairs: int, seed: int) -> None:
    n, planted = 200, 100
    print("\n| planted shift (n = 200, at step 100, 2 replicas) | found | median marker step − planted | 95th pct. | median alarm delay |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng([seed, 99])
    cases = [("intermittent q = 0.75", 0.75), ("intermittent q = 0.5", 0.5), ("intermittent q = 0.3", 0.3),
             ("gradual, +1σ per 10 steps", None)]
    for label, q in cases:
        found, offsets, delays = 0, [], []
        for _ in range(pairs // 4):
            band = reference_band([run(rng, "gaussian", n) for _ in range(2)])
            steps, values = run(rng, "gaussian", n)
            after = steps >= planted
            if q is None:
                values = values + np.where(after, (steps - planted) / 10.0, 0.0)
            else:
                hit = after & (rng.random(n) < q)
                values = np.where(hit, band.center + 4.0 * band.half_width, values)
            result = first_divergence(band, (steps, values))
            if result.first_divergence_step is not None:
                found += 1
                offsets.append(result.first_divergence_step - planted)
                delays.append(_alarm_step(band, steps, values) - planted)
        print(f"| {label} | {found}/{pairs // 4} | {np.median(offsets):.0f} | {np.percentile(offsets, 95):.0f} "
              f"| {np.median(delays):.0f} |")


def _alarm_step(band, steps, values) -> int:
    """The first step by which the marker is raised: the shortest prefix that diverges."""
    low, high = 1, steps.size
    while low < high:
        middle = (low + high) // 2
        if first_divergence(band, (steps[:middle], values[:middle])).first_divergence_step is None:
            low = middle + 1
        else:
            high = middle
    return int(steps[low - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    false_alarms(args.pairs, args.seed)
    detection(args.pairs, args.seed)


if __name__ == "__main__":
    main()
