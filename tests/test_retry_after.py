"""The Python client and the worker wait as long as the server's Retry-After says (a write rate
limit here), and lose nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import parityscope
from backend.db import Database
from backend.settings import Settings
from parityscope.client import Connection, ServerUnavailable
from tests.conftest import LiveServer, ProjectFixture
from workers.job_loop import job_connection


@pytest.fixture
def limited_server(request: pytest.FixtureRequest, settings: Settings, database: Database) -> Iterator[LiveServer]:
    burst = getattr(request, "param", 1)
    limited = settings.model_copy(update={"write_rate_per_second": 1.0, "write_rate_burst": burst})
    server = LiveServer(limited, database)
    server.start()
    yield server
    server.stop()


def test_the_client_reports_the_servers_retry_after(
    limited_server: LiveServer, project: ProjectFixture, run_id: int
) -> None:
    connection = Connection(limited_server.url, project.write)
    try:
        connection.post_metrics(run_id, {"steps": [0], "values": {"a": [1.0]}})
        with pytest.raises(ServerUnavailable) as refused:
            connection.post_metrics(run_id, {"steps": [1], "values": {"a": [2.0]}})
        assert "429" in str(refused.value)
        assert refused.value.retry_after is not None and refused.value.retry_after >= 1.0
    finally:
        connection.close()


@pytest.mark.parametrize("limited_server", [3], indirect=True)
def test_a_rate_limited_run_delivers_every_point_once(
    limited_server: LiveServer, project: ProjectFixture, client: TestClient, tmp_path: Path
) -> None:
    run = parityscope.init(
        project.slug, "limited", url=limited_server.url, token=project.write, spool_dir=tmp_path,
        flush_interval=0.05, max_backoff=0.2, timeout=2.0,
    )
    # Creating the run and two posts use the burst of 3; the third post is refused.
    for step in range(3):
        run.log({"reward": float(step)}, step=step)
        run.flush()
    # max_backoff is 0.2 s; the next try waits for the server's Retry-After (1 s) instead.
    assert run._retry_at - time.monotonic() >= 0.7
    for step in range(3, 5):
        run.log({"reward": float(step)}, step=step)
        run.flush()
    # The sender delivers the spool one request per second as the limit allows.
    deadline = time.monotonic() + 20
    while run._spool.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.1)
    run.finish()  # the status update is a write too
    runs = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"]
    (stored,) = [r for r in runs if r["name"] == "limited"]
    series = client.get(f"/api/v1/runs/{stored['id']}/metrics", headers=project.auth()).json()
    assert series["reward"]["steps"] == [0, 1, 2, 3, 4]
    assert series["reward"]["values"] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_the_worker_waits_out_a_429(limited_server: LiveServer, project: ProjectFixture, run_id: int) -> None:
    api = job_connection(limited_server.url, project.write)
    try:
        started = time.monotonic()
        api.post_metrics(run_id, {"steps": [0], "values": {"a": [1.0]}})
        # Refused once with Retry-After: 1, then sent again no sooner than that.
        api.post_metrics(run_id, {"steps": [1], "values": {"a": [2.0]}})
        assert time.monotonic() - started >= 0.9
    finally:
        api.close()
