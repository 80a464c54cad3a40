"""The final projection from hidden states to logits, in the dtype a backend runs it in.

Trainer and engines share this one function so that "fp32 head" means the same computation on
both sides, and "bf16 head" means what a bf16 engine does: operands rounded to bfloat16, the
matmul's output rounded to bfloat16, and only then widened to fp32 for the softmax.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["HEAD_DTYPES", "project_logits"]

HEAD_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}


def project_logits(
    hidden: torch.Tensor, weight: torch.Tensor, dtype: Literal["fp32", "bf16"] = "fp32"
) -> torch.Tensor:
    """``hidden @ weight.T`` computed in ``dtype``; the result is always fp32."""
    try:
        compute = HEAD_DTYPES[dtype]
    except KeyError:
        raise ValueError(f"lm_head dtype must be one of {', '.join(HEAD_DTYPES)}, got {dtype!r}") from None
    return (hidden.to(compute) @ weight.to(compute).T).to(torch.float32)
