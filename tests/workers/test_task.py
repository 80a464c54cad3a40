import pytest

from workers.task import EOS, VOCAB, get_task

TASK = get_task("sort4")


def test_prompt_is_instruction_digits_and_equals_sign():
    prompt = TASK.prompt([3, 1, 2, 0])
    assert TASK.render(prompt) == "<bos> sort the digits in ascending order : 3 1 2 0 ="
    assert len(prompt) == TASK.prompt_length
    assert TASK.target(prompt) == (0, 1, 2, 3, EOS)


def test_reward_is_the_share_of_right_answer_positions():
    prompt = TASK.prompt([9, 5, 5, 1])
    assert TASK.reward(prompt, (1, 5, 5, 9, EOS)) == 1.0
    assert TASK.reward(prompt, (1, 5, 9, 5, EOS)) == pytest.approx(3 / 5)
    assert TASK.reward(prompt, (1, 5)) == pytest.approx(2 / 5)  # cut short
    assert TASK.reward(prompt, ()) == 0.0


def test_prompt_order_is_a_function_of_workload_seed_and_step_only():
    assert TASK.rl_prompts(7, 3, 16) == TASK.rl_prompts(7, 3, 16)
    assert TASK.rl_prompts(7, 3, 16) != TASK.rl_prompts(7, 4, 16)
    assert TASK.rl_prompts(7, 3, 16) != TASK.rl_prompts(8, 3, 16)


def test_warm_start_data_never_reuses_the_rl_stream():
    assert TASK.warm_start_prompts(7, 0, 64) != TASK.rl_prompts(7, 0, 64)


def test_bad_digits_and_foreign_prompts_are_refused():
    with pytest.raises(ValueError, match="4 digits"):
        TASK.prompt([1, 2, 3])
    with pytest.raises(ValueError, match="not a sort4 prompt"):
        TASK.target((VOCAB.index("<bos>"), 1, 2))


def test_unknown_task_names_the_field():
    with pytest.raises(ValueError, match="workload.task"):
        get_task("sort5")


def test_a_longer_shared_instruction_pads_with_a_repeated_word_and_keeps_the_answer():
    task = get_task("sort4", instruction_tokens=32)
    prompt = task.prompt([3, 1, 2, 0])
    assert len(task.instruction) == 32 and task.prompt_length == 37
    assert task.render(prompt) == "<bos> " + "please " * 24 + "sort the digits in ascending order : 3 1 2 0 ="
    assert task.target(prompt) == (0, 1, 2, 3, EOS)
    # The RL prompt order does not depend on the instruction.
    assert [p[-5:] for p in task.rl_prompts(7, 3, 16)] == [p[-5:] for p in TASK.rl_prompts(7, 3, 16)]
    with pytest.raises(ValueError, match="workload.instruction_tokens: must be at least 8"):
        get_task("sort4", instruction_tokens=7)
