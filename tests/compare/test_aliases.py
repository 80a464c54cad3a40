import pytest

from backend.compare.aliases import DEFAULT_METRICS, canonical_of, resolve_metric
from backend.errors import BadInput


def test_default_panels_are_the_four_canonical_metrics():
    assert DEFAULT_METRICS == ("clip_rate", "kl", "entropy", "reward")


@pytest.mark.parametrize(
    "keys",
    [
        # PipelineRL, with and without the rl/ prefix
        ["rl/clamp_log_ratio_new_old_indicator", "rl/kl_new_old", "rl/entropy", "rl/reward"],
        ["clamp_log_ratio_new_old_indicator", "kl_new_old", "entropy", "reward"],
        # TRL GRPO and PPO
        ["clip_ratio/region_mean", "kl", "entropy", "reward"],
        ["policy/clipfrac_avg", "objective/kl", "objective/entropy", "objective/rlhf_reward"],
        # verl
        ["actor/pg_clipfrac", "actor/ppo_kl", "actor/entropy", "critic/score/mean"],
        # slime
        ["train/pg_clipfrac", "train/ppo_kl", "train/entropy_loss", "rollout/raw_reward"],
        # SkyRL
        [
            "policy/ppo_clip_ratio",
            "policy/policy_kl",
            "policy/policy_entropy",
            "reward/avg_raw_reward",
        ],
    ],
)
def test_each_trainer_fills_the_four_panels(keys):
    resolved = [resolve_metric(name, keys) for name in DEFAULT_METRICS]
    assert resolved == keys


def test_pipelinerl_names_win_over_generic_ones():
    assert resolve_metric("kl", ["kl_new_old", "objective/kl"]) == "kl_new_old"


def test_a_raw_key_is_returned_as_is_and_missing_ones_give_none():
    assert resolve_metric("loss/custom", ["loss/custom"]) == "loss/custom"
    assert resolve_metric("reward", ["loss"]) is None
    assert resolve_metric("loss/custom", ["other"]) is None


def test_a_raw_alias_from_one_trainer_finds_the_same_metric_in_another():
    assert canonical_of("rl/kl_new_old") == "kl"
    assert resolve_metric("rl/kl_new_old", ["actor/ppo_kl"]) == "actor/ppo_kl"


def test_parity_metrics_from_slime_and_skyrl():
    assert resolve_metric("logprob_abs_diff_mean", ["train/train_rollout_logprob_abs_diff"]) == (
        "train/train_rollout_logprob_abs_diff"
    )
    assert resolve_metric(
        "logprob_abs_diff_mean", ["policy/rollout_train_logprobs_abs_diff_mean"]
    ) == ("policy/rollout_train_logprobs_abs_diff_mean")


def test_project_aliases_come_first_and_may_add_canonical_names():
    keys = ["my/clip", "actor/pg_clipfrac", "tokens/s"]
    assert resolve_metric("clip_rate", keys, {"clip_rate": ["my/clip"]}) == "my/clip"
    assert resolve_metric("throughput", keys, {"throughput": "tokens/s"}) == "tokens/s"


@pytest.mark.parametrize("bad", [{"clip_rate": ""}, {"clip_rate": [1]}, {"": "x"}, ["clip_rate"]])
def test_malformed_project_aliases_are_rejected(bad):
    with pytest.raises(BadInput) as error:
        resolve_metric("clip_rate", ["x"], bad)
    assert error.value.field == "aliases"
