"""The built-in torch engine: every setting by its real mechanism, on CPU or GPU.

- ``logprobs_mode``: processed logprobs come from the temperature-scaled, filtered distribution
  the token was sampled from; raw logprobs from the model's untouched output (see ``sampler``).
- ``lm_head_dtype``: the final projection really runs in bf16 (``workers.lm_head``).
- ``prefix_caching``: prompt keys/values are cached per block and reused by later requests; the
  cache is not cleared when weights change, so after an update it serves keys and values
  computed by the old weights until :meth:`TorchEngine.clear_prefix_cache` is called.
- ``async_scheduling``: :meth:`submit` starts sampling the next batch at once, with the weights
  the engine has *then*; the trainer's update lands while that batch is in flight. Without it the
  batch waits in the queue and is sampled at :meth:`collect`, after the update.
- ``weight_update``: ``blocking`` pauses generation at a decode-step boundary, copies every unit
  (embedding, each layer, head) and resumes, keeping the in-flight requests' keys and values
  (vLLM's pause in "keep" mode). ``inflight`` does not pause: the copy lands in
  ``inflight_pieces`` pieces with a decode step between consecutive pieces, so those steps run
  on a model that is part new, part old.

The engine runs in one thread, so the overlap between the trainer step and generation is made
explicit instead of left to timing: with async scheduling, ``overlap_tokens`` decode steps of the
next batch run before the trainer's update lands. The default is one step, as V1's async
scheduling launches at most one step ahead of the scheduler. This keeps every run reproducible
from its seed.

``inflight`` is the generic hazard of a load that nothing synchronises with generation, not a
copy of V1's mechanism (V1 applies a load between engine steps; without a pause the hazards there
are a step launched before the load finishing after it and keys/values from the old weights
being read by the new ones, which the async and prefix-cache mechanisms here already cover).

The model body always runs in float32 (``settings.dtype`` other than ``float32`` is refused);
``lm_head_dtype`` rounds the head alone. It runs on ``device`` (``cpu`` or ``cuda``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import LlamaConfig

from parityscope.jobspec import check_supported
from workers.device import resolve_device
from workers.engines.base import Completion, EngineSettings, RolloutEngine, SamplingSettings
from workers.engines.llama_forward import LayerKV, LlamaForward, unit_names
from workers.engines.prefix_cache import PrefixCache
from workers.engines.sampler import sample
from workers.lm_head import project_logits

__all__ = ["TorchEngine", "check_settings", "describe"]


DEFAULT_OVERLAP_TOKENS = 1


def check_settings(settings: EngineSettings) -> None:
    """Refuse what the torch engine cannot honour: the job spec's rule, which job submission
    runs too."""
    check_supported("torch", settings)


def describe(settings: EngineSettings, *, overlap_tokens: int = DEFAULT_OVERLAP_TOKENS, inflight_pieces: int = 2,
             prefix_block_size: int = 4, device: str | None = None) -> dict[str, Any]:
    """The run record's engine description: labelled as the torch engine, never as vLLM."""
    return {
        "name": "torch",
        "version": torch.__version__,
        "settings": settings.to_dict(),
        "device": resolve_device(device).type,
        "emulation": {
            "overlap_tokens": overlap_tokens,
            "inflight_pieces": inflight_pieces,
            "prefix_block_size": prefix_block_size,
        },
    }


@dataclass
class _Batch:
    prompts: list[tuple[int, ...]]
    sampling: SamplingSettings
    kv: list[LayerKV] | None = None
    tokens: list[torch.Tensor] = field(default_factory=list)
    logprobs: list[torch.Tensor] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    finished: torch.Tensor | None = None

    @property
    def sampled(self) -> int:
        return len(self.tokens)

    @property
    def done(self) -> bool:
        if self.sampled >= self.sampling.max_tokens:
            return True
        return self.finished is not None and bool(self.finished.all())

    @property
    def running(self) -> bool:
        return 0 < self.sampled and not self.done


class TorchEngine(RolloutEngine):
    name = "torch"

    def __init__(
        self,
        config: LlamaConfig,
        weights: Mapping[str, torch.Tensor],
        settings: EngineSettings,
        sampling_seed: int,
        *,
        version: int = 0,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        inflight_pieces: int = 2,
        prefix_block_size: int = 4,
        device: str | None = None,
    ) -> None:
        if overlap_tokens < 1 or inflight_pieces < 1:
            raise ValueError("overlap_tokens and inflight_pieces must be positive")
        check_settings(settings)
        self.settings = settings
        self.sampling_seed = sampling_seed
        self.overlap_tokens = overlap_tokens
        self.inflight_pieces = inflight_pieces
        self.device = resolve_device(device)
        self._forward = LlamaForward(config, weights, version, device=self.device)
        self._generator = torch.Generator(device=self.device).manual_seed(sampling_seed)
        self.prefix_cache = PrefixCache(prefix_block_size)
        self._batch: _Batch | None = None
        self._pending_pieces: list[list[str]] = []
        self._pending_weights: tuple[dict[str, torch.Tensor], int] | None = None

    @classmethod
    def from_checkpoint(
        cls, directory: Path, settings: EngineSettings, sampling_seed: int, **options: Any
    ) -> TorchEngine:
        config = LlamaConfig.from_pretrained(directory)
        return cls(config, load_file(directory / "model.safetensors"), settings, sampling_seed, **options)

    # -- the interface ------------------------------------------------------------------
    def submit(self, prompts: Sequence[Sequence[int]], sampling: SamplingSettings) -> None:
        if self._batch is not None:
            raise RuntimeError("a batch is already queued; collect it before submitting another")
        if not prompts:
            raise ValueError("a batch needs at least one prompt")
        batch = _Batch([tuple(int(t) for t in p) for p in prompts], sampling)
        if len({len(p) for p in batch.prompts}) != 1:
            raise ValueError("the torch engine batches prompts of one length only")
        self._batch = batch
        if self.settings.async_scheduling:
            self._advance(batch, until=self.overlap_tokens)

    def collect(self) -> list[Completion]:
        batch = self._batch
        if batch is None:
            raise RuntimeError("nothing was submitted")
        self._advance(batch, until=batch.sampling.max_tokens)
        self._batch = None
        # An in-flight copy that outlived the batch completes before anything else runs.
        self._land_pieces(all_of_them=True)
        return self._completions(batch)

    def update_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        self._land_pieces(all_of_them=True)
        running = self._batch is not None and self._batch.running
        if self.settings.weight_update == "inflight" and running and self.inflight_pieces > 1:
            units = unit_names(self._forward.num_layers)
            size = -(-len(units) // self.inflight_pieces)
            pieces = [units[i : i + size] for i in range(0, len(units), size)]
            self._pending_weights = ({k: v.detach().clone() for k, v in weights.items()}, version)
            self._forward.load(self._pending_weights[0], version, units=pieces[0])
            self._pending_pieces = pieces[1:]
        else:
            # Blocking: generation is paused at a step boundary while every unit is copied.
            self._forward.load(weights, version)

    def describe(self) -> dict[str, Any]:
        return describe(
            self.settings,
            overlap_tokens=self.overlap_tokens,
            inflight_pieces=self.inflight_pieces,
            prefix_block_size=self.prefix_cache.block_size,
            device=self.device.type,
        )

    # -- extras -------------------------------------------------------------------------
    def clear_prefix_cache(self) -> None:
        self.prefix_cache.clear()

    @property
    def weight_version(self) -> int:
        return self._forward.version

    # -- generation ---------------------------------------------------------------------
    @torch.no_grad()
    def _advance(self, batch: _Batch, until: int) -> None:
        while batch.sampled < min(until, batch.sampling.max_tokens) and not batch.done:
            hidden = self._prefill(batch) if batch.sampled == 0 else self._decode(batch)
            logits = project_logits(hidden, self._forward.lm_head_weight(), self.settings.lm_head_dtype)
            tokens, logprobs = sample(logits, batch.sampling, self._generator, self.settings.logprobs_mode)
            batch.tokens.append(tokens)
            batch.logprobs.append(logprobs)
            batch.versions.append(self._forward.version)
            stop = batch.sampling.stop_token_id
            hit = tokens == stop if stop is not None else torch.zeros_like(tokens, dtype=torch.bool)
            batch.finished = hit if batch.finished is None else batch.finished | hit
            self._land_pieces(all_of_them=False)

    def _prefill(self, batch: _Batch) -> torch.Tensor:
        unique = list(dict.fromkeys(batch.prompts))
        slot = {prompt: i for i, prompt in enumerate(unique)}
        by_cached: dict[int, list[tuple[int, list[LayerKV] | None]]] = {}
        for i, prompt in enumerate(unique):
            cached, layers = self.prefix_cache.lookup(prompt) if self.settings.prefix_caching else (0, None)
            by_cached.setdefault(cached, []).append((i, layers))
        kv_rows: list[list[LayerKV] | None] = [None] * len(unique)
        hidden_rows: list[torch.Tensor | None] = [None] * len(unique)
        for cached, members in by_cached.items():
            rows = [i for i, _ in members]
            tokens = torch.tensor([unique[i][cached:] for i in rows], dtype=torch.long, device=self.device)
            past = None
            if cached:
                past = [
                    (torch.stack([layers[layer][0] for _, layers in members]),
                     torch.stack([layers[layer][1] for _, layers in members]))
                    for layer in range(self._forward.num_layers)
                ]
            hidden, fresh = self._forward.forward(tokens, cached, past)
            full = fresh if past is None else [
                (torch.cat((p[0], f[0]), dim=2), torch.cat((p[1], f[1]), dim=2)) for p, f in zip(past, fresh, strict=True)
            ]
            for j, i in enumerate(rows):
                kv_rows[i] = [(k[j], v[j]) for k, v in full]
                hidden_rows[i] = hidden[j, -1]
                if self.settings.prefix_caching:
                    self.prefix_cache.insert(unique[i], kv_rows[i], self._forward.version)
        index = torch.tensor([slot[p] for p in batch.prompts], device=self.device)
        batch.kv = [
            (torch.stack([row[layer][0] for row in kv_rows])[index],
             torch.stack([row[layer][1] for row in kv_rows])[index])
            for layer in range(self._forward.num_layers)
        ]
        return torch.stack(hidden_rows)[index]

    def _decode(self, batch: _Batch) -> torch.Tensor:
        assert batch.kv is not None
        position = batch.kv[0][0].shape[2]
        hidden, fresh = self._forward.forward(batch.tokens[-1][:, None], position, batch.kv)
        batch.kv = [(torch.cat((k, fk), dim=2), torch.cat((v, fv), dim=2)) for (k, v), (fk, fv) in zip(batch.kv, fresh, strict=True)]
        return hidden[:, -1]

    def _land_pieces(self, *, all_of_them: bool) -> None:
        while self._pending_pieces:
            assert self._pending_weights is not None
            weights, version = self._pending_weights
            self._forward.load(weights, version, units=self._pending_pieces.pop(0))
            if not all_of_them:
                break
        if not self._pending_pieces:
            self._pending_weights = None

    @staticmethod
    def _completions(batch: _Batch) -> list[Completion]:
        tokens = torch.stack(batch.tokens, dim=1).tolist()
        logprobs = torch.stack(batch.logprobs, dim=1).tolist()
        stop = batch.sampling.stop_token_id
        completions = []
        for prompt, row_tokens, row_logprobs in zip(batch.prompts, tokens, logprobs, strict=True):
            end = row_tokens.index(stop) + 1 if stop is not None and stop in row_tokens else len(row_tokens)
            completions.append(
                Completion(prompt, tuple(row_tokens[:end]), tuple(row_logprobs[:end]), tuple(batch.versions[:end]))
            )
        return completions
