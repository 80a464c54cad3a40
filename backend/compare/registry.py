"""Which layer of the stack a configuration key belongs to (DESIGN.md §5).

Keys are matched however a trainer spells them: nested (``vllm_config.vllm_kwargs.x``) or flat
(``x``), with ``.`` or ``/`` between levels, ``-`` or ``_`` inside names, any letter case. A
rule is a short path such as ``logprobs_mode`` or ``rollout.n``; it matches a key that ends
with it. The key's last segment is tried first, so ``engine.settings.logprobs_mode`` is
semantic through ``logprobs_mode``; only when nothing matches the full key is its parent tried,
so ``actor_rollout_ref.model.path`` is workload through ``model`` (a different model is a
different workload whatever the leaf is called). Among rules that match at the same level the
longest wins, and a per-deployment rule beats a built-in one of the same length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

from backend.errors import BadInput

__all__ = [
    "BUILTIN_RULES",
    "EXPECTED_DIFFERENCES",
    "LAYERS",
    "UNCLASSIFIED",
    "KeyRegistry",
    "Layer",
    "classify_key",
    "is_expected_difference",
    "normalise_key",
]

Layer = Literal["workload", "semantic", "inference-path", "objective"]
LAYERS: Final[tuple[Layer, ...]] = ("workload", "semantic", "inference-path", "objective")
UNCLASSIFIED: Final = "unclassified"

_WORKLOAD = (
    # model and data
    "model", "model_path", "model_name", "model_name_or_path", "base_model", "checkpoint",
    "tokenizer", "dataset", "dataset_name", "dataset_path", "datasets", "data", "train_dataset",
    "train_files", "task", "prompts", "chat_template",
    # randomness (sampling_seed: see EXPECTED_DIFFERENCES)
    "seed", "sampling_seed",
    # batch shape
    "batch_size", "train_batch_size", "global_batch_size", "per_device_train_batch_size",
    "gradient_accumulation_steps", "rollout_batch_size", "mini_batch_size",
    "ppo_mini_batch_size", "micro_batch_size", "group_size", "num_generations",
    "n_samples_per_prompt", "rollout.n", "attempts",
    # optimizer steps per batch: with one minibatch the reference is exact and its band has zero
    # width (docs/WORKERS.md), so a different count changes the band completely
    "minibatches", "num_minibatches", "ppo_num_minibatches",
    # lengths
    "max_tokens", "max_new_tokens", "max_completion_length", "max_response_length",
    "max_prompt_length", "seq_length", "max_seq_len",
    # optimisation
    "lr", "learning_rate", "optimizer", "optim", "weight_decay", "adam_beta1", "adam_beta2",
    "lr_scheduler_type", "lr_warmup_steps", "warmup_steps", "warmup_ratio", "max_grad_norm",
    "grad_clip", "gradient_clipping_threshold",
    # length of training
    "steps", "max_steps", "num_steps", "total_training_steps", "num_train_epochs", "epochs",
    "total_epochs", "max_train_steps",
    # how the workers' prompts and rl/* metrics are made (docs/WORKERS.md)
    "instruction_tokens", "metric_aggregation",
)  # fmt: skip

_SEMANTIC = (
    "logprobs_mode", "temperature", "top_p", "top_k", "min_p", "penalties",
    "repetition_penalty", "presence_penalty", "frequency_penalty", "generation_config",
    "skip_special_tokens", "return_tokens_as_token_ids", "include_stop_str_in_output",
    "stop", "stop_token_ids", "ignore_eos", "logprobs",
)  # fmt: skip

_INFERENCE_PATH = (
    # which engine
    "engine.name", "engine.version", "engine_name", "engine_version", "vllm_version",
    "inference_backend", "rollout.name", "vllm_use_v1", "use_v1", "use_vllm", "vllm_mode",
    # scheduling and caching
    "enable_prefix_caching", "prefix_caching", "async_scheduling", "enable_chunked_prefill",
    "chunked_prefill", "max_num_batched_tokens", "max_num_seqs", "enforce_eager",
    "cuda_graph", "compilation_config", "gpu_memory_utilization",
    "vllm_gpu_memory_utilization", "enable_sleep_mode", "vllm_enable_sleep_mode",
    # numerics
    "attention_backend", "vllm_attention_backend", "dtype", "torch_dtype", "kv_cache_dtype",
    "quantization", "lm_head_dtype", "fp32_lm_head", "cast_lm_head_to_fp32",
    "fp32_layer_prefix", "disable_cascade_attn", "prefix_block_size", "block_size",
    # the trainer's own precision: its logprobs are the other side of every ratio
    "load_as_bf16",
    # engine capacity
    "max_model_len",
    # parallelism
    "tensor_parallel_size", "tensor_model_parallel_size", "vllm_tensor_parallel_size",
    "tp_size", "pipeline_parallel_size", "pp_size", "data_parallel_size",
    # weight updates and staleness
    "weight_update", "weight_update_mode", "pause_mode", "pause_generation", "clear_cache",
    "reset_prefix_cache", "max_lag",
    # how many samples the trainer consumes between weight broadcasts: the staleness of rollouts
    "weight_update_interval",
)  # fmt: skip

_OBJECTIVE = (
    "objective", "policy_loss", "loss_type", "adv_estimator", "importance_sampling_level",
    "epsilon", "epsilon_low", "epsilon_high", "clip_ratio", "clip_ratio_low",
    "clip_ratio_high", "clip_ratio_c", "cliprange", "clip_eps", "kl_coef", "init_kl_coef",
    "kl_loss_coef", "use_kl_loss", "kl_loss_type", "beta", "entropy_coef", "entropy_coeff",
    "entropy_bonus", "tis", "tis_cap", "use_tis", "tis_imp_ratio_cap", "imp_ratio_cap",
    "truncated_importance_sampling", "vllm_importance_sampling_correction",
    "vllm_importance_sampling_cap", "rollout_is", "rollout_is_threshold",
    "advantage_normalization", "normalize_advantages", "divide_advantage_by_std",
    "scale_rewards", "loss_agg_mode", "loss_aggregation", "mask_truncated_completions",
    "num_iterations", "ppo_epochs",
    # PipelineRL's finetune.rl section (pipelinerl/finetune/rl RLConfig, conf/finetune/base.yaml);
    # its temperature stays semantic through the leaf rule, and any other key of the section is
    # objective through the parent rule ``finetune.rl``
    "finetune.rl", "rl.batch_size", "use_advantages", "reward_minus_kl_coef", "final_kl_coef",
    "final_entropy_bonus", "relu_log_p_weights", "clamp_log_ratio_ref_new_value",
    "overlong_filtering", "group_normalization", "filter_zero_advantage_groups",
    "value_loss_coef", "aggregate_loss",
)  # fmt: skip

BUILTIN_RULES: Final[dict[str, Layer]] = {
    **dict.fromkeys(_WORKLOAD, "workload"),
    **dict.fromkeys(_SEMANTIC, "semantic"),
    **dict.fromkeys(_INFERENCE_PATH, "inference-path"),
    **dict.fromkeys(_OBJECTIVE, "objective"),
}

# Keys that differ among runs of one workload by design: each leg samples with its own seed
# (docs/WORKERS.md), so reference replicas differ there too and the band spans it.
EXPECTED_DIFFERENCES: Final[tuple[str, ...]] = ("sampling_seed",)

_SEPARATORS = re.compile(r"[./]")


def normalise_key(key: str) -> tuple[str, ...]:
    """The segments of ``key``: split on ``.`` and ``/``, lower-cased, ``-`` read as ``_``."""
    segments = _SEPARATORS.split(key.strip().lower().replace("-", "_"))
    return tuple(segment.strip() for segment in segments if segment.strip())


# Normalised once at import: every registry (one per comparison, one per classify_key) shares it.
_BUILTIN_SEGMENTS: Final[dict[tuple[str, ...], str]] = {
    normalise_key(key): layer for key, layer in BUILTIN_RULES.items()
}
_BUILTIN_LONGEST: Final = max(len(rule) for rule in _BUILTIN_SEGMENTS)


class KeyRegistry:
    """The built-in rules plus a deployment's own ``{key: layer}`` rules."""

    def __init__(self, extra_rules: Mapping[str, str] | None = None) -> None:
        self._extra = self._check(extra_rules)
        self._longest = max([_BUILTIN_LONGEST, *(len(rule) for rule in self._extra)])

    @staticmethod
    def _check(extra_rules: Mapping[str, str] | None) -> dict[tuple[str, ...], str]:
        if extra_rules is None:
            return {}
        if not isinstance(extra_rules, Mapping):
            raise BadInput("rules must map a configuration key to a layer", field="rules")
        checked: dict[tuple[str, ...], str] = {}
        for key, layer in extra_rules.items():
            if not isinstance(key, str) or not normalise_key(key):
                raise BadInput(f"rule key {key!r} is not a configuration key", field="rules")
            if layer not in LAYERS:
                raise BadInput(
                    f"rule {key!r} names layer {layer!r}; layers are {', '.join(LAYERS)}",
                    field="rules",
                )
            checked[normalise_key(key)] = layer
        return checked

    def classify(self, key: str) -> str:
        """The layer of ``key``, or ``"unclassified"`` when no rule matches it or a parent."""
        segments = normalise_key(key)
        for depth in range(len(segments), 0, -1):
            path = segments[:depth]
            for length in range(min(depth, self._longest), 0, -1):
                suffix = path[-length:]
                if suffix in self._extra:
                    return self._extra[suffix]
                if suffix in _BUILTIN_SEGMENTS:
                    return _BUILTIN_SEGMENTS[suffix]
        return UNCLASSIFIED


def classify_key(key: str, extra_rules: Mapping[str, str] | None = None) -> str:
    """The layer of one configuration key under the built-in rules plus ``extra_rules``."""
    return KeyRegistry(extra_rules).classify(key)


_EXPECTED_SEGMENTS: Final = {normalise_key(key)[-1] for key in EXPECTED_DIFFERENCES}


def is_expected_difference(key: str) -> bool:
    """Whether ``key`` differs among replicas of one workload by design (a per-leg seed)."""
    segments = normalise_key(key)
    return bool(segments) and segments[-1] in _EXPECTED_SEGMENTS
