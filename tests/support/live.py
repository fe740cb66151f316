"""The realtime tests' committed databases (``LiveDb``, ``make_live_db``), their WebSocket
clients (``Ws``, ``Feed``), and REST steps against a live server (``incident``,
``dispatch``, ``finish``) with the heads they move (``head``, ``topic_heads``).

The hub reads what other transactions commit (LISTEN/NOTIFY and the event table), so
these helpers work on databases of their own with real commits, not on the rolled-back
per-test connection. ``bench/realtime.py`` uses ``make_live_db`` and ``SECRET`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import websockets
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from command.auth import service as auth
from command.auth.models import User
from command.migrate import upgrade
from core.db import AuditedSession, sqlalchemy_url
from realtime import store
from resources.models import Station, Unit
from tests.support.db import create_database

SECRET = secrets.token_urlsafe(48)
PASSWORD_HASH = auth.hash_password("correct-horse-battery")


@dataclass
class LiveDb:
    """A committed database with a station, units (each with a responder) and staff."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    station_id: int
    unit_ids: list[int] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # username -> bearer token

    def token(self, username: str) -> str:
        return self.tokens[username]

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def responder(self, unit_id: int) -> str:
        return f"responder_{unit_id}"

    def add_units(self, n: int, *, ttl_s: int = 3600) -> list[int]:
        """``n`` more available units at the station, each with a responder user."""
        with self.sessions() as s:
            units = [
                Unit(
                    callsign=f"U{len(self.unit_ids) + i + 1:05d}",
                    name=f"Unit {len(self.unit_ids) + i + 1}",
                    kind="vehicle",
                    type="ambulance",
                    capabilities=["medical_bls"],
                    crew=2,
                    home_station_id=self.station_id,
                    geom=from_shape(Point(24.941, 60.171), 4326),
                )
                for i in range(n)
            ]
            s.add_all(units)
            s.flush()
            users = [
                User(
                    username=self.responder(u.id),
                    password_hash=PASSWORD_HASH,
                    role="responder",
                    unit_id=u.id,
                )
                for u in units
            ]
            s.add_all(users)
            s.commit()
            for user in users:
                self.tokens[user.username] = auth.issue_token(user, secret=SECRET, ttl_s=ttl_s)
            ids = [u.id for u in units]
        self.unit_ids.extend(ids)
        return ids

    def add_user(self, username: str, role: str, *, ttl_s: int = 3600) -> str:
        with self.sessions() as s:
            user = User(username=username, password_hash=PASSWORD_HASH, role=role)
            s.add(user)
            s.commit()
            token = auth.issue_token(user, secret=SECRET, ttl_s=ttl_s)
        self.tokens[username] = token
        return token


def make_live_db(prefix: str) -> LiveDb:
    url = create_database(prefix)
    upgrade(url)
    engine = create_engine(sqlalchemy_url(url), pool_size=5)
    sessions = sessionmaker(engine, class_=AuditedSession, expire_on_commit=False)
    with sessions() as s:
        station = Station(name="Live station", kind="fire", geom=from_shape(Point(24.94, 60.17)))
        s.add(station)
        s.commit()
        station_id = station.id
    db = LiveDb(url, engine, sessions, station_id)
    for role in ("dispatcher", "commander", "planner", "auditor", "admin"):
        db.add_user(role, role)
    return db


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/ws"


class Ws:
    """A thin protocol client for tests: JSON in and out, with a receive deadline."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.seen: dict[str, list[int]] = {}

    @classmethod
    async def open(cls, base: str, **kwargs: Any) -> Ws:
        conn = await websockets.connect(ws_url(base), open_timeout=10, **kwargs)
        return cls(conn)

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        data = json.loads(await asyncio.wait_for(self.conn.recv(), within))
        if data.get("type") == "event":
            self.seen.setdefault(data["topic"], []).append(data["seq"])
        return dict(data)

    async def recv_until(
        self, predicate: Any, within: float = 10.0, skip_pings: bool = True
    ) -> dict[str, Any]:
        """The first message for which ``predicate(message)`` holds (others are dropped)."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message in time")
            message = await self.recv(left)
            if skip_pings and message.get("type") == "ping":
                continue
            if predicate(message):
                return message

    async def hello(
        self, token: str, subscribe: list[str], resume: dict[str, int] | None = None
    ) -> dict[str, Any]:
        await self.send(
            {"type": "hello", "token": token, "subscribe": subscribe, "resume": resume or {}}
        )
        return await self.recv_until(lambda m: m["type"] in ("welcome", "error"))

    async def close(self) -> None:
        await self.conn.close()


# --- helpers for the fault and multi-process tests ------------------------------------


def incident_feature(title: str, *, vertices: int = 0, lon: float = 24.94) -> dict[str, Any]:
    """A GeoJSON incident near the station; ``vertices`` > 0 makes a big polygon (big events)."""
    if vertices <= 0:
        geometry: dict[str, Any] = {"type": "Point", "coordinates": [lon, 60.17]}
    else:
        import math

        ring = [
            [
                round(lon + 0.01 * math.cos(2 * math.pi * i / vertices), 7),
                round(60.17 + 0.005 * math.sin(2 * math.pi * i / vertices), 7),
            ]
            for i in range(vertices)
        ]
        ring.append(ring[0])
        geometry = {"type": "Polygon", "coordinates": [ring]}
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"title": title, "type": "fire", "severity": "moderate"},
    }


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in ``text`` (0.0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        sample, _, value = line.rpartition(" ")
        base, _, rest = sample.partition("{")
        if base != name:
            continue
        have = ",".join(sorted(p for p in rest.rstrip("}").split(",") if p))
        if have == want:
            return float(value)
    return 0.0


class Feed:
    """A socket kept reading in the background: every event applied once, in seq order.

    ``last[topic]`` is the last seq applied (a ``resync`` sets it to the snapshot's seq);
    a seq at or below it is a duplicate (counted, not applied), one above ``last + 1`` is a
    gap (recorded: the tests assert there are none). Pings are answered; a responder's own
    topic is acknowledged as events arrive (``ack=True``), as a phone does: acks are
    cumulative, so events that arrive within ``ACK_EVERY_S`` of the last ack are covered by
    one ack of the highest (a feed acking every event of a busy test topic would pass the
    server's 20 messages/s limit and be closed, 4429).
    """

    ACK_EVERY_S = 0.1

    def __init__(self, ws: Ws, *, ack: bool = False) -> None:
        self.ws = ws
        self.ack = ack
        self.last: dict[str, int] = {}
        self.resynced: dict[str, int] = {}  # topic -> seq of the snapshot it started from
        self.applied: dict[str, list[int]] = {}
        self.arrivals: dict[str, dict[int, tuple[float, dict[str, Any]]]] = {}
        self.duplicates = 0
        self.gaps: list[tuple[str, int, int]] = []
        self.errors: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._acked_at: dict[str, float] = {}
        self._ack_due: dict[str, int] = {}  # topic -> highest seq waiting for its ack
        self._ack_sent: dict[str, int] = {}
        self._ack_tasks: set[asyncio.Task[None]] = set()
        self.acked: dict[str, int] = {}  # topic -> highest seq the server said it stored

    @classmethod
    async def start(
        cls, base: str, token: str, topics: list[str], *, ack: bool = False, **kwargs: Any
    ) -> tuple[Feed, dict[str, Any]]:
        ws = await Ws.open(base, **kwargs)
        feed = cls(ws, ack=ack)
        await ws.send({"type": "hello", "token": token, "subscribe": topics, "resume": {}})
        welcome = await ws.recv_until(lambda m: m["type"] in ("welcome", "error"), within=30)
        assert welcome["type"] == "welcome", welcome
        feed._task = asyncio.create_task(feed._run())
        return feed, welcome

    async def _run(self) -> None:
        try:
            async for raw in self.ws.conn:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "event":
                    await self._event(message)
                elif kind == "resync":
                    topic = message["topic"]
                    self.resynced.setdefault(topic, message["seq"])
                    self.last[topic] = max(self.last.get(topic, 0), message["seq"])
                elif kind == "ping":
                    await self.ws.send({"type": "pong", "t": message.get("t")})
                elif kind == "error":
                    self.errors.append(message)
                else:
                    if kind == "acked":
                        topic = message["topic"]
                        self.acked[topic] = max(self.acked.get(topic, 0), message["seq"])
                    self.other.append(message)
        except websockets.ConnectionClosed:
            pass
        self.close_code = self.ws.conn.close_code

    async def _event(self, message: dict[str, Any]) -> None:
        topic, seq = message["topic"], message["seq"]
        last = self.last.get(topic)
        if last is not None and seq <= last:
            self.duplicates += 1
        else:
            if last is not None and seq != last + 1:
                self.gaps.append((topic, last, seq))
            self.last[topic] = seq
            self.applied.setdefault(topic, []).append(seq)
            self.arrivals.setdefault(topic, {})[seq] = (time.time(), message)
        if self.ack:
            await self._acknowledge(topic, seq)

    async def _acknowledge(self, topic: str, seq: int) -> None:
        waiting = topic in self._ack_due
        self._ack_due[topic] = max(seq, self._ack_due.get(topic, 0))
        if waiting:  # a delayed ack is on its way; it will carry this seq
            return
        wait = self._acked_at.get(topic, 0.0) + self.ACK_EVERY_S - time.monotonic()
        if wait > 0:
            task = asyncio.create_task(self._send_ack(topic, after=wait))
            self._ack_tasks.add(task)  # held, so it is not collected before it runs
            task.add_done_callback(self._ack_tasks.discard)
        else:
            await self._send_ack(topic)

    async def _send_ack(self, topic: str, *, after: float = 0.0) -> None:
        if after > 0:
            await asyncio.sleep(after)
        seq = self._ack_due.pop(topic, None)
        if seq is None:
            return
        self._acked_at[topic] = time.monotonic()
        self._ack_sent[topic] = max(seq, self._ack_sent.get(topic, 0))
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.ws.send({"type": "ack", "topic": topic, "seq": seq})

    async def wait_for(self, topic: str, seq: int, within: float = 30.0) -> float:
        """Wait until ``topic`` is applied up to ``seq``; returns how long that took."""
        start = time.monotonic()
        while self.last.get(topic, 0) < seq:
            if time.monotonic() - start > within:
                raise TimeoutError(f"{topic} at {self.last.get(topic)}, wanted {seq}")
            if self._task is not None and self._task.done():
                raise AssertionError(f"feed closed ({self.close_code}) at {self.last}")
            await asyncio.sleep(0.02)
        return time.monotonic() - start

    async def settle_acks(self, within: float = 5.0) -> None:
        """Send the acks still waiting and wait until the server has stored them all."""
        for topic in list(self._ack_due):
            await self._send_ack(topic)
        start = time.monotonic()
        while any(self.acked.get(t, 0) < seq for t, seq in self._ack_sent.items()):
            if time.monotonic() - start > within or (self._task is not None and self._task.done()):
                return
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Close, after the acks still waiting are sent and stored (up to 5 s)."""
        await self.settle_acks()
        await self.ws.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)


def topic_heads(sessions: sessionmaker[Session], prefix: str = "") -> dict[str, int]:
    """Last committed seq per topic (those starting with ``prefix``)."""
    from sqlalchemy import select

    from core.outbox import TopicSeq

    with sessions() as s:
        rows = s.execute(
            select(TopicSeq.topic, TopicSeq.last_seq).where(TopicSeq.topic.startswith(prefix))
        )
        return {t: int(n) for t, n in rows}


# --- REST steps against a live server -------------------------------------------------


def incident(db: LiveDb, base: str, title: str = "Fire") -> int:
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [24.942, 60.171]},
        "properties": {"title": title, "type": "fire", "severity": "moderate"},
    }
    r = httpx.post(f"{base}/api/incidents", json=body, headers=db.headers("dispatcher"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def dispatch(db: LiveDb, base: str, unit_id: int) -> int:
    inc = incident(db, base, "Task for the phone")
    r = httpx.post(
        f"{base}/api/incidents/{inc}/dispatch",
        json={"unit_ids": [unit_id]},
        headers=db.headers("dispatcher"),
    )
    assert r.status_code == 201, r.text
    return int(r.json()[0]["id"])


def head(db: LiveDb, topic: str) -> int:
    with db.sessions() as s:
        return store.topic_head(s, topic)


def finish(db: LiveDb, base: str, task_id: int, unit_id: int) -> None:
    """Drive a task to done over REST so its unit can be dispatched again."""
    for step in ("accepted", "en_route", "on_scene", "done"):
        r = httpx.post(
            f"{base}/api/tasks/{task_id}/status",
            json={"status": step},
            headers=db.headers(db.responder(unit_id)),
        )
        assert r.status_code == 200, r.text
