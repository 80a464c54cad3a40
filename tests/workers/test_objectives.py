import pytest
import torch

from workers.objectives import (
    clip_indicator,
    group_advantages,
    leave_one_out_advantages,
    objective_advantages,
    policy_loss,
    sequence_log_ratio,
)


def test_group_advantages_centre_each_group_and_optionally_scale_by_its_std():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5])
    groups = torch.tensor([0, 0, 1, 1])

    centred = group_advantages(rewards, groups, normalize=False)
    normalized = group_advantages(rewards, groups, normalize=True)

    assert centred.tolist() == pytest.approx([0.5, -0.5, 0.0, 0.0])
    # Group 0 has population std 0.5; group 1 has equal rewards, so no advantage at all.
    assert normalized.tolist() == pytest.approx([1.0, -1.0, 0.0, 0.0], abs=1e-3)


def test_sequence_log_ratio_is_the_mean_over_real_tokens():
    delta = torch.tensor([[0.2, 0.4, 7.0]])
    mask = torch.tensor([[True, True, False]])
    assert float(sequence_log_ratio(delta, mask)) == pytest.approx(0.3)


def test_clip_indicator_is_per_sequence_for_gspo_and_per_token_otherwise():
    delta = torch.tensor([[0.001, -0.001]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert clip_indicator(delta, mask, "gspo", 3e-4, 4e-4).tolist() == [0.0]  # mean Δ is 0
    assert clip_indicator(delta, mask, "ppo", 3e-4, 4e-4).tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("objective", ["gspo", "ppo", "grpo", "gspo_pipelinerl"])
def test_on_policy_gradient_raises_good_sequences_and_lowers_bad_ones(objective):
    new = torch.tensor([[-1.0, -1.0], [-1.0, -1.0]], requires_grad=True)
    old = new.detach().clone()
    mask = torch.ones(2, 2, dtype=torch.bool)
    advantages = torch.tensor([1.0, -1.0])

    policy_loss(objective, new - old, mask, advantages, 0.2, 0.2).backward()

    # Minimising the loss moves logprobs against the gradient: up for A>0, down for A<0.
    assert (new.grad[0] < 0).all() and (new.grad[1] > 0).all()


def test_gspo_clipped_sequences_carry_no_gradient_in_the_clipped_direction():
    # Ratio exp(0.01) = 1.01 is far above 1 + 4e-4 with a positive advantage: clipped, so the
    # surrogate is flat and the gradient is zero.
    new = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    old = new.detach() - 0.01
    policy_loss("gspo", new - old, torch.ones(1, 2, dtype=torch.bool), torch.tensor([1.0]), 3e-4, 4e-4).backward()
    assert torch.count_nonzero(new.grad) == 0


def test_ppo_averages_over_tokens_while_grpo_averages_within_sequences_first():
    delta = torch.zeros(2, 3)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    advantages = torch.tensor([1.0, 3.0])
    # At ratio 1 each token's term is -A: PPO = -(1+1+1+3)/4, GRPO = -(1 + 3)/2.
    assert float(policy_loss("ppo", delta, mask, advantages, 0.2, 0.2)) == pytest.approx(-1.5)
    assert float(policy_loss("grpo", delta, mask, advantages, 0.2, 0.2)) == pytest.approx(-2.0)


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="gspo, ppo, grpo, gspo_pipelinerl"):
        policy_loss("dpo", torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool), torch.ones(1), 0.2, 0.2)


def test_leave_one_out_baseline_is_the_mean_of_the_other_rewards_of_the_group():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.2, 0.2, 0.8])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    # Group 0: 1 - (0 + 0.5)/2 = 0.75, 0 - 0.75 = -0.75, 0.5 - 0.5 = 0; no division by a std.
    expected = [0.75, -0.75, 0.0, -0.3, -0.3, 0.6]
    assert leave_one_out_advantages(rewards, groups).tolist() == pytest.approx(expected)
    assert objective_advantages("gspo_pipelinerl", rewards, groups).tolist() == pytest.approx(expected)
    assert objective_advantages("gspo", rewards, groups).tolist() == pytest.approx(
        group_advantages(rewards, groups, normalize=True).tolist())
    with pytest.raises(ValueError, match="at least two"):
        leave_one_out_advantages(torch.tensor([1.0]), torch.tensor([0]))


def test_gspo_weighs_sequences_uniformly_and_the_pipelinerl_variant_by_their_length():
    delta = torch.zeros(2, 4)
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    advantages = torch.tensor([1.0, 3.0])
    # At ratio 1 each sequence's term is -A. GSPO: -(1 + 3)/2; the variant: -(4*1 + 1*3)/2.
    assert float(policy_loss("gspo", delta, mask, advantages, 3e-4, 4e-4)) == pytest.approx(-2.0)
    assert float(policy_loss("gspo_pipelinerl", delta, mask, advantages, 3e-4, 4e-4)) == pytest.approx(-3.5)
    # Both clip one ratio per sequence.
    assert clip_indicator(delta + 0.01, mask, "gspo_pipelinerl", 3e-4, 4e-4).tolist() == [1.0, 1.0]
