"""Surviving a server's death: two ``emergency serve`` processes share one database, phones
and big screens are connected to both (through failover proxies), and one process is
SIGKILLed in the middle of 500 dispatches. Its clients reconnect through the same address
to the other and resume; the dispatcher retries its cut-off request with its
Idempotency-Key. Asserts 0 tasks lost, 0 duplicate effects, 0 sequence gaps, every task
acknowledged; prints the time from the kill to every client of the dead process resumed
(run with ``-s``). The scenario is tests/support/failover.py (bench/failover.py times it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import pytest

from tests.support.failover import Scenario, run_failover
from tests.support.live import LiveDb
from tests.support.proxy import FailoverProxy

pytestmark = pytest.mark.slow

N_DISPATCHES = int(os.environ.get("FAILOVER_N_DISPATCHES", "500"))


def test_a_server_killed_mid_dispatch_loses_nothing(live_db: LiveDb) -> None:
    scenario = Scenario(dispatches=N_DISPATCHES, kill_at=N_DISPATCHES // 2)
    figures = run_failover(live_db, scenario)  # asserts the exact counts itself
    print(f"\n[failover] {json.dumps(figures)}")
    assert figures["dispatches"] == N_DISPATCHES
    assert figures["tasks_lost"] == figures["duplicate_effects"] == figures["sequence_gaps"] == 0
    # Half the clients were on the killed process, and every one of them came back.
    clients = scenario.units + scenario.screens
    assert figures["clients_of_killed"] == clients // 2, figures
    assert figures["reconnects"] == clients // 2, figures
    assert 0 < figures["resume_median_s"] <= figures["resume_max_s"] < 30, figures


# --- the proxy itself ------------------------------------------------------------------


class Echo:
    """A backend that answers each read with its tag and the data; ``die`` drops it all
    (its listener and its open sockets), as a killed process's kernel does."""

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return "127.0.0.1", int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while data := await reader.read(1024):
            writer.write(self.tag + data)
            await writer.drain()
        writer.close()

    async def die(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()


async def _ask(
    port: int, line: bytes, opened: list[asyncio.StreamWriter]
) -> tuple[bytes, asyncio.StreamReader]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened.append(writer)
    writer.write(line)
    await writer.drain()
    return await asyncio.wait_for(reader.read(1024), 5), reader


def test_the_proxy_fails_over_to_the_next_backend_and_closes_the_dead_ones_clients() -> None:
    async def main() -> None:
        a, b = Echo(b"A:"), Echo(b"B:")
        backends = [await a.start(), await b.start()]
        opened: list[asyncio.StreamWriter] = []
        with FailoverProxy(backends) as proxy:
            answer, old = await _ask(proxy.port, b"hi", opened)
            assert answer == b"A:hi"  # the first backend that accepts
            assert proxy.open_on(0) == 1
            await a.die()
            # The dead backend's client sees its connection end (and reconnects) ...
            assert await asyncio.wait_for(old.read(1024), 5) == b""
            # ... and its next connection goes to the next backend that accepts.
            answer, new = await _ask(proxy.port, b"again", opened)
            assert answer == b"B:again"
            assert proxy.refused[0] == 1 and [r.backend for r in proxy.routes] == [0, 1]
            assert proxy.open_on(0) == 0 and proxy.open_on(1) == 1
            await b.die()
            assert await asyncio.wait_for(new.read(1024), 5) == b""
            # Every backend down: a new client is closed at once, nothing is left open.
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            opened.append(writer)
            assert await asyncio.wait_for(reader.read(1024), 5) == b""
            assert proxy.open_on(1) == 0
        for writer in [*opened, *a.writers, *b.writers]:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    asyncio.run(main())
