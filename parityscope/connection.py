"""Synchronous calls to the ParityScope REST API: the one HTTP client of trainers, importers,
``parityscope submit`` and the workers.

Every failure is a ``ClientError``: ``ServerUnavailable`` when trying again later may help (the
server could not be reached, or answered 5xx, 408 or 429), ``LeaseLost`` when a leg report is
refused because the leg went to another claim (409), a plain ``ClientError`` for any other
refusal (4xx). One retry policy: with ``retries`` > 0, a request that could not be sent, that a
proxy in front of a restarting server answered 502 or 504, that a rate limit answered 429, or that
the server answered 503 with a ``Retry-After`` (its database is unreachable) is sent again after
0.5 s, doubling up to 10 s, and never sooner than the ``Retry-After`` the server gave. A 503
without ``Retry-After`` (a database behind its migrations) is not transient and is not retried. Every call is safe to repeat: metric posts are
idempotent per (run, key, step), runs per ``external_id``, and a repeated heartbeat only extends
the lease again.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["ClientError", "Connection", "LeaseLost", "ServerUnavailable"]

RETRY_STATUS = frozenset({502, 504, 429})
MAX_RETRY_DELAY = 10.0
MAX_RETRY_AFTER = 300.0
MAX_ERROR_LENGTH = 20_000  # the tail of a leg's failure that is reported


class ClientError(Exception):
    """A request failed; ``status`` is the HTTP status when the server answered. Raised as such
    when the server refused the request (4xx); the message is the server's."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ServerUnavailable(ClientError):
    """The server could not be reached, or answered 5xx/408/429: worth trying again later, not
    before ``retry_after`` seconds when the server said so."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


def retry_after(response: httpx.Response) -> float | None:
    """A ``Retry-After`` given in seconds (the form ParityScope sends), capped; None otherwise."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if math.isfinite(seconds) else None


class LeaseLost(ClientError):
    """The server gave this leg to another claim; this worker must stop working on it."""


class Connection:
    """One server at ``url`` with one token. ``retries``: see the module's retry policy."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0, retries: int = 0) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = 0.5
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise ServerUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None
            else:
                wait = retry_after(response)
                transient = response.status_code in RETRY_STATUS or (
                    response.status_code == 503 and wait is not None
                )
                if not transient or last:
                    return response
                if wait is not None:
                    delay = max(delay, wait)
            time.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)
        raise AssertionError("unreachable")

    def _request(self, method: str, path: str, *, lease: bool = False, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise ServerUnavailable(
                f"{self.url}{path}: HTTP {status}", status, retry_after=retry_after(response)
            )
        if status >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if lease and status == 409:
                raise LeaseLost(str(detail) or "lease lost", status)
            raise ClientError(f"{method} {path}: {status} {detail}", status)
        return None if status == 204 else response.json()

    # -- runs and metrics -------------------------------------------------------------------

    def create_run(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create the run, or get the existing one with the same ``external_id``."""
        return self._request("POST", f"/api/v1/projects/{project}/runs", json=body)

    def update_run(self, run_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("PATCH", f"/api/v1/runs/{run_id}", json=body)

    def post_metrics(self, run_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Post one metrics body (see ``parityscope.wire``)."""
        content = json.dumps(body, allow_nan=False, separators=(",", ":"))
        return self._request(
            "POST",
            f"/api/v1/runs/{run_id}/metrics",
            content=content,
            headers={"content-type": "application/json"},
        )

    def metrics(self, run_id: int, keys: list[str]) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/runs/{run_id}/metrics", params={"keys": ",".join(keys)})

    # -- jobs and legs ----------------------------------------------------------------------

    def submit(self, job: Mapping[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/api/v1/jobs", json=dict(job))

    def job(self, job_id: int) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/jobs/{job_id}")

    def ladder(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/v1/ladders: a ladder job from runs (or its plan, with ``dry_run``)."""
        return self._request("POST", "/api/v1/ladders", json=dict(body))

    def claim(
        self, worker: str, engines: list[str], lease_seconds: int, description: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The next leg for one of ``engines``, leased to ``worker``; None when there is none."""
        body = {
            "worker": worker,
            "engines": engines,
            "lease_seconds": lease_seconds,
            "description": dict(description),
        }
        return self._request("POST", "/api/v1/legs/claim", json=body)

    def _report(self, leg: Mapping[str, Any], what: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"worker": leg["worker"], "attempt": leg["attempt"], **body}
        return self._request("POST", f"/api/v1/legs/{leg['id']}/{what}", lease=True, json=body)

    def heartbeat(
        self,
        leg: Mapping[str, Any],
        progress: Mapping[str, Any] | None = None,
        engine: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Extend the leg's lease; raises ``LeaseLost`` when it went to another claim."""
        body: dict[str, Any] = {"lease_seconds": leg["lease_seconds"]}
        if progress is not None:
            body["progress"] = dict(progress)
        if engine is not None:
            body["engine"] = dict(engine)
        return self._report(leg, "heartbeat", body)

    def complete(
        self,
        leg: Mapping[str, Any],
        engine: Mapping[str, Any] | None = None,
        progress: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if engine is not None:
            body["engine"] = dict(engine)
        if progress is not None:
            body["progress"] = dict(progress)
        return self._report(leg, "complete", body)

    def fail(self, leg: Mapping[str, Any], error: str) -> dict[str, Any]:
        return self._report(leg, "fail", {"error": error[-MAX_ERROR_LENGTH:] or "unknown error"})
