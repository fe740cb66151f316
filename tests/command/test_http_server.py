"""The HTTP server over real sockets: the JSON 500 keeps a keep-alive connection usable,
idle and slow clients are cut off on time (command/server.py), /metrics is not for all."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from command.app import create_app
from command.server import uvicorn_options
from core.config import Settings
from gis.engine import Engine
from tests.support.servers import serve_port
from tests.support.world import TEST_SECRET

# Short deadlines, so that a test waits seconds, not minutes.
KEEPALIVE_S = 1.0
HEADER_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 2.0


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_reply(sock: socket.socket, timeout_s: float = 10) -> Reply:
    """One HTTP/1.1 response (Content-Length framed) from ``sock``."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of a body")
        body += chunk
    return Reply(int(status_line.split()[1]), headers, body[:length])


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, float, bytes]:
    """Whether the server closes ``sock`` within ``seconds``; the time it took and what it
    sent before closing."""
    start = time.monotonic()
    got = b""
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, time.monotonic() - start, got
        if not chunk:
            return True, time.monotonic() - start, got
        got += chunk
    return False, time.monotonic() - start, got


def get(path: str, *, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


@pytest.fixture
def server_settings(database_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        realtime=False,
        http_keepalive_s=KEEPALIVE_S,
        http_header_timeout_s=HEADER_TIMEOUT_S,
        http_body_timeout_s=BODY_TIMEOUT_S,
    )


@pytest.fixture
def server_app(server_settings: Settings, road_engine: Engine) -> FastAPI:
    app = create_app(server_settings, graph=road_engine)

    @app.get("/test-only/boom", include_in_schema=False)
    def boom() -> None:
        # What a careless message would leak: SQL and a value from the database.
        raise RuntimeError("SELECT password_hash FROM app_user WHERE id = 1 -- $argon2id$")

    @app.get("/test-only/boom-async", include_in_schema=False)
    async def boom_async() -> None:
        raise KeyError("secret-key-material")

    return app


# --- 1. an unhandled error --------------------------------------------------------------
@pytest.mark.parametrize("path", ["/test-only/boom", "/test-only/boom-async"])
def test_unhandled_error_is_json_500_and_keeps_the_connection(
    server_app: FastAPI, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Stock uvicorn (as the tests' servers run): the 500 is the documented JSON body with
    no exception text, and the next request on the same connection is answered."""
    with serve_port(server_app) as port, connect(port) as sock:
        sock.sendall(get(path))
        first = read_reply(sock)
        assert first.status == 500
        assert first.headers["content-type"] == "application/json"
        body = first.json()
        assert body["error"] == "internal_error"
        assert set(body) == {"error", "message", "details"}
        reference = body["details"]["reference"]
        assert reference in body["message"]
        for leaked in ("SELECT", "password_hash", "argon2", "secret", "Traceback", "Error"):
            assert leaked not in first.body.decode()
        assert first.headers.get("connection", "keep-alive") != "close"
        # The same socket, again: answered (no silent drop).
        sock.sendall(get("/healthz"))
        second = read_reply(sock)
        assert second.status == 200
        assert second.json()["database"] == "ok"
    assert any(reference in r.getMessage() for r in caplog.records)


def test_unhandled_error_in_process_is_json_500(server_app: FastAPI) -> None:
    from fastapi.testclient import TestClient

    with TestClient(server_app, raise_server_exceptions=False) as client:
        response = client.get("/test-only/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "internal_error"


# --- 2. idle and slow connections ------------------------------------------------------
@pytest.fixture
def deadline_server(server_app: FastAPI, server_settings: Settings) -> Iterator[int]:
    """The app as `emergency serve` runs it: with command/server.py's deadlines."""
    with serve_port(server_app, **uvicorn_options(server_settings)) as port:
        yield port


@pytest.mark.slow  # waits out the server's deadlines
def test_a_connection_that_never_sends_a_request_is_closed(deadline_server: int) -> None:
    with connect(deadline_server) as sock:
        closed, after_s, got = closed_within(sock, KEEPALIVE_S + 3)
    assert closed, "an idle connection stayed open"
    assert KEEPALIVE_S - 0.2 <= after_s <= KEEPALIVE_S + 1
    assert got == b""  # nothing was asked: nothing is answered


@pytest.mark.slow  # waits out the server's deadlines
def test_an_idle_keep_alive_connection_is_closed(deadline_server: int) -> None:
    with connect(deadline_server) as sock:
        sock.sendall(get("/healthz"))
        assert read_reply(sock).status == 200
        closed, after_s, _ = closed_within(sock, KEEPALIVE_S + 3)
    assert closed, "an idle keep-alive connection stayed open"
    assert after_s <= KEEPALIVE_S + 1


@pytest.mark.slow  # waits out the server's deadlines
def test_a_connection_in_use_is_kept(deadline_server: int) -> None:
    """Requests closer together than the keep-alive timeout share one connection, however
    long it lives in all."""
    with connect(deadline_server) as sock:
        start = time.monotonic()
        while time.monotonic() - start < KEEPALIVE_S * 3:
            sock.sendall(get("/healthz"))
            assert read_reply(sock).status == 200
            time.sleep(KEEPALIVE_S / 3)


@pytest.mark.slow  # waits out the server's deadlines
def test_a_slow_request_head_is_cut_off_with_408(deadline_server: int) -> None:
    """Slowloris: a byte every 0.2 s, each resetting nothing: the head must be complete
    within the header timeout of its first byte."""
    request = get("/healthz", extra="X-Padding: " + "a" * 200 + "\r\n")
    with connect(deadline_server) as sock:
        start = time.monotonic()
        sent = 0
        cut = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            sent += 1
            closed, _, got = closed_within(sock, 0.2)
            if closed:
                cut = True
                break
        after_s = time.monotonic() - start
    assert cut, "a slowloris client finished its request head"
    assert sent < len(request)
    assert after_s <= HEADER_TIMEOUT_S + 1
    assert got.startswith(b"HTTP/1.1 408 ")
    assert json.loads(got.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"


@pytest.mark.slow  # waits out the server's deadlines
def test_a_slow_body_is_cut_off_with_408(deadline_server: int) -> None:
    body = json.dumps({"username": "nobody", "password": "x" * 50}).encode()
    head = (
        "POST /api/auth/token HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with connect(deadline_server) as sock:
        sock.sendall(head + body[:5])
        start = time.monotonic()
        closed, after_s, got = closed_within(sock, BODY_TIMEOUT_S + 3)
    assert closed, "a request whose body never came stayed open"
    assert BODY_TIMEOUT_S - 0.2 <= after_s <= BODY_TIMEOUT_S + 1
    assert time.monotonic() - start <= BODY_TIMEOUT_S + 3
    assert got.startswith(b"HTTP/1.1 408 ")


def test_bytes_that_are_not_http_get_the_json_error(deadline_server: int) -> None:
    with connect(deadline_server) as sock:
        sock.sendall(b"GET /he\x00lthz HTTP/1.1\r\nHost: test\r\n\r\n")
        reply = read_reply(sock)
        closed, _, _ = closed_within(sock, 2)
    assert reply.status == 400
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] == "bad_request"
    assert closed


@pytest.mark.slow  # waits out the server's deadlines
def test_a_head_in_pieces_within_the_deadline_is_answered(deadline_server: int) -> None:
    request = get("/healthz")
    with connect(deadline_server) as sock:
        for piece in (request[:10], request[10:30], request[30:]):
            sock.sendall(piece)
            time.sleep(HEADER_TIMEOUT_S / 5)
        reply = read_reply(sock)
    assert reply.status == 200


@pytest.mark.slow  # waits out the server's deadlines
def test_websocket_connections_outlive_the_http_deadlines(
    server_app: FastAPI, server_settings: Settings
) -> None:
    """The deadlines are for HTTP requests: an upgraded connection is the WebSocket
    protocol's (with its own pings), whatever the HTTP timers were."""
    from websockets.sync.client import connect as ws_connect

    @server_app.websocket("/test-only/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.send_text(await websocket.receive_text())

    with (
        serve_port(server_app, **uvicorn_options(server_settings)) as port,
        ws_connect(f"ws://127.0.0.1:{port}/test-only/echo") as ws,
    ):
        time.sleep(KEEPALIVE_S + HEADER_TIMEOUT_S + BODY_TIMEOUT_S + 0.5)
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


# --- 3. /metrics ---------------------------------------------------------------------------
METRICS_TOKEN = "metrics-token-0123456789abcdef"


def test_metrics_are_served_to_loopback_only_by_default(server_app: FastAPI) -> None:
    from fastapi.testclient import TestClient

    with TestClient(server_app, client=("127.0.0.1", 40000)) as local:
        reply = local.get("/metrics")
        assert reply.status_code == 200
        assert "http_requests_total" in reply.text
    with TestClient(server_app, client=("::1", 40000)) as local6:
        assert local6.get("/metrics").status_code == 200
    with TestClient(server_app, client=("203.0.113.7", 40000)) as remote:
        reply = remote.get("/metrics")
        assert reply.status_code == 403
        assert reply.json()["error"] == "forbidden"
        assert "http_requests_total" not in reply.text
        # No token is configured: a guessed one opens nothing.
        guessed = remote.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert guessed.status_code == 403


def test_metrics_from_an_allowed_network(server_settings: Settings, road_engine: Engine) -> None:
    from fastapi.testclient import TestClient

    settings = server_settings.model_copy(update={"metrics_allow": ("10.1.0.0/16",)})
    app = create_app(settings, graph=road_engine)
    with TestClient(app, client=("10.1.200.3", 40000)) as inside:
        assert inside.get("/metrics").status_code == 200
    with TestClient(app, client=("10.2.0.1", 40000)) as outside:
        assert outside.get("/metrics").status_code == 403
    with TestClient(app, client=("127.0.0.1", 40000)) as local:  # loopback no longer listed
        assert local.get("/metrics").status_code == 403


def test_metrics_with_the_token(server_settings: Settings, road_engine: Engine) -> None:
    """With EMERGENCY_METRICS_TOKEN, a remote scraper needs it; the wrong one is 401."""
    settings = server_settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    app = create_app(settings, graph=road_engine)
    from fastapi.testclient import TestClient

    with TestClient(app, client=("203.0.113.7", 40000)) as remote:
        ok = remote.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200
        assert "http_requests_total" in ok.text
        for header in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789abcdef"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
        ):
            refused = remote.get("/metrics", headers=header)
            assert refused.status_code == 401
            assert refused.json()["error"] == "unauthenticated"
            assert refused.headers["www-authenticate"] == "Bearer"


def test_metrics_through_a_proxy_need_the_token(
    server_settings: Settings, road_engine: Engine
) -> None:
    """A reverse proxy on the same host makes every client look like loopback (unless it
    is a trusted proxy): a forwarded request is never let in by address."""
    from fastapi.testclient import TestClient

    settings = server_settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    app = create_app(settings, graph=road_engine)
    with TestClient(app, client=("127.0.0.1", 40000)) as proxied:
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            refused = proxied.get("/metrics", headers={header: "203.0.113.7"})
            assert refused.status_code == 401, header
        bearer = {"Authorization": f"Bearer {METRICS_TOKEN}", "X-Forwarded-For": "203.0.113.7"}
        assert proxied.get("/metrics", headers=bearer).status_code == 200
        assert proxied.get("/metrics").status_code == 200  # direct, from the host itself


def test_metrics_over_a_real_socket_from_loopback(deadline_server: int) -> None:
    with connect(deadline_server) as sock:
        sock.sendall(get("/metrics"))
        reply = read_reply(sock)
    assert reply.status == 200
    assert b"http_requests_total" in reply.body


def test_metrics_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        Settings(metrics_allow=("10.0.0.0/33",))
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(metrics_token="short")
