"""``parityscope ladder`` against a live server: the leg count, then with --wait the rung table
and the patch. The legs' metrics are synthetic, posted by a stand-in worker thread."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from backend.cli import app as cli_app
from tests.conftest import ProjectFixture
from tests.tiny_job import TINY_WORKLOAD

STEPS = 30


def work_legs(url: str, token: str, clip_of: dict[str, float], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        while not stop.is_set():
            r = http.post("/api/v1/legs/claim", json={"worker": "stand-in", "engines": ["torch"]})
            if r.status_code == 204:
                stop.wait(0.1)
                continue
            leg = r.json()
            rng = np.random.default_rng(leg["sampling_seed"])
            clip = next(v for k, v in clip_of.items() if leg["label"].endswith(k))
            values = {
                "clamp_log_ratio_new_old_indicator": (clip + rng.normal(0, 0.01, STEPS)).tolist(),
                "kl_new_old": (2e-4 + rng.normal(0, 2e-5, STEPS)).tolist(),
                "entropy": (0.3 + rng.normal(0, 0.01, STEPS)).tolist(),
                "reward": (0.8 + rng.normal(0, 0.02, STEPS)).tolist(),
            }
            http.post(f"/api/v1/runs/{leg['run_id']}/metrics", json={"steps": list(range(STEPS)), "values": values})
            http.post(f"/api/v1/legs/{leg['id']}/complete", json={"worker": "stand-in", "attempt": leg["attempt"]})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ladder_cli(live_server: str, project: ProjectFixture) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=work_legs, daemon=True, args=(
        live_server, project.write, {"reference": 0.4, "replica": 0.4, "v1": 0.9, "rung-1 logprobs_mode": 0.4}, stop))
    worker.start()
    try:
        with httpx.Client(base_url=live_server, headers=project.auth(), timeout=60) as http:
            job = http.post("/api/v1/jobs", json={
                "workload": dict(TINY_WORKLOAD), "reference": {"engine": "torch", "replicas": 2},
                "candidates": [{"engine": "torch", "label": "v1", "settings": {"logprobs_mode": "raw"}}]}).json()
            for _ in range(200):
                job = http.get(f"/api/v1/jobs/{job['id']}").json()
                if job["status"] == "finished":
                    break
                stop.wait(0.1)
        runs = [leg["run_id"] for leg in job["legs"]]
        runner = CliRunner()
        env = {"PARITYSCOPE_TOKEN": project.write}
        args = ["ladder", "--url", live_server, "--reference", f"{runs[0]},{runs[1]}", "--candidate", str(runs[2])]
        result = runner.invoke(cli_app, [*args, "--dry-run"], env=env)
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "1 legs"
        result = runner.invoke(cli_app, [*args, "--wait"], env=env)
        assert result.exit_code == 0, result.output
        assert "1 legs" in result.output and ": finished" in result.output
        lines = result.output.splitlines()
        rung0 = next(line for line in lines if line.startswith("rung 0: candidate"))
        assert "off@0" in rung0
        rung1 = next(line for line in lines if line.startswith("rung 1: + logprobs_mode"))
        assert "← closes" in rung1 and rung1.count("parity") == 4
        assert 'patch (engine settings): {"logprobs_mode": "processed"}' in result.output

        result = runner.invoke(cli_app, ["ladder", "--url", live_server, "--reference", "x", "--candidate", "1"], env=env)
        assert result.exit_code == 1 and "not a list of run ids" in result.output
        result = runner.invoke(cli_app, [*args[:-4], "--reference", str(runs[0]), "--candidate", str(runs[0])], env=env)
        assert result.exit_code == 1 and "also a reference" in result.output
    finally:
        stop.set()
        worker.join(timeout=10)
