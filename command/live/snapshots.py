"""Snapshots sent on subscribe and on resync: the whole situation, or one unit's tasks.

The caller's phone (personal data) is on a unit's snapshot only: ``unit:<id>`` is open to
that unit's responders and to staff, ``situation`` to every responder."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from command.incidents.models import Incident
from command.incidents.service import incident_feature, incident_features
from command.tasks import service as tasks
from command.tasks.models import ACTIVE_TASK_STATUSES, Task
from command.zones.models import WarningZone
from command.zones.service import ZONES, active_clause
from core import crud
from resources import service
from resources.models import Shelter, Stock, Unit

ENDED = ("closed", "cancelled")


def situation_snapshot(session: Session) -> dict[str, Any]:
    """Everything the live map shows: open incidents, units, active tasks, shelters,
    stock and active warning zones. A tabletop drill's incidents, tasks and stand-in units
    are its own topic's (``drill:<id>``), never the live map's."""
    incidents = list(
        session.scalars(
            select(Incident)
            .where(Incident.status.not_in(ENDED), Incident.drill_id.is_(None))
            .order_by(Incident.id)
        )
    )
    active = session.scalars(
        select(Task)
        .join(Incident, Incident.id == Task.incident_id)
        .where(Task.status.in_(ACTIVE_TASK_STATUSES), Incident.drill_id.is_(None))
        .order_by(Task.id)
    )
    zones = session.scalars(select(WarningZone).where(active_clause()).order_by(WarningZone.id))
    units = session.scalars(select(Unit).where(service.in_scope(None)).order_by(Unit.id))
    return {
        "incidents": incident_features(session, incidents, personal=False),
        "units": [crud.feature(service.UNITS, u) for u in units],
        "tasks": [tasks.task_dict(t) for t in active],
        **fixed_layers(session),
        "warning_zones": [crud.feature(ZONES, z) for z in zones],
    }


def fixed_layers(session: Session) -> dict[str, Any]:
    """Shelters and stock, as they are now (a drill's map shows the real ones too)."""
    return {
        "shelters": [crud.feature(service.SHELTERS, s) for s in session.scalars(select(Shelter))],
        "stock": [service.stock_dict(s) for s in session.scalars(select(Stock))],
    }


def unit_snapshot(session: Session, unit_id: int) -> dict[str, Any]:
    """A unit's active tasks, each with its incident (what its phone shows)."""
    active = session.scalars(
        select(Task)
        .where(Task.unit_id == unit_id, Task.status.in_(ACTIVE_TASK_STATUSES))
        .order_by(Task.id)
    )
    out = []
    for task in active:
        item = tasks.task_dict(task)
        incident = session.get_one(Incident, task.incident_id)
        item["incident"] = incident_feature(session, incident, personal=True)
        out.append(item)
    return {"tasks": out}
