import pytest

from backend.compare.registry import (
    KeyRegistry,
    classify_key,
    is_expected_difference,
    normalise_key,
)
from backend.errors import BadInput


@pytest.mark.parametrize(
    ("key", "layer"),
    [
        # the same setting however it is spelled
        ("vllm_config.vllm_kwargs.logprobs-mode", "semantic"),
        ("logprobs_mode", "semantic"),
        ("engine.settings.logprobs_mode", "semantic"),
        ("Engine/Settings/Logprobs-Mode", "semantic"),
        # PipelineRL-style
        ("rl.epsilon_low", "objective"),
        ("rl.epsilon_high", "objective"),
        ("rl.policy_loss", "objective"),
        ("vllm_config.vllm_kwargs.enable-prefix-caching", "inference-path"),
        ("vllm_config.vllm_kwargs.max-num-seqs", "inference-path"),
        ("finetune.learning_rate", "workload"),
        ("max_lag", "inference-path"),
        # vLLM-style
        ("enable_prefix_caching", "inference-path"),
        ("async_scheduling", "inference-path"),
        ("kv_cache_dtype", "inference-path"),
        ("VLLM_USE_V1", "inference-path"),
        ("top_k", "semantic"),
        # TRL-style
        ("vllm_mode", "inference-path"),
        ("beta", "objective"),
        ("epsilon", "objective"),
        ("temperature", "semantic"),
        ("loss_type", "objective"),
        ("learning_rate", "workload"),
        ("num_generations", "workload"),
        ("max_completion_length", "workload"),
        # verl-style, through a two-segment rule and through a parent
        ("actor_rollout_ref.rollout.n", "workload"),
        ("actor_rollout_ref.rollout.name", "inference-path"),
        ("actor_rollout_ref.model.path", "workload"),
        ("actor_rollout_ref.actor.clip_ratio_low", "objective"),
        # our own engine description and workload
        ("engine.name", "inference-path"),
        ("engine.version", "inference-path"),
        ("engine.settings.prefix_caching", "inference-path"),
        ("engine.settings.async_scheduling", "inference-path"),
        ("engine.settings.weight_update", "inference-path"),
        ("engine.settings.lm_head_dtype", "inference-path"),
        ("engine.settings.dtype", "inference-path"),
        ("workload.prefix_block_size", "inference-path"),
        ("workload.instruction_tokens", "workload"),
        ("workload.metric_aggregation", "workload"),
        ("workload.objective", "objective"),
        ("model", "workload"),
        ("task", "workload"),
        ("seed", "workload"),
        ("steps", "workload"),
        ("batch_size", "workload"),
        ("group_size", "workload"),
        ("max_tokens", "workload"),
        ("lr", "workload"),
        ("top_p", "semantic"),
        ("objective", "objective"),
        ("epsilon_low", "objective"),
        # unknown
        ("output_dir", "unclassified"),
        ("wandb.project", "unclassified"),
    ],
)
def test_builtin_classification(key, layer):
    assert classify_key(key) == layer


def test_normalisation():
    assert normalise_key("A.b-c/D_e") == ("a", "b_c", "d_e")


def test_extra_rules_extend_and_override():
    registry = KeyRegistry(
        {"output_dir": "workload", "temperature": "objective", "my.knob": "semantic"}
    )
    assert registry.classify("output_dir") == "workload"
    assert registry.classify("trainer.temperature") == "objective"
    assert registry.classify("a.my.knob") == "semantic"
    assert registry.classify("knob") == "unclassified"


def test_a_longer_builtin_rule_beats_a_shorter_extra_rule():
    assert KeyRegistry({"name": "workload"}).classify("engine.name") == "inference-path"


@pytest.mark.parametrize("rules", [{"x": "numerics"}, {"": "workload"}, {"x": None}, ["x"]])
def test_bad_extra_rules_are_rejected(rules):
    with pytest.raises(BadInput) as error:
        KeyRegistry(rules)
    assert error.value.field == "rules"


# PipelineRL's own spellings, as its Hydra config writes them (conf/base.yaml,
# conf/finetune/base.yaml and the RLConfig fields of pipelinerl/finetune/rl, ServiceNow/PipelineRL
# at commit 58d3934), flattened the way a run's config is: ``finetune.rl.<field>``.
PIPELINERL_RL_OBJECTIVE_KEYS = (
    "policy_loss", "use_advantages", "epsilon_low", "epsilon_high", "batch_size",
    "reward_minus_kl_coef", "kl_coef", "final_kl_coef", "entropy_bonus", "final_entropy_bonus",
    "relu_log_p_weights", "clamp_log_ratio_ref_new_value", "divide_advantage_by_std",
    "overlong_filtering", "group_normalization", "filter_zero_advantage_groups",
    "value_loss_coef", "aggregate_loss",
)  # fmt: skip


@pytest.mark.parametrize("field", PIPELINERL_RL_OBJECTIVE_KEYS)
def test_pipelinerl_rl_section_is_the_objective(field):
    assert classify_key(f"finetune.rl.{field}") == "objective"


def test_pipelinerl_rl_temperature_stays_semantic_and_unknown_rl_keys_are_objective():
    # The trainer's temperature changes what its logprobs mean, wherever it is written.
    assert classify_key("finetune.rl.temperature") == "semantic"
    assert classify_key("finetune.rl.a_field_added_later") == "objective"
    # A batch size outside the rl section is still the workload's.
    assert classify_key("finetune.train_batch_size") == "workload"


@pytest.mark.parametrize(
    ("key", "layer", "why"),
    [
        ("workload.minibatches", "workload", "optimizer steps per batch set the band's width"),
        ("finetune.gradient_clipping_threshold", "workload", "optimisation, like max_grad_norm"),
        ("finetune.max_train_steps", "workload", "length of training"),
        ("finetune.weight_update_interval", "inference-path", "staleness of rollouts"),
        ("finetune.load_as_bf16", "inference-path", "the trainer's precision"),
        ("vllm_config.vllm_kwargs.max_model_len", "inference-path", "engine capacity"),
        ("sampling_seed", "workload", "randomness, expected to differ among replicas"),
    ],
)
def test_keys_that_used_to_be_unclassified(key, layer, why):
    assert classify_key(key) == layer, why


def test_per_leg_sampling_seeds_are_expected_differences():
    assert is_expected_difference("sampling_seed")
    assert is_expected_difference("leg.sampling-seed")
    assert not is_expected_difference("seed")
    assert not is_expected_difference("workload.seed")
