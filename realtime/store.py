"""What the hub reads from and writes to PostgreSQL: events, topic heads and acknowledgements.

Every query is synchronous (run in a worker thread by the hub) and returns plain values:
the hub's event loop never holds an ORM object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    Text,
    bindparam,
    cast,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base
from core.outbox import Event, TopicSeq
from core.types import utcnow

TASK_ASSIGNED = "task.assigned"


class TopicAck(Base):
    """How far a unit's phone has acknowledged its topic (cumulative, like TCP)."""

    __tablename__ = "topic_ack"

    topic: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    acked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acked_by: Mapped[str] = mapped_column(String(160))


@dataclass(frozen=True, slots=True)
class Frame:
    """One event as sent on the wire: serialised once, shared by every subscriber."""

    topic: str
    seq: int
    type: str
    created_at: float  # unix seconds, when the event row was written
    text: str


def frame(topic: str, seq: int, type: str, data: str, created_at: datetime) -> Frame:
    """An event message; ``data`` is the payload's JSON text as PostgreSQL gives it
    (``payload::text``), put in as it is: the bus reads every event of every topic, and
    decoding each payload only to encode it again was a tenth of a worker's time."""
    head = json.dumps(
        {"type": "event", "topic": topic, "seq": seq, "event": type, "at": created_at.isoformat()},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return Frame(topic, seq, type, created_at.timestamp(), f'{head[:-1]},"data":{data}}}')


def _frames(rows: Iterable[Any]) -> list[Frame]:
    return [frame(r.topic, r.seq, r.type, r.payload, r.created_at) for r in rows]


_COLUMNS = (
    Event.topic,
    Event.seq,
    Event.type,
    cast(Event.payload, Text).label("payload"),
    Event.created_at,
)


def events_by_id(session: Session, ids: Sequence[int]) -> list[Frame]:
    """The events with these ids (from notifications), ordered by topic and seq."""
    stmt = select(*_COLUMNS).where(Event.id.in_(ids)).order_by(Event.topic, Event.seq)
    return _frames(session.execute(stmt))


_SINCE = text(
    """
    SELECT e.topic, e.seq, e.type, e.payload::text AS payload, e.created_at
    FROM unnest(:topics, :seqs) AS h(topic, seq)
    JOIN LATERAL (
        SELECT * FROM event WHERE event.topic = h.topic AND event.seq > h.seq
        ORDER BY event.seq LIMIT :per_topic
    ) e ON true
    ORDER BY e.topic, e.seq
    """
).bindparams(
    bindparam("topics", type_=ARRAY(String())),
    bindparam("seqs", type_=ARRAY(BigInteger())),
)


def events_since(
    session: Session, heads: Mapping[str, int], *, per_topic: int = 1000
) -> list[Frame]:
    """For each topic, its events after the given seq (at most ``per_topic`` each)."""
    if not heads:
        return []
    topics = list(heads)
    rows = session.execute(
        _SINCE,
        {"topics": topics, "seqs": [heads[t] for t in topics], "per_topic": per_topic},
    )
    return _frames(rows)


def events_range(session: Session, topic: str, after: int, upto: int | None) -> list[Frame]:
    """Events of one topic with ``after < seq <= upto`` (``upto`` None: to the end)."""
    stmt = select(*_COLUMNS).where(Event.topic == topic, Event.seq > after)
    if upto is not None:
        stmt = stmt.where(Event.seq <= upto)
    return _frames(session.execute(stmt.order_by(Event.seq).limit(5000)))


@dataclass(frozen=True)
class TopicState:
    head: int  # last committed seq (0: nothing yet)
    oldest: int | None  # lowest seq still kept (None: no event kept)
    acked: int  # acknowledged seq (unit topics; 0 when never)


def topic_state(session: Session, topic: str) -> TopicState:
    head = session.scalar(select(TopicSeq.last_seq).where(TopicSeq.topic == topic)) or 0
    oldest = session.scalar(select(func.min(Event.seq)).where(Event.topic == topic))
    acked = session.scalar(select(TopicAck.seq).where(TopicAck.topic == topic)) or 0
    return TopicState(int(head), None if oldest is None else int(oldest), int(acked))


def topic_head(session: Session, topic: str) -> int:
    return int(session.scalar(select(TopicSeq.last_seq).where(TopicSeq.topic == topic)) or 0)


def record_ack(session: Session, *, topic: str, seq: int, actor: str) -> int:
    """Raise the topic's acknowledged seq to ``seq``; returns the previous one.

    The row lock serialises two connections of one unit acknowledging at once, so a range
    of events is acknowledged (and acted on) exactly once.
    """
    session.execute(
        insert(TopicAck)
        .values(topic=topic, seq=0, acked_at=utcnow(), acked_by=actor)
        .on_conflict_do_nothing()
    )
    row = session.execute(
        select(TopicAck).where(TopicAck.topic == topic).with_for_update()
    ).scalar_one()
    previous = int(row.seq)
    if seq > previous:
        row.seq = seq
        row.acked_at = utcnow()
        row.acked_by = actor
        session.flush()
    return previous


def assigned_task_ids(session: Session, topic: str, after: int, upto: int) -> list[int]:
    """Ids of the tasks assigned by events ``after < seq <= upto`` of a unit topic."""
    stmt = select(Event.payload["id"].as_integer()).where(
        Event.topic == topic, Event.seq > after, Event.seq <= upto, Event.type == TASK_ASSIGNED
    )
    return [int(i) for i in session.scalars(stmt) if i is not None]


@dataclass(frozen=True)
class Unacknowledged:
    count: int
    oldest_age_s: float


_UNACKED = text(
    """
    SELECT count(*), min(e.created_at)
    FROM event e LEFT JOIN topic_ack a ON a.topic = e.topic
    WHERE e.topic LIKE 'unit:%' AND e.type = :type AND e.seq > coalesce(a.seq, 0)
    """
)


def unacknowledged(session: Session) -> Unacknowledged:
    """Task assignments sent to units that their phones have not acknowledged yet."""
    count, oldest = session.execute(_UNACKED, {"type": TASK_ASSIGNED}).one()
    age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
    return Unacknowledged(int(count), age)


def prune_events(session: Session, *, older_than_s: float) -> int:
    """Delete events older than ``older_than_s`` seconds (topic heads are kept)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    result = session.execute(delete(Event).where(Event.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


# --- who a shared topic's task event is for (issue 14) ------------------------------


@dataclass(frozen=True, slots=True)
class UnitFrame(Frame):
    """A task event on a shared topic (``situation``) and the unit it concerns, noted once
    when the frame is read: the fan-out to thousands of connections never decodes it."""

    unit_id: int  # 0: the event names no unit (shown to no one confined to a unit)


def scoped(f: Frame) -> Frame:
    """``f`` as a :class:`UnitFrame` if it is a task event on a shared topic; else ``f``.

    A unit's own topic is not marked: everything on it is that unit's.
    """
    if isinstance(f, UnitFrame) or not f.type.startswith("task.") or f.topic.startswith("unit:"):
        return f
    try:
        data = json.loads(f.text).get("data")
    except ValueError:
        data = None
    unit = data.get("unit_id") if isinstance(data, dict) else None
    if not isinstance(unit, int) or isinstance(unit, bool):
        unit = 0
    return UnitFrame(f.topic, f.seq, f.type, f.created_at, f.text, unit)
