"""A small TCP proxy with upstream failover, as nginx or HAProxy does it for app servers.

``FailoverProxy(backends)`` listens on a loopback port of its own, in a thread with its own
event loop (so the clients under test never slow it down). Each new connection goes to the
first backend in the list that accepts it; when that backend dies, its connections close
(both sides), and the clients' next connections go to the next backend that accepts. A
connection is never moved while open: like a real balancer in TCP mode, the proxy knows
nothing of HTTP or WebSocket, so a request in flight when a backend dies is lost, and the
client has to retry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class Route:
    """One proxied connection: where it went and when it ended (monotonic seconds)."""

    backend: int
    opened_at: float
    closed_at: float | None = None


@dataclass
class FailoverProxy:
    """Forward connections on ``port`` to the first of ``backends`` ((host, port)) that
    accepts; ``connect_timeout_s`` bounds each attempt."""

    backends: list[tuple[str, int]]
    connect_timeout_s: float = 2.0
    port: int = 0
    routes: list[Route] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)  # backend index -> failed connects
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FailoverProxy:
        """Listen (a free port unless ``port`` is set) and forward until :meth:`stop`."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = int(self._server.sockets[0].getsockname()[1])
            ready.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="failover-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the proxy did not start listening")
        return self

    def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        if self._loop is None or self._thread is None:
            return
        loop = self._loop

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()
        self._loop = None

    def __enter__(self) -> FailoverProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def open_on(self, backend: int) -> int:
        """How many proxied connections to ``backend`` are open now."""
        return sum(1 for r in list(self.routes) if r.backend == backend and r.closed_at is None)

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for index, (host, port) in enumerate(self.backends):
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.connect_timeout_s
                )
            except (OSError, TimeoutError):
                self.refused[index] += 1
                continue
            return index, reader, writer
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:  # every backend down: the client sees a closed connection
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        index, up_reader, up_writer = upstream
        route = Route(index, time.monotonic())
        self.routes.append(route)
        self._writers.update((writer, up_writer))
        try:
            # Either direction ending ends both: a dead backend closes its clients at once.
            pipes = [
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            ]
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            for pipe in pipes:
                pipe.cancel()
        finally:
            route.closed_at = time.monotonic()
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
