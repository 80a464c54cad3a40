"""ParityScopeCallback in a real (tiny) transformers Trainer, and on_log with a real TrainerState."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import TrainerControl, TrainerState

from parityscope.callback import ParityScopeCallback
from tests.conftest import ProjectFixture
from tests.tiny_trainer import train

FAST = {"flush_interval": 0.05, "max_backoff": 0.2}


def runs_of(client: TestClient, project: ProjectFixture) -> list[dict]:
    return client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()["runs"]


def series(client: TestClient, project: ProjectFixture, run_id: int) -> dict:
    return client.get(f"/api/v1/runs/{run_id}/metrics", headers=project.auth("read")).json()


def test_trainer_logs_reach_parityscope_with_the_global_step(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    callback = ParityScopeCallback(
        project=project.slug, url=live_server, token=project.write, tags=["hf"],
        config={"engine": "torch"}, spool_dir=tmp_path / "spool", **FAST,
    )  # fmt: skip
    trainer = train(tmp_path / "out", report_to=[], run_name="hf-trainer", steps=4, callbacks=[callback])
    assert callback.run is not None and callback.run.finished
    (run,) = runs_of(client, project)
    assert run["name"] == "hf-trainer" and run["status"] == "finished" and run["tags"] == ["hf"]
    # The keys transformers' MLflow integration logs as params, with their JSON types.
    assert run["config"]["learning_rate"] == 0.01
    assert run["config"]["max_steps"] == 4
    assert run["config"]["run_name"] == "hf-trainer"
    assert set(trainer.args.to_dict()) <= set(run["config"])
    assert run["config"]["engine"] == "torch"
    got = series(client, project, run["id"])
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert got["loss"] == {"steps": [h["step"] for h in logged], "values": [h["loss"] for h in logged]}
    assert got["loss"]["steps"] == [1, 2, 3, 4]
    assert "train_runtime" in got and got["train_runtime"]["steps"] == [4]

    # A log after training (a final evaluation, say) goes to the same run.
    state = TrainerState(global_step=4)
    callback.on_log(trainer.args, state, TrainerControl(), logs={"eval_loss": 0.5})
    callback.run.finish()
    assert len(runs_of(client, project)) == 1
    assert series(client, project, run["id"])["eval_loss"] == {"steps": [4], "values": [0.5]}


def test_on_log_keeps_numbers_only_and_only_on_the_main_process(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "grpo-run"), report_to=[], use_cpu=True)
    callback = ParityScopeCallback(project=project.slug, url=live_server, token=project.write, spool_dir=tmp_path, **FAST)
    other_rank = TrainerState(global_step=3, is_world_process_zero=False)
    callback.on_log(args, other_rank, TrainerControl(), logs={"reward": 1.0})
    assert callback.run is None  # nothing from other processes

    state = TrainerState(global_step=7)
    logs = {
        "reward": 0.25,
        "kl": torch.tensor(1e-3),
        "clip_ratio/region_mean": 2,
        "completions": ["a", "b"],
        "done": True,
        "phase": "rollout",
    }
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_log(args, state, TrainerControl(), logs=logs)
    callback.on_train_end(args, state, TrainerControl())
    (run,) = runs_of(client, project)
    assert run["name"] == "grpo-run"  # the output directory's name without a run_name
    assert series(client, project, run["id"]) == {
        "clip_ratio/region_mean": {"steps": [7], "values": [2.0]},
        "kl": {"steps": [7], "values": [pytest.approx(1e-3)]},
        "reward": {"steps": [7], "values": [0.25]},
    }


def test_a_project_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARITYSCOPE_PROJECT", raising=False)
    with pytest.raises(ValueError, match="PARITYSCOPE_PROJECT"):
        ParityScopeCallback()
