"""The MLflow-compatible tracking API, driven by the real mlflow client over real HTTP, and its
error contract checked request by request."""

from __future__ import annotations

import math
import time

import httpx
import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from backend.mlflow_compat.search import RunView, matches, parse_filter, parse_order_by, sort_runs
from tests.conftest import ProjectFixture

API = "/api/2.0/mlflow"


@pytest.fixture
def mlflow_env(live_server: str, project: ProjectFixture, monkeypatch: pytest.MonkeyPatch) -> str:
    """The mlflow client pointed at the live server with the project's write token."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", live_server)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", project.write)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(live_server)
    # MLflow caches each run's artifact repository by run id for the process; every test's
    # database numbers its runs from 1, so a repository left from another test's server would
    # point at a port that is gone.
    from mlflow.tracking._tracking_service import utils as tracking_utils

    tracking_utils._artifact_repos_cache.clear()
    yield live_server
    while mlflow.active_run() is not None:
        mlflow.end_run()


def series(client: TestClient, project: ProjectFixture, run_id: str) -> dict:
    r = client.get(f"/api/v1/runs/{run_id}/metrics", headers=project.auth("read"))
    assert r.status_code == 200, r.text
    return r.json()


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_log_batch_of_1000_metrics_with_nan_params_and_tags_round_trips(
    mlflow_env: str, project: ProjectFixture, client: TestClient
) -> None:
    ml = MlflowClient(mlflow_env)
    run = ml.create_run("0", run_name="v1-candidate")  # "0": the token's own project
    assert run.info.experiment_id == str(project.id)
    start = int(time.time() * 1000)
    specials = [math.nan, math.inf, -math.inf]
    metrics = [
        Metric(
            key=f"metric_{k}",
            value=specials[s % 3] if s % 17 == 0 else math.sin(s + k) * 10 ** (k - 5),
            timestamp=start + s * 10 + k,
            step=s,
        )
        for k in range(10)
        for s in range(100)
    ]
    params = [Param(f"param_{i}", f"value {i}") for i in range(50)]
    tags = [RunTag(f"tag_{i}", f"t{i}") for i in range(20)] + [RunTag("mlflow.note.content", "x" * 5000)]
    ml.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags, synchronous=True)

    for k in range(10):
        history = ml.get_metric_history(run.info.run_id, f"metric_{k}")
        sent = [m for m in metrics if m.key == f"metric_{k}"]
        assert [(m.key, m.step, m.timestamp) for m in history] == [(m.key, m.step, m.timestamp) for m in sent]
        assert all(same(h.value, m.value) for h, m in zip(history, sent, strict=True))

    got = ml.get_run(run.info.run_id)
    assert got.data.params == {p.key: p.value for p in params}
    assert {t.key: t.value for t in tags}.items() <= got.data.tags.items()
    assert got.data.tags["mlflow.runName"] == "v1-candidate"
    assert len(got.data.metrics) == 10

    # The same points through the core API: exactly 1000, NaN and ±Infinity included.
    core = series(client, project, run.info.run_id)
    assert sum(len(s["steps"]) for s in core.values()) == 1000
    assert core["metric_0"]["values"][0] == "NaN"
    assert core["metric_0"]["values"][17] == "-Infinity"
    assert core["metric_0"]["values"][34] == "Infinity"
    stored = client.get(f"/api/v1/runs/{run.info.run_id}", headers=project.auth("read")).json()
    assert stored["config"]["param_3"] == "value 3"
    assert "tag_4:t4" in stored["tags"]


def test_fluent_api_logs_a_run_into_the_named_project(
    mlflow_env: str, project: ProjectFixture, client: TestClient
) -> None:
    mlflow.set_experiment(project.slug)  # found by slug; the name works too
    with mlflow.start_run(run_name="reference") as active:
        mlflow.log_params({"learning_rate": 1e-5, "seed": 3})
        mlflow.log_metrics({"reward": 0.5, "kl": math.nan}, step=7)
        mlflow.log_metric("reward", 0.75, step=8)
        mlflow.set_tags({"backend": "vllm-v0"})
    run_id = active.info.run_id
    stored = client.get(f"/api/v1/runs/{run_id}", headers=project.auth("read")).json()
    assert stored["status"] == "finished"
    assert stored["name"] == "reference"
    assert stored["config"]["learning_rate"] == "1e-05"
    assert stored["config"]["mlflow_tags"]["backend"] == "vllm-v0"
    assert "mlflow.runName" not in stored["config"]["mlflow_tags"]  # it is the run's name
    assert "backend:vllm-v0" in stored["tags"]
    assert series(client, project, run_id) == {
        "kl": {"steps": [7], "values": ["NaN"]},
        "reward": {"steps": [7, 8], "values": [0.5, 0.75]},
    }
    ml = MlflowClient(mlflow_env)
    finished = ml.get_run(run_id)
    assert finished.info.status == "FINISHED" and finished.info.end_time is not None
    assert finished.data.metrics == {"reward": 0.75, "kl": pytest.approx(math.nan, nan_ok=True)}


def test_search_runs_with_a_filter_and_order(mlflow_env: str, project: ProjectFixture) -> None:
    ml = MlflowClient(mlflow_env)
    for name, lr, reward in [("a", "0.1", 1.0), ("b", "0.2", 3.0), ("c", "0.1", 2.0)]:
        run = ml.create_run(str(project.id), run_name=name, tags={"team": "rl"})
        ml.log_param(run.info.run_id, "lr", lr)
        ml.log_metric(run.info.run_id, "reward", reward, step=1)
    found = ml.search_runs([str(project.id)], "params.lr = '0.1' AND tags.team = 'rl'", order_by=["metrics.reward DESC"])
    assert [r.info.run_name for r in found] == ["c", "a"]
    found = ml.search_runs([str(project.id)], "metrics.reward > 1.5 and attributes.run_name LIKE '%'")
    assert sorted(r.info.run_name for r in found) == ["b", "c"]
    with pytest.raises(MlflowException, match="has no OR"):
        ml.search_runs([str(project.id)], "params.lr = '0.1' OR params.lr = '0.2'")


def test_transformers_report_to_mlflow(
    mlflow_env: str, project: ProjectFixture, client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from tests.tiny_trainer import train

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "Alpha")  # the project's name
    train(tmp_path, report_to=["mlflow"], run_name="hf-mlflow", steps=4)
    page = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()
    (run,) = [r for r in page["runs"] if r["name"] == "hf-mlflow"]
    assert run["status"] == "finished"
    assert run["config"]["learning_rate"] == "0.01"
    assert run["config"]["max_steps"] == "4"
    got = series(client, project, run["id"])
    assert got["loss"]["steps"] == [1, 2, 3, 4]
    assert all(isinstance(v, float) for v in got["loss"]["values"])


# -- the error contract, request by request ---------------------------------------------------


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    return body["message"]


def new_run(client: TestClient, project: ProjectFixture) -> str:
    r = client.post(f"{API}/runs/create", json={"experiment_id": "0"}, headers=project.auth())
    assert r.status_code == 200, r.text
    return r.json()["run"]["info"]["run_id"]


def test_log_batch_limits_and_atomicity(client: TestClient, project: ProjectFixture) -> None:
    run_id = new_run(client, project)
    too_many = [{"key": "m", "value": 1.0, "timestamp": 0, "step": s} for s in range(1001)]
    r = client.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": too_many}, headers=project.auth())
    assert "at most 1000 metrics" in error(r, 400, "INVALID_PARAMETER_VALUE")
    params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
    r = client.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": params}, headers=project.auth())
    assert "at most 100 params" in error(r, 400, "INVALID_PARAMETER_VALUE")

    client.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "lr", "value": "0.1"}, headers=project.auth())
    batch = {
        "run_id": run_id,
        "metrics": [{"key": "reward", "value": 1.0, "timestamp": 0, "step": 0}],
        "params": [{"key": "lr", "value": "0.2"}],
    }
    r = client.post(f"{API}/runs/log-batch", json=batch, headers=project.auth())
    assert "Changing param values is not allowed" in error(r, 400, "INVALID_PARAMETER_VALUE")
    assert series(client, project, run_id) == {}  # the metric of the rejected batch was not stored

    bad_value = {"run_id": run_id, "metrics": [{"key": "reward", "value": "high", "timestamp": 0, "step": 0}]}
    r = client.post(f"{API}/runs/log-batch", json=bad_value, headers=project.auth())
    assert "metrics[0].value" in error(r, 400, "INVALID_PARAMETER_VALUE")
    negative = {"run_id": run_id, "metrics": [{"key": "reward", "value": 1, "timestamp": 0, "step": -1}]}
    r = client.post(f"{API}/runs/log-batch", json=negative, headers=project.auth())
    assert "metrics[0].step" in error(r, 400, "INVALID_PARAMETER_VALUE")


def test_a_refused_request_stores_nothing_even_after_a_write(client: TestClient, project: ProjectFixture) -> None:
    # runs/create inserts the run, then checks its tags: the refusal must undo the insert.
    for tags in ([{"key": "", "value": "v"}], [{"key": "note", "value": "x" * 9000}]):
        r = client.post(f"{API}/runs/create", json={"experiment_id": "0", "run_name": "refused", "tags": tags},
                        headers=project.auth())
        error(r, 400, "INVALID_PARAMETER_VALUE")
    assert client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"] == []
    # A value PostgreSQL refuses at the flush (NUL in text) is a 400 too, not a failed commit.
    run_id = new_run(client, project)
    r = client.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "k", "value": "a\u0000b"}, headers=project.auth())
    assert r.status_code == 200 or error(r, 400, "INVALID_PARAMETER_VALUE")
    r = client.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "k", "value": "fine"}, headers=project.auth())
    assert r.status_code == 200, r.text


def test_json_nan_literals_are_accepted(client: TestClient, project: ProjectFixture) -> None:
    run_id = new_run(client, project)
    # Written by hand: what json.dumps sends for float("nan") and float("-inf").
    metrics = (
        '[{"key": "kl", "value": NaN, "timestamp": 1000, "step": 0},'
        ' {"key": "kl", "value": -Infinity, "timestamp": 2000, "step": 1}]'
    )
    body = f'{{"run_id": "{run_id}", "metrics": {metrics}}}'

    r = client.post(f"{API}/runs/log-batch", content=body, headers=project.auth() | {"content-type": "application/json"})
    assert r.status_code == 200, r.text
    r = client.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "kl"}, headers=project.auth())
    assert r.json() == {
        "metrics": [
            {"key": "kl", "value": "NaN", "timestamp": 1000, "step": 0},
            {"key": "kl", "value": "-Infinity", "timestamp": 2000, "step": 1},
        ]
    }


def test_an_integer_beyond_float64_is_refused_and_nothing_is_stored(client: TestClient, project: ProjectFixture) -> None:
    run_id = new_run(client, project)
    huge = "1" + "0" * 400  # valid JSON, which json.loads reads as an int that float() cannot hold
    body = (
        f'{{"run_id": "{run_id}", "metrics": [{{"key": "kl", "value": 0.5, "timestamp": 1000, "step": 0}},'
        f' {{"key": "kl", "value": {huge}, "timestamp": 1000, "step": 1}}]}}'
    )
    r = client.post(f"{API}/runs/log-batch", content=body, headers=project.auth() | {"content-type": "application/json"})
    assert "metrics[1].value" in error(r, 400, "INVALID_PARAMETER_VALUE")
    r = client.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "kl"}, headers=project.auth())
    assert r.json() == {"metrics": []}


def test_get_history_pages(client: TestClient, project: ProjectFixture) -> None:
    run_id = new_run(client, project)
    metrics = [{"key": "r", "value": s, "timestamp": s, "step": s * 2} for s in range(5)]
    client.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}, headers=project.auth())
    steps, token = [], None
    while True:
        params = {"run_id": run_id, "metric_key": "r", "max_results": 2} | ({"page_token": token} if token else {})
        page = client.get(f"{API}/metrics/get-history", params=params, headers=project.auth()).json()
        steps += [m["step"] for m in page["metrics"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert steps == [0, 2, 4, 6, 8]


def test_auth_and_lookup_errors(client: TestClient, project: ProjectFixture) -> None:
    r = client.post(f"{API}/runs/create", json={"experiment_id": "0"})
    error(r, 401, "UNAUTHENTICATED")
    run_id = new_run(client, project)
    r = client.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "k", "value": "v"}, headers=project.auth("read"))
    error(r, 403, "PERMISSION_DENIED")
    r = client.get(f"{API}/runs/get", params={"run_id": "424242"}, headers=project.auth())
    assert error(r, 404, "RESOURCE_DOES_NOT_EXIST") == "Run with id=424242 not found"
    r = client.get(f"{API}/runs/get", params={"run_id": "not-a-run"}, headers=project.auth())
    error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = client.get(f"{API}/experiments/get", params={"experiment_id": "999"}, headers=project.auth())
    error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = client.post(f"{API}/runs/log-metric", content=b"{not json", headers=project.auth() | {"content-type": "application/json"})
    error(r, 400, "MALFORMED_REQUEST")
    r = client.post(f"{API}/runs/log-metric", json={"run_id": run_id, "value": 1.0}, headers=project.auth())
    assert "key" in error(r, 400, "INVALID_PARAMETER_VALUE")
    r = client.post(f"{API}/runs/update", json={"run_id": run_id, "status": "DONE"}, headers=project.auth())
    assert "status" in error(r, 400, "INVALID_PARAMETER_VALUE")
    r = client.post(f"{API}/model-versions/create", json={}, headers=project.auth())
    error(r, 404, "ENDPOINT_NOT_FOUND")
    # '²' passes str.isdigit() but is not a number int() reads.
    r = client.get(f"{API}/runs/get", params={"run_id": "²"}, headers=project.auth())
    error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = client.get(f"{API}/experiments/get", params={"experiment_id": "²"}, headers=project.auth())
    error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = client.post(f"{API}/runs/search", json={"experiment_ids": [str(project.id)], "page_token": "²"}, headers=project.auth())
    assert "page_token" in error(r, 400, "INVALID_PARAMETER_VALUE")
    r = client.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "a", "page_token": "²"}, headers=project.auth())
    assert "page_token" in error(r, 400, "INVALID_PARAMETER_VALUE")


def test_experiments_create_needs_admin_and_names_are_unique(client: TestClient, project: ProjectFixture) -> None:
    r = client.post(f"{API}/experiments/create", json={"name": "GSPO sweep"}, headers=project.auth())
    assert "admin token" in error(r, 403, "PERMISSION_DENIED")
    r = client.post(f"{API}/experiments/create", json={"name": "GSPO sweep"}, headers=project.auth("admin"))
    assert r.status_code == 200, r.text
    experiment_id = r.json()["experiment_id"]
    r = client.post(f"{API}/experiments/create", json={"name": "GSPO sweep"}, headers=project.auth("admin"))
    error(r, 400, "RESOURCE_ALREADY_EXISTS")
    r = client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "gspo-sweep"}, headers=project.auth("admin"))
    assert r.json()["experiment"] | {"creation_time": 0, "last_update_time": 0} == {
        "experiment_id": experiment_id,
        "name": "GSPO sweep",
        "artifact_location": f"mlflow-artifacts:/{experiment_id}",
        "lifecycle_stage": "active",
        "creation_time": 0,
        "last_update_time": 0,
        "tags": [{"key": "parityscope.slug", "value": "gspo-sweep"}],
    }
    # A project token sees only its own project.
    r = client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "GSPO sweep"}, headers=project.auth())
    error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = client.post(f"{API}/experiments/create", json={"name": ""}, headers=project.auth("admin"))
    error(r, 400, "INVALID_PARAMETER_VALUE")


# -- the search grammar, as pure functions ---------------------------------------------------


def view(name: str, **metrics: float) -> RunView:
    return RunView(
        attributes={"run_name": name, "status": "FINISHED", "run_id": str(ord(name)), "start_time": 0},
        params={"my key": name},
        metrics=metrics,
    )


def test_filter_grammar() -> None:
    clauses = parse_filter("params.`my key` IN ('a', 'b') and metrics.kl <= 0.5 AND run_name ILIKE 'A%'")
    assert [c.op for c in clauses] == ["IN", "<=", "ILIKE"]
    assert matches(clauses, view("a", kl=0.1))
    assert not matches(clauses, view("a", kl=math.nan))
    assert not matches(clauses, view("c", kl=0.1))
    assert not matches(clauses, view("a"))  # a run without the metric never matches
    for bad, message in [
        ("metrics.kl LIKE '1'", "comparator 'LIKE'"),
        ("params.lr = 0.1", "quoted string"),
        ("colour = 'red'", "unknown attribute"),
        ("metrics.kl > 1 AND", "nothing after"),
        ("datasets.name = 'x'", "not attributes"),
    ]:
        with pytest.raises(Exception, match=message):
            parse_filter(bad)


def test_order_by_puts_missing_and_nan_last() -> None:
    runs = [view("a", r=1.0), view("b"), view("c", r=3.0), view("d", r=math.nan)]
    ordered = sort_runs(runs, parse_order_by(["metrics.r DESC"]))
    assert [v.attributes["run_name"] for v in ordered[:2]] == ["c", "a"]
    with pytest.raises(Exception, match="ASC|DESC"):
        parse_order_by(["metrics.r sideways"])
