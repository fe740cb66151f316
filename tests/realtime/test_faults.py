"""Fault tests of the realtime hub against the real server (a subprocess) and PostgreSQL.

Dropped phone sockets while 1,000 tasks are dispatched and worked, the bus's LISTEN
connection killed and every backend of the database terminated mid-stream, and hostile
clients next to a well-behaved one. Each asserts values (seqs contiguous, nothing lost,
no duplicated effect) and prints its figures (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
import websockets
from sqlalchemy import func, select, text

from command.auth import service as auth
from command.auth.models import User
from command.tasks.models import Task
from core.outbox import Event
from realtime.bus import libpq_dsn
from realtime.store import TopicAck
from tests.support.db import admin_url
from tests.support.live import (
    SECRET,
    Feed,
    LiveDb,
    Ws,
    incident_feature,
    metric_value,
    topic_heads,
    ws_url,
)
from tests.support.servers import running_server

pytestmark = pytest.mark.slow

# As the issue asks: 1,000 tasks (about 200 s on a quiet 2-core machine; the database's
# serialised commits, ~40 a second, set the pace). FAULTS_N_TASKS=300 for a quicker run.
N_TASKS = int(os.environ.get("FAULTS_N_TASKS", "1000"))
STEPS = ("accepted", "en_route", "on_scene", "done")
TASK_EVENTS = ("task.assigned", "task.acknowledged", *(f"task.{s}" for s in STEPS))


@pytest.fixture
def server(live_db: LiveDb) -> Iterator[str]:
    """One server for the dropped-sockets test: quick re-sends, quick polls (stopped after
    it, so the bus tests below find only their own server's listener)."""
    env = {"EMERGENCY_WS_ACK_TIMEOUT_S": "1", "EMERGENCY_BUS_POLL_INTERVAL_S": "0.5"}
    with running_server(live_db.url, SECRET, extra_env=env) as base:
        yield base


# --- 1. dropped sockets while 1,000 tasks are dispatched ---------------------------------


class Stats:
    def __init__(self) -> None:
        self.drops = 0
        self.reconnects = 0
        self.duplicates = 0  # events received again (re-sends and replays after reconnect)
        self.retries = 0  # actions sent again with the same key
        self.gaps: list[tuple[str, int, int]] = []
        self.errors: list[Any] = []


class Phone:
    """A responder's phone: keeps its unit topic's events, acks them, works its tasks.

    Each task step is sent with a fresh idempotency key; the same key is sent again after a
    reconnect (or when no ``result`` came in time) until its result arrives.
    """

    def __init__(self, base: str, unit_id: int, token: str, stats: Stats) -> None:
        self.base = base
        self.unit_id = unit_id
        self.topic = f"unit:{unit_id}"
        self.token = token
        self.stats = stats
        self.last = 0
        self.applied: list[int] = []
        self.events: dict[int, dict[str, Any]] = {}
        self.assigned: list[int] = []  # task ids, from task.assigned events
        self.queue: list[int] = []  # tasks to work, in order
        self.finished: list[int] = []
        self.steps: dict[int, int] = {}  # task id -> index of its next step
        self.pending: dict[str, Any] | None = None  # the step in flight (same key on retry)
        self.sent_at = 0.0
        self.free = False  # no task of ours is open: the dispatcher may pick this unit
        self.conn: Any = None
        self.connected = asyncio.Event()
        self.stopping = False
        self.connections = 0

    async def run(self) -> None:
        while not self.stopping:
            try:
                self.conn = await websockets.connect(
                    ws_url(self.base), open_timeout=30, close_timeout=2
                )
            except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                self.stats.errors.append((self.unit_id, "connect", repr(exc)))
                await asyncio.sleep(0.5)
                continue
            try:
                await self._session()
            except websockets.ConnectionClosed:
                pass
            finally:
                self.connected.clear()
                await self.conn.close()
            if not self.stopping:
                await asyncio.sleep(random.uniform(0.2, 0.8))

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def _session(self) -> None:
        resume = {self.topic: self.last} if self.connections else {}
        self.connections += 1
        if self.connections > 1:
            self.stats.reconnects += 1
        await self.send(
            {"type": "hello", "token": self.token, "subscribe": [self.topic], "resume": resume}
        )
        if self.pending is not None:  # no result came before the drop: the same key again
            self.stats.retries += 1
            await self._send_pending()
        self.connected.set()
        while True:
            try:
                raw = await asyncio.wait_for(self.conn.recv(), 1.0)
            except TimeoutError:
                if self.stopping:
                    return
                if self.pending is not None and time.monotonic() - self.sent_at > 8:
                    self.stats.retries += 1
                    await self._send_pending()
                continue
            await self._on(json.loads(raw))

    async def _send_pending(self) -> None:
        assert self.pending is not None
        self.sent_at = time.monotonic()
        await self.send(self.pending)

    async def _next_step(self) -> None:
        if self.pending is not None or not self.queue:
            return
        task_id = self.queue[0]
        step = self.steps.get(task_id, 0)
        self.pending = {
            "type": "status",
            "task_id": task_id,
            "status": STEPS[step],
            "key": f"t{task_id}-{STEPS[step]}-{uuid.uuid4().hex[:12]}",
        }
        await self._send_pending()

    async def _on(self, m: dict[str, Any]) -> None:
        kind = m.get("type")
        if kind == "event":
            seq = m["seq"]
            if m["topic"] != self.topic:
                self.stats.errors.append((self.unit_id, "foreign topic", m["topic"]))
                return
            if seq <= self.last:
                self.stats.duplicates += 1
            else:
                if seq != self.last + 1:
                    self.stats.gaps.append((self.topic, self.last, seq))
                self.last = seq
                self.applied.append(seq)
                self.events[seq] = m
                if m["event"] == "task.assigned":
                    self.assigned.append(m["data"]["id"])
                    self.queue.append(m["data"]["id"])
            await self.send({"type": "ack", "topic": self.topic, "seq": seq})
            await self._next_step()
        elif kind == "result":
            if self.pending is None or m["key"] != self.pending["key"]:
                return  # the answer to an earlier copy of a step already done
            task_id, status = self.pending["task_id"], self.pending["status"]
            assert m["data"]["status"] == status, m
            self.pending = None
            if status == "done":
                self.queue.pop(0)
                self.finished.append(task_id)
                self.free = not self.queue
            else:
                self.steps[task_id] = STEPS.index(status) + 1
            await self._next_step()
        elif kind == "error":
            if self.pending is not None and m.get("key") == self.pending["key"]:
                if m["code"] in ("unavailable", "busy"):
                    await asyncio.sleep(0.2)
                    self.stats.retries += 1
                    await self._send_pending()
                    return
            elif m["code"] == "busy" and self.pending is not None:
                return  # the watchdog re-sends it with the same key
            self.stats.errors.append((self.unit_id, "error", m))
        elif kind == "ping":
            await self.send({"type": "pong", "t": m.get("t")})
        elif kind in ("welcome", "acked", "pong"):
            pass
        else:
            self.stats.errors.append((self.unit_id, "unexpected", m))


def test_dropped_sockets_while_1000_tasks_are_dispatched(live_db: LiveDb, server: str) -> None:
    n_units, n_tasks, drop_every_s = 150, N_TASKS, 2.5
    drop_share = float(os.environ.get("FAULTS_DROP_SHARE", "0.2"))
    units = live_db.add_units(n_units)
    stats = Stats()
    dispatch_errors: list[str] = []

    async def main() -> float:
        phones = [Phone(server, u, live_db.token(live_db.responder(u)), stats) for u in units]
        runners = [asyncio.create_task(p.run()) for p in phones]
        await asyncio.wait_for(asyncio.gather(*(p.connected.wait() for p in phones)), 60)
        for p in phones:
            p.free = True
        started = time.monotonic()
        dispatched = 0
        finished = asyncio.Event()

        async def dispatcher(http: httpx.AsyncClient) -> None:
            nonlocal dispatched
            n = 0
            while dispatched < n_tasks:
                free = [p for p in phones if p.free]
                if len(free) < 10 and dispatched + len(free) < n_tasks:
                    await asyncio.sleep(0.05)
                    continue
                batch = free[: min(50, n_tasks - dispatched)]
                for p in batch:
                    p.free = False
                n += 1
                r = await http.post(
                    "/api/incidents",
                    json=incident_feature(f"drop test {n}"),
                    headers=live_db.headers("dispatcher"),
                )
                assert r.status_code == 201, r.text
                r = await http.post(
                    f"/api/incidents/{r.json()['id']}/dispatch",
                    json={"unit_ids": [p.unit_id for p in batch]},
                    headers=live_db.headers("dispatcher"),
                )
                if r.status_code != 201:
                    dispatch_errors.append(r.text)
                    for p in batch:
                        p.free = True
                    continue
                dispatched += len(r.json())

        async def dropper() -> None:
            while not finished.is_set():
                await asyncio.sleep(drop_every_s)
                up = [p for p in phones if p.connected.is_set()]
                for p in random.sample(up, int(len(up) * drop_share)):
                    p.connected.clear()
                    p.conn.transport.abort()  # no close handshake: the phone just vanishes
                    stats.drops += 1

        async def progress() -> None:
            while not finished.is_set():
                await asyncio.sleep(5)
                print(
                    f"  t={time.monotonic() - started:.0f}s dispatched={dispatched} "
                    f"done={sum(len(p.finished) for p in phones)} "
                    f"pending={sum(p.pending is not None for p in phones)} "
                    f"free={sum(p.free for p in phones)} "
                    f"up={sum(p.connected.is_set() for p in phones)} drops={stats.drops} "
                    f"retries={stats.retries} dups={stats.duplicates} errors={len(stats.errors)}",
                    flush=True,
                )

        async with httpx.AsyncClient(base_url=server, timeout=60) as http:
            dropping = asyncio.create_task(dropper())
            reporting = asyncio.create_task(progress())
            await asyncio.wait_for(dispatcher(http), 900)
            deadline = time.monotonic() + 600
            while sum(len(p.finished) for p in phones) < n_tasks:
                assert time.monotonic() < deadline, "tasks not all done in time"
                await asyncio.sleep(0.2)
            finished.set()
            await dropping
            reporting.cancel()
            wall = time.monotonic() - started
            # Every unit topic fully received and acknowledged (the last acks may need a
            # re-send: a drop can take them with it).
            heads = await asyncio.to_thread(topic_heads, live_db.sessions, "unit:")
            while True:
                acked = await asyncio.to_thread(_acked, live_db)
                behind = [
                    p
                    for p in phones
                    if p.last < heads.get(p.topic, 0) or acked.get(p.topic, 0) < p.last
                ]
                if not behind:
                    break
                assert time.monotonic() < deadline, f"{len(behind)} phones behind"
                await asyncio.sleep(0.2)
            resends = metric_value(
                (await http.get("/metrics")).text, "emergency_ws_events_sent_total", kind="resend"
            )
            health = (await http.get("/healthz")).json()
        for p in phones:
            p.stopping = True
        await asyncio.wait_for(asyncio.gather(*runners), 30)
        print(
            f"\n[dropped sockets] units={n_units} tasks={n_tasks} wall={wall:.1f}s "
            f"drops={stats.drops} reconnects={stats.reconnects} "
            f"duplicate_seqs_seen={stats.duplicates} server_resends={resends:.0f} "
            f"action_retries_same_key={stats.retries} dispatch_409={len(dispatch_errors)} "
            f"connections_now={health['realtime']['connections']}"
        )
        _check_phones(live_db, phones, heads, stats)
        return wall

    asyncio.run(main())
    assert not dispatch_errors, dispatch_errors[:3]
    assert drop_share == 0 or (stats.drops >= 10 and stats.reconnects >= stats.drops * 0.9), vars(
        stats
    )
    _check_database(live_db, n_tasks)


def _acked(live_db: LiveDb) -> dict[str, int]:
    with live_db.sessions() as s:
        return {t: int(n) for t, n in s.execute(select(TopicAck.topic, TopicAck.seq))}


def _check_phones(
    live_db: LiveDb, phones: list[Phone], heads: dict[str, int], stats: Stats
) -> None:
    assert not stats.gaps, stats.gaps[:5]
    assert not stats.errors, stats.errors[:5]
    with live_db.sessions() as s:
        by_unit: dict[int, set[int]] = {}
        for task_id, unit_id in s.execute(select(Task.id, Task.unit_id)):
            by_unit.setdefault(unit_id, set()).add(task_id)
    lost = 0
    for p in phones:
        head = heads.get(p.topic, 0)
        # every seq 1..head applied exactly once, in order
        assert p.applied == list(range(1, head + 1)), (p.topic, p.applied[-5:], head)
        assert sorted(p.assigned) == sorted(by_unit.get(p.unit_id, set())), p.topic
        assert sorted(p.finished) == sorted(p.assigned), p.topic
        lost += len(by_unit.get(p.unit_id, set()) - set(p.assigned))
    assert lost == 0


def _check_database(live_db: LiveDb, n_tasks: int) -> None:
    with live_db.sessions() as s:
        statuses = dict(s.execute(select(Task.status, func.count()).group_by(Task.status)).all())
        assert statuses == {"done": n_tasks}, statuses
        unacked = s.scalar(select(func.count()).where(Task.acknowledged_at.is_(None)))
        assert unacked == 0
        rows = s.execute(
            select(
                Event.type,
                func.count(),
                func.count(func.distinct(Event.payload["id"].as_integer())),
            )
            .where(Event.topic == "situation", Event.type.in_(TASK_EVENTS))
            .group_by(Event.type)
        ).all()
        per_type = {t: (n, distinct) for t, n, distinct in rows}
        # exactly one event per task and type: no duplicated effect of a retried step or ack
        assert per_type == {t: (n_tasks, n_tasks) for t in TASK_EVENTS}, per_type
        unit_events = s.execute(
            select(Event.type, func.count())
            .where(Event.topic.startswith("unit:"), Event.type.like("task.%"))
            .group_by(Event.type)
        ).all()
        assert dict(unit_events) == {t: n_tasks for t in TASK_EVENTS if t != "task.acknowledged"}, (
            unit_events
        )
        # the event table itself is gap-free per topic
        bad = s.execute(
            text(
                "SELECT topic FROM event GROUP BY topic "
                "HAVING count(*) <> max(seq) OR min(seq) <> 1"
            )
        ).all()
        assert bad == []


# --- 2. the bus's LISTEN connection killed; every backend of the database terminated ------


@pytest.fixture(scope="module")
def bus_server(live_db: LiveDb) -> Iterator[str]:
    """A server whose catch-up poll is slow (30 s): delivery within seconds after a fault
    proves the LISTEN connection came back (and caught up at once), not the poll."""
    env = {"EMERGENCY_BUS_POLL_INTERVAL_S": "30", "EMERGENCY_WS_ACK_TIMEOUT_S": "1"}
    with running_server(live_db.url, SECRET, extra_env=env) as base:
        yield base


def _terminate(live_db: LiveDb, where: str) -> int:
    """``pg_terminate_backend`` the backends of the test database matching ``where``."""
    name = live_db.engine.url.database
    with psycopg.connect(libpq_dsn(admin_url()), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = %s AND pid <> pg_backend_pid() AND {where}",
            (name,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


async def _health(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    try:
        r = await http.get("/healthz")
    except httpx.TransportError as exc:
        return 0, {"error": repr(exc)}
    return r.status_code, r.json()


class Writer:
    """Incidents and tasks for one unit, step after step, retried until they go through."""

    def __init__(self, live_db: LiveDb, http: httpx.AsyncClient, unit_id: int) -> None:
        self.live_db = live_db
        self.http = http
        self.unit_id = unit_id
        self.failures = 0
        self.writes = 0
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _post(self, path: str, body: dict[str, Any], user: str) -> Any:
        while True:
            try:
                r = await self.http.post(path, json=body, headers=self.live_db.headers(user))
                if r.status_code in (200, 201):
                    self.writes += 1
                    return r.json()
                detail = r.text
            except httpx.TransportError as exc:
                detail = repr(exc)
            self.failures += 1
            if self.failures > 200:
                raise AssertionError(f"writes keep failing: {detail}")
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        responder = self.live_db.responder(self.unit_id)
        n = 0
        while not self.stop.is_set():
            n += 1
            incident = await self._post(
                "/api/incidents", incident_feature(f"bus fault {n}"), "dispatcher"
            )
            task_id = await self._dispatch(incident["id"])
            for status in STEPS:
                await self._post(f"/api/tasks/{task_id}/status", {"status": status}, responder)

    async def _dispatch(self, incident_id: int) -> int:
        path = f"/api/incidents/{incident_id}/dispatch"
        while True:
            try:
                r = await self.http.post(
                    path,
                    json={"unit_ids": [self.unit_id]},
                    headers=self.live_db.headers("dispatcher"),
                )
                if r.status_code == 201:
                    self.writes += 1
                    return int(r.json()[0]["id"])
            except httpx.TransportError:
                pass
            self.failures += 1
            # the dispatch may have committed before its answer was lost
            task_id = await asyncio.to_thread(_open_task, self.live_db, self.unit_id, incident_id)
            if task_id is not None:
                return task_id
            assert self.failures <= 200, "dispatch keeps failing"
            await asyncio.sleep(0.2)


def _open_task(live_db: LiveDb, unit_id: int, incident_id: int) -> int | None:
    with live_db.sessions() as s:
        return s.scalar(
            select(Task.id).where(
                Task.unit_id == unit_id, Task.incident_id == incident_id, Task.status != "done"
            )
        )


def _event_at(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["at"]).timestamp()


async def _bus_fault(live_db: LiveDb, base: str, fault: str) -> dict[str, Any]:
    """Screen + phone reading while a writer works; ``fault`` strikes mid-stream."""
    (unit_id,) = await asyncio.to_thread(live_db.add_units, 1)
    topic = f"unit:{unit_id}"
    screen, _ = await Feed.start(base, live_db.token("dispatcher"), ["situation"])
    phone, _ = await Feed.start(base, live_db.token(live_db.responder(unit_id)), [topic], ack=True)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            writer = Writer(live_db, http, unit_id)
            try:
                run = await _bus_fault_steps(live_db, http, writer, screen, phone, topic, fault)
            finally:
                writer.stop.set()
                if writer.task is not None:
                    await asyncio.wait_for(writer.task, 60)
    finally:
        await screen.stop()
        await phone.stop()
    killed, killed_at, writes_before, relisten_s, drain_s, heads, code, after, r0 = run
    reconnects_before = r0
    writes_after = writer.writes - writes_before
    base_seq = screen.resynced["situation"]
    assert screen.applied["situation"] == list(range(base_seq + 1, heads["situation"] + 1))
    assert phone.applied[topic] == list(range(1, heads[topic] + 1))
    assert screen.gaps == [] and phone.gaps == []
    assert screen.errors == [], screen.errors
    # A database restart may fail an ack's write ("unavailable": send it again); the
    # event is then re-sent until an ack is stored, so the topic ends fully acknowledged.
    assert {e["code"] for e in phone.errors} <= ({"unavailable"} if fault == "all" else set())
    acked = await asyncio.to_thread(_acked, live_db)
    assert acked[topic] == heads[topic]
    assert screen.close_code == 1000 and phone.close_code == 1000
    assert code == 200 and after["realtime"]["bus"]["listening"] is True
    assert after["realtime"]["bus"]["reconnects"] >= reconnects_before + 1
    # Events committed after the fault: from their commit to the screen.
    late = [
        arrived - _event_at(m)
        for arrived, m in screen.arrivals["situation"].values()
        if _event_at(m) >= killed_at
    ]
    assert len(late) >= 5, "the writer wrote nothing after the fault"
    figures = {
        "fault": fault,
        "backends_killed": killed,
        "writes_before": writes_before,
        "writes_after": writes_after,
        "write_failures": writer.failures,
        "events_after_fault": len(late),
        "relisten_s": round(relisten_s, 3),
        "catch_up_max_s": round(max(late), 3),
        "after_fault_median_s": round(statistics.median(late), 3),
        "drain_after_stop_s": round(drain_s, 3),
        "reconnects": after["realtime"]["bus"]["reconnects"],
        "situation_events": len(screen.applied["situation"]),
        "unit_events": len(phone.applied[topic]),
        "duplicates_seen": screen.duplicates + phone.duplicates,
        "acks_refused_unavailable": len(phone.errors),
    }
    print(f"\n[bus fault: {fault}] {json.dumps(figures)}")
    return figures


async def _bus_fault_steps(
    live_db: LiveDb,
    http: httpx.AsyncClient,
    writer: Writer,
    screen: Feed,
    phone: Feed,
    topic: str,
    fault: str,
) -> tuple[Any, ...]:
    code, before = await _health(http)
    assert code == 200 and before["realtime"]["bus"]["listening"] is True, before
    reconnects_before = before["realtime"]["bus"]["reconnects"]
    writer.task = asyncio.create_task(writer.run())
    await asyncio.sleep(2.0)
    writes_before = writer.writes
    assert writes_before > 0 and not writer.task.done()
    killed_at = time.time()
    if fault == "listener":
        killed = await asyncio.to_thread(_terminate, live_db, "application_name = 'emergency-bus'")
        assert killed == 1
    else:
        killed = await asyncio.to_thread(_terminate, live_db, "true")
        assert killed >= 2  # the listener and at least one pooled connection
        await asyncio.to_thread(live_db.engine.dispose)  # ours were killed too
    start = time.monotonic()
    while True:  # the bus is listening again, and says it reconnected
        code, health = await _health(http)
        bus = health.get("realtime", {}).get("bus", {})
        if code == 200 and bus.get("listening") and bus["reconnects"] > reconnects_before:
            break
        assert time.monotonic() - start < 30, health
        await asyncio.sleep(0.05)
    relisten_s = time.monotonic() - start
    await asyncio.sleep(3.0)  # keep writing after the recovery
    writer.stop.set()
    await asyncio.wait_for(writer.task, 60)
    stopped = time.monotonic()
    heads = await asyncio.to_thread(topic_heads, live_db.sessions)
    # Nothing left behind: the last events arrive without waiting for the 30 s poll.
    await phone.wait_for(topic, heads[topic], within=20)
    # The phone's last (cumulative) ack is stored and published on the situation topic
    # before its head is read, so the screen's count below includes it.
    await phone.settle_acks()
    heads = await asyncio.to_thread(topic_heads, live_db.sessions)
    await screen.wait_for("situation", heads["situation"], within=20)
    drain_s = time.monotonic() - stopped
    code, after = await _health(http)
    return (
        killed,
        killed_at,
        writes_before,
        relisten_s,
        drain_s,
        heads,
        code,
        after,
        reconnects_before,
    )


def test_listener_killed_mid_stream(live_db: LiveDb, bus_server: str) -> None:
    figures = asyncio.run(_bus_fault(live_db, bus_server, "listener"))
    assert figures["catch_up_max_s"] < 25  # well before the 30 s poll would have caught up


def test_every_backend_of_the_database_terminated(live_db: LiveDb, bus_server: str) -> None:
    figures = asyncio.run(_bus_fault(live_db, bus_server, "all"))
    assert figures["catch_up_max_s"] < 25


# --- 4. hostile clients next to a well-behaved one ----------------------------------------


@pytest.fixture(scope="module")
def strict_server(live_db: LiveDb) -> Iterator[str]:
    """A server with a tiny per-client queue (20 frames), to show a slow reader cut off."""
    env = {
        "EMERGENCY_WS_QUEUE_MAX": "20",
        "EMERGENCY_WS_ACK_TIMEOUT_S": "1",
        "EMERGENCY_BUS_POLL_INTERVAL_S": "0.5",
    }
    with running_server(live_db.url, SECRET, extra_env=env) as base:
        yield base


class Sockets:
    """The sockets a test opened, all closed at the end whatever happened."""

    def __init__(self) -> None:
        self.all: list[Ws] = []

    async def open(self, base: str, **kwargs: Any) -> Ws:
        ws = await Ws.open(base, **kwargs)
        self.all.append(ws)
        return ws

    async def close_all(self) -> None:
        for ws in self.all:
            await ws.close()


async def _until_closed(ws: Ws, within: float = 15.0) -> tuple[list[dict[str, Any]], int | None]:
    """Every message until the server closes the socket, and the close code."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not closed in time; got {messages[-3:]}")
            messages.append(await ws.recv(left))
    except websockets.ConnectionClosed:
        pass
    await ws.close()
    return messages, ws.conn.close_code


async def _still_open(ws: Ws) -> None:
    await ws.send({"type": "ping", "t": 1.5})
    pong = await ws.recv_until(lambda m: m["type"] == "pong", within=15)
    assert pong["t"] == 1.5


async def _error(ws: Ws, code: str) -> dict[str, Any]:
    message = await ws.recv_until(lambda m: m["type"] == "error", within=15)
    assert message["code"] == code, message
    return message


def _user_token(live_db: LiveDb, username: str, ttl_s: int) -> str:
    with live_db.sessions() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        return auth.issue_token(user, secret=SECRET, ttl_s=ttl_s)


async def _hostile(live_db: LiveDb, base: str) -> dict[str, Any]:
    units = await asyncio.to_thread(live_db.add_units, 120)
    figures: dict[str, Any] = {}
    good, _ = await Feed.start(base, live_db.token("dispatcher"), ["situation"], max_size=None)
    http = httpx.AsyncClient(base_url=base, timeout=60)
    stop = asyncio.Event()
    created = 0

    async def trickle() -> None:  # events keep flowing to the good client throughout
        nonlocal created
        while not stop.is_set():
            r = await http.post(
                "/api/incidents",
                json=incident_feature(f"hostile {created}"),
                headers=live_db.headers("dispatcher"),
            )
            assert r.status_code == 201, r.text
            created += 1
            await asyncio.sleep(0.1)

    trickling = asyncio.create_task(trickle())
    opened = Sockets()
    try:
        figures.update(await _hostile_steps(live_db, base, http, units, opened))
    finally:
        await opened.close_all()
        stop.set()
        try:
            await asyncio.wait_for(trickling, 60)
        finally:
            heads = await asyncio.to_thread(topic_heads, live_db.sessions, "situation")
            try:
                await good.wait_for("situation", heads["situation"], within=30)
                health = await http.get("/healthz")
            finally:
                await http.aclose()
                await good.stop()
    base_seq = good.resynced["situation"]
    assert good.applied["situation"] == list(range(base_seq + 1, heads["situation"] + 1))
    assert good.gaps == [] and good.errors == [], (good.gaps, good.errors)
    assert good.close_code == 1000
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    figures["good_client_events"] = len(good.applied["situation"])
    figures["good_client_duplicates"] = good.duplicates
    figures["incidents_trickled"] = created
    return figures


async def _hostile_steps(
    live_db: LiveDb, base: str, http: httpx.AsyncClient, units: list[int], opened: Sockets
) -> dict[str, Any]:
    mine, other = units[0], units[1]
    phone_token = live_db.token(live_db.responder(mine))
    figures: dict[str, Any] = {}
    # malformed JSON, JSON that is no object, an unknown type: an error each, still open
    ws = await opened.open(base)
    assert (await ws.hello(live_db.token("dispatcher"), []))["type"] == "welcome"
    await ws.conn.send("{not json")
    assert "not JSON" in (await _error(ws, "invalid_message"))["message"]
    await ws.conn.send("[1, 2, 3]")
    await _error(ws, "invalid_message")
    await ws.conn.send('"hello"')
    await _error(ws, "invalid_message")
    await ws.send({"type": "launch_missiles"})
    assert "unknown message type" in (await _error(ws, "invalid_message"))["message"]
    await ws.send({"type": "ack", "topic": "situation; DROP TABLE event", "seq": 1})
    await _error(ws, "invalid_message")
    await _still_open(ws)
    await ws.close()

    # a bad token, then an expired one, in the hello: error + 4001
    for token in ("not-a-token", _user_token(live_db, "dispatcher", ttl_s=1)):
        if token != "not-a-token":
            await asyncio.sleep(2.2)  # JWT exp has whole seconds
        ws = await opened.open(base)
        reply = await ws.hello(token, ["situation"])
        assert reply["type"] == "error" and reply["code"] == "unauthenticated", reply
        _, code = await _until_closed(ws)
        assert code == 4001

    # a token that expires while the socket is open: token_expired + 4001
    ws = await opened.open(base)
    assert (await ws.hello(_user_token(live_db, "dispatcher", ttl_s=2), []))["type"] == "welcome"
    t_open = time.monotonic()
    messages, code = await _until_closed(ws, within=20)
    assert code == 4001
    assert any(m.get("code") == "token_expired" for m in messages), messages
    figures["expired_token_closed_after_s"] = round(time.monotonic() - t_open, 2)

    # a first message that is not a hello: 4400
    ws = await opened.open(base)
    await ws.send({"type": "subscribe", "topics": ["situation"]})
    messages, code = await _until_closed(ws)
    assert code == 4400 and messages[0]["code"] == "bad_hello", messages

    # a frame over ws_max_frame_bytes (64 KiB), before and after the hello: 1009
    for said_hello in (False, True):
        ws = await opened.open(base)
        if said_hello:
            assert (await ws.hello(live_db.token("dispatcher"), []))["type"] == "welcome"
        await ws.conn.send("x" * (65 * 1024))
        _, code = await _until_closed(ws)
        assert code == 1009

    # too many topics: refused as a whole (too_many_topics / invalid_message), still open
    ws = await opened.open(base)
    assert (await ws.hello(live_db.token("dispatcher"), ["situation"]))["type"] == "welcome"
    await ws.send({"type": "subscribe", "topics": [f"unit:{u}" for u in units[:16]]})
    await _error(ws, "too_many_topics")
    await ws.send({"type": "subscribe", "topics": [f"unit:{u}" for u in units[:17]]})
    await _error(ws, "invalid_message")
    await _still_open(ws)
    # a message flood over the rate limit (20/s, burst 200): rate_limited + 4429
    for i in range(400):
        await ws.send({"type": "ping", "t": i})
    messages, code = await _until_closed(ws)
    assert code == 4429
    assert any(m.get("code") == "rate_limited" for m in messages)
    figures["pongs_before_rate_limit"] = sum(m["type"] == "pong" for m in messages)

    # a responder: another unit's topic is forbidden; acking what was never sent is
    # refused; acking another unit's topic is forbidden; the socket stays open
    ws = await opened.open(base)
    assert (await ws.hello(phone_token, [f"unit:{mine}"]))["type"] == "welcome"
    await ws.send({"type": "subscribe", "topics": [f"unit:{other}"]})
    assert (await _error(ws, "forbidden"))["topic"] == f"unit:{other}"
    await ws.send({"type": "ack", "topic": f"unit:{mine}", "seq": 999_999})
    await _error(ws, "invalid_input")
    await ws.send({"type": "ack", "topic": f"unit:{other}", "seq": 1})
    await _error(ws, "forbidden")
    await ws.send({"type": "subscribe", "topics": ["unit:999999999"]})
    await _error(ws, "forbidden")
    await _still_open(ws)
    await ws.close()
    with live_db.sessions() as s:
        stored = s.scalar(
            select(TopicAck.seq).where(TopicAck.topic.in_([f"unit:{mine}", f"unit:{other}"]))
        )
        assert stored is None  # no acknowledgement was stored

    # a wrong Origin: refused with HTTP 403 before the upgrade; the page's own is fine
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url(base), origin="http://evil.example", open_timeout=10)
    assert refused.value.response.status_code == 403
    own = base.replace("http://", "http://", 1)
    ws = await opened.open(base, origin=own)
    assert (await ws.hello(live_db.token("dispatcher"), []))["type"] == "welcome"
    await ws.close()

    figures.update(await _slow_reader(live_db, base, http, units[2:], opened))
    return figures


async def _slow_reader(
    live_db: LiveDb, base: str, http: httpx.AsyncClient, units: list[int], opened: Sockets
) -> dict[str, Any]:
    """A client that stops reading while big events flow: told too_slow + where to resume,
    closed 4009; resuming from there gives the rest with no gap."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    slow = await opened.open(base, sock=sock, max_size=None, max_queue=1)
    welcome = await slow.hello(live_db.token("dispatcher"), ["situation"])
    assert welcome["type"] == "welcome"
    resync = await slow.recv_until(lambda m: m["type"] == "resync")
    start_seq = resync["seq"]

    async def too_slow_count() -> float:
        text_ = (await http.get("/metrics")).text
        return metric_value(text_, "emergency_ws_refused_total", reason="too_slow")

    before = await too_slow_count()
    r = await http.post(
        "/api/incidents",
        json=incident_feature("big", vertices=12_000),
        headers=live_db.headers("dispatcher"),
    )
    assert r.status_code == 201, r.text
    big = r.json()["id"]
    dispatches = 0
    started = time.monotonic()
    while await too_slow_count() <= before:  # 8 units a time: ~17 big events per commit
        assert dispatches * 8 + 8 <= len(units), "the slow reader was never cut off"
        batch = units[dispatches * 8 : dispatches * 8 + 8]
        r = await http.post(
            f"/api/incidents/{big}/dispatch",
            json={"unit_ids": batch},
            headers=live_db.headers("dispatcher"),
        )
        assert r.status_code == 201, r.text
        dispatches += 1
        await asyncio.sleep(0.3)
    cut_after_s = time.monotonic() - started
    # now read what it had been sent: events in order, then too_slow with resume, then 4009
    messages, code = await _until_closed(slow, within=60)
    events = [m for m in messages if m["type"] == "event"]
    errors = [m for m in messages if m["type"] == "error"]
    assert code == 4009, (code, errors)
    assert [m["code"] for m in errors] == ["too_slow"], errors
    seqs = [m["seq"] for m in events]
    assert seqs == list(range(start_seq + 1, start_seq + 1 + len(seqs)))
    resume = errors[0]["resume"]
    # Exactly what it got: resuming there loses nothing and repeats nothing.
    last_got = seqs[-1] if seqs else start_seq
    assert resume == {"situation": last_got}
    # resuming from there: everything after it, no gap
    head = (await asyncio.to_thread(topic_heads, live_db.sessions, "situation"))["situation"]
    again, _ = await Feed.start(base, live_db.token("dispatcher"), [], max_size=None)
    await again.ws.send({"type": "subscribe", "topics": ["situation"], "resume": resume})
    await again.wait_for("situation", head, within=30)
    await again.stop()
    assert again.applied["situation"][: head - resume["situation"]] == list(
        range(resume["situation"] + 1, head + 1)
    )
    assert again.gaps == []
    return {
        "slow_reader_dispatches": dispatches,
        "slow_reader_cut_after_s": round(cut_after_s, 2),
        "slow_reader_events_before_cut": len(seqs),
        "slow_reader_resume": resume["situation"],
        "slow_reader_last_received": last_got,
    }


def test_hostile_clients_leave_a_good_client_alone(live_db: LiveDb, strict_server: str) -> None:
    figures = asyncio.run(_hostile(live_db, strict_server))
    print(f"\n[hostile clients] {json.dumps(figures)}")
