"""One call per change: the audit row and the outbox event, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core import audit, outbox

SITUATION = "situation"


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

    ``payload`` defaults to ``after`` (or ``before`` for deletions): what a live map needs
    to redraw the thing without another request.
    """
    audit.record(
        session,
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=before,
        after=after,
    )
    data = payload if payload is not None else (after if after is not None else before) or {}
    for topic in topics:
        outbox.publish(session, topic=topic, type=action, payload=data)
