"""The parity ladder over HTTP: ladder jobs, ladders from runs, verdicts in the job's JSON, and
stop_at_parity. The legs' metrics here are synthetic (posted by a stand-in worker) so each test
knows which rung diverges; tests/workers/test_ladder_attribution.py runs real legs. Every test
runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from backend.db import Database
from tests.conftest import ProjectFixture, make_project
from tests.tiny_job import TINY_WORKLOAD, V1_INITIAL

STEPS = 30
ORDER = ["logprobs_mode", "prefix_caching", "async_scheduling", "weight_update", "lm_head_dtype"]


def ladder_body(candidate: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "ladder",
        "workload": dict(TINY_WORKLOAD),
        "reference": {"engine": "torch", "settings": {}},
        "candidate": {"engine": "torch", "label": "v1-initial",
                      "settings": V1_INITIAL if candidate is None else candidate},
    }
    body.update(changes)
    return body


def post_job(client: TestClient, project: ProjectFixture, body: dict[str, Any]):
    return client.post("/api/v1/jobs", json=body, headers=project.auth())


def metrics(seed: int, clip: float) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    noise = lambda scale: (rng.normal(0, scale, STEPS)).tolist()  # noqa: E731
    return {
        "steps": list(range(STEPS)),
        "values": {
            "clamp_log_ratio_new_old_indicator": [clip + v for v in noise(0.01)],
            "kl_new_old": [2e-4 + v for v in noise(2e-5)],
            "entropy": [0.3 + v for v in noise(0.01)],
            "reward": [0.8 + v for v in noise(0.02)],
        },
    }


def work(client: TestClient, project: ProjectFixture, clip_of: dict[str, float]) -> list[str]:
    """Claim and complete every claimable leg, posting a clip rate by label; the labels run."""
    ran = []
    while True:
        r = client.post("/api/v1/legs/claim", json={"worker": "w", "engines": ["torch"]}, headers=project.auth())
        if r.status_code == 204:
            return ran
        leg = r.json()
        clip = next(v for k, v in clip_of.items() if leg["label"].endswith(k))
        body = metrics(leg["sampling_seed"], clip)
        assert client.post(f"/api/v1/runs/{leg['run_id']}/metrics", json=body, headers=project.auth()).status_code == 200
        done = client.post(f"/api/v1/legs/{leg['id']}/complete", json={"worker": "w", "attempt": leg["attempt"]},
                           headers=project.auth())
        assert done.status_code == 200, done.text
        ran.append(leg["label"])


def test_a_ladder_job_states_its_legs_up_front(client: TestClient, project: ProjectFixture) -> None:
    r = post_job(client, project, ladder_body())
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "ladder" and job["status"] == "queued"
    ladder = job["ladder"]
    # 2 reference replicas, rungs 0-5, and 4 ablation legs (the last setting's is rung 4).
    assert ladder["leg_count"] == len(job["legs"]) == 12
    assert [r["applied"] for r in ladder["rungs"]] == [[], *[[name] for name in ORDER]]
    assert ladder["rungs"][-1]["settings"] == {
        "logprobs_mode": "processed", "prefix_caching": False, "async_scheduling": False,
        "weight_update": "blocking", "lm_head_dtype": "fp32",
    }
    assert [a["setting"] for a in ladder["ablation"]] == ORDER
    assert ladder["ablation"][-1]["same_as_rung"] == 4
    assert ladder["status"] == "pending" and ladder["closing"] is None
    assert [leg["role"] for leg in job["legs"]][:2] == ["reference", "reference"]
    assert len({leg["sampling_seed"] for leg in job["legs"]}) == 12
    # Paired jobs are unchanged and say so.
    got = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()
    assert got["ladder"]["leg_count"] == 12


def test_ladder_bad_input_is_refused_and_stores_nothing(client: TestClient, project: ProjectFixture) -> None:
    cases = [
        (ladder_body(max_legs=8), "max_legs", "needs 12 legs"),
        (ladder_body(candidate={**V1_INITIAL, "logprobs_mode": "sideways"}), "candidate.settings.logprobs_mode", "sideways"),
        (ladder_body(candidate={"engine": "torch"} | {}), "candidate.settings.engine", "unknown setting"),
        (ladder_body(reference={"engine": "torch", "settings": {}, "replicas": 1}), "reference.replicas", ""),
        (ladder_body(kind="sideways"), None, "kind"),
    ]
    different = ladder_body()
    different["candidate"]["workload"] = {**TINY_WORKLOAD, "lr": 1e-3, "seed": 8}
    cases.append((different, "candidate.workload", "lr, seed"))
    for body, field, words in cases:
        r = post_job(client, project, body)
        assert r.status_code == 422, (body, r.text)
        detail = r.json()
        if field is not None and "field" in detail:
            assert detail["field"] == field, detail
        assert words in str(detail), detail
    assert client.get("/api/v1/jobs/1", headers=project.auth()).status_code == 404


def test_identical_settings_are_already_at_parity_without_legs(client: TestClient, project: ProjectFixture) -> None:
    r = post_job(client, project, ladder_body(candidate={"prefix_caching": "off"}))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["legs"] == [] and job["status"] == "finished"
    assert job["ladder"]["status"] == "already-at-parity" and job["ladder"]["leg_count"] == 0
    assert "Already at parity" in job["ladder"]["interpretation"][0]


def test_verdicts_closing_rung_and_patch(client: TestClient, project: ProjectFixture) -> None:
    candidate = {"logprobs_mode": "raw", "lm_head_dtype": "bf16"}
    job = post_job(client, project, ladder_body(candidate=candidate)).json()
    # rung 0 (both) and rung 1 (bf16 head still on) diverge, rung 2 is the reference's settings;
    # the ablation leg of logprobs_mode alone diverges.
    ran = work(client, project, {"reference": 0.4, "replica": 0.4, "rung-0": 0.9, "rung-1 logprobs_mode": 0.7,
                                 "rung-2 lm_head_dtype": 0.4, "ablation logprobs_mode": 0.8})
    assert len(ran) == 6  # the lm_head_dtype ablation is rung 1
    job = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()
    assert job["status"] == "finished" and job["comparison_id"] is not None
    ladder = job["ladder"]
    assert [r["at_parity"] for r in ladder["rungs"]] == [False, False, True]
    rung0 = ladder["rungs"][0]
    assert rung0["metrics"]["clip_rate"]["at_parity"] is False
    assert rung0["metrics"]["clip_rate"]["first_divergence_step"] == 0
    assert rung0["metrics"]["clip_rate"]["effect_size"] > 1
    assert rung0["metrics"]["reward"]["at_parity"] is True
    assert ladder["closing"] == {"rung": 2, "settings": ["lm_head_dtype"], "label": "v1-initial rung-2 lm_head_dtype",
                                 "values": {"lm_head_dtype": "fp32"}}
    assert ladder["patch"]["engine_settings"] == {"logprobs_mode": "processed", "lm_head_dtype": "fp32"}
    assert ladder["patch"]["vllm"] is None  # torch legs
    assert {a["setting"]: a["breaks_parity"] for a in ladder["ablation"]} == {"logprobs_mode": True, "lm_head_dtype": True}
    assert any("Rung 2 closes the gap" in s for s in ladder["interpretation"])
    assert ladder["rungs"][1]["run_ids"] == ladder["ablation"][1]["run_ids"]


def test_stop_at_parity_skips_the_rungs_after_parity(client: TestClient, project: ProjectFixture) -> None:
    candidate = {"logprobs_mode": "raw", "prefix_caching": True, "lm_head_dtype": "bf16"}
    job = post_job(client, project, ladder_body(candidate=candidate, stop_at_parity=True, ablation=False)).json()
    assert [leg["status"] for leg in job["legs"]] == ["queued"] * 3 + ["waiting"] * 3
    ran = work(client, project, {"reference": 0.4, "replica": 0.4, "rung-0": 0.9, "rung-1 logprobs_mode": 0.4})
    assert ran == ["reference", "reference-replica", "v1-initial rung-0", "v1-initial rung-1 logprobs_mode"]
    job = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()
    assert job["status"] == "finished"
    assert [leg["status"] for leg in job["legs"]] == ["finished"] * 4 + ["skipped"] * 2
    ladder = job["ladder"]
    assert [r["status"] for r in ladder["rungs"]] == ["finished", "finished", "skipped", "skipped"]
    assert ladder["closing"]["rung"] == 1 and ladder["patch"]["engine_settings"] == {"logprobs_mode": "processed"}
    assert any("skipped" in s for s in ladder["interpretation"])


def test_ladder_from_runs(client: TestClient, project: ProjectFixture) -> None:
    paired = {"workload": dict(TINY_WORKLOAD), "reference": {"engine": "torch", "replicas": 2},
              "candidates": [{"engine": "vllm-v1", "label": "v1", "settings": {"prefix_caching": True}}]}
    job = client.post("/api/v1/jobs", json=paired, headers=project.auth()).json()
    for _ in range(3):
        client.post("/api/v1/legs/claim", json={"worker": "w", "engines": ["torch", "vllm-v1"]}, headers=project.auth())
    job = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()
    refs = [leg["run_id"] for leg in job["legs"] if leg["role"] == "reference"]
    cand = next(leg["run_id"] for leg in job["legs"] if leg["role"] == "candidate")
    body = {"reference": refs, "candidate": cand, "dry_run": True}
    r = client.post("/api/v1/ladders", json=body, headers=project.auth())
    assert r.status_code == 200, r.text  # a dry run creates nothing
    # The reference runs and the candidate's run are adopted as rung 0; only rung 1 runs.
    assert r.json()["leg_count"] == 1 and r.json()["plan"]["reused_legs"] == 3
    assert r.json()["plan"]["candidate_engine"] == "vllm-v1"
    assert client.get(f"/api/v1/jobs/{job['id'] + 1}", headers=project.auth()).status_code == 404
    r = client.post("/api/v1/ladders", json={**body, "dry_run": False}, headers=project.auth())
    assert r.status_code == 201, r.text
    ladder_job = r.json()
    assert ladder_job["kind"] == "ladder"
    assert [leg["engine"] for leg in ladder_job["legs"]] == ["torch", "torch", "vllm-v1", "vllm-v1"]
    assert [leg["run_id"] for leg in ladder_job["legs"]][:3] == [*refs, cand]
    assert [leg["status"] for leg in ladder_job["legs"]] == ["finished"] * 3 + ["queued"]
    assert ladder_job["workload"] == job["workload"] and ladder_job["ladder"]["leg_count"] == 1


def test_ladder_from_runs_not_from_a_job_is_refused(client: TestClient, project: ProjectFixture) -> None:
    ids = [client.post(f"/api/v1/projects/{project.slug}/runs", json={"name": f"r{i}"}, headers=project.auth()).json()["id"]
           for i in range(3)]
    r = client.post("/api/v1/ladders", json={"reference": ids[:2], "candidate": ids[2]}, headers=project.auth())
    assert r.status_code == 422
    assert "did not come from a job" in r.json()["detail"] and "reproducible legs" in r.json()["detail"]
    r = client.post("/api/v1/ladders", json={"reference": [ids[0]], "candidate": ids[0]}, headers=project.auth())
    assert r.status_code == 422 and "also a reference" in r.json()["detail"]
    r = client.post("/api/v1/ladders", json={"reference": [99998], "candidate": 99999}, headers=project.auth())
    assert r.status_code == 404


def test_a_share_link_carries_the_ladder_and_a_frozen_one_its_snapshot(client: TestClient, project: ProjectFixture) -> None:
    job = post_job(client, project, ladder_body(candidate={"logprobs_mode": "raw"})).json()
    work(client, project, {"reference": 0.4, "replica": 0.4, "rung-0": 0.9, "rung-1 logprobs_mode": 0.4})
    ladder = client.get(f"/api/v1/jobs/{job['id']}", headers=project.auth()).json()["ladder"]
    view = {"reference": ladder["reference"]["run_ids"], "candidates": [r["run_ids"][0] for r in ladder["rungs"]],
            "ladder": job["id"]}
    r = client.post("/api/v1/shares", json={"view": view, "frozen": True}, headers=project.auth())
    assert r.status_code == 201, r.text
    shared = client.get(f"/api/v1/s/{r.json()['token']}").json()
    assert shared["share"]["view"]["ladder"] == job["id"]
    assert shared["data"]["ladder"]["closing"]["rung"] == 1
    assert shared["data"]["ladder"]["patch"]["engine_settings"] == {"logprobs_mode": "processed"}

    paired = client.post("/api/v1/jobs", json={"workload": dict(TINY_WORKLOAD), "reference": {"engine": "torch"},
                                               "candidates": [{"engine": "torch", "label": "c"}]},
                         headers=project.auth()).json()
    for bad in (9999, paired["id"]):
        r = client.post("/api/v1/shares", json={"view": {**view, "ladder": bad}}, headers=project.auth())
        assert r.status_code == 422 and r.json()["field"] == "view.ladder", r.text
    assert len(client.get(f"/api/v1/projects/{project.slug}/shares", headers=project.auth()).json()) == 1


def test_ladders_need_write_access_to_the_runs(client: TestClient, project: ProjectFixture, database: Database) -> None:
    other = make_project(database, "beta")
    ids = [client.post(f"/api/v1/projects/{other.slug}/runs", json={"name": f"r{i}"}, headers=other.auth()).json()["id"]
           for i in range(2)]
    r = client.post("/api/v1/ladders", json={"reference": [ids[0]], "candidate": ids[1]}, headers=project.auth())
    assert r.status_code == 403 and "job" not in r.json()["detail"]
    r = client.post("/api/v1/ladders", json={"reference": [ids[0]], "candidate": ids[1]}, headers=other.auth("read"))
    assert r.status_code == 403
