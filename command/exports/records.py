"""The record layers' queries: incidents with their stage times, tasks with their state
times, warning zones and shelters (see command/exports/service.py for windows, personal
data and drills)."""

from __future__ import annotations

from geoalchemy2 import Geography
from sqlalchemy import cast, func, or_, select
from sqlalchemy.orm import Session

from command.exports.scope import Scope, real_or_drill, seconds, shape
from command.exports.table import Kind, Table, kinds_of, table, wkt
from command.incidents.models import Incident
from command.incidents.service import INCIDENTS, incident_features
from command.tasks.models import Task
from command.tasks.service import TASK_FIELDS, task_dict
from command.zones.models import WarningZone
from command.zones.service import ZONES
from core import crud
from resources.models import Shelter, Unit
from resources.service import SHELTERS

INCIDENT_STAGES = ("verified", "dispatched", "on_scene", "resolved", "closed", "cancelled")
TASK_STAGES = ("acknowledged", "accepted", "en_route", "on_scene", "done", "cancelled")
INCIDENT_COLUMNS: list[tuple[str, Kind]] = [
    ("id", "int64"),
    *kinds_of(Incident, INCIDENTS.fields),
    *[(f"to_{stage}_s", "float") for stage in INCIDENT_STAGES],
    ("area_wkt", "text"),
]


def incidents(session: Session, where: Scope) -> Table:
    """Incidents reported in the window at their point (``location``: where units drive;
    an area incident's area is ``area_wkt``), with the seconds from the report to each
    later stage."""
    found = session.scalars(
        select(Incident)
        .where(
            Incident.reported_at >= where.since,
            Incident.reported_at < where.until,
            real_or_drill(Incident.drill, Incident.drill_id, where),
        )
        .order_by(Incident.id)
    ).all()
    rows = []
    for incident, feature in zip(
        found, incident_features(session, found, personal=False), strict=True
    ):
        area = shape(incident.geom)
        rows.append(
            {
                "id": feature["id"],
                **feature["properties"],
                **{
                    f"to_{s}_s": seconds(incident.reported_at, getattr(incident, f"{s}_at"))
                    for s in INCIDENT_STAGES
                },
                "area_wkt": None if area is None or area.geom_type == "Point" else wkt(area),
            }
        )
    locations = [shape(i.location) for i in found]
    return table("incidents", "Point", INCIDENT_COLUMNS, rows, locations)


TASK_COLUMNS: list[tuple[str, Kind]] = [
    *kinds_of(Task, TASK_FIELDS),
    ("callsign", "text"),
    ("incident_type", "text"),
    ("drill_id", "int64"),
    *[(f"to_{stage}_s", "float") for stage in TASK_STAGES],
]


def tasks(session: Session, where: Scope) -> Table:
    """Tasks assigned in the window at their incident's point, with the seconds from the
    assignment to each later state."""
    found = session.execute(
        select(Task, Unit.callsign, Incident.type, Incident.drill_id, Incident.location)
        .join(Incident, Incident.id == Task.incident_id)
        .join(Unit, Unit.id == Task.unit_id)
        .where(
            Task.assigned_at >= where.since,
            Task.assigned_at < where.until,
            real_or_drill(Incident.drill, Incident.drill_id, where),
        )
        .order_by(Task.id)
    ).all()
    rows = [
        {
            **task_dict(task),
            "callsign": callsign,
            "incident_type": incident_type,
            "drill_id": drill_id,
            **{
                f"to_{s}_s": seconds(task.assigned_at, getattr(task, f"{s}_at"))
                for s in TASK_STAGES
            },
        }
        for task, callsign, incident_type, drill_id, _ in found
    ]
    return table("tasks", "Point", TASK_COLUMNS, rows, [shape(r[4]) for r in found])


# --- zones and shelters -------------------------------------------------------------------
ZONE_COLUMNS: list[tuple[str, Kind]] = [
    ("id", "int64"),
    *kinds_of(WarningZone, ZONES.fields),
    ("area_m2", "float"),
]


def zones(session: Session, where: Scope) -> Table:
    """Real warning zones in force at some moment of the window, with their area (m²,
    on the ellipsoid)."""
    found = session.execute(
        select(WarningZone, func.ST_Area(cast(WarningZone.geom, Geography)))
        .where(
            WarningZone.drill.is_(False),
            WarningZone.starts_at < where.until,
            or_(WarningZone.ends_at.is_(None), WarningZone.ends_at > where.since),
        )
        .order_by(WarningZone.id)
    ).all()
    rows = []
    for zone, area_m2 in found:
        feature = crud.feature(ZONES, zone)
        rows.append({"id": feature["id"], **feature["properties"], "area_m2": area_m2})
    return table("zones", "MultiPolygon", ZONE_COLUMNS, rows, [shape(z.geom) for z, _ in found])


SHELTER_COLUMNS: list[tuple[str, Kind]] = [
    ("id", "int64"),
    *kinds_of(Shelter, (*SHELTERS.fields, "planned_arrivals")),
]


def shelters(session: Session, where: Scope) -> Table:
    """Every shelter as it is now (no time)."""
    found = session.scalars(select(Shelter).order_by(Shelter.id)).all()
    rows = []
    for shelter in found:
        feature = crud.feature(SHELTERS, shelter)
        rows.append(
            {
                "id": feature["id"],
                **feature["properties"],
                "planned_arrivals": shelter.planned_arrivals,
            }
        )
    return table("shelters", "Point", SHELTER_COLUMNS, rows, [shape(s.geom) for s in found])
