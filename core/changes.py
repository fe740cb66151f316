"""One call per change: the audit row and the outbox event, written when the transaction commits.

Changes are collected on the session and written in a ``before_commit`` hook, in the order
they were recorded. The audit chain's advisory lock and each topic's sequence-row lock are
therefore taken last and held only for the commit itself: a request never waits on a row
lock while holding them (no lock-order deadlocks between writers), and writers serialise
only for the few milliseconds of their commit, not for their whole transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from core import audit, outbox

SITUATION = "situation"
_PENDING = "emergency.pending_changes"


@dataclass(frozen=True)
class _Change:
    """A change as it will be written: its JSON encoded when it was recorded."""

    audit: audit.Encoded
    topics: tuple[str, ...]
    payload_text: str


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

    The values are encoded now, once (later changes to the objects cannot alter what is
    written): the audit row's canonical text, which is also the event's payload unless
    ``payload`` is given (the outbox stores it as jsonb: its formatting does not matter)."""
    before_text, after_text = audit.encode(before), audit.encode(after)
    if payload is not None:
        payload_text = audit.encode(payload)
    elif after is not None:
        payload_text = after_text
    else:
        payload_text = before_text if before is not None else "{}"
    change = _Change(
        audit.Encoded(actor, action, entity, entity_id, before_text, after_text),
        topics,
        payload_text,
    )
    session.info.setdefault(_PENDING, []).append(change)


def write_pending(session: Session) -> int:
    """Write the collected audit rows and events now; returns how many changes."""
    pending: list[_Change] = session.info.pop(_PENDING, [])
    # JSON first: the audit chain's lock and the topics' row locks are held from the first
    # of these statements to the commit, and every writer of the system waits for them.
    events = outbox.encode_texts(
        [(topic, c.audit.action, c.payload_text) for c in pending for topic in c.topics]
    )
    audit.record_encoded(session, [c.audit for c in pending])
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
