"""WebSocket clients that reconnect and resume as the real ones do
(frontend/static/live.js and responder.js): ``Client`` (a big screen) and ``Phone`` (a
responder's phone that acks its unit topic and works each task to done over the socket).
The failover scenario (tests/support/failover.py) runs them through failover proxies.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any

import websockets

from tests.support.live import ws_url

STEPS = ("on_scene", "done")  # the fewest a task may take: assigned -> on_scene -> done


class Client:
    """A WebSocket client through a proxy that reconnects and resumes, as live.js does.

    ``applied[topic]`` is every seq it acted on (each once, in order); a seq at or below
    the last is a duplicate delivery (counted, not applied); one above ``last + 1`` is a
    gap. ``welcomes`` and ``closes`` are monotonic times of each welcome and socket end.
    """

    def __init__(self, name: str, base: str, token: str, topics: list[str]) -> None:
        self.name = name
        self.base = base
        self.token = token
        self.topics = topics
        self.last: dict[str, int] = {}
        self.applied: dict[str, list[int]] = {t: [] for t in topics}
        self.arrived: dict[str, dict[int, float]] = {t: {} for t in topics}
        self.resynced: dict[str, int] = {}
        self.duplicates = 0
        self.gaps: list[tuple[str, int, int]] = []
        self.errors: list[Any] = []
        self.welcomes: list[float] = []
        self.closes: list[float] = []
        self.conn: Any = None
        self.live = asyncio.Event()
        self.stopping = False

    async def run(self) -> None:
        attempt = 0
        while not self.stopping:
            try:
                self.conn = await websockets.connect(
                    ws_url(self.base), open_timeout=10, close_timeout=1
                )
            except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                self.errors.append(("connect", repr(exc)))
            else:
                try:
                    await self._session()
                    attempt = 0
                except websockets.ConnectionClosed:
                    pass
                finally:
                    self.live.clear()
                    if not self.stopping:
                        self.closes.append(time.monotonic())
                    await self.conn.close()
            if not self.stopping:  # live.js: 0.5 s, 1 s, 2 s ... with jitter
                delay = min(10.0, 0.5 * 2**attempt) * random.uniform(0.75, 1.25)
                attempt += 1
                await asyncio.sleep(delay)

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def _session(self) -> None:
        resume = {t: s for t, s in self.last.items()}
        await self.send(
            {
                "type": "hello",
                "token": self.token,
                "subscribe": self.topics,
                "resume": resume,
                "batch": True,
            }
        )
        while True:
            try:
                raw = await asyncio.wait_for(self.conn.recv(), 1.0)
            except TimeoutError:
                if self.stopping:
                    return
                await self.idle()
                continue
            await self._on(json.loads(raw))

    async def _on(self, m: dict[str, Any]) -> None:
        kind = m.get("type")
        if kind == "batch":
            for message in m["messages"]:
                await self._on(message)
        elif kind == "event":
            await self._event(m)
        elif kind == "welcome":
            self.welcomes.append(time.monotonic())
            self.live.set()
            await self.welcomed()
        elif kind == "resync":
            self.resynced.setdefault(m["topic"], m["seq"])
            self.last[m["topic"]] = m["seq"]
        elif kind == "ping":
            await self.send({"type": "pong", "t": m.get("t")})
        elif kind in ("acked", "pong"):
            pass
        else:
            await self.other(m)

    async def _event(self, m: dict[str, Any]) -> None:
        topic, seq = m["topic"], m["seq"]
        last = self.last.get(topic)
        if last is not None and seq <= last:
            self.duplicates += 1
        else:
            if last is not None and seq != last + 1:
                self.gaps.append((topic, last, seq))
            self.last[topic] = seq
            self.applied[topic].append(seq)
            self.arrived[topic][seq] = time.monotonic()
            await self.apply(m)
        await self.after_event(m)

    async def apply(self, m: dict[str, Any]) -> None:
        """Act on a new event (once)."""

    async def after_event(self, m: dict[str, Any]) -> None:
        """After every event, new or re-sent."""

    async def welcomed(self) -> None:
        """After each welcome."""

    async def idle(self) -> None:
        """A second with nothing received."""

    async def other(self, m: dict[str, Any]) -> None:
        self.errors.append(("unexpected", m))


class Phone(Client):
    """A responder's phone: acks its unit topic, works each task to done over the socket.

    A step in flight is sent again with the same key after a reconnect (or when no answer
    came within 8 s) until its ``result`` arrives; ``free`` tells the dispatcher the unit
    has no open task."""

    def __init__(self, base: str, unit_id: int, token: str) -> None:
        super().__init__(f"phone {unit_id}", base, token, [f"unit:{unit_id}"])
        self.unit_id = unit_id
        self.topic = f"unit:{unit_id}"
        self.assigned: list[int] = []
        self.queue: list[int] = []
        self.finished: list[int] = []
        self.steps: dict[int, int] = {}
        self.pending: dict[str, Any] | None = None
        self.sent_at = 0.0
        self.retries = 0
        self.free = True

    async def apply(self, m: dict[str, Any]) -> None:
        if m["event"] == "task.assigned":
            self.assigned.append(m["data"]["id"])
            self.queue.append(m["data"]["id"])

    async def after_event(self, m: dict[str, Any]) -> None:
        # Every delivery is acked, a re-sent one too (responder.js onStale): the ack of
        # the first delivery may have died with the server.
        await self.send({"type": "ack", "topic": self.topic, "seq": self.last[self.topic]})
        await self._next_step()

    async def welcomed(self) -> None:
        if self.pending is not None and len(self.welcomes) > 1:
            self.retries += 1
            await self._send_pending()
        await self._next_step()

    async def idle(self) -> None:
        if self.pending is not None and time.monotonic() - self.sent_at > 8:
            self.retries += 1
            await self._send_pending()

    async def _send_pending(self) -> None:
        assert self.pending is not None
        self.sent_at = time.monotonic()
        await self.send(self.pending)

    async def _next_step(self) -> None:
        if self.pending is not None or not self.queue:
            return
        task_id = self.queue[0]
        status = STEPS[self.steps.get(task_id, 0)]
        key = f"t{task_id}-{status}-{uuid.uuid4().hex[:12]}"
        self.pending = {"type": "status", "task_id": task_id, "status": status, "key": key}
        await self._send_pending()

    async def other(self, m: dict[str, Any]) -> None:
        pending = self.pending
        if m.get("type") == "result":
            if pending is None or m["key"] != pending["key"]:
                return  # the answer to an earlier copy of a step already done
            self.pending = None
            task_id, status = pending["task_id"], pending["status"]
            if status == STEPS[-1]:
                self.queue.pop(0)
                self.finished.append(task_id)
                self.free = not self.queue
            else:
                self.steps[task_id] = STEPS.index(status) + 1
            await self._next_step()
        elif m.get("type") == "error" and pending is not None and m.get("key") == pending["key"]:
            if m["code"] in ("unavailable", "busy", "rate_limited"):
                await asyncio.sleep(0.2)
                self.retries += 1
                await self._send_pending()
            else:
                self.errors.append(("error", m))
        else:
            self.errors.append(("unexpected", m))
