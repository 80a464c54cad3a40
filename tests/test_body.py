"""Request bodies: authenticated before they are read, bounded by the bytes received, read in
time, and writes rate-limited per token (backend/api/body.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.db import Database
from backend.limits import MAX_ANONYMOUS_BODY_BYTES
from backend.settings import Settings
from tests.conftest import ProjectFixture


def _run(main: Callable[[], Coroutine[Any, Any, httpx.Response]]) -> httpx.Response:
    """Run an async client to completion in a thread of its own (the test's thread may already
    have an event loop running, left there by another test)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b" " * min(size, total - sent)
        sent += len(chunk)
        yield chunk


def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(
    settings: Settings, database: Database, project: ProjectFixture
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 256 * 1024})
    with TestClient(create_app(small, database)) as client:
        # No Content-Length: the generator makes httpx send the body chunked.
        r = client.post(
            f"/api/v1/projects/{project.slug}/runs",
            content=_chunks(1024 * 1024),
            headers={**project.auth(), "content-type": "application/json"},
        )
        assert r.status_code == 413, r.text
        assert "body" in r.json()["detail"] and "262144" in r.json()["detail"]
        assert "transfer-encoding" in {k.lower() for k in r.request.headers}
        runs = client.get(f"/api/v1/projects/{project.slug}/runs", headers=project.auth()).json()["runs"]
        assert runs == []


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc"])
def test_bodies_without_a_valid_token_are_refused_before_they_are_read(
    client: TestClient, project: ProjectFixture, authorization: str | None
) -> None:
    sent = 0

    async def body():  # noqa: ANN202 - an async generator
        nonlocal sent
        for chunk in _chunks(8 * 1024 * 1024):
            sent += len(chunk)
            yield chunk

    async def post() -> httpx.Response:
        headers = {"content-type": "application/json"}
        if authorization:
            headers["authorization"] = authorization
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.post("/api/v1/projects", content=body(), headers=headers)

    r = _run(post)
    assert r.status_code == 401, r.text
    assert r.json()["detail"].startswith("authorization")
    assert r.headers["www-authenticate"] == "Bearer"
    # At most the anonymous allowance (plus a chunk in flight) was read, not 8 MiB.
    assert sent <= MAX_ANONYMOUS_BODY_BYTES + 2 * 64 * 1024


def test_an_anonymous_declared_length_over_the_allowance_is_401_without_reading(
    client: TestClient, project: ProjectFixture
) -> None:
    r = client.post(
        "/api/v1/projects",
        content=b"{" + b" " * (MAX_ANONYMOUS_BODY_BYTES + 10) + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 401 and "token" in r.json()["detail"], r.text


def test_an_mlflow_body_over_the_limit_answers_in_mlflow_format(
    settings: Settings, database: Database, project: ProjectFixture
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 128 * 1024})
    with TestClient(create_app(small, database)) as client:
        r = client.post(
            "/api/2.0/mlflow/runs/log-batch",
            content=_chunks(512 * 1024),
            headers={**project.auth(), "content-type": "application/json"},
        )
    assert r.status_code == 413, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_a_slow_body_is_408(settings: Settings, database: Database, project: ProjectFixture) -> None:
    quick = settings.model_copy(update={"body_timeout_seconds": 0.5})
    app = create_app(quick, database)

    async def trickle() -> httpx.Response:
        async def body():  # noqa: ANN202 - an async generator
            yield b'{"name": '
            await asyncio.sleep(2.0)
            yield b'"late"}'

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(
                f"/api/v1/projects/{project.slug}/runs",
                content=body(),
                headers={**project.auth(), "content-type": "application/json"},
            )

    started = time.monotonic()
    r = _run(trickle)
    assert r.status_code == 408, r.text
    assert r.json()["detail"].startswith("body: not received within 0.5 s")
    assert time.monotonic() - started < 1.9


def test_writes_are_rate_limited_per_token_when_configured(
    settings: Settings, database: Database, project: ProjectFixture, run_id: int
) -> None:
    limited = settings.model_copy(update={"write_rate_per_second": 0.5, "write_rate_burst": 3})
    body = {"steps": [0], "values": {"a": [1.0]}}
    with TestClient(create_app(limited, database)) as client:
        answers = [
            client.post(f"/api/v1/runs/{run_id}/metrics", json=body, headers=project.auth()) for _ in range(4)
        ]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        refused = answers[-1]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["detail"].startswith("rate limit")
        # Reads are not limited, and another token has its own bucket.
        assert client.get(f"/api/v1/runs/{run_id}", headers=project.auth()).status_code == 200
        r = client.post(f"/api/v1/runs/{run_id}/metrics", json=body, headers=project.auth("admin"))
        assert r.status_code == 200, r.text


def test_rate_limits_are_off_by_default(client: TestClient, project: ProjectFixture, run_id: int) -> None:
    body = {"steps": [0], "values": {"a": [1.0]}}
    codes = {client.post(f"/api/v1/runs/{run_id}/metrics", json=body, headers=project.auth()).status_code for _ in range(60)}
    assert codes == {200}
