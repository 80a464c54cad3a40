"""Several server processes on one database: ``serve --workers`` and the series cache across them.

Each process keeps its own series cache, keyed on each run's ``updated_at``. Points posted
through one process must show in the next comparison served by any other, even one whose cache
already holds the series (docs/SCALING.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from backend.db import Database
from tests.conftest import ProjectFixture, free_port, make_project, wait_for_http

CLI = [sys.executable, "-m", "backend.cli"]


@contextmanager
def serving(database_url: str, *args: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = os.environ | {"PARITYSCOPE_DATABASE_URL": database_url, "PARITYSCOPE_PUBLIC_READS": "false"}
    server = subprocess.Popen([*CLI, "serve", "--port", str(port), *args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=90)
        except TimeoutError:
            server.terminate()
            raise AssertionError(server.communicate(timeout=10)[1]) from None
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        server.terminate()
        server.wait(timeout=20)


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _last_reward_step(base: str, project: ProjectFixture, run_id: int) -> int:
    r = httpx.get(f"{base}/api/v1/compare", headers=project.auth("read"), timeout=60,
                  params={"reference": run_id, "metrics": "reward", "include": "series"})
    assert r.status_code == 200, r.text
    return r.json()["metrics"]["reward"]["series"][0]["x"][-1]


def test_points_posted_through_one_process_show_in_every_other(database: Database, database_url: str) -> None:
    project = make_project(database)
    with serving(database_url, "--workers", "2") as (pooled, pid), serving(database_url) as (single, _):
        assert len(_children(pid)) >= 2, "serve --workers 2 runs two server processes"
        created = httpx.post(f"{single}/api/v1/projects/{project.slug}/runs", json={"name": "r"},
                             headers=project.auth())
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]

        def post(step: int) -> None:
            r = httpx.post(f"{single}/api/v1/runs/{run_id}/metrics", headers=project.auth(),
                           json={"steps": list(range(step + 1)), "values": {"rl/reward": [0.1] * (step + 1)}})
            assert r.status_code == 200, r.text

        post(9)
        # Every process of the pool reads the series into its cache (requests spread over both).
        assert {_last_reward_step(pooled, project, run_id) for _ in range(6)} == {9}
        assert _last_reward_step(single, project, run_id) == 9
        post(19)  # through the other server: the pool's caches now hold an old version
        assert {_last_reward_step(pooled, project, run_id) for _ in range(6)} == {19}


def test_serve_refuses_a_worker_count_that_is_not_one(database_url: str) -> None:
    env = os.environ | {"PARITYSCOPE_DATABASE_URL": database_url}
    for args, extra, needle in ((["--workers", "0"], {}, "--workers"),
                                ([], {"PARITYSCOPE_WORKERS": "many"}, "PARITYSCOPE_WORKERS")):
        result = subprocess.run([*CLI, "serve", "--port", str(free_port()), *args], env=env | extra,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and needle in result.stderr, result.stderr
