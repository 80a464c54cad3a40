"""``pip install parityscope`` alone: the client, ``parityscope sync`` and the command's help work
with httpx and nothing of the server, and a trainer in that environment logs a run to a server.

The package is installed from this checkout into a new, empty virtual environment, once per
session; pip finds hatchling and httpx where it is configured to (an index or its cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ProjectFixture
from tests.test_client import expected, stored  # the trainer below logs test_client.values_at
from tests.test_client_wandb import WANDB_SCRIPT

ROOT = Path(__file__).resolve().parent.parent
SERVER_ONLY = ("fastapi", "sqlalchemy", "alembic", "psycopg", "polars", "plotly", "numpy", "orjson",
               "uvicorn", "pydantic", "pydantic_settings", "typer", "torch", "transformers")

TRAINER = """
import math
import sys
import parityscope

run = parityscope.init(sys.argv[1], "light", url=sys.argv[2], token=sys.argv[3], spool_dir=sys.argv[4])
for step in range(30):
    run.log({"reward": math.sin(step), "kl_new_old": math.nan if step % 7 == 0 else step * 1e-4,
             "clip": math.inf if step % 11 == 0 else 1.0 / (step + 1)}, step=step)
run.finish()
"""
# Appended to the trainer where it logs to a live server: the client pulled in no server module.
NOTHING_OF_THE_SERVER = f"""
loaded = sorted(name for name in sys.modules if name.split(".")[0] in {SERVER_ONLY!r} + ("backend", "workers"))
assert not loaded, loaded
"""


@pytest.fixture(scope="session")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("client-install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    build = tmp_path_factory.mktemp("client-build")
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir", str(ROOT)],
        capture_output=True, text=True, timeout=600, cwd=build,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return venv


def test_the_client_installs_without_the_server(client_venv: Path) -> None:
    python = str(client_venv / "bin" / "python")
    for module in SERVER_ONLY:
        found = subprocess.run([python, "-c", f"import {module}"], capture_output=True, timeout=60)
        assert found.returncode != 0, f"{module} was installed with the client"
    imported = subprocess.run(
        [python, "-c", "import httpx, parityscope, parityscope.client, parityscope.wire, parityscope.cli"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr


def test_the_command_without_the_server(client_venv: Path, tmp_path: Path) -> None:
    command = str(client_venv / "bin" / "parityscope")
    helped = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "sync" in helped.stdout and "pip install 'parityscope[server]'" in helped.stdout
    refused = subprocess.run([command, "serve"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "parityscope serve needs the server's dependencies" in refused.stderr
    assert "pip install 'parityscope[server]'" in refused.stderr and "Traceback" not in refused.stderr
    synced = subprocess.run([command, "sync", "--spool-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert synced.returncode == 0 and "nothing to send" in synced.stdout, synced.stderr
    callback = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", "import parityscope.callback"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert callback.returncode == 1 and "install transformers" in callback.stderr


def test_a_trainer_with_the_client_alone_logs_a_run(
    client_venv: Path, live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", TRAINER + NOTHING_OF_THE_SERVER, project.slug, live_server, project.write, str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()["runs"]
    assert run["name"] == "light" and run["status"] == "finished"
    assert stored(client, project, run["id"])[1] == expected(range(30))


def test_spooled_points_are_sent_by_the_light_sync(
    client_venv: Path, live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    # Nothing listens on port 9 here: every batch goes to the spool, and `parityscope sync`
    # from the client's install sends it to the live server.
    spooled = subprocess.run(
        [str(client_venv / "bin" / "python"), "-c", TRAINER, project.slug,
         "http://127.0.0.1:9", project.write, str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert spooled.returncode == 0, spooled.stderr
    synced = subprocess.run(
        [str(client_venv / "bin" / "parityscope"), "sync", "--url", live_server, "--token", project.write,
         "--spool-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stderr
    assert "90 points sent" in synced.stdout
    (run,) = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()["runs"]
    assert run["status"] == "finished"
    assert stored(client, project, run["id"])[1] == expected(range(30))


def test_a_wandb_script_runs_with_the_client_alone(
    client_venv: Path, live_server: str, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    """``import parityscope as wandb`` needs neither numpy nor torch: values are recognised by
    what they do, and nothing of the server is imported."""
    script = tmp_path / "train.py"
    script.write_text("import sys\n" + WANDB_SCRIPT + NOTHING_OF_THE_SERVER)
    env = {"PATH": os.environ.get("PATH", ""), "PARITYSCOPE_URL": live_server, "PARITYSCOPE_TOKEN": project.write,
           "PARITYSCOPE_SPOOL_DIR": str(tmp_path / "spool")}  # fmt: skip
    done = subprocess.run([str(client_venv / "bin" / "python"), str(script), "--project", project.slug],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth("read")).json()["runs"]
    assert run["status"] == "finished" and run["config"]["dropout"] == 0.1
    assert sorted(stored(client, project, run["id"])[1]) == ["acc", "loss", "summary/best_acc", "val/acc"]
