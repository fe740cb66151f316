"""The hub's ordering rules without a network or database: fan-out, gaps, where a
subscription starts, and what a slow connection is told."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.security import Principal
from realtime.connection import Connection, _Close, _Text
from realtime.hub import Hub, HubConfig
from realtime.protocol import Close
from realtime.store import Frame, TopicState, frame

AT = datetime(2026, 11, 22, tzinfo=UTC)


def f(topic: str, seq: int) -> Frame:
    return frame(topic, seq, "incident.created", f'{{"n": {seq}}}', AT)


class Recorder:
    """Stands in for a connection: records what the hub offers it."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int]] = []
        self.topics: dict[str, int] = {}

    def offer(self, item: Frame) -> None:
        self.got.append((item.topic, item.seq))


def hub(config: HubConfig | None = None) -> Hub:
    return Hub(sessions=None, actions=None, config=config)  # type: ignore[arg-type]


@given(st.dictionaries(st.text(), st.integers() | st.text() | st.none(), max_size=5))
def test_an_event_message_carries_the_payload_text_as_data(payload: dict[str, Any]):
    text = json.dumps(payload, ensure_ascii=False)  # as PostgreSQL gives payload::text
    message = json.loads(frame("unit:7", 3, "task.assigned", text, AT).text)
    assert message == {"type": "event", "topic": "unit:7", "seq": 3, "event": "task.assigned",
                       "at": "2026-11-22T00:00:00+00:00", "data": payload}  # fmt: skip


def test_deliver_fans_out_in_order_skips_repeats_and_reports_gaps():
    h = hub()
    a, b = Recorder(), Recorder()
    h.subscribe(a, "situation", 5)  # type: ignore[arg-type]
    h.subscribe(b, "situation", 5)  # type: ignore[arg-type]
    assert h.deliver([f("situation", 6), f("situation", 7), f("unit:1", 1)]) == {}
    assert h.deliver([f("situation", 7)]) == {}  # heard twice (notify and poll)
    assert h.deliver([f("situation", 9), f("situation", 10)]) == {"situation": 7}
    assert h.deliver([f("situation", 8), f("situation", 9), f("situation", 10)]) == {}
    expected = [("situation", s) for s in (6, 7, 8, 9, 10)]
    assert a.got == expected and b.got == expected
    h.unsubscribe(a, "situation")  # type: ignore[arg-type]
    h.unsubscribe(b, "situation")  # type: ignore[arg-type]
    assert "situation" not in h.heads and not h.subscribers
    h.shutdown()


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=40),
    data=st.data(),
)
def test_any_arrival_order_with_gap_fills_gives_every_seq_once_in_order(n: int, data: Any):
    """Notifications arrive in batches, late, twice or never; gaps are filled from "the
    table": the subscriber still sees 1..n exactly once, in order."""
    table = [f("t", s) for s in range(1, n + 1)]
    h = hub()
    r = Recorder()
    h.subscribe(r, "t", 0)  # type: ignore[arg-type]
    arrivals = data.draw(st.lists(st.sampled_from(table), max_size=3 * n))
    batch_sizes = data.draw(st.lists(st.integers(1, 5), min_size=len(arrivals)))
    i = 0
    for size in batch_sizes:
        if i >= len(arrivals):
            break
        batch = sorted(arrivals[i : i + size], key=lambda x: x.seq)
        i += size
        gaps = h.deliver(batch)
        while gaps:  # what the bus does: read after the hub's head, deliver again
            gaps = h.deliver([x for x in table if x.seq > gaps["t"]])
    h.deliver(table)  # the periodic poll catches whatever was never notified
    assert r.got == [("t", s) for s in range(1, n + 1)]
    h.shutdown()


# --- where a subscription starts -------------------------------------------------------


def conn(principal: Principal | None = None, **config: Any) -> Connection:
    c = Connection(hub(HubConfig(**config)), websocket=None)  # type: ignore[arg-type]
    c.principal = principal
    return c


PHONE = Principal(kind="user", id=9, name="r", role="responder", unit_id=7)
SCREEN = Principal(kind="user", id=1, name="d", role="dispatcher")


def test_a_units_phone_starts_after_its_acknowledgement():
    c = conn(PHONE)
    state = TopicState(head=10, oldest=1, acked=6)
    assert c._plan("unit:7", state, None) == (6, False)
    assert c._plan("unit:7", state, 4) == (4, False)  # asks for more: gets it
    assert c._plan("unit:7", state, 9) == (6, False)  # says it has 9: 7-9 unacked, re-sent
    assert c._plan("unit:8", state, None) == (10, True)  # not its unit: a snapshot


def test_others_replay_from_resume_or_get_a_snapshot():
    c = conn(SCREEN, max_replay=100)
    assert c._plan("situation", TopicState(50, 1, 0), None) == (50, True)
    assert c._plan("situation", TopicState(50, 1, 0), 40) == (40, False)
    assert c._plan("situation", TopicState(50, 1, 0), 50) == (50, False)  # up to date
    assert c._plan("situation", TopicState(50, 1, 0), 60) == (60, True)  # from the future
    assert c._plan("situation", TopicState(500, 1, 0), 300) == (300, True)  # too far behind
    assert c._plan("situation", TopicState(50, 21, 0), 20) == (20, False)  # 21.. are kept
    assert c._plan("situation", TopicState(50, 21, 0), 19) == (19, True)  # 20 was pruned
    assert c._plan("situation", TopicState(50, None, 0), 49) == (49, True)  # all pruned


# --- a slow connection --------------------------------------------------------------------


def test_a_connection_that_falls_behind_is_told_where_to_resume_and_closed():
    c = conn(SCREEN, queue_max=3)
    h = c.hub
    c.topics = {"situation": 4}
    h.subscribe(c, "situation", 4)
    for seq in range(5, 9):  # one more than the queue holds
        c.offer(f("situation", seq))
    assert c not in h.subscribers.get("situation", set())  # no longer fed
    items = list(c._items)
    assert len(items) == 1 and isinstance(items[0], _Text)
    farewell = json.loads(items[0].text)
    assert farewell["code"] == "too_slow" and farewell["resume"] == {"situation": 4}
    assert c._closing == _Close(Close.TOO_SLOW, "too slow: reconnect and resume")
    c.offer(f("situation", 9))  # nothing more is queued once closing
    assert len(c._items) == 1
    h.shutdown()


# --- batches -------------------------------------------------------------------------------


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))


async def _drain(c: Connection) -> list[dict[str, Any]]:
    import asyncio

    sender = asyncio.create_task(c._send_loop())
    await asyncio.sleep(0.05)
    sender.cancel()
    return c.ws.sent  # type: ignore[attr-defined, no-any-return]


@pytest.mark.anyio
@pytest.mark.parametrize("batch", [True, False])
async def test_events_waiting_together_go_out_as_one_batch_when_asked(batch: bool):
    c = Connection(hub(), FakeSocket())  # type: ignore[arg-type]
    c.principal, c.batch = SCREEN, batch
    c.topics = {"situation": 4}
    for seq in (5, 6, 7, 6):  # the second 6 is a repeat: dropped
        c.offer(f("situation", seq))
    sent = await _drain(c)
    events = [m for s in sent for m in (s["messages"] if s["type"] == "batch" else [s])]
    assert [(m["type"], m["seq"]) for m in events] == [("event", 5), ("event", 6), ("event", 7)]
    assert len(sent) == (1 if batch else 3)
    assert c.topics == {"situation": 7}
    c.hub.shutdown()
