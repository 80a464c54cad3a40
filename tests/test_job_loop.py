"""Workers running real legs over real HTTP: the job loop in-process and ``parityscope worker``
as a separate process that is killed mid-leg.

The workload is tiny (a few steps of a few sequences, a short warm start) so the torch engine
runs each leg in seconds; the warm-started checkpoint is built once per test session and shared
by every worker through ``PARITYSCOPE_CHECKPOINT_DIR``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from backend.cli import app as cli_app
from tests.conftest import ProjectFixture
from tests.tiny_job import TINY_WORKLOAD, V1_INITIAL
from workers.job_loop import Worker, check_engines_available, job_connection

STEPS = 6
CLI = [sys.executable, "-m", "backend.cli"]


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


def paired_job(candidates: list[dict[str, Any]] | None = None, steps: int = STEPS) -> dict[str, Any]:
    return {
        "workload": {**TINY_WORKLOAD, "steps": steps},
        "reference": {"engine": "torch", "settings": {}, "label": "reference"},
        "candidates": candidates or [{"engine": "torch", "settings": V1_INITIAL, "label": "v1-initial"}],
    }


def assert_one_point_per_step(client: httpx.Client, run_id: int, steps: int = STEPS) -> None:
    keys = client.get(f"/api/v1/runs/{run_id}/keys").json()
    assert {"reward", "clamp_log_ratio_new_old_indicator", "kl_new_old", "entropy"} <= {k["key"] for k in keys}
    for key in keys:
        assert (key["count"], key["first_step"], key["last_step"]) == (steps, 0, steps - 1), key


def test_worker_runs_the_legs_for_its_engine_only(
    live_server: str, project: ProjectFixture, checkpoint_dir: Path
) -> None:
    api = job_connection(live_server, project.write)
    job = api.submit(paired_job())
    vllm_job = paired_job([{"engine": "vllm-v0", "settings": {}, "label": "v0"}])
    # A vLLM leg needs two 16-token blocks of shared instruction (docs/VLLM.md).
    vllm_job["workload"].update(instruction_tokens=32, prefix_block_size=16)
    other = api.submit(vllm_job)
    worker = Worker(live_server, project.write, name="cpu-1", engines=["torch"], lease_seconds=30,
                    checkpoint_dir=checkpoint_dir, poll_seconds=0.1, progress=False, log=lambda _: None)
    # Run until nothing is claimable: the vLLM V0 leg stays queued for a worker that has vLLM.
    assert worker.run(stop=lambda: True) == 3
    worker.close()

    done = api.job(job["id"])
    assert done["status"] == "finished" and done["comparison_id"] is not None
    waiting = api.job(other["id"])
    assert [(leg["label"], leg["status"]) for leg in waiting["legs"]] == [("reference", "finished"), ("v0", "queued")]
    assert waiting["status"] == "running" and waiting["comparison_id"] is None

    client = httpx.Client(base_url=live_server, headers={"Authorization": f"Bearer {project.read}"})
    for leg in done["legs"]:
        assert leg["status"] == "finished" and leg["attempts"] == 1 and leg["progress"] == {"step": STEPS, "steps": STEPS}
        run = client.get(f"/api/v1/runs/{leg['run_id']}").json()
        # Runs are labelled by the engine that ran them: the torch engine, never vLLM.
        assert run["engine"]["name"] == "torch" and "vllm" not in str(run["engine"]).lower()
        assert run["engine"]["settings"] == leg["settings"] and run["engine"]["version"]
        assert run["label"] == leg["label"] and run["status"] == "finished"
        assert_one_point_per_step(client, leg["run_id"])
    saved = client.get(f"/api/v1/comparisons/{done['comparison_id']}").json()
    assert saved["reference"] == [done["legs"][0]["run_id"]]
    assert saved["candidates"] == [done["legs"][1]["run_id"]]
    # Each step is posted with the wall time it finished at: the comparison can use time as x.
    compared = client.get("/api/v1/compare", params={
        "reference": saved["reference"][0], "candidates": saved["candidates"][0], "include": "wall_time",
    })
    assert compared.status_code == 200, compared.text
    for run_id, run in compared.json()["runs"].items():
        wall = run["wall_time"]
        assert wall is not None, run_id
        assert wall["seconds"][0] == 0 and wall["seconds"] == sorted(wall["seconds"]), wall
    api.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_worker_rides_out_a_server_restart(live_server_control, project: ProjectFixture, checkpoint_dir: Path) -> None:
    url = live_server_control.url
    api = job_connection(url, project.write)
    job = api.submit(paired_job())
    live_server_control.stop()
    worker = Worker(url, project.write, name="patient", lease_seconds=30, checkpoint_dir=checkpoint_dir,
                    progress=False, log=lambda _: None)
    outcome: list[str | None] = []
    thread = threading.Thread(target=lambda: outcome.append(worker.run_once()))
    thread.start()
    time.sleep(1.0)  # the claim is being retried against a closed port
    live_server_control.start()
    thread.join(timeout=120)
    worker.close()
    assert outcome == ["finished"]
    assert api.job(job["id"])["legs"][0]["worker"] == "patient"
    api.close()


def _worker_process(url: str, token: str, name: str, checkpoint_dir: Path, *extra: str) -> subprocess.Popen[str]:
    env = os.environ | {"PARITYSCOPE_CHECKPOINT_DIR": str(checkpoint_dir)}
    return subprocess.Popen(
        [*CLI, "worker", "--url", url, "--token", token, "--name", name, "--engines", "torch",
         "--lease-seconds", "2", "--poll-seconds", "0.2", "--flush-steps", "1", "--no-progress", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_killed_worker_process_is_requeued_without_duplicate_steps(
    live_server: str, project: ProjectFixture, checkpoint_dir: Path
) -> None:
    """API in this process, workers in others, on PostgreSQL: a worker killed mid-leg loses its
    lease, the leg is claimed again, and its re-run replaces the steps already posted."""
    # Long enough that the first worker is still mid-leg when it is seen to have posted, on a
    # fast machine as on a loaded one (a tiny step takes a few tens of milliseconds).
    steps = 80
    api = job_connection(live_server, project.write)
    job = api.submit(paired_job(steps=steps))
    client = httpx.Client(base_url=live_server, headers={"Authorization": f"Bearer {project.read}"})

    doomed = _worker_process(live_server, project.write, "doomed", checkpoint_dir, "--once")
    try:
        deadline = time.monotonic() + 120
        posted = 0
        while posted < 2:
            assert doomed.poll() is None, doomed.communicate()[0]
            assert time.monotonic() < deadline, "the first worker posted no steps in time"
            leg = api.job(job["id"])["legs"][0]
            if leg["run_id"] is not None:
                keys = {k["key"]: k for k in client.get(f"/api/v1/runs/{leg['run_id']}/keys").json()}
                posted = keys["reward"]["count"] if "reward" in keys else 0
            time.sleep(0.1)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
    first = api.job(job["id"])["legs"][0]
    assert first["status"] == "running" and first["worker"] == "doomed" and 2 <= posted < steps

    rescuer = _worker_process(live_server, project.write, "rescuer", checkpoint_dir)
    try:
        deadline = time.monotonic() + 120
        while (state := api.job(job["id"]))["status"] not in ("finished", "failed"):
            assert rescuer.poll() is None, rescuer.communicate()[0]
            assert time.monotonic() < deadline, f"job did not finish: {state}"
            time.sleep(0.2)
    finally:
        rescuer.send_signal(signal.SIGINT)
        try:
            rescuer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rescuer.kill()

    assert state["status"] == "finished", state
    requeued, candidate = state["legs"]
    assert requeued["id"] == first["id"] and requeued["run_id"] == first["run_id"]
    assert requeued["attempts"] == 2 and requeued["worker"] == "rescuer"
    assert candidate["attempts"] == 1 and candidate["worker"] == "rescuer"
    for leg in state["legs"]:
        assert_one_point_per_step(client, leg["run_id"], steps)
    saved = client.get(f"/api/v1/comparisons/{state['comparison_id']}").json()
    assert saved["reference"] == [requeued["run_id"]] and saved["candidates"] == [candidate["run_id"]]
    client.close()
    api.close()


def test_a_worker_refuses_engines_it_cannot_run() -> None:
    result = CliRunner().invoke(
        cli_app, ["worker", "--url", "http://127.0.0.1:9", "--token", "pst_x", "--engines", "torch,vllm-v9"]
    )
    assert result.exit_code == 1 and "unknown engine 'vllm-v9'" in result.output, result.output
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ValueError, match="vllm-v0 needs vLLM installed"):
            check_engines_available(["torch", "vllm-v0"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_submit_cli(live_server: str, project: ProjectFixture, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"PARITYSCOPE_TOKEN": project.write}
    good = tmp_path / "job.json"
    good.write_text(json.dumps(paired_job()))
    result = runner.invoke(cli_app, ["submit", str(good), "--url", live_server], env=env)
    assert result.exit_code == 0, result.output
    assert "job 1 in project alpha: queued" in result.output
    assert "v1-initial (candidate, torch, seed 2)" in result.output

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(paired_job(), workload={**TINY_WORKLOAD, "steps": -1})))
    result = runner.invoke(cli_app, ["submit", str(bad), "--url", live_server], env=env)
    assert result.exit_code == 1 and "workload.steps: must be at least 1" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = runner.invoke(cli_app, ["submit", str(broken), "--url", live_server], env=env)
    assert result.exit_code == 1 and "not valid JSON" in result.output
    result = runner.invoke(cli_app, ["submit", str(good), "--url", live_server, "--token", project.read])
    assert result.exit_code == 1 and "403" in result.output and "read-only" in result.output
