"""``import parityscope as wandb``: a wandb training script's logging, unchanged, against a live
server on both databases; and the module-level calls' edges (values that are not numbers, nested
dicts, tensors and numpy scalars, ``commit=False``, use before ``init``).

The script follows the pattern of wandb's quickstart (docs.wandb.ai, "Track an experiment"):
``wandb.init(project=..., config={...})``, reading ``wandb.config.<key>``, ``wandb.log({...})``
per epoch without a step, ``wandb.summary[...] = ...`` and ``wandb.finish()``.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import parityscope
from tests.conftest import ProjectFixture

ROOT = Path(__file__).resolve().parent.parent
FAST = {"flush_interval": 0.05, "max_backoff": 0.2, "timeout": 2.0}

WANDB_SCRIPT = """
import argparse
import math

import parityscope as wandb

parser = argparse.ArgumentParser()
parser.add_argument("--project")
args = parser.parse_args()

epochs = 10
lr = 0.01
run = wandb.init(
    project=args.project,
    config={"learning_rate": lr, "epochs": epochs, "optimizer": {"name": "adam", "betas": [0.9, 0.99]}},
)
wandb.config.update({"batch_size": 32})
wandb.config.dropout = 0.1
offset = 0.05
best = -1.0
print(f"lr: {wandb.config.learning_rate}, epochs: {wandb.config['epochs']}")
for epoch in range(2, epochs):
    acc = 1 - 2**-epoch - 0.1 / epoch - offset
    loss = 2**-epoch + 0.1 / epoch + offset
    wandb.log({"acc": acc, "loss": loss, "val": {"acc": acc - 0.01}, "phase": "train"})
    best = max(best, acc)
wandb.summary["best_acc"] = best
print(f"summary acc: {wandb.summary['acc']}")
wandb.finish()
"""


def runs_of(client: TestClient, project: ProjectFixture) -> list[dict]:
    return client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()["runs"]


def series(client: TestClient, project: ProjectFixture, run_id: int) -> dict:
    return client.get(f"/api/v1/runs/{run_id}/metrics", headers=project.auth("read")).json()


def test_a_wandb_script_runs_unchanged_with_import_parityscope_as_wandb(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(WANDB_SCRIPT)
    env = {**os.environ, "PARITYSCOPE_URL": live_server, "PARITYSCOPE_TOKEN": project.write,
           "PARITYSCOPE_SPOOL_DIR": str(tmp_path / "spool"), "PYTHONPATH": str(ROOT)}  # fmt: skip
    done = subprocess.run([sys.executable, str(script), "--project", project.slug],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "lr: 0.01, epochs: 10" in done.stdout
    acc = [1 - 2**-e - 0.1 / e - 0.05 for e in range(2, 10)]
    assert f"summary acc: {acc[-1]}" in done.stdout  # the last value logged
    # The text value is skipped with one warning, however many times it is logged.
    assert done.stderr.count("'phase' is str, not a number") == 1, done.stderr

    (run,) = runs_of(client, project)
    assert run["status"] == "finished" and run["name"].startswith("train-")
    assert run["config"] == {"learning_rate": 0.01, "epochs": 10, "optimizer": {"name": "adam", "betas": [0.9, 0.99]},
                             "batch_size": 32, "dropout": 0.1}  # fmt: skip
    got = series(client, project, run["id"])
    assert sorted(got) == ["acc", "loss", "summary/best_acc", "val/acc"]
    assert got["acc"] == {"steps": list(range(8)), "values": acc}
    assert got["val/acc"] == {"steps": list(range(8)), "values": [a - 0.01 for a in acc]}
    assert got["summary/best_acc"] == {"steps": [7], "values": [max(acc)]}


def test_tensors_numpy_scalars_and_values_that_are_not_numbers(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    run = parityscope.init(project.slug, "mixed", url=live_server, token=project.write, spool_dir=tmp_path, **FAST)
    assert parityscope.run is run and parityscope.config is run.config
    with caplog.at_level(logging.WARNING, logger="parityscope"):
        for step in range(3):
            parityscope.log({
                "loss": torch.tensor(0.5 + step, dtype=torch.float32),
                "grad_norm": torch.tensor([2.0 * step]),  # one element
                "reward": np.float32(0.25 * step),
                "tokens": np.int64(100 + step),
                "done": step == 2,
                "text": "a sample",  # skipped, one warning
                "nothing": None,  # skipped, one warning
                "histogram": torch.arange(4.0),  # more than one element: skipped
                "table": [1, 2, 3],
                "train": {"policy": {"kl": math.nan}, "lr": 1e-3},
                3: 1.0,  # a key that is not a string
                "": 2.0,  # an empty key
            })  # fmt: skip
        parityscope.log({"late": 1.0}, commit=False)  # the same step as the next call
        parityscope.log({"late_too": 2.0})
        parityscope.finish()
    assert parityscope.run is None
    warnings = [r.getMessage() for r in caplog.records]
    for skipped in ("'text' is str", "'nothing' is NoneType", "'histogram' is Tensor", "'table' is list",
                    "non-empty strings, got 3", "non-empty strings, got ''"):  # fmt: skip
        assert sum(skipped in w for w in warnings) == 1, (skipped, warnings)
    got = series(client, project, run.id)
    assert got["loss"] == {"steps": [0, 1, 2], "values": [0.5, 1.5, 2.5]}
    assert got["grad_norm"] == {"steps": [0, 1, 2], "values": [0.0, 2.0, 4.0]}
    assert got["reward"] == {"steps": [0, 1, 2], "values": [0.0, 0.25, 0.5]}
    assert got["tokens"] == {"steps": [0, 1, 2], "values": [100.0, 101.0, 102.0]}
    assert got["done"] == {"steps": [0, 1, 2], "values": [0.0, 0.0, 1.0]}
    assert got["train/policy/kl"] == {"steps": [0, 1, 2], "values": ["NaN", "NaN", "NaN"]}
    assert got["train/lr"]["values"] == [1e-3] * 3
    assert got["late"] == {"steps": [3], "values": [1.0]} and got["late_too"] == {"steps": [3], "values": [2.0]}
    assert not {"text", "nothing", "histogram", "table"} & set(got)


def test_module_level_calls_before_init_and_after_finish(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parityscope.finish()  # no current run: nothing happens, as in wandb
    assert parityscope.run is None
    with pytest.raises(RuntimeError, match=r"parityscope.log: call parityscope.init\(\) first"):
        parityscope.log({"x": 1.0})
    with pytest.raises(RuntimeError, match=r"parityscope.config: call parityscope.init\(\) first"):
        _ = parityscope.config.lr
    with pytest.raises(RuntimeError, match=r"parityscope.summary: call parityscope.init\(\) first"):
        parityscope.summary["best"] = 1.0
    monkeypatch.delenv("PARITYSCOPE_PROJECT", raising=False)
    with pytest.raises(ValueError, match="PARITYSCOPE_PROJECT"):
        parityscope.init(url=live_server, token=project.write)
    with pytest.raises(TypeError, match="unexpected keyword argument 'projcet'"):
        parityscope.init(projcet=project.slug, url=live_server, token=project.write)
    with pytest.raises(TypeError, match="config must be a mapping"):
        parityscope.init(project.slug, config=[1, 2], url=live_server, token=project.write)

    # wandb's own options are accepted; its id is the run's identity: a second init resumes.
    monkeypatch.setenv("PARITYSCOPE_PROJECT", project.slug)
    first = parityscope.init(name="resumable", id="job-42", entity="team", group="g", url=live_server,
                             token=project.write, spool_dir=tmp_path, **FAST)  # fmt: skip
    parityscope.log({"x": 1.0})
    parityscope.finish(exit_code=1)
    with pytest.raises(RuntimeError, match="finished"):
        first.log({"x": 2.0})
    second = parityscope.init(name="resumable", id="job-42", url=live_server, token=project.write,
                              spool_dir=tmp_path, **FAST)  # fmt: skip
    assert second.id == first.id
    second.finish()
    (run,) = runs_of(client, project)
    assert run["external_id"] == "job-42" and run["status"] == "finished"


def test_config_changed_while_the_server_is_away_reaches_it_with_sync(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    offline = parityscope.init(project.slug, "offline", config={"lr": 0.1}, url="http://127.0.0.1:9",
                               token=project.write, spool_dir=tmp_path, external_id="offline-1", **FAST)  # fmt: skip
    parityscope.config.update({"batch_size": 8})
    parityscope.log({"loss": 1.0})
    parityscope.summary["best"] = 0.5
    parityscope.finish()
    assert offline.id is None
    (result,) = parityscope.sync(url=live_server, token=project.write, spool_dir=tmp_path)
    assert result.error is None, result.error
    (run,) = runs_of(client, project)
    assert run["config"] == {"lr": 0.1, "batch_size": 8} and run["status"] == "finished"
    assert series(client, project, run["id"]) == {"loss": {"steps": [0], "values": [1.0]},
                                                  "summary/best": {"steps": [0], "values": [0.5]}}  # fmt: skip
