"""The job spec's model and task names are the ones the worker can build."""

from parityscope.jobspec import MODEL_NAMES, TASK_ANSWER_LENGTHS
from workers.policy import POLICY_SIZES
from workers.task import TASKS


def test_every_model_name_of_the_spec_is_a_policy_size():
    assert set(MODEL_NAMES) == set(POLICY_SIZES)


def test_every_task_of_the_spec_has_the_answer_length_the_worker_uses():
    assert {name: task.answer_length for name, task in TASKS.items()} == TASK_ANSWER_LENGTHS


def test_the_spec_knows_each_tasks_prompt_length_and_each_policys_positions():
    from parityscope.jobspec import (
        MIN_INSTRUCTION_TOKENS,
        MODEL_MAX_POSITIONS,
        TASK_QUESTION_LENGTHS,
    )
    from workers.policy import policy_config
    from workers.task import INSTRUCTION_WORDS, get_task

    assert len(INSTRUCTION_WORDS) == MIN_INSTRUCTION_TOKENS
    for name, question in TASK_QUESTION_LENGTHS.items():
        for instruction_tokens in (MIN_INSTRUCTION_TOKENS, 32, 40):
            assert get_task(name, instruction_tokens).prompt_length == instruction_tokens + question
    for name, positions in MODEL_MAX_POSITIONS.items():
        assert policy_config(name).max_positions == positions


def test_the_spec_and_the_worker_agree_on_objectives_aggregations_and_block_size():
    from parityscope import jobspec
    from workers.engines import vllm_common
    from workers.objectives import SEQUENCE_OBJECTIVES

    assert SEQUENCE_OBJECTIVES <= set(jobspec.OBJECTIVES)
    assert vllm_common.VLLM_BLOCK_SIZE == jobspec.VLLM_BLOCK_SIZE == 16
