"""Servers for tests and benchmarks: a free loopback port, an app under uvicorn in a
thread of this process (``serve_in_thread``, ``serve_port``), and the real server
(``emergency serve``) in a subprocess (``running_server``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: Any, *, name: str = "live-server", start_s: float = 30, **options: Any
) -> Iterator[str]:
    """``app`` under uvicorn (with ``options``, e.g. ``command.server.uvicorn_options``) in
    a background thread on a free loopback port; yields its base URL once /healthz answers
    200, and stops it afterwards."""
    import httpx2 as httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options
        )
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("live server did not become healthy")
            time.sleep(0.1)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextmanager
def serve_port(app: Any, **options: Any) -> Iterator[int]:
    """``app`` under uvicorn in a thread with ``options``; yields its port."""
    with serve_in_thread(app, name="http-server-test", **options) as base:
        yield int(base.rsplit(":", 1)[1])


def server_command(port: int) -> list[str]:
    """`emergency serve` from this environment (what `uv run emergency serve` runs)."""
    exe = Path(sys.executable).parent / "emergency"
    if exe.exists():
        return [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)]
    uv = shutil.which("uv") or "uv"
    return [uv, "run", "emergency", "serve", "--host", "127.0.0.1", "--port", str(port)]


@contextmanager
def running_server(
    url: str,
    secret_key: str,
    *,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = SERVER_START_TIMEOUT_S,
    command: Callable[[int], list[str]] = server_command,
    cwd: Path = ROOT,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> Iterator[str]:
    """The real server in a subprocess (``command(port)``, run in ``cwd``) on the database
    at ``url``; yields its base URL once healthy (``started`` is told its process first);
    always stops it."""
    import httpx2 as httpx

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "EMERGENCY_ENV": "development",
        "EMERGENCY_SECRET_KEY": secret_key,
        **(extra_env or {}),
    }
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+b") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            command(port), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
        )
        if started is not None:
            started(proc)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log)}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not healthy in time:\n{tail(log)}")
                time.sleep(0.1)
            yield base
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)


def tail(log: Any, n: int = 4000) -> str:
    """The last ``n`` bytes of a server's log, for an error message."""
    log.flush()
    log.seek(0)
    return str(log.read()[-n:].decode(errors="replace"))
