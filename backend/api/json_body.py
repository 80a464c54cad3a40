"""JSON bodies sent without a JSON content type.

``curl -d '{...}'`` labels its body ``application/x-www-form-urlencoded``, and some clients send no
content type at all. No endpoint under ``/api/`` takes a form, so a body there that is not labelled
as something else is read as JSON, as the metrics endpoint always did (docs/API.md, "Requests").
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["JsonByDefault"]

_UNLABELLED = {b"", b"application/x-www-form-urlencoded"}


class JsonByDefault:
    """Relabel unlabelled or form-labelled request bodies under ``/api/`` as JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            if content_type.split(b";")[0].strip().lower() in _UNLABELLED:
                scope = dict(scope, headers=[*headers, (b"content-type", b"application/json")])
        await self.app(scope, receive, send)
