import pytest

from workers.demo import DEMO_WORKLOAD
from workers.errors import InvalidWorkload
from workers.workload import Workload


def test_demo_workload_round_trips():
    workload = Workload.from_dict(DEMO_WORKLOAD)
    assert Workload.from_dict(workload.to_dict()) == workload
    assert workload.sequences_per_step == DEMO_WORKLOAD["batch_size"] * DEMO_WORKLOAD["group_size"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"steps": 0}, "steps", "at least 1"),
        ({"steps": True}, "steps", "integer"),
        ({"batch_size": "16"}, "batch_size", "integer"),
        ({"group_size": 1}, "group_size", "at least 2"),
        ({"lr": 0}, "lr", "> 0"),
        ({"lr": float("nan")}, "lr", "finite"),
        ({"temperature": -1.0}, "temperature", "> 0"),
        ({"top_p": 1.5}, "top_p", "<= 1"),
        ({"objective": "dpo"}, "objective", "gspo, ppo, grpo"),
        ({"epsilon_low": 1.0}, "epsilon_low", "< 1"),
        ({"model": "llama-7b"}, "model", "unknown model size"),
        ({"task": "chess"}, "task", "unknown task"),
        ({"minibatches": 3}, "minibatches", "must divide batch_size"),
        ({"max_tokens": 2}, "max_tokens", "at least 5"),
        ({"learning_rate": 1e-3}, "learning_rate", "unknown field"),
        ({"metric_aggregation": "median"}, "metric_aggregation", "sequence_mean, token_mean"),
        ({"objective": "gspo-pipelinerl"}, "objective", "gspo_pipelinerl"),
        ({"instruction_tokens": 4}, "instruction_tokens", "at least 8"),
        ({"instruction_tokens": 200}, "max_tokens", "exceeds llama-0.4m's 128 positions"),
        ({"prefix_block_size": 0}, "prefix_block_size", "at least 1"),
    ],
)
def test_bad_fields_are_named_in_the_error(change, field, message):
    with pytest.raises(InvalidWorkload, match=message) as caught:
        Workload.from_dict({**DEMO_WORKLOAD, **change})
    assert caught.value.field == field
    assert f"workload.{field}" in str(caught.value)


def test_missing_required_field_is_named():
    payload = dict(DEMO_WORKLOAD)
    del payload["seed"]
    with pytest.raises(InvalidWorkload, match="workload.seed: required field is missing"):
        Workload.from_dict(payload)


def test_optional_fields_take_their_defaults():
    payload = {k: v for k, v in DEMO_WORKLOAD.items() if k not in ("top_k", "minibatches", "warm_start_steps")}
    workload = Workload.from_dict(payload)
    assert (workload.top_k, workload.minibatches) == (0, 1)


def test_a_non_object_is_refused():
    with pytest.raises(InvalidWorkload, match="expected an object"):
        Workload.from_dict(["model"])


def test_the_vllm_and_metric_options_are_recorded_with_their_defaults():
    recorded = Workload.from_dict(DEMO_WORKLOAD).to_dict()
    assert (recorded["metric_aggregation"], recorded["instruction_tokens"], recorded["prefix_block_size"]) == (
        "sequence_mean", 8, 4)
    chosen = Workload.from_dict({**DEMO_WORKLOAD, "metric_aggregation": "token_mean", "instruction_tokens": 32,
                                 "prefix_block_size": 16, "objective": "gspo_pipelinerl"})
    assert chosen.sequence_length == 32 + 5 + DEMO_WORKLOAD["max_tokens"]
    assert chosen.to_dict()["objective"] == "gspo_pipelinerl"
