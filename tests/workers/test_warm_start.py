import json
import threading

import pytest

import workers.warm_start as warm_start
from workers.demo import DEMO_WORKLOAD
from workers.task import get_task
from workers.workload import Workload


def small(**change) -> Workload:
    return Workload.from_dict({**DEMO_WORKLOAD, "model": "llama-84k", "warm_start_steps": 3, **change})


def test_checkpoint_is_built_once_and_reused(tmp_path):
    first = warm_start.warm_started_checkpoint(small(), tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = warm_start.warm_started_checkpoint(small(), tmp_path)
    assert again == first and (again / "model.safetensors").stat().st_mtime_ns == stamp
    record = json.loads((first / "warm_start.json").read_text())
    assert record["recipe"]["steps"] == 3


def test_key_follows_what_determines_the_weights_and_nothing_else(tmp_path):
    base = warm_start.warm_started_checkpoint(small(), tmp_path)
    assert warm_start.warm_started_checkpoint(small(seed=8), tmp_path) != base
    assert warm_start.warm_started_checkpoint(small(warm_start_steps=4), tmp_path) != base
    # RL settings do not touch the warm start, so legs with other RL settings share it.
    assert warm_start.warm_started_checkpoint(small(lr=5e-4, objective="ppo"), tmp_path) == base


def test_parallel_legs_build_the_checkpoint_once(tmp_path, monkeypatch):
    calls = []
    real = warm_start.supervised_warm_start

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(warm_start, "supervised_warm_start", counted)
    results = []
    threads = [threading.Thread(target=lambda: results.append(warm_start.warm_started_checkpoint(small(), tmp_path)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(set(results)) == 1


def test_the_demo_warm_start_reaches_partial_accuracy(demo_checkpoint):
    record = json.loads((demo_checkpoint / "warm_start.json").read_text())
    # Good enough that RL has signal, not so good that reward has nowhere to rise.
    assert 0.6 < record["final_token_accuracy"] < 0.97


def test_supervised_warm_start_lowers_the_loss():
    from workers.policy import build_policy, policy_config

    model = build_policy(policy_config("llama-84k"), seed=0)
    short = warm_start.supervised_warm_start(model, get_task("sort4"), 0, warm_start.WarmStartRecipe(steps=2))
    longer = warm_start.supervised_warm_start(
        build_policy(policy_config("llama-84k"), seed=0), get_task("sort4"), 0, warm_start.WarmStartRecipe(steps=20)
    )
    assert longer["final_loss"] < short["final_loss"]


def test_zero_steps_is_the_random_policy(tmp_path):
    path = warm_start.warm_started_checkpoint(small(warm_start_steps=0), tmp_path)
    assert json.loads((path / "warm_start.json").read_text())["final_loss"] != pytest.approx(0.0)
