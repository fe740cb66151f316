"""Warning zones: areas under warning. Active zones that block roads are closed to every
recommendation and plan while they last."""

from __future__ import annotations

from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from command.zones.models import WarningZone
from core import crud
from core.crud import FeatureKind
from core.types import utcnow
from gis.engine import Closures

ZONES = FeatureKind(
    WarningZone,
    "warning_zone",
    ("name", "kind", "severity", "status", "blocks_roads", "drill", "alert_id", "starts_at",
     "ends_at", "created_at", "updated_at"),
)  # fmt: skip

AREAS = ("Polygon", "MultiPolygon")


def active_clause() -> Any:
    now = utcnow()
    return (
        (WarningZone.status == "active")
        & (WarningZone.starts_at <= now)
        & or_(WarningZone.ends_at.is_(None), WarningZone.ends_at > now)
    )


def road_closures(session: Session, extra: Closures | None = None) -> Closures:
    """``extra`` (the request's) plus the areas of active, road-blocking, real zones."""
    polygons = [
        to_shape(z.geom)
        for z in session.scalars(
            select(WarningZone).where(
                active_clause(), WarningZone.blocks_roads.is_(True), WarningZone.drill.is_(False)
            )
        )
    ]
    base = extra or Closures()
    return Closures(base.edge_ids, base.polygons + tuple(polygons))


def zone_area(session: Session, zone_id: int) -> Any:
    """The shape of a warning zone (for an evacuation of everyone inside it)."""
    return to_shape(crud.get(session, ZONES, zone_id).geom)
