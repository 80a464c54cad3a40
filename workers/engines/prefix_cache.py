"""A block-granular prompt prefix cache, as vLLM's automatic prefix caching keeps one.

Keys and values are stored per block of ``block_size`` prompt tokens, each block keyed by the
whole token prefix up to its end (a block's keys and values depend on everything before it). A
lookup returns the longest run of cached blocks. Blocks remember the weight version that computed
them, but nothing here compares versions: a cache that is not cleared when weights change keeps
serving the old keys and values, which is exactly the inference-path mismatch under study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from workers.engines.llama_forward import LayerKV

__all__ = ["PrefixCache"]


@dataclass(frozen=True)
class _Block:
    layers: tuple[LayerKV, ...]  # per layer: keys and values [heads, block_size, head_dim]
    version: int


class PrefixCache:
    def __init__(self, block_size: int) -> None:
        if block_size < 1:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self._blocks: dict[tuple[int, ...], _Block] = {}
        self.hit_tokens = 0
        self.queried_tokens = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def clear(self) -> None:
        self._blocks.clear()

    def versions(self) -> list[int]:
        return [block.version for block in self._blocks.values()]

    def lookup(self, prompt: Sequence[int]) -> tuple[int, list[LayerKV] | None]:
        """Cached length and per-layer keys/values [heads, length, head_dim] for ``prompt``.

        The last prompt token is never served from the cache: its hidden state is needed for
        the first sampled token, so at least one position is always computed.
        """
        prompt = tuple(prompt)
        usable = ((len(prompt) - 1) // self.block_size) * self.block_size
        found: list[_Block] = []
        for end in range(self.block_size, usable + 1, self.block_size):
            block = self._blocks.get(prompt[:end])
            if block is None:
                break
            found.append(block)
        self.queried_tokens += len(prompt)
        if not found:
            return 0, None
        length = len(found) * self.block_size
        self.hit_tokens += length
        layers = [
            (
                torch.cat([block.layers[i][0] for block in found], dim=1),
                torch.cat([block.layers[i][1] for block in found], dim=1),
            )
            for i in range(len(found[0].layers))
        ]
        return length, layers

    def insert(self, prompt: Sequence[int], layers: Sequence[LayerKV], version: int) -> None:
        """Store the full blocks of one prompt's keys/values [heads, positions, head_dim]."""
        prompt = tuple(prompt)
        computed = layers[0][0].shape[1]
        for end in range(self.block_size, computed + 1, self.block_size):
            key = prompt[:end]
            if key in self._blocks:
                continue
            start = end - self.block_size
            self._blocks[key] = _Block(
                tuple((k[:, start:end].clone(), v[:, start:end].clone()) for k, v in layers),
                version,
            )
