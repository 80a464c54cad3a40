"""The tiny policy: a Hugging Face Llama causal LM, random-initialised from a fixed seed.

It is a real transformers model saved with ``save_pretrained``, so the same checkpoint directory
loads in the trainer, in the built-in torch engine and, on a GPU host, in vLLM. The sizes come from
DESIGN.md §6: a bf16 head only moves logprobs by more than GSPO's ε once the model has enough
width, so the size is part of the experiment, not a detail.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from workers.errors import InvalidWorkload
from workers.task import VOCAB

__all__ = [
    "POLICY_SIZES",
    "PolicyConfig",
    "build_policy",
    "load_policy",
    "policy_config",
    "save_policy",
]


@dataclass(frozen=True)
class PolicyConfig:
    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    vocab_size: int
    # Room for a 64-token instruction (two vLLM prefix blocks and more) plus the answer.
    max_positions: int = 128
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        if self.vocab_size < len(VOCAB):
            # The task's tokens must exist in the embedding; spare ids stay unused, as the
            # reserved tokens of a production vocabulary do.
            raise ValueError(f"vocab_size must be at least {len(VOCAB)}")

    def to_hf(self) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_heads,
            max_position_embeddings=self.max_positions,
            rope_theta=self.rope_theta,
            rms_norm_eps=self.rms_norm_eps,
            # An untied head keeps the lm_head a separate weight, so an engine can run it in
            # another dtype without touching the embedding.
            tie_word_embeddings=False,
            bos_token_id=VOCAB.index("<bos>"),
            eos_token_id=VOCAB.index("<eos>"),
            pad_token_id=VOCAB.index("<pad>"),
            attention_bias=False,
            mlp_bias=False,
            torch_dtype="float32",
        )


POLICY_SIZES: dict[str, PolicyConfig] = {
    config.name: config
    for config in (
        PolicyConfig("llama-84k", hidden_size=64, intermediate_size=128, num_layers=2,
                     num_heads=4, vocab_size=32),
        PolicyConfig("llama-0.4m", hidden_size=128, intermediate_size=256, num_layers=2,
                     num_heads=4, vocab_size=256),
        PolicyConfig("llama-15m", hidden_size=512, intermediate_size=1536, num_layers=3,
                     num_heads=8, vocab_size=4096),
    )
}


def policy_config(name: str) -> PolicyConfig:
    try:
        return POLICY_SIZES[name]
    except KeyError:
        known = ", ".join(sorted(POLICY_SIZES))
        raise InvalidWorkload("model", f"unknown model size {name!r}; known: {known}") from None


def build_policy(config: PolicyConfig, seed: int) -> LlamaForCausalLM:
    """A freshly initialised policy; the same config and seed give the same weights."""
    # fork_rng keeps the caller's global RNG untouched, so building a policy inside a test or
    # a worker never shifts anyone else's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config.to_hf())
    return model.float().eval()


def save_policy(model: LlamaForCausalLM, directory: Path, config: PolicyConfig) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    _add_legacy_config_keys(directory / "config.json", config)
    (directory / "parityscope_policy.json").write_text(json.dumps(asdict(config), indent=2, sort_keys=True))


def _add_legacy_config_keys(path: Path, config: PolicyConfig) -> None:
    # transformers 5 writes ``rope_parameters`` and ``dtype``; the transformers 4.x that ships
    # with vLLM 0.8.5 reads ``rope_theta`` and ``torch_dtype``. Writing both keeps one
    # checkpoint loadable on every host of a job.
    payload = json.loads(path.read_text())
    payload.setdefault("rope_theta", config.rope_theta)
    payload.setdefault("torch_dtype", "float32")
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def load_policy(directory: Path) -> LlamaForCausalLM:
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"no policy checkpoint in {directory}")
    model = LlamaForCausalLM.from_pretrained(directory, torch_dtype=torch.float32)
    return model.eval()
