"""The hub: who is subscribed to what, and the fan-out of events to their connections.

Events reach the hub from the bus (:mod:`realtime.bus`) in seq order per topic. Each is
serialised once (:class:`realtime.store.Frame`) and offered to every subscribed
connection's bounded queue; a connection that cannot keep up is told to resume and closed,
so it never holds up the others. The hub keeps the last seq it fanned out per subscribed
topic and reports gaps, which the bus fills from the event table.

Everything here runs on the event loop; database work goes to a small thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from core.security import Principal
from realtime import store
from realtime.metrics import BUS_LAG, EVENTS_IN, UNACKED, UNACKED_AGE
from realtime.store import Frame, TopicState

if TYPE_CHECKING:
    from realtime.connection import Connection

log = logging.getLogger("emergency.realtime")
T = TypeVar("T")


class Actions(Protocol):
    """What the hub needs from the command side (which owns users, tasks and units)."""

    def authenticate(self, token: str) -> tuple[Principal, float]:
        """The principal of a bearer token and when the token expires (unix seconds)."""

    def authorize(self, principal: Principal, topic: str) -> None:
        """Raise Forbidden or NotFound unless ``principal`` may subscribe to ``topic``."""

    def snapshot(self, topic: str) -> tuple[int, dict[str, Any]]:
        """The topic's current state and the seq it reflects, read consistently."""

    def acknowledge(self, principal: Principal, topic: str, seq: int) -> dict[str, Any]:
        """Record that the unit's phone has every event of ``topic`` up to ``seq``."""

    def act(self, principal: Principal, message: dict[str, Any]) -> dict[str, Any]:
        """A responder's task status or position, idempotent on ``message["key"]``."""


@dataclass(frozen=True)
class HubConfig:
    queue_max: int = 1000  # frames waiting per connection before it is told to resume
    send_timeout_s: float = 10.0
    ack_timeout_s: float = 5.0  # re-send an unacknowledged task event after this long
    heartbeat_s: float = 15.0  # server ping interval; silence for 2.5x closes the socket
    hello_timeout_s: float = 10.0
    max_frame_bytes: int = 64 * 1024
    max_replay: int = 2000  # further behind than this gets a snapshot instead of a replay
    rate_per_s: float = 20.0  # client messages per second, sustained
    rate_burst: float = 200.0
    max_inflight: int = 8  # actions (status, position) running per connection
    # A screen that asked for batches gets at most one message per this many seconds
    # under load (events meanwhile go out together); phones are never held back.
    batch_linger_s: float = 0.1
    poll_interval_s: float = 2.0  # the bus's catch-up poll, in case a notification is lost
    allowed_origins: tuple[str, ...] = ()  # empty: the page's own origin only
    housekeeping_s: float = 10.0


@dataclass
class BusStatus:
    listening: bool = False
    reconnects: int = 0
    last_error: str | None = None
    last_poll_at: float | None = None
    last_event_at: float | None = None


class Turns:
    """Screens take turns to send, ``per_slice`` at a time, then the loop runs whatever
    else is ready (the bus, phones, requests).

    Without it, one event wakes 1,700 screen senders at once and a phone's task (or the
    bus's next read) waits behind all their sends, ~100 ms; with it, behind one slice.
    """

    def __init__(self, per_slice: int = 50) -> None:
        self.per_slice = per_slice
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._runner: asyncio.Task[None] | None = None

    async def turn(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        await future

    async def _run(self) -> None:
        while self._waiting:
            for _ in range(min(self.per_slice, len(self._waiting))):
                future = self._waiting.popleft()
                if not future.done():  # its connection may have gone meanwhile
                    future.set_result(None)
            await asyncio.sleep(0)  # behind this slice's sends and whatever came meanwhile


def _screens_last(frame: Frame) -> bool:
    return not frame.topic.startswith("unit:")


class Hub:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        actions: Actions,
        config: HubConfig | None = None,
    ) -> None:
        self.sessions = sessions
        self.actions = actions
        self.config = config or HubConfig()
        self.subscribers: dict[str, set[Connection]] = defaultdict(set)
        self.heads: dict[str, int] = {}  # last seq fanned out, per subscribed topic
        self.connections: set[Connection] = set()
        self.bus_status = BusStatus()
        # Connections' database work (auth, catch-up, actions) and the bus's reads use
        # separate pools, so a storm of reconnecting phones cannot delay live events.
        self._pool = ThreadPoolExecutor(max_workers=6, thread_name_prefix="hub")
        self._bus_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-bus")
        self._snapshots: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._snapshot_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.turns = Turns()

    # --- database work, off the event loop -------------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    async def read(self, fn: Callable[..., T], *args: Any, bus: bool = False) -> T:
        """Run ``fn(session, *args)`` in a read-only session on a worker thread."""

        def run() -> T:
            with self.sessions() as session:
                return fn(session, *args)

        pool = self._bus_pool if bus else self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, run)

    async def topic_state(self, principal: Principal, topic: str) -> TopicState:
        """Authorise a subscription and read where the topic stands, in one trip."""

        def run() -> TopicState:
            self.actions.authorize(principal, topic)
            with self.sessions() as session:
                return store.topic_state(session, topic)

        return await self.call(run)

    async def snapshot_text(self, topic: str) -> tuple[int, str]:
        """A ``resync`` message for ``topic``; connections resyncing together share one."""
        async with self._snapshot_locks[topic]:
            head = await self.read(store.topic_head, topic)
            cached = self._snapshots.get((topic, head))
            if cached is not None:
                return head, cached
            seq, data = await self.call(self.actions.snapshot, topic)
            body = {"type": "resync", "topic": topic, "seq": seq, "snapshot": data}
            text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
            self._snapshots[(topic, seq)] = text
            while len(self._snapshots) > 8:
                self._snapshots.popitem(last=False)
            return seq, text

    # --- subscriptions --------------------------------------------------------------
    def attach(self, conn: Connection) -> None:
        self.connections.add(conn)

    def subscribe(self, conn: Connection, topic: str, head: int) -> None:
        self.subscribers[topic].add(conn)
        self.heads.setdefault(topic, head)

    def unsubscribe(self, conn: Connection, topic: str) -> None:
        subs = self.subscribers.get(topic)
        if subs is None:
            return
        subs.discard(conn)
        if not subs:
            del self.subscribers[topic]
            self.heads.pop(topic, None)

    def detach(self, conn: Connection) -> None:
        for topic in list(conn.topics):
            self.unsubscribe(conn, topic)
        self.connections.discard(conn)

    # --- fan-out --------------------------------------------------------------------
    def deliver(self, frames: Iterable[Frame]) -> dict[str, int]:
        """Fan out ``frames`` (ordered by topic, then seq) to subscribers.

        Returns, per topic whose seq jumped, the last seq fanned out before the gap: the
        caller fetches what follows from the event table and delivers again.
        """
        gaps: dict[str, int] = {}
        now = time.time()
        # Phones first: a unit's task must not wait behind the big screens' fan-out.
        # (Stable sort: each topic keeps its seq order.)
        for f in sorted(frames, key=_screens_last):
            if f.topic in gaps:
                continue
            subs = self.subscribers.get(f.topic)
            if not subs:
                continue
            head = self.heads.get(f.topic, f.seq - 1)
            if f.seq <= head:
                continue  # already fanned out (a poll and a notification both saw it)
            if f.seq > head + 1:
                gaps[f.topic] = head
                continue
            self.heads[f.topic] = f.seq
            EVENTS_IN.inc()
            BUS_LAG.observe(max(0.0, now - f.created_at))
            for conn in list(subs):
                conn.offer(f)
        return gaps

    # --- housekeeping ---------------------------------------------------------------
    async def refresh_gauges(self) -> None:
        summary = await self.read(store.unacknowledged)
        UNACKED.set(summary.count)
        UNACKED_AGE.set(summary.oldest_age_s)

    async def close_all(self, code: int, reason: str) -> None:
        for conn in list(self.connections):
            conn.close(code, reason)
        await asyncio.sleep(0)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._bus_pool.shutdown(wait=False, cancel_futures=True)

    def status(self) -> dict[str, Any]:
        bus = self.bus_status
        return {
            "connections": len(self.connections),
            "topics": len(self.subscribers),
            "bus": {
                "listening": bus.listening,
                "reconnects": bus.reconnects,
                "last_error": bus.last_error,
                "last_poll_at": bus.last_poll_at,
                "last_event_at": bus.last_event_at,
            },
        }
