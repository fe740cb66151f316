"""One call per change: the audit row and the outbox event, written when the transaction commits.

Changes are collected on the session and written in a ``before_commit`` hook, in the order
they were recorded. The audit chain's advisory lock and each topic's sequence-row lock are
therefore taken last and held only for the commit itself: a request never waits on a row
lock while holding them (no lock-order deadlocks between writers), and writers serialise
only for the few milliseconds of their commit, not for their whole transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from core import audit, outbox

SITUATION = "situation"
_PENDING = "emergency.pending_changes"


@dataclass(frozen=True)
class _Change:
    actor: str
    action: str
    entity: str
    entity_id: object
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    topics: tuple[str, ...]
    payload: dict[str, Any]


def _snapshot(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A JSON-safe copy taken now, so later changes to the objects cannot alter it."""
    return None if value is None else json.loads(json.dumps(value, default=str))


def record_change(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    topics: tuple[str, ...] = (SITUATION,),
    payload: dict[str, Any] | None = None,
) -> None:
    """Audit ``action`` on ``entity`` and publish it as event ``action`` on ``topics``.

    Both are written when ``session`` commits, in the same transaction as the change.
    ``payload`` defaults to ``after`` (or ``before`` for deletions): what a live map needs
    to redraw the thing without another request.
    """
    before_, after_ = _snapshot(before), _snapshot(after)
    if payload is not None:
        data = _snapshot(payload) or {}
    else:  # the snapshot already taken (never mutated: it is only serialised)
        data = (after_ if after_ is not None else before_) or {}
    change = _Change(
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=before_,
        after=after_,
        topics=topics,
        payload=data,
    )
    session.info.setdefault(_PENDING, []).append(change)


def write_pending(session: Session) -> int:
    """Write the collected audit rows and events now; returns how many changes."""
    pending: list[_Change] = session.info.pop(_PENDING, [])
    # JSON first: the audit chain's lock and the topics' row locks are held from the first
    # of these statements to the commit, and every writer of the system waits for them.
    events = outbox.encode([(topic, c.action, c.payload) for c in pending for topic in c.topics])
    audit.record_many(
        session,
        [audit.Entry(c.actor, c.action, c.entity, c.entity_id, c.before, c.after) for c in pending],
        canonical=True,  # snapshots are JSON-safe copies already
    )
    outbox.publish_encoded(session, events)
    return len(pending)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if session.info.get(_PENDING):
        session.flush()  # row changes (and their lock waits) first, then the chain locks
        write_pending(session)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
