import numpy as np
import pytest

from backend.compare.aliases import (
    CANONICAL_METRICS,
    DEFAULT_METRICS,
    canonical_of,
    definition_note,
    panel_title,
    resolve_metric,
)
from backend.errors import BadInput


def test_default_panels_are_the_four_canonical_metrics():
    assert DEFAULT_METRICS == ("clip_rate", "kl", "entropy", "reward")


@pytest.mark.parametrize(
    ("keys", "panels"),
    [
        # PipelineRL, with and without the rl/ prefix: its own definitions are the panels'
        (
            ["rl/clamp_log_ratio_new_old_indicator", "rl/kl_new_old", "rl/entropy", "rl/reward"],
            ["rl/clamp_log_ratio_new_old_indicator", "rl/kl_new_old", "rl/entropy", "rl/reward"],
        ),
        (
            ["clamp_log_ratio_new_old_indicator", "kl_new_old", "entropy", "reward"],
            ["clamp_log_ratio_new_old_indicator", "kl_new_old", "entropy", "reward"],
        ),
        # TRL GRPO: its kl (the KL to the reference model) is drawn, with a note, for want of any other
        (["clip_ratio/region_mean", "kl", "entropy", "reward"], ["clip_ratio/region_mean", "kl", "entropy", "reward"]),
        # TRL PPO: KL to the reference and sampled-token -log-prob, both summed per sequence
        (
            ["policy/clipfrac_avg", "objective/kl", "objective/entropy", "objective/rlhf_reward"],
            ["policy/clipfrac_avg", None, None, "objective/rlhf_reward"],
        ),
        # verl
        (
            ["actor/pg_clipfrac", "actor/ppo_kl", "actor/entropy", "critic/score/mean"],
            ["actor/pg_clipfrac", "actor/ppo_kl", "actor/entropy", "critic/score/mean"],
        ),
        # slime
        (
            ["train/pg_clipfrac", "train/ppo_kl", "train/entropy_loss", "rollout/raw_reward"],
            ["train/pg_clipfrac", "train/ppo_kl", "train/entropy_loss", "rollout/raw_reward"],
        ),
        # SkyRL: policy_kl is its KL loss to the reference model
        (
            ["policy/ppo_clip_ratio", "policy/policy_kl", "policy/policy_entropy", "reward/avg_raw_reward"],
            ["policy/ppo_clip_ratio", None, "policy/policy_entropy", "reward/avg_raw_reward"],
        ),
    ],
)
def test_each_trainer_fills_the_panels_whose_quantity_it_logs(keys, panels):
    assert [resolve_metric(name, keys) for name in DEFAULT_METRICS] == panels


def test_a_panel_states_its_quantity_and_notes_a_different_definition():
    assert panel_title("clip_rate") == "clip_rate · clip rate: any ratio outside the band"
    assert panel_title("kl") == "kl · KL new vs old (k3)"
    assert panel_title("rl/kl_new_old") == "rl/kl_new_old · KL new vs old (k3)"
    assert panel_title("loss/custom") == "loss/custom"
    # PipelineRL's own keys: no note.
    assert definition_note("clip_rate", "rl/clamp_log_ratio_new_old_indicator") is None
    assert definition_note("kl", "kl_new_old") is None and definition_note("kl", None) is None
    # A fallback key is drawn with its own definition written on the figure.
    note = definition_note("clip_rate", "actor/pg_clipfrac")
    assert note is not None and note.startswith("different definition: actor/pg_clipfrac (verl)")
    assert "sign-active clipping only" in note and "any ratio outside the band" in note
    assert "signed k1" in definition_note("kl", "actor/ppo_kl")
    assert "KL to the reference model" in definition_note("kl", "kl")


def test_every_alias_is_of_one_quantity_only():
    seen: dict[str, str] = {}
    for metric in CANONICAL_METRICS:
        assert metric.title and metric.quantity and metric.aliases, metric.name
        for alias in metric.aliases:
            assert alias.key not in seen, f"{alias.key} is in {seen.get(alias.key)} and {metric.name}"
            assert alias.measures and alias.trainer
            seen[alias.key] = metric.name
        if metric.fallback is not None:
            assert metric.fallback in {m.name for m in CANONICAL_METRICS}


def test_pipelinerl_names_win_over_generic_ones():
    assert resolve_metric("kl", ["kl_new_old", "objective/kl"]) == "kl_new_old"
    assert resolve_metric("kl", ["kl_new_old", "actor/ppo_kl"]) == "kl_new_old"


def test_a_raw_key_is_returned_as_is_and_missing_ones_give_none():
    assert resolve_metric("loss/custom", ["loss/custom"]) == "loss/custom"
    assert resolve_metric("reward", ["loss"]) is None
    assert resolve_metric("loss/custom", ["other"]) is None


def test_a_raw_alias_from_one_trainer_finds_the_same_metric_in_another():
    assert canonical_of("rl/kl_new_old") == "kl"
    assert resolve_metric("rl/kl_new_old", ["rollout_corr/k3_kl"]) == "rollout_corr/k3_kl"
    # The fallback, drawn with its note (above).
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


def test_the_figures_title_the_quantity_and_carry_the_note():
    from backend.compare.comparison import build_comparison
    from backend.compare.run_series import RunSeries

    steps = np.arange(50)
    pipelinerl = RunSeries(1, "pipelinerl", None, {}, {}, {"rl/clamp_log_ratio_new_old_indicator": (steps, steps * 0.01)})
    verl = RunSeries(2, "verl", None, {}, {}, {"actor/pg_clipfrac": (steps, steps * 0.005)})
    metric = build_comparison([pipelinerl], [verl], ["clip_rate"]).metrics[0]
    overlay, diff = metric.figures["overlay"]["layout"], metric.figures["diff"]["layout"]
    assert overlay["title"]["text"] == "clip_rate · clip rate: any ratio outside the band"
    assert diff["title"]["text"].startswith("clip_rate · clip rate: any ratio outside the band")
    for layout in (overlay, diff):
        (note,) = [a["text"] for a in layout["annotations"] if "different definition" in a["text"]]
        assert "actor/pg_clipfrac (verl) is clip rate: sign-active clipping only" in note

    same = build_comparison([pipelinerl], [RunSeries(3, "again", None, {}, {}, pipelinerl.series)], ["clip_rate"])
    layout = same.metrics[0].figures["overlay"]["layout"]
    assert not [a for a in layout.get("annotations", ()) if "different definition" in a["text"]]
