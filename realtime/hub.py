"""The hub: who is subscribed to what, and the fan-out of events to their connections.

Events reach the hub from the bus (:mod:`realtime.bus`) in seq order per topic. Each is
serialised once (:class:`realtime.store.Frame`) and offered to every subscribed
connection's bounded queue; a connection that cannot keep up is told to resume and closed,
so it never holds up the others. The hub keeps the last seq it fanned out per subscribed
topic and reports gaps, which the bus fills from the event table.

A responder sees only its own unit's tasks on shared topics (:func:`unit_scope`): a task
event's unit is noted once per frame (:func:`realtime.store.scoped`) and each connection
skips the frames not for it; a snapshot's task list is cut the same way. Every
``recheck_s`` the users behind all connections are read in one query, and a connection
whose user was disabled, changed role or unit, or had its tokens revoked is closed.

Everything here runs on the event loop; database work goes to a small thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from core.security import Principal
from realtime import store
from realtime.metrics import BUS_LAG, EVENTS_IN, UNACKED, UNACKED_AGE
from realtime.store import Frame, TopicState

if TYPE_CHECKING:
    from realtime.connection import Connection

log = logging.getLogger("emergency.realtime")
T = TypeVar("T")


class Account(NamedTuple):
    """A user as the database has it now: what a connection's access rests on (a tuple:
    thousands are read every ``recheck_s``)."""

    active: bool
    role: str
    unit_id: int | None
    token_version: int


@dataclass(frozen=True, slots=True)
class Grant:
    """What a connection's token grants: checked at hello and every ``recheck_s`` after."""

    principal: Principal
    expires_at: float  # unix seconds
    token_version: int = 0  # the token's `tv` claim (bumped on a password change or disable)

    def holds(self, account: Account | None) -> bool:
        """Does the grant still stand against the user as the database has it now?"""
        p = self.principal
        return (
            account is not None
            and account.active
            and account.role == p.role
            and account.unit_id == p.unit_id
            and account.token_version == self.token_version
        )


def unit_scope(principal: Principal) -> int | None:
    """The one unit whose tasks ``principal`` sees on shared topics (None: every unit's).

    A responder sees only its own unit's tasks, as over HTTP (another unit's task is a
    403 there); a responder without a unit (the database forbids it) sees none.
    """
    if principal.role != "responder":
        return None
    return principal.unit_id if principal.unit_id is not None else 0


class Actions(Protocol):
    """What the hub needs from the command side (which owns users, tasks and units)."""

    def authenticate(self, token: str) -> Grant:
        """What a bearer token grants (Unauthenticated if nothing)."""

    def accounts(self, user_ids: Sequence[int]) -> dict[int, Account]:
        """These users as they are now, in one query (a deleted user is absent)."""

    def authorize(self, principal: Principal, topic: str) -> None:
        """Raise Forbidden or NotFound unless ``principal`` may subscribe to ``topic``."""

    def snapshot(self, topic: str) -> tuple[int, dict[str, Any]]:
        """The topic's current state and the seq it reflects, read consistently."""

    def acknowledge(self, grant: Grant, topic: str, seq: int) -> dict[str, Any]:
        """Record that the unit's phone has every event of ``topic`` up to ``seq``
        (Unauthenticated if ``grant`` no longer holds)."""

    def act(self, grant: Grant, message: dict[str, Any]) -> dict[str, Any]:
        """A responder's task status or position, idempotent on ``message["key"]``
        (Unauthenticated if ``grant`` no longer holds)."""


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
    # Users behind open connections are read again this often (one query for all), so a
    # disabled user, a role or unit change or revoked tokens end the connection (4001).
    recheck_s: float = 2.0
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


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """A ``resync`` message, kept in two parts around the snapshot's task list, so a
    connection that may see only one unit's tasks costs a join, not another database read
    or an encoding of the whole map."""

    seq: int
    text: str  # the whole message, every task in it
    head: str  # ... up to the task list
    tail: str  # ... after it
    tasks: tuple[dict[str, Any], ...] | None  # None: the snapshot lists no tasks

    @classmethod
    def of(cls, topic: str, seq: int, data: dict[str, Any]) -> _Snapshot:
        start = _dumps({"type": "resync", "topic": topic, "seq": seq})[:-1] + ',"snapshot":'
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            return cls(seq, f"{start}{_dumps(data)}}}", "", "", None)
        rest = _dumps({k: v for k, v in data.items() if k != "tasks"})
        head = start + '{"tasks":'
        tail = ("}" if rest == "{}" else "," + rest[1:]) + "}"
        return cls(seq, head + _dumps(tasks) + tail, head, tail, tuple(tasks))

    def text_for(self, unit: int | None) -> str:
        """The message as a connection confined to ``unit`` (None: to none) sees it."""
        if unit is None or self.tasks is None:
            return self.text
        mine = [t for t in self.tasks if isinstance(t, dict) and t.get("unit_id") == unit]
        return self.head + _dumps(mine) + self.tail


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
        self._snapshots: OrderedDict[tuple[str, int], _Snapshot] = OrderedDict()
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

    async def snapshot_text(self, topic: str, unit: int | None = None) -> tuple[int, str]:
        """A ``resync`` message for ``topic``; connections resyncing together share one
        read. ``unit``: the connection sees only that unit's tasks (see :func:`unit_scope`;
        a unit's own topic holds only its tasks anyway)."""
        async with self._snapshot_locks[topic]:
            head = await self.read(store.topic_head, topic)
            snapshot = self._snapshots.get((topic, head))
            if snapshot is None:
                seq, data = await self.call(self.actions.snapshot, topic)
                snapshot = _Snapshot.of(topic, seq, data)
                self._snapshots[(topic, seq)] = snapshot
                while len(self._snapshots) > 8:
                    self._snapshots.popitem(last=False)
        shared = not topic.startswith("unit:")
        return snapshot.seq, snapshot.text_for(unit if shared else None)

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
            f = store.scoped(f)  # a task event's unit, noted once for every connection
            for conn in list(subs):
                conn.offer(f)
        return gaps

    # --- access ---------------------------------------------------------------------
    async def recheck(self) -> int:
        """Close every connection whose grant no longer holds (the user disabled, its role
        or unit changed, its tokens revoked), by whatever path the change was made: one
        query for all the users connected. Returns how many were closed."""
        held = [
            (conn, conn.grant)
            for conn in self.connections
            if conn.grant is not None and conn.grant.principal.kind == "user"
        ]
        if not held:
            return 0
        ids = sorted({grant.principal.id for _, grant in held})
        accounts = await self.call(self.actions.accounts, ids)
        closed = 0
        for conn, grant in held:
            # A connection that re-authenticated meanwhile is judged next time, against
            # an account read after its new token.
            if conn.grant is grant and not grant.holds(accounts.get(grant.principal.id)):
                conn.revoke()
                closed += 1
        return closed

    async def recheck_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.recheck_s)
            try:
                await self.recheck()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; connections stay as they are
                log.warning("re-checking connected users failed: %s", exc)

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
