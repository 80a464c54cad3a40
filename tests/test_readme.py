"""The README's shell examples, extracted from README.md and run as printed (bash, curl and the
installed ``parityscope`` command) against a live server that already holds a demo run, which
they must leave untouched. Only the server's address is substituted for ``localhost:8000``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import ProjectFixture, make_project

README = Path(__file__).resolve().parent.parent / "README.md"


def section_blocks(heading: str) -> list[str]:
    """The ```sh blocks of one ``## heading`` section of the README."""
    text = README.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def command_starting(block: str, prefix: str) -> str:
    """One command of a block, with its backslash-continued lines."""
    lines = block.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(prefix))
    command = [lines[first]]
    while command[-1].endswith("\\"):
        first += 1
        command.append(lines[first])
    return "\n".join(command)


def run_bash(script: str, live_server: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = script.replace("localhost:8000", live_server.removeprefix("http://"))
    bin_dir = str(Path(sys.executable).parent)
    environ = os.environ | env | {
        "PARITYSCOPE_DATABASE_URL": database_url,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
    }
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=environ, capture_output=True,
                          text=True, timeout=120)


def demo_state(client: TestClient, demo: ProjectFixture) -> tuple[list[dict], dict]:
    runs = client.get(f"/api/v1/projects/{demo.slug}/runs", headers=demo.auth("admin")).json()["runs"]
    return runs, {r["id"]: client.get(f"/api/v1/runs/{r['id']}/metrics", headers=demo.auth("admin")).json() for r in runs}


def test_the_api_example_runs_as_printed_next_to_the_demo(
    live_server: str, database_url: str, database, client: TestClient
) -> None:
    demo = make_project(database, "demo")
    r = client.post("/api/v1/projects/demo/runs", json={"name": "reference"}, headers=demo.auth())
    client.post(f"/api/v1/runs/{r.json()['id']}/metrics", json={"steps": [0, 1], "values": {"reward": [0.5, 0.6]}},
                headers=demo.auth())
    before = demo_state(client, demo)

    (block,) = section_blocks("The API")
    result = run_bash(block, live_server, database_url)
    assert result.returncode == 0, result.stderr
    assert '"accepted":4' in result.stdout.replace(" ", "")

    (project,) = [p for p in client.get("/api/v1/projects", headers=demo.auth("admin")).json() if p["slug"] == "my-trainer"]
    assert project["name"] == "My trainer"
    (run,) = client.get("/api/v1/projects/my-trainer/runs", headers=demo.auth("admin")).json()["runs"]
    assert run["name"] == "first-run" and run["config"] == {"learning_rate": 1e-5}
    assert client.get(f"/api/v1/runs/{run['id']}/metrics", headers=demo.auth("admin")).json() == {
        "kl_new_old": {"steps": [0, 1], "values": [0.0, 1e-4]},
        "reward": {"steps": [0, 1], "values": [0.1, "NaN"]},
    }
    assert demo_state(client, demo) == before

    # Run twice, the example stops at its first command: the project exists.
    again = run_bash(block, live_server, database_url)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_the_compose_section_creates_a_project_with_curl_as_printed(
    live_server: str, database_url: str, project: ProjectFixture, client: TestClient
) -> None:
    (block,) = section_blocks("Jobs, workers and docker-compose")
    curl = command_starting(block, "curl -X POST localhost:8000/api/v1/projects")
    result = run_bash(curl + " --fail-with-body", live_server, database_url, ADMIN=project.admin)
    assert result.returncode == 0, result.stdout + result.stderr
    created = client.get("/api/v1/projects", headers=project.auth("admin")).json()
    assert {"slug": "gspo-v1", "name": "GSPO on vLLM V1"}.items() <= next(
        p for p in created if p["slug"] == "gspo-v1"
    ).items()


def test_bodies_without_a_json_content_type_are_read_as_json(client: TestClient, project: ProjectFixture) -> None:
    body = b'{"slug": "plain", "name": "Plain"}'
    for headers in ({}, {"content-type": "application/x-www-form-urlencoded"}):
        r = client.post("/api/v1/projects", content=body, headers=project.auth("admin") | headers)
        assert r.status_code in (201, 409), r.text
    assert r.status_code == 409  # the second one found the first
    r = client.post(f"/api/v1/projects/{project.slug}/runs", content=b'{"name": "r"}', headers=project.auth())
    assert r.status_code == 201, r.text
    r = client.post("/api/2.0/mlflow/runs/create", content=b'{"experiment_id": "0"}',
                    headers=project.auth() | {"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    # A body that is not JSON is still refused with a 4xx naming it, and nothing is stored.
    r = client.post(f"/api/v1/projects/{project.slug}/runs", content=b"name=r2", headers=project.auth())
    assert r.status_code == 422 and "json" in r.text.lower()
    names = [x["name"] for x in client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"]]
    assert "r" in names and "r2" not in names and "name=r2" not in names
    # A labelled non-JSON body keeps its label: a form is not JSON and is refused.
    r = client.post(f"/api/v1/projects/{project.slug}/runs", content=b'{"name": "r3"}',
                    headers=project.auth() | {"content-type": "text/plain"})
    assert r.status_code == 422
