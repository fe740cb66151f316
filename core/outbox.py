"""The outbox: events with their per-topic sequence numbers, read by the realtime bus.

Changes stage their events in the transaction that makes them (:mod:`core.changes`); the
sealer (:mod:`core.sealer`) writes them here after commit, one pass at a time, reserving
seqs on each topic's counter row (``topic_seq``). Only the sealer writes events, so within
a topic a higher ``seq`` never becomes visible before a lower one and seqs have no gaps: a
reader that has seen ``seq`` N can never later find an N-1 it missed. It NOTIFYs the id
range of each pass as ``"<first>-<last>"`` on :data:`NOTIFY_CHANNEL`.
"""

from __future__ import annotations

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


def events_after(session: Session, *, topic: str, seq: int, limit: int = 1000) -> list[Event]:
    """Events of ``topic`` with a sequence number above ``seq``, in order."""
    stmt = (
        select(Event).where(Event.topic == topic, Event.seq > seq).order_by(Event.seq).limit(limit)
    )
    return list(session.scalars(stmt))
