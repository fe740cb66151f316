"""One WebSocket connection: hello, subscriptions, the ordered sender, acks and heartbeats.

A connection has one writer, its sender task, fed by a queue: events from the hub (bounded),
and replies, pings and replays (control items, unbounded but few). The sender keeps the
last seq sent per topic, skips what it has sent and fills any gap from the event table,
so what a client receives on a topic is exactly ``seq + 1, seq + 2, ...``.

Task events on a responder's own ``unit:<id>`` topic are re-sent every ``ack_timeout_s``
until acknowledged; the acknowledgement is stored, so the next connection starts after it.

A responder is not sent other units' task events on ``situation``. The seqs it skips count
as sent (so the sender never takes them for a gap to fill from the table), and the next
event it is sent says which one it follows: ``"prev"``, the seq of the last event (or
resync) this client was sent on the topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from core.errors import DomainError, InvalidInput, Unauthenticated
from core.security import Principal
from realtime import protocol, store
from realtime.hub import Grant, Hub, unit_scope
from realtime.metrics import CONNECTIONS, EVENTS_SENT, LAG, REFUSED
from realtime.protocol import Close
from realtime.store import Frame, TopicState, UnitFrame

log = logging.getLogger("emergency.realtime")


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _CatchUp:
    topic: str
    resync: bool


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


@dataclass(slots=True)
class _Skip:
    """The seqs of ``topic`` up to ``upto`` not queued before this are not for this client
    (other units' tasks); consecutive ones are merged into one."""

    topic: str
    upto: int


_Item = Frame | _Text | _CatchUp | _Close | _Skip
MAX_BATCH = 500  # events per batch message
SENT_LIVE = EVENTS_SENT.labels("live")
SENT_REPLAY = EVENTS_SENT.labels("replay")


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str)


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """No Origin (a native app or a script): allowed. A browser page: its own origin or
    one listed in ``allowed``."""
    if origin is None:
        return True
    if origin in allowed or "*" in allowed:
        return True
    parts = urlsplit(origin)
    return not allowed and parts.scheme in ("http", "https") and parts.netloc == host


async def endpoint(websocket: WebSocket) -> None:
    """``/ws``: refuse a wrong Origin before accepting; then run the connection."""
    hub: Hub | None = getattr(websocket.app.state, "hub", None)
    if hub is None:
        await websocket.close(code=1013)  # try again later: the hub is not running
        return
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), hub.config.allowed_origins):
        REFUSED.labels("origin").inc()
        await websocket.close(code=Close.FORBIDDEN)  # before accept: an HTTP 403
        return
    await websocket.accept()
    await Connection(hub, websocket).run()


class Connection:
    def __init__(self, hub: Hub, websocket: WebSocket) -> None:
        self.hub = hub
        self.ws = websocket
        self.config = hub.config
        self.grant: Grant | None = None
        self.principal: Principal | None = None
        self.expires_at = 0.0
        self.scope: int | None = None  # the one unit whose tasks this client sees; None: all
        self._prev: dict[str, int] = {}  # topic -> last seq shown, when later ones were skipped
        self._idle = False  # the sender is waiting, with nothing queued
        self.topics: dict[str, int] = {}  # topic -> last seq sent
        self.unacked: dict[str, dict[int, list[Any]]] = {}  # topic -> seq -> [sent_at, text]
        self._items: deque[_Item] = deque()
        self._frames = 0  # hub frames in the queue (the bounded part)
        self._wake = asyncio.Event()
        self._closing: _Close | None = None
        self._heard = time.monotonic()
        self._pinged = time.monotonic()
        self._tokens = self.config.rate_burst
        self._refilled = time.monotonic()
        self._strikes = 0
        self._inflight: set[asyncio.Task[None]] = set()
        # Acks are cumulative: per topic, one write at a time; a later ack that arrives
        # meanwhile waits here (the highest wins) and is written next.
        self._ack_writing: set[str] = set()
        self._ack_next: dict[str, protocol.Ack] = {}
        self._send_started: float | None = None
        self.batch = False  # the client takes several events per message
        self.linger_s = 0.0  # batch clients that own no topic: least time between messages
        self._last_batch = 0.0

    # --- queue ----------------------------------------------------------------------
    def offer(self, frame: Frame) -> None:
        """From the hub's fan-out: queue a live event, or tell a laggard to resume."""
        if self._closing is not None or frame.topic not in self.topics:
            return
        # Inline, not _hidden(): this runs for every connection on every event.
        if self.scope is not None and type(frame) is UnitFrame and frame.unit_id != self.scope:
            self._skip(frame.topic, frame.seq)
            return
        if self._frames >= self.config.queue_max:
            self._overflow()
            return
        self._frames += 1
        self._items.append(frame)
        if not self._wake.is_set():
            self._wake.set()

    def _hidden(self, frame: Frame) -> bool:
        """Is ``frame`` another unit's task event (for a connection confined to a unit)?"""
        return isinstance(frame, UnitFrame) and frame.unit_id != self.scope

    def _skip(self, topic: str, seq: int) -> None:
        """Count ``seq`` as sent without sending it: at once if the sender has sent all that
        was queued, else in queue order (no wake-up: the busy sender gets to it)."""
        if self._idle and not self._items:
            self._cover(topic, seq)
            return
        tail = self._items[-1] if self._items else None
        if isinstance(tail, _Skip) and tail.topic == topic:
            tail.upto = seq
        else:
            self._items.append(_Skip(topic, seq))

    def _cover(self, topic: str, upto: int) -> None:
        """The seqs after the last one sent on ``topic``, up to ``upto``, are not for this
        client: count them as sent, and remember the last one it was shown."""
        last = self.topics.get(topic)
        if last is None or upto <= last:
            return
        self._prev.setdefault(topic, last)
        self.topics[topic] = upto

    def _text(self, frame: Frame) -> str:
        """The event as this client gets it: with ``prev`` if seqs before it were skipped."""
        prev = self._prev.pop(frame.topic, None) if self._prev else None
        return frame.text if prev is None else f'{frame.text[:-1]},"prev":{prev}}}'

    def revoke(self) -> None:
        """The user's access has changed (disabled; role, unit or password changed): stop
        at once. The farewell names no action's key: a phone keeps what it has not had
        answered and sends it again once logged in, where it is judged afresh."""
        if self._closing is not None:
            return
        REFUSED.labels("revoked").inc()
        self.hub.detach(self)
        message = protocol.error(
            "revoked",
            "your access has changed (account disabled, role, unit or password changed); "
            "log in again",
        )
        self.close(Close.UNAUTHENTICATED, "access revoked", message)

    def push(self, message: dict[str, Any]) -> None:
        if self._closing is None:
            self._items.append(_Text(_dumps(message)))
            self._wake.set()

    def close(self, code: int, reason: str, farewell: dict[str, Any] | None = None) -> None:
        """Close after what is being sent now and ``farewell``; nothing else queued is sent."""
        if self._closing is not None:
            return
        self._items.clear()
        self._frames = 0
        if farewell is not None:
            self._items.append(_Text(_dumps(farewell)))
        self._closing = _Close(code, reason)
        self._wake.set()

    def _overflow(self) -> None:
        """Too far behind: drop what is queued, say where to resume from, and close."""
        REFUSED.labels("too_slow").inc()
        resume = dict(self.topics)
        self.hub.detach(self)
        message = protocol.error(
            "too_slow", "you fell behind; reconnect and resume from these seqs", resume=resume
        )
        self.close(Close.TOO_SLOW, "too slow: reconnect and resume", message)

    # --- lifecycle ------------------------------------------------------------------
    async def run(self) -> None:
        self.hub.attach(self)
        role = "unknown"
        try:
            hello = await self._hello()
            if hello is None:
                return
            self.batch = hello.batch
            if self.batch:
                self.linger_s = self.config.batch_linger_s
            assert self.principal is not None
            self.scope = unit_scope(self.principal)
            role = self.principal.role
            CONNECTIONS.labels(role).inc()
            sender = asyncio.create_task(self._send_loop())
            ticker = asyncio.create_task(self._tick_loop())
            receiver = asyncio.create_task(self._receive_loop(hello))
            done, _ = await asyncio.wait(
                {sender, ticker, receiver}, return_when=asyncio.FIRST_COMPLETED
            )
            stuck = ticker in done and isinstance(ticker.exception(), _Stuck)
            if sender not in done and not stuck:
                if self._closing is None:  # the client left: nothing more to send
                    self.close(Close.NORMAL, "bye")
                await asyncio.wait({sender}, timeout=self.config.send_timeout_s)
                done = done | ({sender} if sender.done() else set())
            for task in (sender, ticker, receiver, *self._inflight):
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    if not isinstance(exc, _Stuck | WebSocketDisconnect | OSError | RuntimeError):
                        log.error("websocket task failed", exc_info=exc)
        finally:
            if role != "unknown":
                CONNECTIONS.labels(role).dec()
            self.hub.detach(self)
            if self.ws.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(code=Close.NORMAL), 1.0)

    async def _refuse(self, code: int, message: str, reason: str) -> None:
        REFUSED.labels(reason).inc()
        with contextlib.suppress(Exception):
            await self.ws.send_text(_dumps(protocol.error(reason, message)))
            await self.ws.close(code=code, reason=message[:120])

    async def _hello(self) -> protocol.Hello | None:
        """The first message must be a hello with a valid token, within the timeout."""
        try:
            raw = await asyncio.wait_for(self._receive_text(), self.config.hello_timeout_s)
        except TimeoutError:
            await self._refuse(Close.UNAUTHENTICATED, "no hello in time", "hello_timeout")
            return None
        except _TooBig:
            await self._refuse(Close.TOO_BIG, "message too big", "too_big")
            return None
        if raw is None:
            return None
        try:
            hello = protocol.parse(protocol.decode(raw))
        except InvalidInput as exc:
            await self._refuse(Close.PROTOCOL, f"first message must be a hello: {exc}", "bad_hello")
            return None
        if not isinstance(hello, protocol.Hello):
            await self._refuse(Close.PROTOCOL, "first message must be a hello", "bad_hello")
            return None
        try:
            self._grant(await self.hub.call(self.hub.actions.authenticate, hello.token))
        except Unauthenticated as exc:
            await self._refuse(Close.UNAUTHENTICATED, exc.message, "unauthenticated")
            return None
        return hello

    def _grant(self, grant: Grant) -> None:
        self.grant, self.principal, self.expires_at = grant, grant.principal, grant.expires_at

    async def _receive_text(self) -> str | None:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            data = message.get("bytes") or b""
            if len(data) > self.config.max_frame_bytes:
                raise _TooBig
            text = data.decode("utf-8", errors="replace")
        if len(text) > self.config.max_frame_bytes:
            raise _TooBig
        self._heard = time.monotonic()
        return str(text)

    # --- receiving ------------------------------------------------------------------
    async def _receive_loop(self, hello: protocol.Hello) -> None:
        await self._subscribe(hello.subscribe, hello.resume, welcome=True)
        while self._closing is None:
            try:
                raw = await self._receive_text()
            except _TooBig:
                REFUSED.labels("too_big").inc()
                self.close(
                    Close.TOO_BIG,
                    "message too big",
                    protocol.error(
                        "too_big", f"messages are limited to {self.config.max_frame_bytes} bytes"
                    ),
                )
                return
            if raw is None:
                return
            if not self._take_token():
                REFUSED.labels("rate_limited").inc()
                self.close(
                    Close.RATE_LIMITED,
                    "too many messages",
                    protocol.error("rate_limited", "too many messages; slow down"),
                )
                return
            try:
                message = protocol.parse(protocol.decode(raw))
            except InvalidInput as exc:
                self._strike(exc)
                continue
            await self._handle(message)

    def _strike(self, exc: InvalidInput) -> None:
        """A message refused as it stands: say so (with its key, so a phone drops it from
        its outbox instead of sending it again), and close after 20 of them."""
        self._strikes += 1
        key = exc.key if isinstance(exc, protocol.BadMessage) else None
        message = protocol.error("invalid_message", exc.message[:300])
        if key is not None:
            message["key"] = key
        if self._strikes >= 20:
            REFUSED.labels("protocol").inc()
            self.close(Close.PROTOCOL, "too many malformed messages", message)
        else:
            self.push(message)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(
            self.config.rate_burst, self._tokens + (now - self._refilled) * self.config.rate_per_s
        )
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def _handle(self, message: Any) -> None:
        if isinstance(message, protocol.Ping):
            if message.type == "ping":
                self.push({"type": "pong", "t": message.t})
        elif isinstance(message, protocol.Subscribe):
            await self._subscribe(message.topics, message.resume, welcome=True)
        elif isinstance(message, protocol.Unsubscribe):
            for topic in message.topics:
                self.topics.pop(topic, None)
                self.unacked.pop(topic, None)
                self._prev.pop(topic, None)
                self.hub.unsubscribe(self, topic)
            self.push({"type": "unsubscribed", "topics": message.topics})
        elif isinstance(message, protocol.Ack):
            self._ack(message)
        elif isinstance(message, protocol.Action):
            self._spawn(self._act(message))
        elif isinstance(message, protocol.Auth):
            await self._reauth(message.token)
        elif isinstance(message, protocol.Hello):
            self.push(protocol.error("invalid_message", "already said hello"))

    async def _reauth(self, token: str) -> None:
        try:
            grant = await self.hub.call(self.hub.actions.authenticate, token)
        except Unauthenticated as exc:
            self.push(protocol.error(exc.code, exc.message))
            return
        assert self.principal is not None
        new, old = grant.principal, self.principal
        # The subscriptions were authorised for this role and unit: a token for another
        # (the user's role changed since) takes a new connection.
        if (new.kind, new.id, new.role, new.unit_id) != (old.kind, old.id, old.role, old.unit_id):
            self.push(
                protocol.error("forbidden", "a new token must be for the same user, role and unit")
            )
            return
        self._grant(grant)
        self.push({"type": "authenticated", "expires_at": grant.expires_at})

    def _spawn(self, coro: Any) -> None:
        if len(self._inflight) >= self.config.max_inflight:
            coro.close()
            self.push(protocol.error("busy", "too many actions in flight; retry with the key"))
            return
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # --- subscriptions --------------------------------------------------------------
    def owns(self, topic: str) -> bool:
        """Is this the phone of the unit the topic is for (the one that acknowledges)?"""
        p = self.principal
        return (
            p is not None
            and p.role == "responder"
            and p.unit_id is not None
            and topic == f"unit:{p.unit_id}"
        )

    async def _subscribe(self, topics: list[str], resume: dict[str, int], *, welcome: bool) -> None:
        assert self.principal is not None
        wanted = [t for t in dict.fromkeys(topics) if t not in self.topics]
        if len(self.topics) + len(wanted) > protocol.MAX_TOPICS:
            self.push(
                protocol.error(
                    "too_many_topics", f"at most {protocol.MAX_TOPICS} topics per connection"
                )
            )
            return
        states: dict[str, TopicState] = {}
        for topic in wanted:
            try:
                states[topic] = await self.hub.topic_state(self.principal, topic)
            except DomainError as exc:
                self.push(protocol.error(exc.code, exc.message, topic=topic))
        if self._closing is not None:
            return
        if welcome:
            heads = {t: s.head for t, s in states.items()}
            self.push({"type": "welcome", "topics": heads, "heartbeat_s": self.config.heartbeat_s})
        # No await from here on: registration and catch-up are queued together, so every
        # live event is either in the catch-up read or queued after it.
        for topic, state in states.items():
            start, resync = self._plan(topic, state, resume.get(topic))
            self.topics[topic] = start
            if self.owns(topic):
                self.unacked[topic] = {}
                self.linger_s = 0.0  # a unit's phone gets its tasks at once
            self.hub.subscribe(self, topic, state.head)
            self._items.append(_CatchUp(topic, resync))
        self._wake.set()

    def _plan(self, topic: str, state: TopicState, resume: int | None) -> tuple[int, bool]:
        """Where a subscription starts, and whether it needs a snapshot instead of a replay.

        A unit's own phone starts after what it acknowledged (or earlier, if it asks);
        anyone else starts where they ask, or from a snapshot.
        """
        if self.owns(topic):
            start = state.acked if resume is None else min(resume, state.acked)
        elif resume is None:
            return state.head, True
        else:
            start = resume
        too_old = start < state.head and (state.oldest is None or start < state.oldest - 1)
        if start > state.head or too_old or state.head - start > self.config.max_replay:
            return start, True
        return start, False

    # --- acknowledgements and actions -----------------------------------------------
    def _ack(self, message: protocol.Ack) -> None:
        if not self.owns(message.topic) or message.topic not in self.topics:
            self.push(
                protocol.error(
                    "forbidden", "only the unit's own phone acknowledges, on a subscribed topic"
                )
            )
            return
        if message.seq > self.topics[message.topic]:
            self.push(
                protocol.error(
                    "invalid_input",
                    f"seq {message.seq} of {message.topic} has not been sent to you",
                )
            )
            return
        pending = self.unacked.get(message.topic, {})
        for seq in [s for s in pending if s <= message.seq]:
            del pending[seq]
        if message.topic in self._ack_writing:
            # A write for this topic is running: the latest ack is written after it. Acks
            # are cumulative, so a burst of them (a phone catching up) costs two writes and
            # never counts against the actions in flight.
            waiting = self._ack_next.get(message.topic)
            if waiting is None or message.seq >= waiting.seq:
                self._ack_next[message.topic] = message
            return
        self._ack_writing.add(message.topic)
        task = asyncio.create_task(self._store_acks(message))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _store_acks(self, first: protocol.Ack) -> None:
        """Write ``first``, then the latest ack for its topic that came meanwhile."""
        topic = first.topic
        message: protocol.Ack | None = first
        try:
            while message is not None:
                await self._store_ack(message)
                message = self._ack_next.pop(topic, None)
        finally:
            self._ack_writing.discard(topic)
            self._ack_next.pop(topic, None)

    async def _store_ack(self, message: protocol.Ack) -> None:
        assert self.grant is not None
        try:
            result = await self.hub.call(
                self.hub.actions.acknowledge, self.grant, message.topic, message.seq
            )
        except DomainError as exc:
            self._refused(exc, message.key)
            return
        except Exception:
            log.exception("storing an ack failed")
            self.push(protocol.error("unavailable", "ack not stored; send it again"))
            return
        self.push({"type": "acked", "topic": message.topic, "seq": message.seq, **result})

    async def _act(self, message: protocol.Action) -> None:
        assert self.grant is not None
        try:
            data = await self.hub.call(
                self.hub.actions.act, self.grant, message.model_dump(mode="json")
            )
        except DomainError as exc:
            self._refused(exc, message.key)
            return
        except Exception:
            log.exception("websocket action failed")
            self.push(
                protocol.error("unavailable", "not done; retry with the same key", key=message.key)
            )
            return
        self.push({"type": "result", "key": message.key, "ok": True, "data": data})

    def _refused(self, exc: DomainError, key: str | None) -> None:
        """An ack or action refused; one refused for the user's access ends the connection
        at once (the periodic re-check would, a little later)."""
        if isinstance(exc, Unauthenticated):
            self.revoke()
        else:
            self.push(protocol.error(exc.code, exc.message, key=key))

    # --- sending --------------------------------------------------------------------
    async def _send_loop(self) -> None:
        while True:
            while not self._items:
                if self._closing is not None:
                    await self._send_close(self._closing)
                    return
                self._wake.clear()
                self._idle = True
                try:
                    await self._wake.wait()
                finally:
                    self._idle = False
            if self.linger_s and isinstance(self._items[0], Frame):
                # A screen takes at most one message per linger: events meanwhile wait
                # and go out together (a phone never waits; see _subscribe).
                wait = self._last_batch + self.linger_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    if not self._items:
                        continue
            if not self.unacked and isinstance(self._items[0], Frame):
                await self.hub.turns.turn()  # screens take turns; a unit's phone never waits
                if not self._items:
                    continue
            item = self._items.popleft()
            if isinstance(item, Frame):
                self._frames -= 1
                if self.batch:
                    await self._send_batch(item)
                    self._last_batch = time.monotonic()
                else:
                    await self._send_event(item)
            elif isinstance(item, _Text):
                await self._send(item.text)
            elif isinstance(item, _CatchUp):
                await self._catch_up(item)
            elif isinstance(item, _Skip):
                self._cover(item.topic, item.upto)
            if self._closing is not None and not self._items:
                await self._send_close(self._closing)
                return

    async def _send(self, text: str) -> None:
        # No wait_for per send (a task each, too dear at 2,000 sockets per event): the
        # ticker watches ``_send_started`` and gives up on a send stuck too long.
        self._send_started = time.monotonic()
        try:
            await self.ws.send_text(text)
        finally:
            self._send_started = None

    async def _send_close(self, item: _Close) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code=item.code, reason=item.reason), 2.0)

    def _mark(self, frame: Frame) -> None:
        """Record ``frame`` as sent before its send is awaited: an ack racing the send's
        completion is then accepted, and a ``too_slow`` resume point is never behind."""
        self.topics[frame.topic] = frame.seq
        pending = self.unacked.get(frame.topic)
        if pending is not None:
            pending[frame.seq] = [time.monotonic(), frame.text]

    async def _send_event(self, frame: Frame, *, live: bool = True) -> None:
        last = self.topics.get(frame.topic)
        if last is None or frame.seq <= last:
            return
        if frame.seq > last + 1:
            await self._replay(frame.topic, upto=frame.seq - 1)
            if self.topics.get(frame.topic, frame.seq) >= frame.seq:
                return
        if self.scope is not None and self._hidden(frame):  # replayed: offer() saw it not
            self._cover(frame.topic, frame.seq)
            return
        text = self._text(frame)
        self._mark(frame)
        await self._send(text)
        (SENT_LIVE if live else SENT_REPLAY).inc()
        if live:
            LAG.observe(max(0.0, time.time() - frame.created_at))

    async def _send_batch(self, first: Frame) -> None:
        """A client that said ``"batch": true`` gets the live events waiting in its queue
        as one ``batch`` message: under load, one send carries many events, so a busy
        server sends fewer, bigger messages instead of falling behind."""
        last = self.topics.get(first.topic)
        if last is not None and first.seq > last + 1:
            await self._send_event(first)  # a gap before the first: filled from the table
            return
        batch: list[Frame] = []
        texts: list[str] = []
        frame = first
        while True:
            last = self.topics.get(frame.topic)
            if last is not None and frame.seq == last + 1:
                texts.append(self._text(frame))
                self._mark(frame)
                batch.append(frame)
            elif last is not None and frame.seq > last + 1:  # a gap: replay it first
                self._items.appendleft(frame)
                self._frames += 1
                break
            while self._items and isinstance(self._items[0], _Skip):
                skip = self._items.popleft()
                assert isinstance(skip, _Skip)
                self._cover(skip.topic, skip.upto)
            head = self._items[0] if self._items else None
            if len(batch) >= MAX_BATCH or not isinstance(head, Frame):
                break
            self._items.popleft()
            self._frames -= 1
            frame = head
        if not batch:
            return
        if len(batch) == 1:
            await self._send(texts[0])
        else:
            await self._send('{"type":"batch","messages":[' + ",".join(texts) + "]}")
        SENT_LIVE.inc(len(batch))
        # One observation per message, for its oldest event (per event cost too much
        # at 2,000 connections).
        LAG.observe(max(0.0, time.time() - batch[0].created_at))

    async def _replay(self, topic: str, upto: int | None) -> None:
        while topic in self.topics:
            after = self.topics[topic]
            if upto is not None and after >= upto:
                return
            frames = await self.hub.read(store.events_range, topic, after, upto)
            if self.scope is not None:  # which are other units' tasks (read per client)
                frames = [store.scoped(f) for f in frames]
            for f in frames:
                await self._send_event(f, live=False)
            if len(frames) < 5000:
                return

    async def _catch_up(self, item: _CatchUp) -> None:
        if item.topic not in self.topics:
            return
        if item.resync:
            seq, text = await self.hub.snapshot_text(item.topic, self.scope)
            await self._send(text)
            EVENTS_SENT.labels("resync").inc()
            self.topics[item.topic] = seq
            self._prev.pop(item.topic, None)
            pending = self.unacked.get(item.topic)
            if pending is not None:
                pending.clear()
                pending[seq] = [time.monotonic(), text]
        await self._replay(item.topic, upto=None)

    # --- heartbeats, expiry, re-sends -----------------------------------------------
    async def _tick_loop(self) -> None:
        tick = min(1.0, self.config.ack_timeout_s / 2, self.config.heartbeat_s / 2)
        while self._closing is None:
            await asyncio.sleep(tick)
            now = time.monotonic()
            started = self._send_started
            if started is not None and now - started > self.config.send_timeout_s:
                REFUSED.labels("send_timeout").inc()
                raise _Stuck  # the client stopped reading; drop the connection
            if time.time() >= self.expires_at:
                REFUSED.labels("token_expired").inc()
                self.close(
                    Close.UNAUTHENTICATED,
                    "token expired",
                    protocol.error("token_expired", "the token has expired; log in again"),
                )
                return
            if now - self._heard > self.config.heartbeat_s * 2.5:
                if self._items or self._send_started is not None:
                    # The client may be waiting behind our own backlog for the ping:
                    # its silence is not its fault (stuck sends are caught above).
                    self._heard = now - self.config.heartbeat_s
                else:
                    REFUSED.labels("heartbeat").inc()
                    self.close(Close.HEARTBEAT, "no heartbeat")
                    return
            if now - self._pinged >= self.config.heartbeat_s:
                self._pinged = now
                # Ahead of queued events, so a busy connection still answers in time.
                self._items.appendleft(_Text(_dumps({"type": "ping", "t": time.time()})))
                self._wake.set()
            for pending in self.unacked.values():
                for entry in pending.values():
                    if now - entry[0] >= self.config.ack_timeout_s:
                        entry[0] = now
                        EVENTS_SENT.labels("resend").inc()
                        self._items.append(_Text(entry[1]))
                        self._wake.set()


class _TooBig(Exception):
    pass


class _Stuck(Exception):
    pass
