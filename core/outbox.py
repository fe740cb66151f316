"""Write events to the outbox inside the caller's transaction.

Sequence numbers come from a per-topic counter row updated with ``INSERT .. ON CONFLICT
DO UPDATE .. RETURNING``: the row lock it takes is held until the writer commits, so within
one topic a higher ``seq`` never becomes visible before a lower one. A reader that has seen
``seq`` N can therefore never later find an N-1 it missed (the classic outbox gap with
bare sequence ids).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    String,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base

NOTIFY_CHANNEL = "emergency_events"


class Event(Base):
    """An outbox row, written in the same transaction as the change it reports."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    __table_args__ = (
        UniqueConstraint("topic", "seq", name="uq_event_topic_seq"),
        Index("ix_event_created_at", "created_at"),
        # Task assignments to units, for the unacknowledged-task count.
        Index(
            "ix_event_task_assigned",
            "topic",
            "seq",
            postgresql_where=text("type = 'task.assigned'"),
        ),
    )


class TopicSeq(Base):
    """Last sequence number per topic; its row lock orders writers within a topic."""

    __tablename__ = "topic_seq"

    topic: Mapped[str] = mapped_column(String(80), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


def publish(session: Session, *, topic: str, type: str, payload: dict[str, Any]) -> Event:
    """Add one event row for ``topic`` (see :func:`publish_many`) and return it."""
    (event_id,) = publish_many(session, [(topic, type, payload)])
    event = session.get(Event, event_id)
    assert event is not None
    return event


# One round trip per topic: reserve the seqs (locking the topic's counter row until commit),
# insert the events in order, and NOTIFY each id (delivered only if the transaction commits).
_PUBLISH_SQL = text(
    """
    WITH reserved AS (
        INSERT INTO topic_seq AS t (topic, last_seq) VALUES (:topic, :count)
        ON CONFLICT (topic) DO UPDATE SET last_seq = t.last_seq + :count
        RETURNING last_seq
    ), added AS (
        INSERT INTO event (topic, seq, type, payload, created_at)
        SELECT :topic, reserved.last_seq - :count + r.n, r.type, r.payload, clock_timestamp()
        FROM reserved,
             jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(n int, type text, payload jsonb)
        ORDER BY r.n
        RETURNING id, seq
    )
    SELECT id, pg_notify(:channel, id::text) FROM added ORDER BY seq
    """
)


def publish_many(session: Session, events: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
    """Add ``(topic, type, payload)`` events in order, as :func:`publish` does one: one
    statement per topic (topics locked in name order)."""
    return publish_encoded(session, encode(events))


def encode(events: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, int, str]]:
    """The events as :func:`publish_encoded` takes them: per topic (in name order), how
    many and their rows' JSON. Encode before taking locks that other writers wait for."""
    return encode_texts(
        [(topic, type_, json.dumps(payload, default=str)) for topic, type_, payload in events]
    )


def encode_texts(events: list[tuple[str, str, str]]) -> list[tuple[str, int, str]]:
    """As :func:`encode`, the payloads already JSON text (spliced as they are)."""
    by_topic: dict[str, list[str]] = {}
    for topic, type_, payload in events:
        rows = by_topic.setdefault(topic, [])
        rows.append(f'{{"n":{len(rows) + 1},"type":{json.dumps(type_)},"payload":{payload}}}')
    return [
        (topic, len(by_topic[topic]), f"[{','.join(by_topic[topic])}]")
        for topic in sorted(by_topic)
    ]


def publish_encoded(session: Session, encoded: list[tuple[str, int, str]]) -> list[int]:
    """Add events encoded by :func:`encode`; returns their ids in order."""
    ids: list[int] = []
    for topic, count, rows in encoded:
        found = session.execute(
            _PUBLISH_SQL,
            {"topic": topic, "count": count, "rows": rows, "channel": NOTIFY_CHANNEL},
        )
        ids.extend(int(r[0]) for r in found)
    return ids


def events_after(session: Session, *, topic: str, seq: int, limit: int = 1000) -> list[Event]:
    """Events of ``topic`` with a sequence number above ``seq``, in order."""
    stmt = (
        select(Event).where(Event.topic == topic, Event.seq > seq).order_by(Event.seq).limit(limit)
    )
    return list(session.scalars(stmt))
