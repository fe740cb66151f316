"""The bus: PostgreSQL's event table, LISTEN/NOTIFY of event ids, and a polling fallback.

The sealer (:mod:`core.sealer`) writes event rows after their changes commit and, in the
same transaction, ``NOTIFY emergency_events, '<first id>-<last id>'`` (a single ``'<id>'``
is read too). Each app process keeps one LISTEN connection; the ids it hears are read in
batches and handed to the hub in seq order per topic. Because a
notification can be lost (the listener's connection drops, PostgreSQL restarts), the bus
also polls every ``poll_interval_s`` for events after the hub's last seq of every
subscribed topic, and at once after every reconnect. A gap the hub reports is filled from
the event table the same way. So several processes share one PostgreSQL and nothing is
missed, only (briefly) delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from core.outbox import NOTIFY_CHANNEL
from realtime import store
from realtime.hub import Hub
from realtime.metrics import BUS_GAPS, BUS_LISTENING, BUS_RECONNECTS

log = logging.getLogger("emergency.realtime.bus")
_BY_ID = (
    "SELECT topic, seq, type, payload::text, created_at FROM event WHERE id = ANY(%s)"
    " ORDER BY topic, seq"
)


def libpq_dsn(database_url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy) to a plain libpq URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


MAX_NOTIFIED = 20_000  # ids in one notification read by id; more are read by a poll


def notified_ids(payload: str) -> range:
    """The event ids a notification names: ``"17"`` or the range ``"17-42"``."""
    first, _, last = payload.partition("-")
    lo = int(first)
    hi = int(last) if last else lo
    if hi < lo or hi - lo >= MAX_NOTIFIED:
        raise ValueError(f"bad notification {payload!r}")
    return range(lo, hi + 1)


class PgBus:
    def __init__(self, hub: Hub, database_url: str) -> None:
        self.hub = hub
        self.dsn = libpq_dsn(database_url)
        self.poll_interval_s = hub.config.poll_interval_s
        self._ids: list[int] = []
        self._wake = asyncio.Event()
        self._poll_now = True
        self._tasks: list[asyncio.Task[None]] = []
        self._last_poll = 0.0
        self._reader: psycopg.AsyncConnection[Any] | None = None

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_loop(), name="bus-listen"),
            asyncio.create_task(self._pump_loop(), name="bus-pump"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._reader is not None:
            await self._reader.close()
        BUS_LISTENING.set(0)

    def poll_soon(self) -> None:
        self._poll_now = True
        self._wake.set()

    # --- LISTEN -----------------------------------------------------------------------
    async def _listen_loop(self) -> None:
        status = self.hub.bus_status
        backoff = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn,
                    autocommit=True,
                    application_name="emergency-bus",
                    connect_timeout=5,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    status.listening = True
                    status.last_error = None
                    BUS_LISTENING.set(1)
                    backoff = 0.1
                    self.poll_soon()  # whatever was committed while we were away
                    async for notify in conn.notifies():
                        try:
                            self._ids.extend(notified_ids(notify.payload))
                        except ValueError:
                            self._poll_now = True  # read what it named by a poll
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                status.last_error = str(exc).splitlines()[0][:200] if str(exc) else repr(exc)
                log.warning("bus listener lost (%s); reconnecting", status.last_error)
            if status.listening:
                status.reconnects += 1
                BUS_RECONNECTS.inc()
            status.listening = False
            BUS_LISTENING.set(0)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    # --- reading and fan-out ------------------------------------------------------------
    async def _by_id(self, ids: list[int]) -> list[store.Frame]:
        """The notified events, read on the event loop itself over a connection of the
        bus's own: no hand-off to a worker thread (which, fighting the loop and the
        action threads for the GIL, cost ~100 ms under load). Any failure falls back to
        the thread pool's session, and the connection is opened again next time."""
        try:
            if self._reader is None or self._reader.closed:
                self._reader = await psycopg.AsyncConnection.connect(
                    self.dsn,
                    autocommit=True,
                    application_name="emergency-bus-reader",
                    connect_timeout=5,
                )
            cursor = await self._reader.execute(_BY_ID, (ids,))
            rows = await cursor.fetchall()
            return [store.frame(t, q, k, p, c) for t, q, k, p, c in rows]
        except (psycopg.Error, OSError) as exc:
            log.warning("bus reader failed (%s); reading through the pool", exc)
            if self._reader is not None:
                await self._reader.close()
            self._reader = None
            return await self.hub.read(store.events_by_id, ids, bus=True)

    async def _pump_loop(self) -> None:
        status = self.hub.bus_status
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            self._wake.clear()
            ids, self._ids = self._ids, []
            due = time.monotonic() - self._last_poll >= self.poll_interval_s
            poll, self._poll_now = self._poll_now or due or not ids, False
            try:
                if poll:
                    heads = dict(self.hub.heads)
                    self._last_poll = time.monotonic()
                    frames = await self.hub.read(store.events_since, heads, bus=True)
                    status.last_poll_at = time.time()
                else:
                    frames = await self._by_id(ids)
                if frames:
                    status.last_event_at = time.time()
                gaps = self.hub.deliver(frames)
                for _ in range(10):  # fill gaps until the topics are contiguous again
                    if not gaps:
                        break
                    BUS_GAPS.inc(len(gaps))
                    frames = await self.hub.read(store.events_since, gaps, bus=True)
                    gaps = self.hub.deliver(frames)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The database is away: keep the ids and try again on the next round.
                self._ids = ids + self._ids
                self._poll_now = True
                status.last_error = str(exc).splitlines()[0][:200] if str(exc) else repr(exc)
                log.warning("bus read failed (%s); retrying", status.last_error)
                await asyncio.sleep(min(self.poll_interval_s, 1.0))
