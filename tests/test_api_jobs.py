"""Jobs and legs over HTTP, without the ML: submission, claims, leases, requeue, completion.

Every test runs on SQLite and on PostgreSQL. The worker side that really runs legs is covered in
``tests/test_job_loop.py``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.db import Database
from backend.settings import Settings
from backend.storage.jobs import JobStore
from tests.conftest import ProjectFixture, make_project
from tests.tiny_job import TINY_WORKLOAD, V1_INITIAL

# vLLM legs need a shared instruction of two 16-token prefix blocks (docs/VLLM.md).
VLLM_WORKLOAD = dict(TINY_WORKLOAD, instruction_tokens=32, prefix_block_size=16)


def job_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workload": dict(TINY_WORKLOAD),
        "reference": {"engine": "torch", "settings": {}, "label": "reference", "replicas": 2},
        "candidates": [
            {"engine": "torch", "settings": V1_INITIAL, "label": "v1-initial"},
            {"engine": "torch", "settings": {}, "label": "v1-fixed"},
        ],
    }
    body.update(changes)
    return body


def submit(client: TestClient, project: ProjectFixture, body: dict[str, Any] | None = None) -> dict:
    r = client.post("/api/v1/jobs", json=body or job_body(), headers=project.auth())
    assert r.status_code == 201, r.text
    return r.json()


def claim(client: TestClient, project: ProjectFixture, worker: str = "w1", engines=("torch",), **extra):
    return client.post(
        "/api/v1/legs/claim",
        json={"worker": worker, "engines": list(engines), **extra},
        headers=project.auth(),
    )


def report(client: TestClient, project: ProjectFixture, leg: dict, what: str, worker: str | None = None, **extra):
    body = {"worker": worker or leg["worker"], "attempt": leg["attempt"], **extra}
    return client.post(f"/api/v1/legs/{leg['id']}/{what}", json=body, headers=project.auth())


def test_submit_splits_the_job_into_legs(client: TestClient, project: ProjectFixture) -> None:
    job = submit(client, project)
    assert job["status"] == "queued" and job["project"] == project.slug
    legs = job["legs"]
    assert [leg["label"] for leg in legs] == ["reference", "reference-replica", "v1-initial", "v1-fixed"]
    assert [leg["role"] for leg in legs] == ["reference", "reference", "candidate", "candidate"]
    assert [leg["replica"] for leg in legs] == [0, 1, 0, 0]
    # Every leg samples with its own seed; all share one workload.
    assert len({leg["sampling_seed"] for leg in legs}) == 4
    assert all(leg["status"] == "queued" and leg["run_id"] is None and leg["attempts"] == 0 for leg in legs)
    # Settings and workload are stored in the worker's normalised form, defaults filled in.
    assert legs[0]["settings"] == {
        "logprobs_mode": "processed", "prefix_caching": False, "async_scheduling": False,
        "weight_update": "blocking", "lm_head_dtype": "fp32", "dtype": "float32",
    }
    assert legs[2]["settings"]["logprobs_mode"] == "raw"
    assert job["workload"]["minibatches"] == 1 and job["workload"]["steps"] == 3
    got = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth("read"))
    assert got.status_code == 200 and got.json() == job


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"candidates": [{"engine": "vllm-v9", "settings": {}, "label": "x"}]}, "candidates[0].engine"),
        ({"reference": {"engine": "torch", "settings": {"logprobs_mode": "sometimes"}}}, "reference.settings.logprobs_mode"),
        ({"reference": {"engine": "torch", "settings": {"prefix_cache": True}}}, "reference.settings.prefix_cache"),
        ({"workload": {k: v for k, v in TINY_WORKLOAD.items() if k != "steps"}}, "workload.steps"),
        ({"workload": dict(TINY_WORKLOAD, steps=0)}, "workload.steps"),
        ({"workload": dict(TINY_WORKLOAD, steps=10**12)}, "workload.steps"),
        ({"workload": dict(TINY_WORKLOAD, batch_size=10**9)}, "workload.batch_size"),
        ({"workload": dict(TINY_WORKLOAD, model="gpt-5")}, "workload.model"),
        ({"candidates": [{"engine": "torch", "label": "reference"}]}, "candidates[0].label"),
        # vLLM 0.8.5's V0 engine cannot return raw logprobs: refused before any worker starts.
        ({"reference": {"engine": "vllm-v0", "settings": {"logprobs_mode": "raw"}}}, "reference.settings.logprobs_mode"),
        ({"reference": {"engine": "torch", "settings": {"dtype": "bfloat16"}}}, "reference.settings.dtype"),
        ({"reference": {"engine": "torch", "settings": {"dtype": "fp16"}}}, "reference.settings.dtype"),
        ({"workload": dict(TINY_WORKLOAD, metric_aggregation="median")}, "workload.metric_aggregation"),
        # vLLM caches whole 16-token blocks: a vLLM leg needs two blocks of shared instruction.
        ({"candidates": [{"engine": "vllm-v1", "label": "v1"}]}, "workload.prefix_block_size"),
        ({"workload": dict(TINY_WORKLOAD, prefix_block_size=16), "candidates": [{"engine": "vllm-v1", "label": "v1"}]},
         "workload.instruction_tokens"),
    ],
)
def test_bad_submissions_name_the_field_and_store_nothing(
    client: TestClient, project: ProjectFixture, change: dict, field: str
) -> None:
    r = client.post("/api/v1/jobs", json=job_body(**change), headers=project.auth())
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert r.json()["detail"].startswith(field.split(".")[0])
    assert client.get("/api/v1/jobs/1", headers=project.auth()).status_code == 404


def test_submission_shape_errors(client: TestClient, project: ProjectFixture) -> None:
    body = job_body()
    del body["workload"]
    r = client.post("/api/v1/jobs", json=body, headers=project.auth())
    assert r.status_code == 422 and "workload" in r.json()["detail"]
    r = client.post("/api/v1/jobs", json=job_body(candidates=[]), headers=project.auth())
    assert r.status_code == 422 and "candidates" in r.json()["detail"]
    r = client.post("/api/v1/jobs", json=job_body(reference={"engine": "torch", "replicas": 0}), headers=project.auth())
    assert r.status_code == 422 and "reference.replicas" in r.json()["detail"]


def test_who_may_submit(client: TestClient, database: Database, project: ProjectFixture) -> None:
    assert client.post("/api/v1/jobs", json=job_body()).status_code == 401
    r = client.post("/api/v1/jobs", json=job_body(), headers=project.auth("read"))
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    other = make_project(database, "beta")
    r = client.post("/api/v1/jobs", json=job_body(project="beta"), headers=project.auth())
    assert r.status_code == 403
    # An admin token names the project; without one the job has nowhere to go.
    r = client.post("/api/v1/jobs", json=job_body(), headers=project.auth("admin"))
    assert r.status_code == 422 and r.json()["field"] == "project"
    r = client.post("/api/v1/jobs", json=job_body(project="beta"), headers=project.auth("admin"))
    assert r.status_code == 201 and r.json()["project"] == "beta"
    # A job is read with a token of its own project only (reads are private in these tests).
    assert client.get(f"/api/v1/jobs/{r.json()['id']}", headers=project.auth("read")).status_code == 403
    assert client.get(f"/api/v1/jobs/{r.json()['id']}", headers=other.auth("read")).status_code == 200


def test_a_leg_goes_only_to_a_worker_that_declared_its_engine(client: TestClient, project: ProjectFixture) -> None:
    body = job_body(
        workload=VLLM_WORKLOAD,
        reference={"engine": "vllm-v0", "settings": {}, "label": "v0"},
        candidates=[{"engine": "torch", "settings": {}, "label": "torch"},
                    {"engine": "vllm-v1", "settings": {}, "label": "v1"}],
    )
    job = submit(client, project, body)
    first = claim(client, project, "cpu", ["torch"])
    assert first.status_code == 200 and first.json()["label"] == "torch"
    # Nothing else is for a torch-only worker, even though two legs are still queued.
    assert claim(client, project, "cpu", ["torch"]).status_code == 204
    v0 = claim(client, project, "gpu-v0", ["vllm-v0"]).json()
    assert v0["label"] == "v0" and v0["engine"] == "vllm-v0"
    assert claim(client, project, "gpu-v0", ["vllm-v0"]).status_code == 204
    assert claim(client, project, "gpu-v1", ["vllm-v1", "torch"]).json()["label"] == "v1"
    legs = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()["legs"]
    assert {leg["label"]: leg["worker"] for leg in legs} == {"v0": "gpu-v0", "torch": "cpu", "v1": "gpu-v1"}


def test_claim_hands_over_everything_a_worker_needs(client: TestClient, project: ProjectFixture) -> None:
    job = submit(client, project)
    leg = claim(client, project, "w1", lease_seconds=30, description={"host": "test"}).json()
    assert leg["job_id"] == job["id"] and leg["label"] == "reference" and leg["attempt"] == 1
    assert leg["workload"] == job["workload"] and leg["project"] == project.slug
    assert leg["lease_seconds"] == 30 and leg["status"] == "running"
    run = client.get(f"/api/v1/runs/{leg['run_id']}", headers=project.auth()).json()
    assert run["label"] == "reference" and run["external_id"] == f"job-{job['id']}-leg-{leg['id']}"
    assert run["engine"]["name"] == "torch" and run["config"]["workload"] == job["workload"]
    assert run["config"]["sampling_seed"] == leg["sampling_seed"]
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()["status"] == "running"


def test_claim_needs_a_write_token_and_stays_in_its_project(
    client: TestClient, database: Database, project: ProjectFixture
) -> None:
    submit(client, project)
    body = {"worker": "w", "engines": ["torch"]}
    assert client.post("/api/v1/legs/claim", json=body).status_code == 401
    r = client.post("/api/v1/legs/claim", json=body, headers=project.auth("read"))
    assert r.status_code == 403 and "read-only" in r.json()["detail"]
    other = make_project(database, "beta")
    assert client.post("/api/v1/legs/claim", json=body, headers=other.auth()).status_code == 204
    # A deployment-wide worker serves every project.
    assert client.post("/api/v1/legs/claim", json=body, headers=project.auth("admin")).status_code == 200
    for bad, field in [({"worker": "w", "engines": []}, "engines"), ({"engines": ["torch"]}, "worker"),
                       ({"worker": "w", "engines": ["torch"], "lease_seconds": 0}, "lease_seconds")]:
        r = client.post("/api/v1/legs/claim", json=bad, headers=project.auth())
        assert r.status_code == 422 and field in r.json()["detail"]


def test_heartbeat_extends_the_lease_and_records_progress(client: TestClient, project: ProjectFixture) -> None:
    submit(client, project)
    leg = claim(client, project, lease_seconds=5).json()
    engine = {"name": "torch", "version": "2.13.0", "settings": leg["settings"]}
    r = report(client, project, leg, "heartbeat", progress={"step": 2, "steps": 3}, engine=engine, lease_seconds=600)
    assert r.status_code == 200, r.text
    assert r.json()["progress"] == {"step": 2, "steps": 3}
    assert r.json()["lease_expires_at"] > leg["lease_expires_at"]
    run = client.get(f"/api/v1/runs/{leg['run_id']}", headers=project.auth()).json()
    assert run["engine"] == engine


def test_progress_nested_too_deep_is_refused(client: TestClient, project: ProjectFixture) -> None:
    job = submit(client, project)
    leg = claim(client, project).json()
    progress: dict = {"step": 1}
    for _ in range(300):
        progress = {"a": progress}
    r = report(client, project, leg, "heartbeat", progress=progress)
    assert r.status_code == 422 and r.json()["detail"].startswith("progress"), r.text
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).status_code == 200


def test_expired_lease_is_requeued_into_the_same_run(client: TestClient, project: ProjectFixture) -> None:
    submit(client, project, job_body(workload=VLLM_WORKLOAD, candidates=[{"engine": "vllm-v1", "label": "v1"}]))
    first = claim(client, project, "crashed", lease_seconds=1).json()
    steps = {"steps": [0, 1], "values": {"reward": [0.1, 0.2]}}
    assert client.post(f"/api/v1/runs/{first['run_id']}/metrics", json=steps, headers=project.auth()).status_code == 200
    # While the lease holds, the leg is not handed out again; the replica is next.
    second = claim(client, project, "other").json()
    assert second["label"] == "reference-replica"
    time.sleep(1.2)
    again = claim(client, project, "rescuer").json()
    assert again["id"] == first["id"] and again["attempt"] == 2
    assert again["run_id"] == first["run_id"]
    # The re-run posts the same steps again: they are replaced, not duplicated.
    redo = {"steps": [0, 1, 2], "values": {"reward": [0.3, 0.4, 0.5]}}
    r = client.post(f"/api/v1/runs/{again['run_id']}/metrics", json=redo, headers=project.auth())
    assert r.json() == {"accepted": 3, "replaced": 2}
    series = client.get(f"/api/v1/runs/{again['run_id']}/metrics", headers=project.auth()).json()
    assert series["reward"] == {"steps": [0, 1, 2], "values": [0.3, 0.4, 0.5]}
    # The worker that lost the lease is refused, whatever it tries.
    for what, extra in [("heartbeat", {}), ("complete", {}), ("fail", {"error": "late"})]:
        r = report(client, project, first, what, **extra)
        assert r.status_code == 409 and "claim 2" in r.json()["detail"], r.text
    assert report(client, project, again, "heartbeat").status_code == 200


def test_completing_someone_elses_leg_is_refused(client: TestClient, project: ProjectFixture) -> None:
    submit(client, project)
    leg = claim(client, project, "owner").json()
    r = report(client, project, leg, "complete", worker="intruder")
    assert r.status_code == 409 and "'intruder' does not hold" in r.json()["detail"]
    r = report(client, project, dict(leg, attempt=2), "complete")
    assert r.status_code == 409
    assert client.post("/api/v1/legs/999/complete", json={"worker": "owner", "attempt": 1},
                       headers=project.auth()).status_code == 404
    r = client.post(f"/api/v1/legs/{leg['id']}/complete", json={"worker": "owner", "attempt": 1},
                    headers=project.auth("read"))
    assert r.status_code == 403
    r = client.post(f"/api/v1/legs/{leg['id']}/fail", json={"worker": "owner", "attempt": 1},
                    headers=project.auth())
    assert r.status_code == 422 and "error" in r.json()["detail"]
    # The refused calls changed nothing: the owner still holds the leg and can finish it.
    assert report(client, project, leg, "complete").json()["status"] == "finished"
    assert report(client, project, leg, "complete").status_code == 409


def test_all_legs_done_records_the_saved_comparison(client: TestClient, project: ProjectFixture) -> None:
    job = submit(client, project)
    legs = []
    while (r := claim(client, project)).status_code == 200:
        legs.append(r.json())
    assert [leg["label"] for leg in legs] == ["reference", "reference-replica", "v1-initial", "v1-fixed"]
    for leg in legs:
        body = {"steps": [0, 1, 2], "values": {"reward": [0.1, 0.2, 0.3]}}
        assert client.post(f"/api/v1/runs/{leg['run_id']}/metrics", json=body, headers=project.auth()).status_code == 200
        engine = {"name": "torch", "version": "test", "settings": leg["settings"]}
        assert report(client, project, leg, "complete", engine=engine).status_code == 200
        state = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()
        assert (state["status"] == "finished") == (leg is legs[-1])
    assert state["finished_at"] is not None
    saved = client.get(f"/api/v1/comparisons/{state['comparison_id']}", headers=project.auth()).json()
    assert saved["reference"] == [legs[0]["run_id"], legs[1]["run_id"]]
    assert saved["candidates"] == [legs[2]["run_id"], legs[3]["run_id"]]
    assert saved["job_id"] == job["id"]
    for leg in legs:
        run = client.get(f"/api/v1/runs/{leg['run_id']}", headers=project.auth()).json()
        assert run["status"] == "finished" and run["label"] == leg["label"]
        assert run["engine"]["name"] == "torch"


def test_a_failed_leg_fails_the_job_and_stops_its_queue(client: TestClient, project: ProjectFixture) -> None:
    job = submit(client, project)
    leg = claim(client, project).json()
    r = report(client, project, leg, "fail", error="RuntimeError: out of memory")
    assert r.status_code == 200 and r.json()["error"] == "RuntimeError: out of memory"
    state = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()
    assert state["status"] == "failed" and state["comparison_id"] is None
    assert client.get(f"/api/v1/runs/{leg['run_id']}", headers=project.auth()).json()["status"] == "failed"
    assert claim(client, project).status_code == 204


def test_a_leg_whose_claims_all_ran_out_is_failed(settings: Settings, database: Database, project: ProjectFixture) -> None:
    strict = settings.model_copy(update={"leg_max_attempts": 1})
    with TestClient(create_app(strict, database)) as client:
        job = submit(client, project, job_body(workload=VLLM_WORKLOAD, reference={"engine": "torch"},
                                               candidates=[{"engine": "vllm-v1", "label": "v1"}]))
        claim(client, project, lease_seconds=1)
        time.sleep(1.2)
        state = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()
        assert state["status"] == "failed"
        assert "lease ran out" in state["legs"][0]["error"] and state["legs"][0]["status"] == "failed"
        assert claim(client, project).status_code == 204


def test_concurrent_claims_never_share_a_leg(client: TestClient, database: Database, project: ProjectFixture) -> None:
    candidates = [{"engine": "torch", "label": f"c{i}"} for i in range(7)]
    submit(client, project, job_body(reference={"engine": "torch"}, candidates=candidates))
    claimed: list[int] = []
    barrier = threading.Barrier(8)

    def one_worker(name: str) -> None:
        barrier.wait()
        with database.session() as session:
            leg = JobStore(session).claim(project.id, name, ["torch"], lease_seconds=60, max_attempts=3)
        if leg is not None:
            claimed.append(leg.leg.id)

    threads = [threading.Thread(target=one_worker, args=(f"w{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == len(set(claimed)) == 8
