"""How a worker sets up torch's CPU math for policies this small.

Two process-wide switches, both measured on a 2-core machine (docs/WORKERS.md):

- one intra-op thread: a 0.4M-parameter model's matmuls are too small to split, and with other
  processes on the cores, spinning OpenMP threads made a leg up to 10× slower. Parallelism comes
  from running legs in separate processes instead.
- flushing subnormal floats to zero: attention and softmax over a tiny vocabulary produce
  subnormal activations, which CPU kernels handle ~20× slower; values below 1e-38 carry nothing
  a logprob can see.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["small_model_cpu_math"]


@contextmanager
def small_model_cpu_math(threads: int | None = 1) -> Iterator[None]:
    """Use ``threads`` intra-op threads (None leaves torch's choice) inside the block.

    The thread count is restored on exit; subnormal flushing stays on, as torch has no getter to
    restore it from and no computation here depends on subnormals.
    """
    torch.set_flush_denormal(True)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
