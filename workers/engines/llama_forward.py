"""The torch engine's own Llama forward pass with an explicit key/value cache.

Inference engines do not run the trainer's modelling code: vLLM has its own implementation of
each architecture, numerically close to the trainer's but computed differently (incremental
decoding against a cache instead of one pass over the whole sequence). This module plays that part
for the torch engine. It reads the weights of a Hugging Face Llama state dict, keeps them grouped
in *units* (embedding, each decoder layer, the head) so that a weight update can land unit by
unit, and exposes the keys and values it computes so the engine can cache, share and reuse them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import LlamaConfig

__all__ = ["LayerKV", "LlamaForward", "unit_names"]

LayerKV = tuple[torch.Tensor, torch.Tensor]  # keys and values, [batch, heads, positions, head_dim]


def unit_names(num_layers: int) -> list[str]:
    """The units a weight update is made of, in state-dict order."""
    return ["embed", *(f"layer.{i}" for i in range(num_layers)), "head"]


def _unit_of(name: str) -> str:
    if name.startswith("model.embed_tokens."):
        return "embed"
    if name.startswith("model.layers."):
        return "layer." + name.split(".")[2]
    if name.startswith(("model.norm.", "lm_head.")):
        return "head"
    raise KeyError(f"unexpected parameter {name!r} in a Llama state dict")


@dataclass
class _Unit:
    tensors: dict[str, torch.Tensor]
    version: int


class LlamaForward:
    """Llama inference over versioned weight units."""

    def __init__(
        self, config: LlamaConfig, weights: Mapping[str, torch.Tensor], version: int = 0,
        device: torch.device | str = "cpu",
    ):
        self.config = config
        self.device = torch.device(device)
        self.num_layers = config.num_hidden_layers
        self.num_heads = config.num_attention_heads
        if config.num_key_value_heads != self.num_heads:
            raise ValueError("the torch engine's Llama forward supports only multi-head attention")
        self.head_dim = config.hidden_size // self.num_heads
        self.eps = config.rms_norm_eps
        self._units: dict[str, _Unit] = {name: _Unit({}, version) for name in unit_names(self.num_layers)}
        self.load(weights, version)
        positions = torch.arange(config.max_position_embeddings, dtype=torch.float32)
        inv_freq = 1.0 / (
            config.rope_parameters["rope_theta"]
            ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        )
        angles = torch.outer(positions, inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self._cos, self._sin = angles.cos().to(self.device), angles.sin().to(self.device)

    # -- weights --------------------------------------------------------------------------
    def load(self, weights: Mapping[str, torch.Tensor], version: int, units: list[str] | None = None) -> None:
        """Copy the named units (all when None) from a state dict and stamp them with ``version``."""
        wanted = set(units) if units is not None else set(self._units)
        staged: dict[str, dict[str, torch.Tensor]] = {name: {} for name in wanted}
        for name, tensor in weights.items():
            if name.endswith("rotary_emb.inv_freq"):
                continue
            unit = _unit_of(name)
            if unit in wanted:
                staged[unit][name] = tensor.detach().to(self.device, torch.float32, copy=True)
        for unit, tensors in staged.items():
            if not tensors:
                raise KeyError(f"state dict has no weights for unit {unit!r}")
            self._units[unit] = _Unit(tensors, version)

    @property
    def version(self) -> int:
        """The oldest unit's version: a half-updated model is not yet the new model."""
        return min(unit.version for unit in self._units.values())

    def lm_head_weight(self) -> torch.Tensor:
        return self._units["head"].tensors["lm_head.weight"]

    # -- forward --------------------------------------------------------------------------
    def forward(
        self, tokens: torch.Tensor, start: int, past: list[LayerKV] | None
    ) -> tuple[torch.Tensor, list[LayerKV]]:
        """Run ``tokens`` [batch, new] at positions ``start..`` against ``past`` keys/values.

        Returns the final-normed hidden states [batch, new, hidden] and, per layer, the keys and
        values of the *new* positions only, so the caller decides what to keep.
        """
        batch, new = tokens.shape
        if past is not None and past[0][0].shape[2] != start:
            raise ValueError("past keys/values do not end where the new tokens start")
        embed = self._units["embed"].tensors["model.embed_tokens.weight"]
        x = F.embedding(tokens, embed)
        cos = self._cos[start : start + new]
        sin = self._sin[start : start + new]
        fresh: list[LayerKV] = []
        for i in range(self.num_layers):
            w = self._units[f"layer.{i}"].tensors
            p = f"model.layers.{i}."
            h = self._rms_norm(x, w[p + "input_layernorm.weight"])
            q = self._heads(h @ w[p + "self_attn.q_proj.weight"].T, batch, new)
            k = self._heads(h @ w[p + "self_attn.k_proj.weight"].T, batch, new)
            v = self._heads(h @ w[p + "self_attn.v_proj.weight"].T, batch, new)
            q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
            fresh.append((k, v))
            if past is not None:
                k = torch.cat((past[i][0], k), dim=2)
                v = torch.cat((past[i][1], v), dim=2)
            attended = self._attend(q, k, v, start)
            attended = attended.transpose(1, 2).reshape(batch, new, -1)
            x = x + attended @ w[p + "self_attn.o_proj.weight"].T
            h = self._rms_norm(x, w[p + "post_attention_layernorm.weight"])
            gate = F.silu(h @ w[p + "mlp.gate_proj.weight"].T)
            x = x + (gate * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        hidden = self._rms_norm(x, self._units["head"].tensors["model.norm.weight"])
        return hidden, fresh

    def _heads(self, projected: torch.Tensor, batch: int, new: int) -> torch.Tensor:
        return projected.view(batch, new, self.num_heads, self.head_dim).transpose(1, 2)

    def _rms_norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(variance + self.eps))

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    @staticmethod
    def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
        new, total = q.shape[2], k.shape[2]
        # Query j sits at position start + j and may see keys up to that position.
        allowed = torch.arange(total, device=q.device)[None, :] <= (start + torch.arange(new, device=q.device))[:, None]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
