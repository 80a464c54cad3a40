"""Each trainer key the alias table places, checked against the definition in the trainer's
released source. Every docstring quotes the line that defines the key, with its file and version:

- TRL 1.16.0 (the wheel from PyPI), ``trl/trainer/grpo_trainer.py``;
- verl 0.9.1 (the wheel from PyPI), ``verl/trainer/ppo/core_algos.py`` and
  ``verl/trainer/ppo/rollout_corr_helper.py``;
- OpenRLHF 0.11.2 (the wheel from PyPI), ``openrlhf/models/loss.py`` and
  ``openrlhf/trainer/ray/ppo_actor.py``;
- NeMo-RL 0.6.0 (``nemo_rl/package_info.py``; GitHub NVIDIA-NeMo/RL at commit 7ea279ab, since
  PyPI holds only an empty 0.0.0 placeholder), ``nemo_rl/algorithms/loss/loss_functions.py``
  and ``nemo_rl/algorithms/utils.py``.
"""

from __future__ import annotations

from backend.compare.aliases import CANONICAL_METRICS, canonical_of, definition_note, resolve_metric

BY_NAME = {m.name: m for m in CANONICAL_METRICS}


def measures(key: str) -> str:
    return next(a.measures for m in CANONICAL_METRICS for a in m.aliases if a.key == key)


# -- clip rates -------------------------------------------------------------------------------


def test_trl_region_clip_counts_only_sign_active_clipping() -> None:
    """trl/trainer/grpo_trainer.py (TRL 1.16.0), lines 3274-3279:
    ``is_low_clipped = (coef_1 < 1 - self.epsilon_low) & (advantages < 0)``
    ``is_high_clipped = (coef_1 > 1 + self.epsilon_high) & (advantages > 0)``
    ``self._metrics[mode]["clip_ratio/region_mean"].append(global_masked_mean(is_region_clipped.float()))``
    """
    assert canonical_of("clip_ratio/region_mean") == "clip_rate_active"
    assert "positive advantage" in BY_NAME["clip_rate_active"].quantity
    assert "whatever the advantage's sign" in BY_NAME["clip_rate"].quantity


def test_verl_pg_clipfrac_counts_only_sign_active_clipping() -> None:
    """verl/trainer/ppo/core_algos.py (verl 0.9.1), line 1353, after
    ``pg_losses1 = -advantages * ratio`` and ``pg_losses2 = -advantages * torch.clamp(ratio, ...)``:
    ``pg_clipfrac = verl_F.masked_mean(torch.gt(pg_losses2, pg_losses1).float(), response_mask)``
    """
    assert canonical_of("actor/pg_clipfrac") == "clip_rate_active"
    # On PipelineRL's panel it is drawn only with a note saying so.
    assert resolve_metric("clip_rate", ["actor/pg_clipfrac"]) == "actor/pg_clipfrac"
    assert definition_note("clip_rate", "actor/pg_clipfrac").startswith("different definition")


def test_openrlhf_ppo_clip_ratio() -> None:
    """openrlhf/models/loss.py (OpenRLHF 0.11.2), lines 200-201 and 257:
    ``surr1 = ratio * advantages``; ``surr2 = ratio.clamp(1 - self.clip_eps_low, 1 + self.clip_eps_high) * advantages``
    ``clip_ratio = masked_mean(torch.lt(surr2, surr1).float(), action_mask, dim=None)``
    and openrlhf/trainer/ray/ppo_actor.py, line 312:
    ``experience.info["ppo_clip_ratio"] = clip_ratio.detach()``
    """
    assert canonical_of("ppo_clip_ratio") == "clip_rate_active"
    assert "clipped surrogate" in measures("ppo_clip_ratio")


def test_trl_cispo_clip_ratio_has_its_own_name() -> None:
    """trl/trainer/grpo_trainer.py (TRL 1.16.0), lines 3285-3286:
    ``is_cispo_clipped = (coef_1 > self.epsilon_high) & (advantages > 0)``
    ``self._metrics[mode]["cispo_clip_ratio"].append(global_masked_mean(is_cispo_clipped.float()))``
    """
    assert canonical_of("cispo_clip_ratio") == "cispo_clip_rate"
    assert resolve_metric("clip_rate", ["cispo_clip_ratio"]) is None
    assert resolve_metric("cispo_clip_rate", ["cispo_clip_ratio"]) == "cispo_clip_ratio"


# -- KL ---------------------------------------------------------------------------------------


def test_trl_kl_is_the_kl_to_the_reference_model() -> None:
    """trl/trainer/grpo_trainer.py (TRL 1.16.0), lines 3099-3101 and 3267-3268:
    ``ref_per_token_logps = inputs["ref_per_token_logps"]``
    ``torch.exp(ref_per_token_logps - per_token_logps) - (ref_per_token_logps - per_token_logps) - 1``
    ``if self.beta != 0.0: self._metrics[mode]["kl"].append(global_masked_mean(per_token_kl))``
    """
    assert canonical_of("kl") == "kl_ref"
    # The panel "kl" is the KL new vs old: a TRL run's kl is drawn there only with a note.
    assert resolve_metric("kl", ["kl", "entropy"]) == "kl"
    assert definition_note("kl", "kl").startswith("different definition: kl (TRL GRPO (β ≠ 0), OpenRLHF)")
    assert resolve_metric("kl_ref", ["kl", "entropy"]) == "kl"


def test_openrlhf_kl_does_not_win_over_its_ppo_kl() -> None:
    """openrlhf/trainer/ray/ppo_actor.py (OpenRLHF 0.11.2), line 313 and lines 320-333:
    ``experience.info["ppo_kl"] = ppo_kl.detach()``
    ``kl = compute_approx_kl(action_log_probs, base_action_log_probs, ...)`` (the initial model's
    log-probs) ... ``experience.info["kl"] = kl_loss.detach()``
    and openrlhf/models/loss.py, lines 185 and 258:
    ``raw_policy_log_ratio = log_probs - old_log_probs``
    ``ppo_kl = masked_mean(-raw_policy_log_ratio.detach(), action_mask, dim=None)``
    """
    keys = ["kl", "ppo_kl", "ppo_clip_ratio", "reward"]
    assert resolve_metric("kl", keys) == "ppo_kl"  # drawn with the signed-k1 note
    assert "signed k1" in definition_note("kl", "ppo_kl")
    assert resolve_metric("kl_k1", keys) == "ppo_kl"
    assert resolve_metric("kl_ref", keys) == "kl"


def test_verl_ppo_kl_is_the_signed_k1_estimator() -> None:
    """verl/trainer/ppo/core_algos.py (verl 0.9.1), lines 1336 and 1340:
    ``negative_approx_kl = log_prob - old_log_prob``
    ``ppo_kl = verl_F.masked_mean(-negative_approx_kl, response_mask)``
    """
    assert canonical_of("actor/ppo_kl") == "kl_k1"
    assert "k3" in BY_NAME["kl"].title and "signed k1" in BY_NAME["kl_k1"].title


def test_openrlhf_vllm_kl_and_verl_rollout_corr_kl_are_rollout_minus_trainer() -> None:
    """openrlhf/models/loss.py (OpenRLHF 0.11.2), line 247:
    ``vllm_kl = masked_mean(rollout_log_probs - old_log_probs, action_mask, dim=None)``
    verl/trainer/ppo/rollout_corr_helper.py (verl 0.9.1), lines 959 and 892:
    ``metrics["kl"] = verl_F.masked_mean(rollout_log_prob - old_log_prob, response_mask).detach().item()``
    ``metrics_scalar[f"rollout_corr/{key}"] = value.item()``
    """
    assert canonical_of("vllm_kl") == canonical_of("rollout_corr/kl") == "logprob_diff_mean"
    assert "rollout − trainer" in BY_NAME["logprob_diff_mean"].quantity
    assert resolve_metric("logprob_diff_mean", ["vllm_kl", "ppo_kl"]) == "vllm_kl"


def test_verl_rollout_corr_k3_kl_is_the_k3_kl_between_trainer_and_rollout() -> None:
    """verl/trainer/ppo/rollout_corr_helper.py (verl 0.9.1), lines 964-966:
    ``log_ratio = old_log_prob - rollout_log_prob``
    ``k3_kl_matrix = torch.exp(log_ratio) - log_ratio - 1``
    ``metrics["k3_kl"] = verl_F.masked_mean(k3_kl_matrix, response_mask).detach().item()``
    """
    assert canonical_of("rollout_corr/k3_kl") == "kl"
    assert definition_note("kl", "rollout_corr/k3_kl") is None


def test_verl_rollout_corr_log_ppl_abs_diff_and_chi2() -> None:
    """verl/trainer/ppo/rollout_corr_helper.py (verl 0.9.1), lines 979-981 and 998-1000:
    ``log_ppl_diff = mean_log_prob_rollout - mean_log_prob_training``
    ``metrics["log_ppl_abs_diff"] = log_ppl_diff.abs().mean().detach().item()``
    ``chi2_token = verl_F.masked_mean(rho_squared_token, response_mask) - 1.0``
    """
    assert canonical_of("rollout_corr/log_ppl_abs_diff") == "log_ppl_abs_diff"
    assert canonical_of("rollout_corr/chi2_token") == "chi2_token"


def test_nemo_rl_gen_kl_error_is_k3_by_default() -> None:
    """nemo_rl/algorithms/loss/loss_functions.py (NeMo-RL 0.6.0), lines 416-420:
    ``gen_kl_error = calculate_kl(logprobs=generation_logprobs, logprobs_reference=prev_logprobs,``
    ``kl_type=self.reference_policy_kl_type, ...)``, with line 131
    ``reference_policy_kl_type: str = "k3"``; nemo_rl/algorithms/utils.py, ``calculate_kl``:
    ``logr = logprobs_reference - logprobs`` ... ``kl = torch.exp(logr) - 1 - logr``
    """
    assert canonical_of("gen_kl_error") == "kl"
    assert "default reference_policy_kl_type k3" in measures("gen_kl_error")


# -- parity metrics and entropy ---------------------------------------------------------------


def test_trl_sampling_logp_difference_is_the_abs_logprob_difference() -> None:
    """trl/trainer/grpo_trainer.py (TRL 1.16.0), lines 2861 and 2866-2872:
    ``delta = torch.abs(old_per_token_logps - sampling_per_token_logps)``
    ``mean_delta = torch.mean(delta)``; ``max_delta = torch.max(delta)``
    ``self._metrics[mode]["sampling/sampling_logp_difference/mean"].append(``
    ``self._metrics[mode]["sampling/sampling_logp_difference/max"].append(``
    """
    keys = ["sampling/sampling_logp_difference/mean", "sampling/sampling_logp_difference/max"]
    assert resolve_metric("logprob_abs_diff_mean", keys) == keys[0]
    assert resolve_metric("logprob_abs_diff_max", keys) == keys[1]


def test_nemo_rl_token_mult_prob_error() -> None:
    """nemo_rl/algorithms/loss/loss_functions.py (NeMo-RL 0.6.0), lines 406-408 and 778:
    ``lp_error = torch.abs(generation_logprobs - prev_logprobs)``
    ``mult_prob_error = masked_mean(torch.exp(lp_error * mask), mask, ...)``
    ``"token_mult_prob_error": mult_prob_error,``
    """
    assert canonical_of("token_mult_prob_error") == "mult_prob_error"
    assert resolve_metric("logprob_abs_diff_mean", ["token_mult_prob_error"]) is None
    assert "exp(|" in BY_NAME["mult_prob_error"].quantity


def test_nemo_rl_approx_entropy_is_a_sampled_estimate() -> None:
    """nemo_rl/algorithms/loss/loss_functions.py (NeMo-RL 0.6.0), lines 713-714 and 784:
    ``seq_entropy_approx = -masked_mean(torch.exp(curr_logprobs - generation_logprobs) * curr_logprobs, ...``
    ``"approx_entropy": seq_entropy_approx.item(),``
    """
    assert canonical_of("approx_entropy") == "entropy_sampled"
    assert resolve_metric("entropy", ["approx_entropy"]) == "approx_entropy"
    note = definition_note("entropy", "approx_entropy")
    assert note is not None and "estimated from the sampled tokens" in note and "full vocabulary" in note
