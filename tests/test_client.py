"""The Python client against a real server over HTTP, including an outage in the middle."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import parityscope
from backend.cli import app as cli
from backend.db import Database
from backend.storage.tokens import TokenStore
from parityscope.client import ClientError
from parityscope.spool import SpoolFile, spool_files
from parityscope.wire import VALUES_PER_REQUEST, column_batches
from tests.conftest import LiveServer, ProjectFixture

FAST = {"flush_interval": 0.05, "max_backoff": 0.2, "timeout": 2.0}


def values_at(step: int) -> dict[str, float]:
    return {
        "reward": math.sin(step),
        "kl_new_old": math.nan if step % 7 == 0 else step * 1e-4,
        "clip": math.inf if step % 11 == 0 else 1.0 / (step + 1),
    }


def wire(v: float) -> float | str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def expected(steps: range) -> dict:
    keys = ["clip", "kl_new_old", "reward"]
    return {k: {"steps": list(steps), "values": [wire(values_at(s)[k]) for s in steps]} for k in keys}


def stored(client: TestClient, project: ProjectFixture, run_id: int) -> tuple[dict, dict]:
    run = client.get(f"/api/v1/runs/{run_id}", headers=project.auth("read")).json()
    series = client.get(f"/api/v1/runs/{run_id}/metrics", headers=project.auth("read")).json()
    return run, series


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_spool_survives_an_outage_with_exactly_the_points_sent(
    live_server_control: LiveServer, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    server = live_server_control
    run = parityscope.init(
        project.slug, "v1-candidate", config={"seed": 1}, url=server.url, token=project.write,
        spool_dir=tmp_path, **FAST,
    )  # fmt: skip
    for step in range(50):
        run.log(values_at(step), step=step)
    assert run.flush() is True

    server.stop()
    for step in range(50, 100):
        run.log(values_at(step), step=step)
    assert run.flush() is False  # spooled, not sent
    (spooled,) = spool_files(tmp_path)
    assert SpoolFile(spooled).read().points == 150

    server.start()
    wait_until(lambda: run.flush(timeout=5))  # sent again automatically, spool first
    assert spool_files(tmp_path) == []
    for step in range(100, 120):
        run.log(values_at(step))  # the step follows on by itself
    run.finish()

    info, series = stored(client, project, run.id)
    assert info["status"] == "finished"
    assert info["config"] == {"seed": 1}
    assert series == expected(range(120))


def test_run_created_after_the_server_comes_back_via_sync(
    live_server_control: LiveServer, project: ProjectFixture, client: TestClient, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    server = live_server_control
    server.stop()
    with caplog.at_level(logging.WARNING, logger="parityscope"):
        with parityscope.init(
            project.slug, "offline", url=server.url, token=project.write, spool_dir=tmp_path,
            external_id="trainer-7", **FAST,
        ) as run:  # fmt: skip
            assert run.id is None
            for step in range(30):
                run.log(values_at(step), step=step)
    assert "parityscope sync" in caplog.text
    assert len(spool_files(tmp_path)) == 1

    server.start()
    runner = CliRunner()
    result = runner.invoke(cli, ["sync", "--spool-dir", str(tmp_path), "--token", project.write])
    assert result.exit_code == 0, result.output
    assert "90 points sent" in result.output
    assert spool_files(tmp_path) == []
    page = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()
    (created,) = page["runs"]
    assert created["external_id"] == "trainer-7" and created["status"] == "finished"
    assert stored(client, project, created["id"])[1] == expected(range(30))
    result = runner.invoke(cli, ["sync", "--spool-dir", str(tmp_path), "--token", project.write])
    assert result.exit_code == 0 and "nothing to send" in result.output


def test_refused_batches_are_kept_for_sync(
    live_server_control: LiveServer, project: ProjectFixture, client: TestClient, database: Database, tmp_path: Path
) -> None:
    run = parityscope.init(project.slug, "revoked", url=live_server_control.url, token=project.write, spool_dir=tmp_path, **FAST)
    run.log(values_at(0), step=0)
    assert run.flush()
    with database.session() as session:
        tokens = TokenStore(session)
        tokens.revoke(tokens.verify(project.write).id)
    run.log(values_at(1), step=1)
    assert run.flush() is False
    run.finish()
    result = CliRunner().invoke(cli, ["sync", "--spool-dir", str(tmp_path), "--token", project.admin])
    assert result.exit_code == 0, result.output
    info, series = stored(client, project, run.id)
    assert series == expected(range(2)) and info["status"] == "finished"


def test_with_block_marks_the_run_failed_on_an_exception(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="diverged"):
        with parityscope.init(project.slug, "crash", url=live_server, token=project.write, spool_dir=tmp_path, **FAST) as run:
            run.log({"reward": 1.0})
            raise RuntimeError("diverged")
    info, series = stored(client, project, run.id)
    assert info["status"] == "failed" and series == {"reward": {"steps": [0], "values": [1.0]}}


def test_bad_input_is_refused_where_it_happens(
    live_server: str, project: ProjectFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PARITYSCOPE_URL", raising=False)
    with pytest.raises(ValueError, match="PARITYSCOPE_URL"):
        parityscope.init(project.slug, "x", token=project.write)
    with pytest.raises(ClientError, match="project 'nope' not found"):
        parityscope.init("nope", "x", url=live_server, token=project.write, spool_dir=tmp_path)
    with pytest.raises(ClientError, match="401"):
        parityscope.init(project.slug, "x", url=live_server, token="pst_wrong", spool_dir=tmp_path)
    monkeypatch.setenv("PARITYSCOPE_URL", live_server)
    monkeypatch.setenv("PARITYSCOPE_TOKEN", project.write)
    run = parityscope.init(project.slug, "x", spool_dir=tmp_path, **FAST)
    # Values and keys that cannot be sent are skipped with a warning (tests/test_client_wandb.py);
    # a step out of range is the caller's error.
    with pytest.raises(ValueError, match="outside"):
        run.log({"reward": 1.0}, step=-1)
    run.finish()
    with pytest.raises(RuntimeError, match="finished"):
        run.log({"reward": 1.0})


def test_column_batches_stay_under_the_request_limit() -> None:
    keys = [f"k{i}" for i in range(300)]
    rows = [(s, {k: float(s) for k in keys}, 0.0) for s in range(400)]
    rows.append((400, {"late": 1.0}, 0.0))
    batches = column_batches(rows)
    assert all(len(b["steps"]) * len(b["values"]) <= VALUES_PER_REQUEST for b in batches)
    assert sum(len(b["steps"]) for b in batches) == 401
    assert batches[-1]["values"]["late"][-1] == 1.0
    assert batches[-1]["values"]["k0"][-1] is None


def test_what_the_server_acknowledged_is_committed(live_server: str, project: ProjectFixture) -> None:
    """A client's next request sees what the previous response acknowledged."""
    connection = parityscope.client.Connection(live_server, project.write)
    for i in range(50):
        run = connection.create_run(project.slug, {"name": f"r{i}"})
        assert connection.post_metrics(run["id"], {"steps": [0], "values": {"reward": [1.0]}}) == {
            "accepted": 1,
            "replaced": 0,
        }
    connection.close()


TRAINER_SCRIPT = """
import sys
import parityscope
run = parityscope.init(sys.argv[1], sys.argv[2], url=sys.argv[3], token=sys.argv[4], spool_dir=sys.argv[5],
                       flush_interval=60)
for step in range(5):
    run.log({"reward": float(step)})
if sys.argv[2] == "crashes":
    raise RuntimeError("diverged")
"""


def test_interpreter_exit_flushes_and_finishes(
    live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    import subprocess
    import sys

    for name, code, status in [("exits", 0, "finished"), ("crashes", 1, "failed")]:
        done = subprocess.run(
            [sys.executable, "-c", TRAINER_SCRIPT, project.slug, name, live_server, project.write, str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == code, done.stderr
        (run,) = [r for r in client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()["runs"] if r["name"] == name]
        assert run["status"] == status
        assert stored(client, project, run["id"])[1] == {"reward": {"steps": [0, 1, 2, 3, 4], "values": [0.0, 1.0, 2.0, 3.0, 4.0]}}
    assert spool_files(tmp_path) == []
