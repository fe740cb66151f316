"""HTTP for warning zones (GeoJSON in and out)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from command.zones.schemas import ZoneCreate, ZonePatch, ZoneRead
from command.zones.service import ZONES, active_clause
from core import crud
from core.security import require
from core.types import utcnow
from core.web import BBoxDep, GeoJSONResponse, PageDep, PathId, PrincipalDep, SessionDep
from gis.features import FeatureCollectionOut, FeatureOut

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
