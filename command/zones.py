"""Warning zones: areas under warning (from the warning system or drawn by staff). Active
zones that block roads are closed to every recommendation and plan while they last."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from geoalchemy2.shape import to_shape
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from command.models import WarningZone
from command.schemas import IncidentType, Severity
from core import crud
from core.crud import FeatureKind
from core.security import require
from core.types import utcnow
from core.validate import ClientTime, Line
from core.web import BBoxDep, GeoJSONResponse, PageDep, PathId, PrincipalDep, SessionDep
from gis.engine import Closures
from gis.features import FeatureCollectionOut, FeatureIn, FeatureOut, FeaturePatch, Strict

ZONES = FeatureKind(
    WarningZone,
    "warning_zone",
    ("name", "kind", "severity", "status", "blocks_roads", "drill", "alert_id", "starts_at",
     "ends_at", "created_at", "updated_at"),
)  # fmt: skip
AREAS = ("Polygon", "MultiPolygon")


class ZoneProps(Strict):
    name: Line = Field(min_length=1, max_length=200)
    kind: IncidentType
    severity: Severity = "moderate"
    blocks_roads: bool = False
    drill: bool = False
    starts_at: ClientTime | None = None
    ends_at: ClientTime | None = None

    @model_validator(mode="after")
    def _period(self) -> ZoneProps:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ZonePatchProps(Strict):
    name: Line | None = Field(default=None, min_length=1, max_length=200)
    severity: Severity | None = None
    status: Literal["active", "ended"] | None = None
    blocks_roads: bool | None = None
    ends_at: ClientTime | None = None


class ZoneCreate(FeatureIn[ZoneProps]):
    allowed_geometry = AREAS


class ZonePatch(FeaturePatch[ZonePatchProps]):
    allowed_geometry = AREAS


class ZoneRead(BaseModel):
    name: str
    kind: str
    severity: str
    status: str
    blocks_roads: bool
    drill: bool
    alert_id: int | None
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


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


# Every answer here is GeoJSON (a Feature or a FeatureCollection).
router = APIRouter(prefix="/api", tags=["warning zones"], default_response_class=GeoJSONResponse)


@router.get("/warning-zones", response_model=FeatureCollectionOut[ZoneRead])
def list_zones(
    session: SessionDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    page: PageDep,
    active: Annotated[bool | None, Query(description="only zones in force now")] = None,
) -> GeoJSONResponse:
    require(principal, "read")
    extra = [active_clause()] if active else []
    result = crud.list_page(
        session, ZONES, bbox=bbox, filters={}, limit=page.limit, offset=page.offset, extra=extra
    )
    return GeoJSONResponse(crud.collection(ZONES, result))


@router.post(
    "/warning-zones", status_code=status.HTTP_201_CREATED, response_model=FeatureOut[ZoneRead]
)
def create_zone(body: ZoneCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Draw a warning zone; with `blocks_roads`, routing avoids its roads while it lasts."""
    require(principal, "operations.write")
    props = body.properties.model_dump()
    if props["starts_at"] is None:
        props["starts_at"] = utcnow()
    zone = crud.create(session, ZONES, props=props, geom=body.shape, principal=principal)
    session.commit()
    return crud.feature(ZONES, zone)


@router.get("/warning-zones/{zone_id}", response_model=FeatureOut[ZoneRead])
def get_zone(zone_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "read")
    return crud.feature(ZONES, crud.get(session, ZONES, zone_id))


@router.patch("/warning-zones/{zone_id}", response_model=FeatureOut[ZoneRead])
def patch_zone(
    zone_id: PathId, body: ZonePatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Change or end a zone (`"status": "ended"`)."""
    require(principal, "operations.write")
    zone = crud.update(
        session, ZONES, zone_id, changes=body.changes(), geom=body.shape, principal=principal
    )
    session.commit()
    return crud.feature(ZONES, zone)
