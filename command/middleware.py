"""ASGI middleware: refuse oversized bodies before reading them; request metrics; the JSON
500 for an error nothing else handled."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.metrics import registry

log = logging.getLogger("emergency.errors")
REQUESTS = Counter(
    "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
)
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=registry
)


class _TooLarge(Exception):
    pass


async def _send_413(send: Send, max_bytes: int) -> None:
    body = json.dumps(
        {"error": "payload_too_large", "message": f"request body exceeds {max_bytes} bytes"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """413 for a body over ``max_bytes``, by Content-Length or by counting a chunked body."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, paths: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max = max_bytes
        self.paths = paths or {}  # exact path -> its own limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.paths.get(scope.get("path", ""), self.default_max)
        headers = dict(scope.get("headers", ()))
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            await _send_413(send, max_bytes)
            return
        seen = 0
        too_large = False
        started = False

        async def counted_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The app may catch _TooLarge while parsing and answer 400 itself: whatever it
            # answers, the client gets the 413 it should.
            nonlocal started
            if too_large:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_413(send, max_bytes)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            if not started:
                await _send_413(send, max_bytes)


class Metrics:
    """Count and time requests by route template (not raw path: bounded label values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            REQUESTS.labels(method, name, str(status["code"])).inc()
            LATENCY.labels(method, name).observe(time.perf_counter() - start)


class InternalErrors:
    """An exception no handler took becomes the documented JSON 500, and the connection
    stays usable.

    Starlette's own last resort answers text/plain and re-raises, and uvicorn then closes
    the connection after the response it just sent as keep-alive: the client's next
    request on it fails. Here the error is logged with a reference that the answer
    carries (never the exception's text: it may hold SQL or data), and not re-raised.
    Only a response already begun cannot be mended: then uvicorn closes the connection,
    and the client sees the body cut short.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = {"started": False, "complete": False}

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                sent["complete"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception:
            reference = secrets.token_hex(6)
            log.exception(
                "internal error %s: %s %s", reference, scope.get("method"), scope.get("path")
            )
            if sent["started"] and not sent["complete"]:
                raise
            if not sent["started"]:
                await _send_500(send, reference)


async def _send_500(send: Send, reference: str) -> None:
    body = json.dumps(
        {
            "error": "internal_error",
            "message": f"internal error (reference {reference}); it has been logged",
            "details": {"reference": reference},
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
