"""HTTP for incidents: list, create, read, change and move through their lifecycle
(GeoJSON in and out)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from command.incidents import service as incidents
from command.incidents.schemas import (
    IncidentCreate,
    IncidentPatch,
    IncidentRead,
    IncidentStatusChange,
)
from command.incidents.service import INCIDENTS
from command.tasks import service as tasks
from core import crud
from core.security import require
from core.web import (
    BBoxDep,
    GeoJSONResponse,
    PageDep,
    PathId,
    PrincipalDep,
    SessionDep,
    StatusFilter,
    TextFilter,
    conflict,
    parse_statuses,
)
from gis.features import FeatureCollectionOut, FeatureOut

router = APIRouter(prefix="/api")


@router.get(
    "/incidents",
    response_model=FeatureCollectionOut[IncidentRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
)
def list_incidents(
    session: SessionDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    page: PageDep,
    status: StatusFilter = None,
    type: Annotated[TextFilter, Query(max_length=40)] = None,
    drill: bool | None = None,
) -> GeoJSONResponse:
    """Incidents as a FeatureCollection, filtered by bbox, status and type, newest id last."""
    require(principal, "read")
    result = incidents.list_incidents(
        session,
        bbox=bbox,
        status=parse_statuses(status, tuple(incidents.INCIDENT_TRANSITIONS)),
        type=type,
        drill=drill,
        limit=page.limit,
        offset=page.offset,
    )
    return GeoJSONResponse(crud.collection(INCIDENTS, result))


@router.post(
    "/incidents",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureOut[IncidentRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
)
def create_incident(
    body: IncidentCreate, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Report an incident (Point, or Polygon / MultiPolygon for an area)."""
    require(principal, "incident.write")
    incident = incidents.create_incident(
        session, props=body.properties.model_dump(), geom=body.shape, principal=principal
    )
    session.commit()
    return crud.feature(INCIDENTS, incident)


@router.get(
    "/incidents/{incident_id}",
    response_model=FeatureOut[IncidentRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
)
def get_incident(
    incident_id: PathId, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "read")
    return crud.feature(INCIDENTS, crud.get(session, INCIDENTS, incident_id))


@router.patch(
    "/incidents/{incident_id}",
    response_model=FeatureOut[IncidentRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
    responses=conflict("the incident is closed or cancelled: it cannot change"),
)
def patch_incident(
    incident_id: PathId, body: IncidentPatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "incident.write")
    incident = incidents.update_incident(
        session, incident_id, changes=body.changes(), geom=body.shape, principal=principal
    )
    session.commit()
    return crud.feature(INCIDENTS, incident)


@router.post(
    "/incidents/{incident_id}/status",
    response_model=FeatureOut[IncidentRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
    responses=conflict("the incident's lifecycle does not allow this step"),
)
def post_incident_status(
    incident_id: PathId, body: IncidentStatusChange, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """One lifecycle step; `dispatched` comes from dispatching units, not from here."""
    require(principal, "incident.write")
    incident = tasks.change_incident_status(
        session, incident_id, body.status, principal=principal, note=body.note
    )
    session.commit()
    return crud.feature(INCIDENTS, incident)
