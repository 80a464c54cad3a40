"""The same training logged once through ``report_to="mlflow"`` and once through
ParityScopeCallback (real transformers Trainer, real mlflow client): the config diff is empty,
the diagnosis calls the pair like for like, and one MLflow filter finds both runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from parityscope.callback import ParityScopeCallback
from tests.conftest import ProjectFixture
from tests.test_mlflow import mlflow_env  # noqa: F401  (fixture)
from tests.tiny_trainer import train


def test_one_training_logged_two_ways_compares_like_for_like(
    mlflow_env: str, project: ProjectFixture, client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # noqa: F811
) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", project.slug)
    # Same output directory and run name: they are training arguments like any other, and
    # both paths record them.
    train(tmp_path / "out", report_to=["mlflow"], run_name="tiny", steps=3)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME")
    callback = ParityScopeCallback(project=project.slug, url=mlflow_env, token=project.write,
                                   spool_dir=tmp_path / "spool", flush_interval=0.05)
    train(tmp_path / "out", report_to=[], run_name="tiny", steps=3, callbacks=[callback])

    runs = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"]
    by_path = {("mlflow" if "mlflow_tags" in r["config"] else "callback"): r for r in runs}
    assert set(by_path) == {"mlflow", "callback"}
    mlflow_run, callback_run = by_path["mlflow"], by_path["callback"]
    assert mlflow_run["config"]["learning_rate"] == "0.01" and callback_run["config"]["learning_rate"] == 0.01

    body = client.get("/api/v1/compare", params={"reference": mlflow_run["id"], "candidates": callback_run["id"]},
                      headers=project.auth()).json()
    assert [(d["key"], d["reference_value"], d["candidate_value"]) for d in body["config_diff"][str(callback_run["id"])]] == []
    diagnosis = body["diagnosis"][str(callback_run["id"])]
    assert diagnosis["like_for_like"] is True
    workload = next(v for v in diagnosis["verdicts"] if v["layer"] == "workload")
    assert workload["verdict"] != "fail", workload

    ml = MlflowClient(mlflow_env)
    found = ml.search_runs([str(project.id)], "params.learning_rate = '0.01' AND params.max_steps = '3'")
    assert sorted(int(r.info.run_id) for r in found) == sorted([mlflow_run["id"], callback_run["id"]])


@pytest.mark.slow
def test_trl_grpo_logged_two_ways_with_mlflow_artifacts(
    mlflow_env: str, project: ProjectFixture, client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # noqa: F811
) -> None:
    """TRL's GRPOTrainer (real TRL) with report_to="mlflow" and checkpoint artifacts on, then with
    the callback: the checkpoint is a logged model with its files, and the two runs compare like
    for like."""
    from tests.tiny_grpo import train_grpo

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", project.slug)
    monkeypatch.setenv("HF_MLFLOW_LOG_ARTIFACTS", "1")
    train_grpo(tmp_path / "out", report_to=["mlflow"], run_name="grpo", save_steps=2)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME")
    callback = ParityScopeCallback(project=project.slug, url=mlflow_env, token=project.write,
                                   spool_dir=tmp_path / "spool", flush_interval=0.05)
    train_grpo(tmp_path / "out", report_to=[], run_name="grpo", save_steps=2, callbacks=[callback])

    runs = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"]
    by_path = {("mlflow" if "mlflow_tags" in r["config"] else "callback"): r for r in runs}
    mlflow_run, callback_run = by_path["mlflow"], by_path["callback"]
    assert mlflow_run["config"]["num_generations"] == "2" and callback_run["config"]["num_generations"] == 2
    ml = MlflowClient(mlflow_env)
    (model,) = ml.search_logged_models(experiment_ids=[str(project.id)])
    assert model.name == "checkpoint-2" and model.source_run_id == str(mlflow_run["id"])
    weights = client.get("/api/2.0/mlflow-artifacts/artifacts",
                         params={"path": f"{project.id}/models/{model.model_id}/artifacts/artifacts/checkpoint-2"},
                         headers=project.auth()).json()["files"]
    assert any(f["path"] == "model.safetensors" and f["file_size"] > 0 for f in weights)
    for run in (mlflow_run, callback_run):
        got = client.get(f"/api/v1/runs/{run['id']}/metrics", headers=project.auth()).json()
        assert got["clip_ratio/region_mean"]["steps"] == [1, 2]

    body = client.get("/api/v1/compare", params={"reference": mlflow_run["id"], "candidates": callback_run["id"]},
                      headers=project.auth()).json()
    differences = [(d["key"], d["reference_value"], d["candidate_value"]) for d in body["config_diff"][str(callback_run["id"])]]
    assert differences == []
    assert body["diagnosis"][str(callback_run["id"])]["like_for_like"] is True
    found = ml.search_runs([str(project.id)], "params.num_generations = '2' AND params.beta = '0.0'")
    assert sorted(int(r.info.run_id) for r in found) == sorted([mlflow_run["id"], callback_run["id"]])
