"""Request bodies: authenticated first, bounded by the bytes actually received, read in time.

A pure ASGI layer in front of every route (docs/SECURITY.md, "Limits"):

- The bearer token is verified before a single body byte is read; an unknown token is a 401
  at once. A request without a token may carry at most ``MAX_ANONYMOUS_BODY_BYTES`` (an MLflow
  run search on a public deployment); past that it is a 401 too.
- The body is counted as it arrives, ``Content-Length`` or chunked alike, and refused with a
  413 the moment it passes ``max_body_bytes``; nothing is parsed before that.
- The whole body must arrive within ``body_timeout_seconds`` (a 408 otherwise), so a client
  trickling bytes cannot hold a worker forever.
- Requests that change something are rate-limited per token when ``write_rate_per_second`` is
  set (a 429 with ``Retry-After``).

The verified token is left in the request's state for ``backend.api.deps`` to reuse.
"""

from __future__ import annotations

import math
import threading
import time

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api.errors import error_response, is_outage, outage_response
from backend.db import Database
from backend.domain import Token
from backend.errors import NotAuthenticated
from backend.limits import MAX_ANONYMOUS_BODY_BYTES
from backend.settings import Settings
from backend.storage.tokens import TokenStore

__all__ = ["VERIFIED_TOKEN", "BoundedBody", "WriteRateLimiter", "bearer_secret"]

VERIFIED_TOKEN = "verified_token"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def bearer_secret(authorization: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer …`` header; None without the header."""
    if not authorization:
        return None
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise NotAuthenticated("authorization: expected 'Bearer <token>'")
    return secret.strip()


class WriteRateLimiter:
    """A token bucket per API token: ``rate`` requests a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, token_id: int) -> float:
        """0 when a request may go now (and it is counted); otherwise how long until it may."""
        now = time.monotonic()
        with self._lock:
            level, then = self._buckets.get(token_id, (float(self.burst), now))
            level = min(float(self.burst), level + (now - then) * self.rate)
            if level >= 1.0:
                self._buckets[token_id] = (level - 1.0, now)
                return 0.0
            self._buckets[token_id] = (level, now)
            return (1.0 - level) / self.rate


class BoundedBody:
    def __init__(self, app: ASGIApp, settings: Settings, database: Database) -> None:
        self.app = app
        self.settings = settings
        self.database = database
        self.limiter = (
            WriteRateLimiter(settings.write_rate_per_second, settings.write_rate_burst)
            if settings.write_rate_per_second
            else None
        )

    def _verify(self, secret: str) -> Token | None:
        with self.database.session() as session:
            return TokenStore(session).verify(secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        request = Request(scope)
        try:
            secret = bearer_secret(request.headers.get("authorization"))
            token = None if secret is None else await run_in_threadpool(self._verify, secret)
        except NotAuthenticated as exc:
            await error_response(path, 401, exc.message, code="UNAUTHENTICATED")(scope, receive, send)
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            await outage_response(path, exc, self.settings.retry_after_seconds)(scope, receive, send)
            return
        if secret is not None and token is None:
            response = error_response(path, 401, "authorization: unknown or revoked token", code="UNAUTHENTICATED")
            await response(scope, receive, send)
            return
        if token is not None and self.limiter is not None:
            wait = self.limiter.wait_seconds(token.id)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                message = (
                    f"rate limit: this token may make {self.settings.write_rate_per_second:g} write "
                    f"requests a second; retry after {retry} s"
                )
                response = error_response(path, 429, message, code="REQUEST_LIMIT_EXCEEDED", retry_after=retry)
                await response(scope, receive, send)
                return
        limit = self.settings.max_body_bytes if token is not None else min(
            MAX_ANONYMOUS_BODY_BYTES, self.settings.max_body_bytes
        )
        refusal = self._refusal(path, token, limit)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await refusal(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        more = True
        try:
            with anyio.fail_after(self.settings.body_timeout_seconds):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > limit:
                        await refusal(scope, receive, send)
                        return
                    chunks.append(chunk)
                    more = message.get("more_body", False)
        except TimeoutError:
            message_text = (
                f"body: not received within {self.settings.body_timeout_seconds:g} s "
                f"({received} bytes arrived)"
            )
            await error_response(path, 408, message_text, code="REQUEST_TIMEOUT")(scope, receive, send)
            return
        scope.setdefault("state", {})[VERIFIED_TOKEN] = token
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refusal(self, path: str, token: Token | None, limit: int) -> ASGIApp:
        if token is None:
            return error_response(
                path,
                401,
                f"authorization: a token is required to send a body over {limit} bytes",
                code="UNAUTHENTICATED",
            )
        return error_response(
            path, 413, f"body: more than the limit of {limit} bytes", code="INVALID_PARAMETER_VALUE"
        )
