"""Pre-positioning for a warning zone: which units to stage near it (nearest available by
road, outside the zone) and which shelters outside it have room. A proposal shown on the
command screen, never an action: nothing here writes."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import to_shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from command.planning.recommendations import rank_units
from command.response_plans import service as plans
from command.zones.models import WarningZone
from command.zones.service import ZONES, road_closures
from core import crud
from core.errors import InvalidInput
from core.types import utcnow
from gis.engine import Engine, SnapError
from gis.geodesy import point_outside
from resources.models import Shelter

STAGING_MARGIN_M = 300.0  # how far outside the zone's edge units wait


def staging_point(area: shapely.Geometry) -> shapely.Point:
    """Where units wait for a zone: ``STAGING_MARGIN_M`` outside its edge nearest its centre
    (measured in metres, :func:`gis.geodesy.point_outside`)."""
    return point_outside(area, STAGING_MARGIN_M)


def suggest(
    session: Session,
    engine: Engine,
    zone_id: int,
    *,
    units: int = 5,
    shelters: int = 5,
    stale_after_s: float = 900.0,
) -> dict[str, Any]:
    zone: WarningZone = crud.get(session, ZONES, zone_id)
    area = to_shape(zone.geom)
    staging = staging_point(area)
    try:
        target = engine.snap(staging.x, staging.y)
    except SnapError as exc:
        raise InvalidInput(f"warning zone {zone_id} is not near the road network: {exc}") from exc
    plan = plans.plan_for(session, zone.kind, zone.severity)
    ranked = rank_units(
        session, engine, target, plan=plan, limit=units, closures=None,
        stale_after_s=stale_after_s, outside=area,
    )  # fmt: skip
    return {
        "zone_id": zone.id,
        "alert_id": zone.alert_id,
        "proposal": True,  # nothing is moved until a dispatcher acts
        "staging": {"type": "Point", "coordinates": [round(target.lon, 7), round(target.lat, 7)]},
        "response_plan": ranked["response_plan"],
        "units": [e for e in ranked["recommendations"] if e["recommended"]][:units],
        "excluded_counts": ranked["excluded_counts"],
        "unmet": ranked["unmet"],
        "shelters": _shelters(session, engine, area, target, shelters),
        "computed_at": utcnow().isoformat(),
    }


def _shelters(
    session: Session, engine: Engine, area: shapely.Geometry, start: Any, limit: int
) -> list[dict[str, Any]]:
    """Open shelters outside the zone with room, nearest by road from the staging point."""
    rows = [
        s
        for s in session.scalars(select(Shelter).where(Shelter.status == "open"))
        if s.capacity - s.occupancy - s.planned_arrivals > 0
    ]
    points = [to_shape(s.geom) for s in rows]
    outside = [(s, p) for s, p in zip(rows, points, strict=True) if not area.intersects(p)]
    if not outside:
        return []
    found = engine.snap_many([p.x for _, p in outside], [p.y for _, p in outside])
    reachable = [(s, snap) for (s, _), snap in zip(outside, found, strict=True) if snap]
    if not reachable:
        return []
    closures = road_closures(session)
    matrix = engine.matrix([start], [snap for _, snap in reachable], closures=closures)
    out: list[dict[str, Any]] = []
    for j, (s, _) in enumerate(reachable):
        eta = float(matrix.durations_s[0, j])
        if not np.isfinite(eta):
            continue
        out.append(
            {"shelter_id": s.id, "name": s.name, "eta_s": round(eta, 1),
             "distance_m": round(float(matrix.distances_m[0, j]), 1),
             "room": s.capacity - s.occupancy - s.planned_arrivals,
             "accessible": s.accessible, "pets_allowed": s.pets_allowed}
        )  # fmt: skip
    out.sort(key=lambda e: float(e["eta_s"]))
    return out[:limit]
