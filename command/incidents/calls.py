"""Callers' calls and their phone numbers (personal data): record, read, and forget.

The phone is kept on ``incident_call`` only. It never enters an incident's or a task's
event payload (responders subscribe to ``situation``) nor the audit chain (append-only and
retained for years): the audit row of a call holds a mask (``***1234``). It is blanked
after ``caller_phone_retention_days`` by :func:`purge_phones`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from command.incidents.models import Incident, IncidentCall
from core import crud
from core.changes import record_change
from core.db import flush
from core.security import PERMISSIONS, Principal
from core.types import utcnow

CALL_FIELDS = (
    "id",
    "incident_id",
    "caller_phone",
    "description",
    "people_affected",
    "received_at",
    "taken_by",
)


def may_read_personal(principal: Principal) -> bool:
    """Staff roles (``personal.read``) see callers' phones everywhere; others nowhere but
    on their own unit's tasks (decided where tasks are read)."""
    return principal.role in PERMISSIONS["personal.read"]


def mask_phone(phone: str | None) -> str | None:
    """What the audit chain keeps of a phone: its last four digits."""
    if phone is None:
        return None
    digits = "".join(c for c in phone if c.isdigit())
    return "***" + digits[-4:]


def call_dict(call: IncidentCall) -> dict[str, Any]:
    """A call record as the API shows it (phone included: check the reader first)."""
    return {f: crud.json_value(getattr(call, f)) for f in CALL_FIELDS}


def record_call(
    session: Session,
    incident: Incident,
    *,
    caller_phone: str | None,
    description: str | None,
    people_affected: int | None,
    principal: Principal,
) -> IncidentCall:
    """Insert a call about ``incident`` and audit it with the phone masked (no event:
    the incident's own ``calls`` count carries the news)."""
    call = IncidentCall(
        incident_id=incident.id,
        caller_phone=caller_phone,
        description=description,
        people_affected=people_affected,
        taken_by=principal.actor,
        drill=incident.drill,
    )
    session.add(call)
    flush(session)
    session.refresh(call, ["received_at"])
    audited = {**call_dict(call), "caller_phone": mask_phone(call.caller_phone)}
    record_change(
        session,
        actor=principal.actor,
        action="incident_call.created",
        entity="incident_call",
        entity_id=call.id,
        before=None,
        after=audited,
        topics=(),
    )
    return call


def calls_of(session: Session, incident_id: int) -> list[IncidentCall]:
    """An incident's calls, newest first."""
    stmt = (
        select(IncidentCall)
        .where(IncidentCall.incident_id == incident_id)
        .order_by(IncidentCall.received_at.desc(), IncidentCall.id.desc())
    )
    return list(session.scalars(stmt))


def latest_phones(session: Session, incident_ids: Iterable[int]) -> dict[int, str]:
    """Per incident, the phone of its latest call that still has one (one query)."""
    ids = sorted(set(incident_ids))
    if not ids:
        return {}
    stmt = (
        select(IncidentCall.incident_id, IncidentCall.caller_phone)
        .where(IncidentCall.incident_id.in_(ids), IncidentCall.caller_phone.is_not(None))
        .order_by(IncidentCall.incident_id, IncidentCall.received_at.desc(), IncidentCall.id.desc())
        .ext(distinct_on(IncidentCall.incident_id))
    )
    return {int(i): str(p) for i, p in session.execute(stmt)}


def purge_phones(
    session: Session, *, retention_days: int, principal: Principal, now: datetime | None = None
) -> int:
    """Blank the phones of calls received more than ``retention_days`` ago (setting
    ``phone_purged_at``); audits how many, never which. Returns how many."""
    now = now or utcnow()
    stmt = (
        update(IncidentCall)
        .where(
            IncidentCall.caller_phone.is_not(None),
            IncidentCall.received_at < now - timedelta(days=retention_days),
        )
        .values(caller_phone=None, phone_purged_at=now)
        .execution_options(synchronize_session=False)
    )
    purged = int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    if purged:
        record_change(
            session,
            actor=principal.actor,
            action="incident_call.phones_purged",
            entity="incident_call",
            entity_id=None,
            before=None,
            after={"purged": purged, "retention_days": retention_days},
            topics=(),
        )
    return purged
