"""The HTTP server's connection deadlines, which uvicorn alone does not give.

uvicorn arms its keep-alive timer only after a response, and any byte received cancels
it until the next response: a connection that never sends a request, or that sends its
request head one byte a minute (slowloris), is held open for ever, one socket and one
parser each. ``DeadlineProtocol`` adds the missing deadlines at the protocol level, where
bytes arrive (an ASGI middleware sees a request only once its head is complete, too late):

- idle: no request begun within ``timeout_keep_alive`` of connecting or of the last
  response: the connection is closed (uvicorn's own keep-alive timer, armed at connect too);
- head: a request's head (request line and headers) not complete within
  ``header_timeout_s`` of its first byte: answered 408 and closed;
- body: a request's body not complete within ``body_timeout_s`` of its head: 408, closed.

Deadlines are absolute: trickling bytes does not extend them. Bytes that are not HTTP
at all get the JSON error body (400) that every other error has, not uvicorn's text.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.config import Settings, get_settings

PROTOCOL = "command.server:DeadlineProtocol"


def closing_response(status_line: bytes, code: str, message: str) -> bytes:
    """A whole JSON error response, for the protocol to write before it hangs up."""
    body = json.dumps({"error": code, "message": message}).encode()
    head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\n" % status_line
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


_TIMEOUT_RESPONSE = closing_response(
    b"408 Request Timeout", "request_timeout", "the request did not arrive in time"
)


@dataclass(frozen=True)
class Deadlines:
    head_s: float
    body_s: float


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with idle, head and body deadlines (module doc)."""

    # uvicorn builds a connection's protocol from its Config alone: the deadlines are a
    # class attribute, set by `configure`; a worker process (`--workers N` imports this
    # module anew) reads them from the same environment on its first connection.
    deadlines: ClassVar[Deadlines | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = DeadlineProtocol.deadlines or configure(get_settings())
        self._deadline: asyncio.TimerHandle | None = None

    # -- deadlines ---------------------------------------------------------------------
    def _arm(self, seconds: float, *, body: bool = False) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, body)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _idle(self) -> None:
        """Start uvicorn's keep-alive timer (which any byte received stops)."""
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def _upgrading(self) -> bool:
        return bool(self.parser.should_upgrade() and self._should_upgrade())

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _expired(self, body: bool) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        # Say why we hang up, unless another answer is on the wire (or owed first, to a
        # request pipelined before this one).
        if body and not cycle.response_started:
            self.transport.write(_TIMEOUT_RESPONSE)
            cycle.disconnected = True  # the app's answer, if it still makes one, is dropped
            cycle.message_event.set()
        elif not body and self._between_requests():
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()

    # -- connection and parser callbacks -------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle()  # a connection that never sends a request is an idle one

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Bytes between requests start the head deadline, even if the parser has not yet
        # seen a request begin (leading blank lines): the keep-alive timer stops here.
        if self._deadline is None and self._between_requests():
            self._arm(self._limits.head_s)
        super().data_received(data)

    def on_message_begin(self) -> None:
        if self._deadline is None:  # a pipelined request: its head has its own deadline
            self._arm(self._limits.head_s)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if not self._upgrading():
            self._arm(self._limits.body_s, body=True)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()
        # Never on an upgrade: the transport is about to belong to the WebSocket protocol.
        if self._between_requests() and not self._upgrading() and not self.transport.is_closing():
            self._idle()  # the rest of a body answered early: idle again

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own answer to bytes that are not HTTP is text/plain: ours is the JSON
        # error body every other error has.
        self.transport.write(closing_response(b"400 Bad Request", "bad_request", msg))
        self.transport.close()

    def on_response_complete(self) -> None:
        # Answered before the body was read (a 401, a 413): the body deadline is moot.
        self._disarm()
        super().on_response_complete()


def configure(settings: Settings) -> Deadlines:
    """Set this process's deadlines from the settings."""
    deadlines = Deadlines(settings.http_header_timeout_s, settings.http_body_timeout_s)
    DeadlineProtocol.deadlines = deadlines
    return deadlines


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What `emergency serve` passes to uvicorn for HTTP connections (tests use it too)."""
    configure(settings)
    return {"http": PROTOCOL, "timeout_keep_alive": settings.http_keepalive_s}
