"""The job spec's model and task names are the ones the worker can build."""

from parityscope.jobspec import MODEL_NAMES, TASK_ANSWER_LENGTHS
from workers.policy import POLICY_SIZES
from workers.task import TASKS


def test_every_model_name_of_the_spec_is_a_policy_size():
    assert set(MODEL_NAMES) == set(POLICY_SIZES)


def test_every_task_of_the_spec_has_the_answer_length_the_worker_uses():
    assert {name: task.answer_length for name, task in TASKS.items()} == TASK_ANSWER_LENGTHS
