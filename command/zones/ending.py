"""Ending warning zones: one at a time (an alert's Cancel or Update), or all whose expiry
has passed (housekeeping)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from command.intake.models import Alert
from command.zones.models import WarningZone
from command.zones.service import ZONES
from core import crud
from core.changes import SITUATION
from core.security import Principal
from core.types import utcnow


def end_expired_zones(session: Session, principal: Principal, now: datetime | None = None) -> int:
    """End zones whose time has passed, so they leave the live map (history keeps them)."""
    now = now or utcnow()
    zones = session.scalars(
        select(WarningZone)
        .where(WarningZone.status == "active", WarningZone.ends_at <= now)
        .order_by(WarningZone.id)
        .with_for_update(skip_locked=True)
    ).all()
    for zone in zones:
        thread = session.scalar(
            select(func.coalesce(Alert.thread_id, Alert.id)).where(Alert.id == zone.alert_id)
        )
        topics = (f"drill:{thread}",) if zone.drill and thread else (SITUATION,)
        end_zone(session, zone, principal, note="expired", topics=topics, now=now)
    return len(zones)


def end_zone(
    session: Session,
    zone: WarningZone,
    principal: Principal,
    *,
    note: str,
    topics: tuple[str, ...],
    now: datetime,
) -> None:
    """End ``zone`` (see :func:`end_change`)."""
    crud.update_many_locked(
        session, ZONES, [end_change(zone, note=note, now=now)], principal=principal,
        topics=topics,
    )  # fmt: skip


def end_change(zone: WarningZone, *, note: str, now: datetime) -> crud.Change:
    """The change that ends a (locked) ``zone``: it leaves the live map, history keeps it.
    Its end is ``now`` unless it was due to end earlier, and never before its start."""
    ends = now if zone.ends_at is None or zone.ends_at > now else zone.ends_at
    return crud.Change(
        zone, {"status": "ended", "ends_at": max(ends, zone.starts_at)},
        action="warning_zone.ended", note=note,
    )  # fmt: skip
