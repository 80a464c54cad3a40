"""Sampling and the two meanings of a "logprob".

The engine always samples from the processed distribution: logits divided by the temperature,
then top-k and top-p filtering. What it *reports* is the setting: ``processed`` logprobs are taken
from that same distribution (vLLM V0's sampler, and what an RL trainer assumes), ``raw`` logprobs
from the untouched model output (vLLM V1's default). They are two different computations; at
temperature 1 with no filtering they coincide bit for bit.
"""

from __future__ import annotations

import torch

from workers.engines.base import SamplingSettings

__all__ = ["processed_logits", "sample"]


def processed_logits(logits: torch.Tensor, sampling: SamplingSettings) -> torch.Tensor:
    """Temperature, then top-k, then top-p, as vLLM applies them; filtered entries become -inf."""
    scaled = logits / sampling.temperature
    if sampling.top_k and sampling.top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, sampling.top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(scaled, dim=-1, descending=True)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        # Keep each token whose preceding mass is still below top_p, so the token that crosses
        # the threshold stays in the nucleus and the most likely token always survives.
        drop_sorted = (cumulative - ordered.softmax(dim=-1)) >= sampling.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    return scaled


def sample(
    logits: torch.Tensor,
    sampling: SamplingSettings,
    generator: torch.Generator,
    logprobs_mode: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row of fp32 ``logits``; return the tokens and their logprobs."""
    processed = processed_logits(logits, sampling)
    processed_logprobs = processed.log_softmax(dim=-1)
    tokens = torch.multinomial(processed_logprobs.exp(), 1, generator=generator).squeeze(-1)
    if logprobs_mode == "processed":
        reported = processed_logprobs
    elif logprobs_mode == "raw":
        reported = logits.log_softmax(dim=-1)
    else:
        raise ValueError(f"logprobs_mode must be raw or processed, got {logprobs_mode!r}")
    return tokens, reported.gather(-1, tokens[:, None]).squeeze(-1)
