"""Each engine setting changes what it should and nothing else."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from tests.workers.conftest import perturbed
from workers.engines.base import EngineSettings, SamplingSettings
from workers.engines.llama_forward import LlamaForward
from workers.engines.torch_engine import TorchEngine
from workers.errors import InvalidWorkload, UnsupportedSetting
from workers.task import EOS, get_task

TASK = get_task("sort4")
COOL = SamplingSettings(temperature=0.7, max_tokens=5, stop_token_id=EOS)
PLAIN = SamplingSettings(temperature=1.0, max_tokens=5, stop_token_id=EOS)


@pytest.fixture(scope="module")
def policy(demo_checkpoint: Path) -> tuple[LlamaConfig, dict[str, torch.Tensor]]:
    return LlamaConfig.from_pretrained(demo_checkpoint), load_file(demo_checkpoint / "model.safetensors")


@pytest.fixture(scope="module")
def moved(policy) -> dict[str, torch.Tensor]:
    return perturbed(policy[1], scale=2e-3)


def prompts(step: int, distinct: int = 8, group: int = 4) -> list[tuple[int, ...]]:
    return [p for p in TASK.rl_prompts(11, step, distinct) for _ in range(group)]


def make(policy, seed: int = 1, device: str | None = "cpu", **settings) -> TorchEngine:
    config, weights = policy
    return TorchEngine(config, weights, EngineSettings(**settings), seed, device=device)


def logprobs_of(completions) -> torch.Tensor:
    return torch.tensor([lp for c in completions for lp in c.logprobs], dtype=torch.float64)


def trainer_logprobs(config, weights, completions, temperature: float) -> torch.Tensor:
    """The fresh, full-sequence computation a trainer does, for comparison with the engine."""
    model = LlamaForCausalLM(config)
    model.load_state_dict(weights)
    by_length: dict[int, list[int]] = {}
    for i, c in enumerate(completions):
        by_length.setdefault(len(c.tokens), []).append(i)
    picked: dict[int, list[float]] = {}
    with torch.no_grad():
        for _length, rows in by_length.items():
            ids = torch.tensor([completions[i].prompt + completions[i].tokens for i in rows])
            prompt = len(completions[rows[0]].prompt)
            logits = model(input_ids=ids).logits[:, prompt - 1 : -1] / temperature
            values = logits.log_softmax(-1).gather(-1, ids[:, prompt:, None]).squeeze(-1)
            picked.update(zip(rows, values.tolist(), strict=True))
    return torch.tensor([v for i in range(len(completions)) for v in picked[i]], dtype=torch.float64)


def test_engine_forward_matches_the_hugging_face_model(policy):
    config, weights = policy
    model = LlamaForCausalLM(config)
    model.load_state_dict(weights)
    forward = LlamaForward(config, weights)
    tokens = torch.tensor(prompts(0, 4, 1))
    with torch.no_grad():
        expected = model.model(input_ids=tokens).last_hidden_state
        full, _ = forward.forward(tokens, 0, None)
        head, past = forward.forward(tokens[:, :9], 0, None)
        tail, _ = forward.forward(tokens[:, 9:], 9, past)
    assert torch.allclose(full, expected, atol=1e-5)
    assert torch.allclose(torch.cat((head, tail), 1), expected, atol=1e-5)


def test_processed_equals_raw_bit_for_bit_at_temperature_one_without_filtering(policy):
    raw = make(policy, logprobs_mode="raw").generate(prompts(0), PLAIN)
    processed = make(policy, logprobs_mode="processed").generate(prompts(0), PLAIN)
    assert raw == processed


def test_raw_and_processed_logprobs_differ_below_temperature_one_but_sampling_does_not(policy):
    config, weights = policy
    raw = make(policy, logprobs_mode="raw").generate(prompts(0), COOL)
    processed = make(policy, logprobs_mode="processed").generate(prompts(0), COOL)
    assert [c.tokens for c in raw] == [c.tokens for c in processed]
    # Processed logprobs are the temperature-scaled distribution's, which the trainer recomputes.
    fresh = trainer_logprobs(config, weights, processed, COOL.temperature)
    assert torch.allclose(logprobs_of(processed), fresh, atol=1e-5)
    offset = logprobs_of(raw) - fresh
    assert offset.abs().mean() > 1e-3


def test_top_p_makes_processed_logprobs_differ_even_at_temperature_one(policy):
    nucleus = SamplingSettings(temperature=1.0, top_p=0.8, max_tokens=5, stop_token_id=EOS)
    raw = make(policy, logprobs_mode="raw").generate(prompts(0), nucleus)
    processed = make(policy, logprobs_mode="processed").generate(prompts(0), nucleus)
    assert [c.tokens for c in raw] == [c.tokens for c in processed]
    # Renormalising over the nucleus can only raise a kept token's logprob.
    assert (logprobs_of(processed) >= logprobs_of(raw) - 1e-6).all()
    assert (logprobs_of(processed) > logprobs_of(raw) + 1e-6).any()


def test_bf16_head_moves_logprobs_by_a_bounded_nonzero_amount_and_nothing_else(policy):
    fp32 = make(policy, lm_head_dtype="fp32").generate(prompts(0), COOL)
    bf16 = make(policy, lm_head_dtype="bf16").generate(prompts(0), COOL)
    same = [(a, b) for a, b in zip(fp32, bf16, strict=True) if a.tokens == b.tokens]
    assert len(same) >= 0.9 * len(fp32)  # the same random stream mostly samples the same tokens
    diff = logprobs_of([a for a, _ in same]) - logprobs_of([b for _, b in same])
    assert 1e-5 < float(diff.abs().mean()) < 0.05
    assert float(diff.abs().max()) < 0.5
    assert all(a.weight_versions == b.weight_versions for a, b in same)


def test_prefix_cache_without_weight_changes_gives_what_fresh_computation_gives(policy):
    cached, fresh = make(policy, prefix_caching=True), make(policy, prefix_caching=False)
    for step in range(2):  # the second batch is served from cached instruction blocks
        a, b = cached.generate(prompts(step), COOL), fresh.generate(prompts(step), COOL)
        assert [c.tokens for c in a] == [c.tokens for c in b]
        assert torch.allclose(logprobs_of(a), logprobs_of(b), atol=1e-5)
    assert cached.prefix_cache.hit_tokens > 0 and len(fresh.prefix_cache) == 0


def test_prefix_cache_survives_a_weight_update_and_serves_stale_keys_until_cleared(policy, moved):
    config, _ = policy
    off, on, cleared = (make(policy, prefix_caching=flag) for flag in (False, True, True))
    for engine in (off, on, cleared):
        engine.generate(prompts(0), COOL)
        engine.update_weights(moved, version=1)
    cleared.clear_prefix_cache()
    results = {name: e.generate(prompts(1), COOL) for name, e in (("off", off), ("on", on), ("cleared", cleared))}

    for name, completions in results.items():
        error = (logprobs_of(completions) - trainer_logprobs(config, moved, completions, 0.7)).abs().max()
        if name == "on":
            assert error > 1e-4, "stale prompt keys/values must show in the logprobs"
        else:
            assert error < 1e-5, f"{name}: prefix cache off or cleared is a fresh computation"
    assert 0 in on.prefix_cache.versions()  # blocks computed by version 0 are still served


def test_async_scheduling_samples_the_next_batch_before_the_update_lands(policy, moved):
    # One step ahead by default, as V1's async scheduling launches at most one step ahead.
    for flag, expected in ((False, (1, 1, 1, 1, 1)), (True, (0, 1, 1, 1, 1))):
        engine = make(policy, async_scheduling=flag)
        engine.submit(prompts(0, 4, 1), PLAIN)
        engine.update_weights(moved, version=1)
        completions = engine.collect()
        assert {c.weight_versions for c in completions if len(c.tokens) == 5} == {expected}


def test_async_scheduling_changes_nothing_when_no_update_arrives(policy):
    assert make(policy, async_scheduling=True).generate(prompts(0), COOL) == make(policy).generate(prompts(0), COOL)


def test_inflight_update_is_the_same_as_blocking_when_nothing_is_in_flight(policy, moved):
    outputs = []
    for mode in ("blocking", "inflight"):
        engine = make(policy, weight_update=mode)
        engine.generate(prompts(0), COOL)
        engine.update_weights(moved, version=1)
        outputs.append(engine.generate(prompts(1), COOL))
    assert outputs[0] == outputs[1]


def test_inflight_update_lets_generation_run_on_half_updated_weights(policy, moved):
    runs = {}
    for mode in ("blocking", "inflight"):
        engine = make(policy, async_scheduling=True, weight_update=mode)
        engine.submit(prompts(0), COOL)
        engine.update_weights(moved, version=1)
        runs[mode] = (engine.collect(), engine.weight_version)
    (blocking, version_b), (inflight, version_i) = runs["blocking"], runs["inflight"]
    # The token sampled before the update is the same; the second token is sampled on a model
    # whose first half is new and second half old, so it is stamped with the old version.
    assert [c.tokens[:1] for c in blocking] == [c.tokens[:1] for c in inflight]
    full = [c for c in inflight if len(c.tokens) == 5]
    assert full and {c.weight_versions for c in full} == {(0, 0, 1, 1, 1)}
    assert {c.weight_versions for c in blocking if len(c.tokens) == 5} == {(0, 1, 1, 1, 1)}
    assert logprobs_of(blocking).shape != logprobs_of(inflight).shape or not torch.equal(
        logprobs_of(blocking), logprobs_of(inflight)
    )
    assert version_b == version_i == 1  # the copy completes either way


def test_describe_labels_the_torch_engine_with_its_settings(policy):
    description = make(policy, logprobs_mode="raw").describe()
    assert description["name"] == "torch"
    assert description["version"] == torch.__version__
    assert description["settings"]["logprobs_mode"] == "raw"
    assert description["emulation"]["overlap_tokens"] == 1
    assert description["device"] == "cpu"


def test_the_torch_engine_refuses_a_bf16_model_body(policy):
    with pytest.raises(UnsupportedSetting, match="settings.dtype"):
        make(policy, dtype="bfloat16")


def test_cuda_is_refused_with_the_reason_on_a_host_without_it(policy):
    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    with pytest.raises(InvalidWorkload, match="no CUDA device"):
        make(policy, device="cuda")


def test_submit_and_collect_must_alternate(policy):
    engine = make(policy)
    with pytest.raises(RuntimeError, match="nothing was submitted"):
        engine.collect()
    engine.submit(prompts(0, 2, 1), COOL)
    with pytest.raises(RuntimeError, match="already queued"):
        engine.submit(prompts(0, 2, 1), COOL)
