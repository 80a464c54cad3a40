import json

import pytest
import torch

from workers.policy import (
    POLICY_SIZES,
    PolicyConfig,
    build_policy,
    load_policy,
    policy_config,
    save_policy,
)


def test_sizes_match_the_design_figures():
    counts = {name: sum(p.numel() for p in build_policy(cfg, 0).parameters()) for name, cfg in POLICY_SIZES.items()
              if name != "llama-15m"}
    assert 80_000 < counts["llama-84k"] < 90_000
    assert 350_000 < counts["llama-0.4m"] < 450_000


def test_same_seed_same_weights_and_the_global_rng_is_left_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_policy(policy_config("llama-0.4m"), seed=5)
    after = torch.rand(1)
    b = build_policy(policy_config("llama-0.4m"), seed=5)
    c = build_policy(policy_config("llama-0.4m"), seed=6)
    assert after == expected_next
    for (name, pa), pb, _pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_save_and_load_round_trip_with_keys_older_loaders_read(tmp_path):
    config = policy_config("llama-84k")
    model = build_policy(config, seed=1)
    save_policy(model, tmp_path, config)
    loaded = load_policy(tmp_path)
    tokens = torch.randint(0, 20, (2, 9))
    assert torch.equal(model(input_ids=tokens).logits, loaded(input_ids=tokens).logits)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["rope_theta"] == config.rope_theta and saved["torch_dtype"] == "float32"
    assert saved["tie_word_embeddings"] is False


def test_bad_configs_and_unknown_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="workload.model"):
        policy_config("llama-7b")
    with pytest.raises(ValueError, match="multiple of num_heads"):
        PolicyConfig("odd", hidden_size=30, intermediate_size=64, num_layers=1, num_heads=4, vocab_size=64)
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path)
