"""MLflow's artifact proxy, run lifecycle, tag deletion, experiment search, inputs and logged
models, driven by the real mlflow client over real HTTP, plus the proxy's bad-input contract."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from backend.settings import Settings
from tests.conftest import ProjectFixture
from tests.test_mlflow import mlflow_env  # noqa: F401  (fixture)

ART = "/api/2.0/mlflow-artifacts/artifacts"
API = "/api/2.0/mlflow"


def test_log_and_download_artifacts_with_the_mlflow_client(
    mlflow_env: str, project: ProjectFixture, client: TestClient, settings: Settings, tmp_path: Path  # noqa: F811
) -> None:
    import numpy as np
    import plotly.graph_objects as go

    mlflow.set_experiment(project.slug)
    source = tmp_path / "notes.md"
    source.write_text("# v1 candidate\n")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    with mlflow.start_run(run_name="with-artifacts") as active:
        mlflow.log_artifact(str(source))
        mlflow.log_artifacts(str(tmp_path / "ckpt"), artifact_path="checkpoint-1")
        mlflow.log_dict({"lr": 1e-5, "seed": 3}, "config/train.json")
        mlflow.log_text("hello", "logs/out.txt")
        mlflow.log_figure(go.Figure(go.Scatter(x=[0, 1], y=[1, 0])), "plots/curve.html")
        mlflow.log_image(np.zeros((4, 4, 3), dtype=np.uint8), "images/black.png")
    run_id = active.info.run_id
    assert active.info.artifact_uri == f"mlflow-artifacts:/{project.id}/{run_id}/artifacts"

    ml = MlflowClient(mlflow_env)
    top = {f.path: f.is_dir for f in ml.list_artifacts(run_id)}
    assert top == {"notes.md": False, "checkpoint-1": True, "config": True, "logs": True, "plots": True,
                   "images": True}
    (weights,) = ml.list_artifacts(run_id, "checkpoint-1")
    assert weights.path == "checkpoint-1/weights.bin" and weights.file_size == 10240
    out = Path(ml.download_artifacts(run_id, "", str(tmp_path / "down")))
    assert (out / "notes.md").read_text() == "# v1 candidate\n"
    assert (out / "checkpoint-1" / "weights.bin").read_bytes() == bytes(range(256)) * 40
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/train.json") == {"lr": 1e-5, "seed": 3}
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/logs/out.txt") == "hello"
    assert "plotly" in (out / "plots" / "curve.html").read_text().lower()
    assert (out / "images" / "black.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The files are where the settings say, and the core API lists and serves them.
    assert (Path(settings.artifact_root) / str(project.id) / run_id / "artifacts" / "logs" / "out.txt").read_text() == "hello"
    listed = client.get(f"/api/v1/runs/{run_id}/artifacts", headers=project.auth("read")).json()
    assert {"path": "logs/out.txt", "size": 5} in listed
    r = client.get(f"/api/v1/runs/{run_id}/artifacts/config/train.json", headers=project.auth("read"))
    assert r.status_code == 200 and json.loads(r.content) == {"lr": 1e-5, "seed": 3}


def test_artifact_paths_that_leave_the_root_are_refused(client: TestClient, project: ProjectFixture, settings: Settings) -> None:
    r = client.post(f"{API}/runs/create", json={"experiment_id": "0"}, headers=project.auth())
    run_id = r.json()["run"]["info"]["run_id"]
    base = f"{project.id}/{run_id}/artifacts"
    for bad in (f"{base}/%2e%2e/%2e%2e/escape.txt", f"{base}/a/..%2F..%2Fescape.txt", f"{base}//abs.txt",
                "%2Fetc%2Fpasswd", f"{base}/.%2Fx"):
        r = client.put(f"{ART}/{bad}", content=b"x", headers=project.auth())
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        r = client.get(f"{ART}/{bad}", headers=project.auth())
        assert r.status_code == 400, (bad, r.text)
    r = client.get(ART, params={"path": f"{base}/../.."}, headers=project.auth())
    assert r.status_code == 400
    assert not list(Path(settings.artifact_root).parent.glob("escape.txt"))
    assert not (Path(settings.artifact_root) / str(project.id) / "escape.txt").exists()
    # Another project's or no experiment's path; a read token cannot write; no token at all.
    r = client.put(f"{ART}/999/{run_id}/artifacts/x.txt", content=b"x", headers=project.auth())
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = client.put(f"{ART}/{project.id}/424242/artifacts/x.txt", content=b"x", headers=project.auth())
    assert r.status_code == 404
    r = client.put(f"{ART}/{base}/x.txt", content=b"x", headers=project.auth("read"))
    assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
    r = client.put(f"{ART}/{base}/x.txt", content=b"x")
    assert r.status_code == 401
    r = client.get(f"{ART}/{base}/missing.txt", headers=project.auth())
    assert r.status_code == 404
    r = client.get(f"/api/v1/runs/{run_id}/artifacts/..%2F..%2Fx", headers=project.auth())
    assert r.status_code in (400, 422)


def test_artifact_size_is_bounded_and_a_refused_upload_leaves_nothing(
    database, tmp_path: Path, database_url: str
) -> None:
    from backend.app import create_app
    from tests.conftest import make_project

    settings = Settings(database_url=database_url, public_reads=False, artifact_root=str(tmp_path / "art"),
                        max_artifact_bytes=2000, max_body_bytes=1024)
    project = make_project(database)
    with TestClient(create_app(settings, database)) as client:
        run_id = client.post(f"{API}/runs/create", json={"experiment_id": "0"}, headers=project.auth()).json()["run"]["info"]["run_id"]
        path = f"{ART}/{project.id}/{run_id}/artifacts/big.bin"
        r = client.put(path, content=b"x" * 2000, headers=project.auth())  # over max_body_bytes: artifacts have their own limit
        assert r.status_code == 200, r.text
        r = client.put(path.replace("big", "bigger"), content=b"x" * 2001, headers=project.auth())
        assert r.status_code == 413 and "2000 bytes" in r.json()["message"]

        def chunks():  # no content-length: the limit holds while streaming
            for _ in range(30):
                yield b"y" * 100

        r = client.put(path.replace("big", "streamed"), content=chunks(), headers=project.auth())
        assert r.status_code == 413
        files = sorted(p.name for p in (tmp_path / "art").rglob("*") if p.is_file())
        assert files == ["big.bin"]


def test_an_fsspec_artifact_root(database, database_url: str) -> None:
    import uuid

    from backend.app import create_app
    from tests.conftest import make_project

    root = f"memory://parityscope-{uuid.uuid4().hex}"
    settings = Settings(database_url=database_url, public_reads=False, artifact_root=root)
    project = make_project(database)
    with TestClient(create_app(settings, database)) as client:
        run_id = client.post(f"{API}/runs/create", json={"experiment_id": "0"}, headers=project.auth()).json()["run"]["info"]["run_id"]
        r = client.put(f"{ART}/{project.id}/{run_id}/artifacts/a/b.txt", content=b"in memory", headers=project.auth())
        assert r.status_code == 200, r.text
        r = client.get(f"{ART}/{project.id}/{run_id}/artifacts/a/b.txt", headers=project.auth())
        assert r.content == b"in memory"
        r = client.get(ART, params={"path": f"{project.id}/{run_id}/artifacts/a"}, headers=project.auth())
        assert r.json() == {"files": [{"path": "b.txt", "is_dir": False, "file_size": 9}]}
    import fsspec

    assert fsspec.filesystem("memory").cat(f"{root.removeprefix('memory://')}/{project.id}/{run_id}/artifacts/a/b.txt") == b"in memory"


def test_delete_restore_run_delete_tag_and_inputs(
    mlflow_env: str, project: ProjectFixture, client: TestClient  # noqa: F811
) -> None:
    ml = MlflowClient(mlflow_env)
    keep = ml.create_run(str(project.id), run_name="keep", tags={"team": "rl"})
    gone = ml.create_run(str(project.id), run_name="gone", tags={"team": "rl"})
    ml.delete_run(gone.info.run_id)
    assert ml.get_run(gone.info.run_id).info.lifecycle_stage == "deleted"
    names = lambda **kw: sorted(r.info.run_name for r in ml.search_runs([str(project.id)], **kw))  # noqa: E731
    assert names() == ["keep"]
    from mlflow.entities import ViewType

    assert names(run_view_type=ViewType.DELETED_ONLY) == ["gone"]
    assert names(run_view_type=ViewType.ALL) == ["gone", "keep"]
    dashboard = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"]
    assert [r["name"] for r in dashboard] == ["keep"]
    summaries = client.get(f"/api/v1/projects/{project.slug}/run-summaries", headers=project.auth()).json()
    assert "gone" not in json.dumps(summaries)
    ml.restore_run(gone.info.run_id)
    assert names() == ["gone", "keep"]

    ml.delete_tag(keep.info.run_id, "team")
    assert "team" not in ml.get_run(keep.info.run_id).data.tags
    stored = client.get(f"/api/v1/runs/{keep.info.run_id}", headers=project.auth()).json()
    assert "team:rl" not in stored["tags"]
    with pytest.raises(MlflowException, match="No tag"):
        ml.delete_tag(keep.info.run_id, "team")

    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(name="sort-digits", digest="d1g357", source_type="local", source="/data/sort.jsonl")
    training = DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])
    ml.log_inputs(keep.info.run_id, datasets=[training])
    ml.log_inputs(keep.info.run_id, datasets=[training])  # the same dataset again adds nothing
    (logged,) = ml.get_run(keep.info.run_id).inputs.dataset_inputs
    assert logged.dataset.name == "sort-digits" and logged.dataset.digest == dataset.digest
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "training"}
    assert "mlflow_inputs" not in ml.get_run(keep.info.run_id).data.params


def test_search_experiments(mlflow_env: str, project: ProjectFixture, client: TestClient) -> None:  # noqa: F811
    r = client.post(f"{API}/experiments/create", json={"name": "GSPO sweep"}, headers=project.auth("admin"))
    assert r.status_code == 200
    admin = MlflowClient(mlflow_env)
    import os

    os.environ["MLFLOW_TRACKING_TOKEN"] = project.admin
    assert sorted(e.name for e in admin.search_experiments()) == ["Alpha", "GSPO sweep"]
    assert [e.name for e in admin.search_experiments(filter_string="name LIKE 'GSPO%'")] == ["GSPO sweep"]
    assert [e.name for e in admin.search_experiments(filter_string="tags.`parityscope.slug` = 'alpha'")] == ["Alpha"]
    assert [e.name for e in admin.search_experiments(order_by=["name DESC"], max_results=1)] == ["GSPO sweep"]
    with pytest.raises(MlflowException, match="unknown attribute"):
        admin.search_experiments(filter_string="colour = 'red'")
    os.environ["MLFLOW_TRACKING_TOKEN"] = project.write  # a project token sees its own project
    assert [e.name for e in MlflowClient(mlflow_env).search_experiments()] == ["Alpha"]


def test_or_is_refused_as_mlflows_own_parser_refuses_it(mlflow_env: str, project: ProjectFixture) -> None:  # noqa: F811
    from mlflow.utils.search_utils import SearchUtils

    text = "params.lr = '0.1' OR params.lr = '0.2'"
    with pytest.raises(MlflowException, match="Invalid clause"):
        SearchUtils.parse_search_filter(text)  # the released server's parser
    with pytest.raises(MlflowException, match="no OR"):
        MlflowClient(mlflow_env).search_runs([str(project.id)], text)


def test_logged_models_and_the_registry(mlflow_env: str, project: ProjectFixture, client: TestClient, tmp_path: Path) -> None:  # noqa: F811
    mlflow.set_experiment(project.slug)
    with mlflow.start_run(run_name="with-model") as active:
        model = mlflow.initialize_logged_model(name="policy", tags={"stage": "ckpt"})
        (tmp_path / "w.txt").write_text("weights")
        mlflow.log_model_artifact(str(tmp_path / "w.txt"), model_id=model.model_id) if hasattr(mlflow, "log_model_artifact") else MlflowClient(mlflow_env).log_model_artifact(model.model_id, str(tmp_path / "w.txt"))
        from mlflow.entities import LoggedModelStatus

        MlflowClient(mlflow_env).finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    got = mlflow.get_logged_model(model.model_id)
    assert got.status == LoggedModelStatus.READY and got.name == "policy" and got.tags["stage"] == "ckpt"
    assert got.experiment_id == str(project.id) and got.source_run_id == active.info.run_id
    r = client.get(f"{ART}/{project.id}/models/{model.model_id}/artifacts/w.txt", headers=project.auth())
    assert r.content == b"weights"
    with pytest.raises(MlflowException, match="ENDPOINT_NOT_FOUND|No API endpoint"):
        MlflowClient(mlflow_env).create_registered_model("policy")
    r = client.get(f"{API}/logged-models/m-missing", headers=project.auth())
    assert r.status_code == 404
    r = client.patch(f"{API}/logged-models/{model.model_id}", json={"status": "DONE"}, headers=project.auth())
    assert r.status_code == 400 and "status" in r.json()["message"]


def test_transformers_trainer_with_mlflow_artifact_logging(
    mlflow_env: str, project: ProjectFixture, client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # noqa: F811
) -> None:
    """transformers' MLflowCallback with HF_MLFLOW_LOG_ARTIFACTS=1 logs every checkpoint as a
    logged model (``mlflow.pyfunc.log_model``) and its files as artifacts."""
    from tests.tiny_trainer import train

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", project.slug)
    monkeypatch.setenv("HF_MLFLOW_LOG_ARTIFACTS", "1")
    train(tmp_path / "out", report_to=["mlflow"], run_name="hf-artifacts", steps=4, save_steps=2)
    (run,) = [r for r in client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"]
              if r["name"] == "hf-artifacts"]
    assert run["status"] == "finished"
    ml = MlflowClient(mlflow_env)
    models = ml.search_logged_models(experiment_ids=[str(project.id)])
    assert sorted(m.name for m in models) == ["checkpoint-2", "checkpoint-4"]
    assert all(m.source_run_id == str(run["id"]) for m in models)
    model = next(m for m in models if m.name == "checkpoint-4")
    listed = client.get(ART, params={"path": f"{project.id}/models/{model.model_id}/artifacts"}, headers=project.auth()).json()
    names = {f["path"] for f in listed["files"]}
    assert "MLmodel" in names and "artifacts" in names
    weights = client.get(ART, params={"path": f"{project.id}/models/{model.model_id}/artifacts/artifacts/checkpoint-4"},
                         headers=project.auth()).json()
    assert any(f["path"] == "model.safetensors" and f["file_size"] > 0 for f in weights["files"])


def test_a_tracking_only_training_loop_never_reaches_an_unimplemented_endpoint(
    mlflow_env: str, project: ProjectFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # noqa: F811
) -> None:
    from backend.api import mlflow_errors

    reached: list[str] = []
    original = mlflow_errors.EndpointNotFound.__init__

    def record(self, message: str, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        reached.append(message)
        original(self, message, *args, **kwargs)

    monkeypatch.setattr(mlflow_errors.EndpointNotFound, "__init__", record)
    mlflow.set_experiment(project.slug)
    with mlflow.start_run(run_name="loop"):
        mlflow.log_params({"learning_rate": 1e-5, "epsilon": 3e-4})
        mlflow.set_tags({"engine": "vllm-v1"})
        for step in range(5):
            mlflow.log_metrics({"reward": step / 5, "kl_new_old": 1e-4 * step}, step=step)
        (tmp_path / "notes.txt").write_text("done")
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_dict({"ok": True}, "summary.json")
    MlflowClient(mlflow_env).search_runs([str(project.id)], "metrics.reward > 0.5")
    assert reached == []
    # The spy does see the registry when something does call it.
    with pytest.raises(MlflowException):
        MlflowClient(mlflow_env).get_registered_model("policy")
    assert reached and "registered-models" in reached[0]
