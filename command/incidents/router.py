"""HTTP for incidents: list, create, read, change and move through their lifecycle
(GeoJSON in and out); possible duplicates of a new call, and the calls taken about one.

The caller's phone (personal data) is shown only to roles with ``personal.read``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from sqlalchemy.orm import Session

from command.incidents import calls
from command.incidents import service as incidents
from command.incidents.models import Incident
from command.incidents.schemas import (
    CallCreate,
    CallPage,
    CallRead,
    DuplicateRead,
    IncidentCreate,
    IncidentPatch,
    IncidentRead,
    IncidentStatusChange,
    IncidentType,
)
from command.tasks import service as tasks
from core.errors import InvalidInput
from core.security import Principal, require
from core.web import (
    BBoxDep,
    GeoJSONResponse,
    IdempotencyKeyHeader,
    PageDep,
    PathId,
    PrincipalDep,
    SessionDep,
    StatusFilter,
    TextFilter,
    conflict,
    not_found,
    parse_statuses,
)
from gis.features import FeatureCollectionOut, FeatureOut
from gis.router import CrsParam, PointParam, parse_point

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
    features = incidents.incident_features(
        session, result.items, personal=calls.may_read_personal(principal)
    )
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": features,
            "numberMatched": result.total,
            "numberReturned": len(features),
        }
    )


@router.post(
    "/incidents",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureOut[IncidentRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
    responses=conflict("the Idempotency-Key was used for another request"),
)
def create_incident(
    body: IncidentCreate,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """Report an incident (Point, or Polygon / MultiPolygon for an area); its first call
    (with `caller_phone`, if given) is recorded with it. With an ``Idempotency-Key``
    header, a retry of the same request returns the first answer and creates nothing."""
    require(principal, "incident.write")
    return incidents.create_incident_once(
        session,
        props=body.properties.model_dump(),
        geom=body.shape,
        principal=principal,
        key=idempotency_key,
    )


@router.get(
    "/incidents/duplicates",
    response_model=FeatureCollectionOut[DuplicateRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
)
def get_duplicates(
    session: SessionDep,
    principal: PrincipalDep,
    type: Annotated[IncidentType, Query(description="the new call's incident type")],
    at: PointParam,
    crs: CrsParam = "wgs84",
    radius_m: Annotated[float, Query(gt=0, le=5000, description="metres")] = 500,
    window_s: Annotated[int, Query(ge=1, le=7 * 86_400, description="seconds")] = 1800,
    drill: bool = False,
) -> GeoJSONResponse:
    """Possible duplicates of a call being taken: open incidents of the same type within
    `radius_m` of `at`, reported in the last `window_s` seconds, nearest first, each with
    `distance_m`. Staff roles only."""
    require(principal, "personal.read")
    try:
        lon, lat = parse_point(at, crs)
    except InvalidInput as exc:
        raise InvalidInput(f"at: {exc}") from exc
    found = incidents.find_duplicates(
        session, type=type, lon=lon, lat=lat, radius_m=radius_m, window_s=window_s, drill=drill
    )
    features = incidents.incident_features(session, [i for i, _ in found], personal=True)
    for feature, (_, distance_m) in zip(features, found, strict=True):
        feature["properties"]["distance_m"] = round(distance_m)
    return GeoJSONResponse(
        {
            "type": "FeatureCollection",
            "features": features,
            "numberMatched": len(features),
            "numberReturned": len(features),
        }
    )


# `:int`: only digits match, so /incidents/duplicates is never taken for an id (a PATCH
# there is a 405, not a 422 about the id).
@router.get(
    "/incidents/{incident_id:int}",
    response_model=FeatureOut[IncidentRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
)
def get_incident(
    incident_id: PathId, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "read")
    return _feature(session, incidents.get_incident(session, incident_id), principal)


@router.patch(
    "/incidents/{incident_id:int}",
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
    return _feature(session, incident, principal)


@router.post(
    "/incidents/{incident_id}/status",
    response_model=FeatureOut[IncidentRead],
    response_class=GeoJSONResponse,
    tags=["incidents"],
    responses=conflict(
        "the incident's lifecycle does not allow this step, or the Idempotency-Key was used "
        "for another request"
    ),
)
def post_incident_status(
    incident_id: PathId,
    body: IncidentStatusChange,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """One lifecycle step; `dispatched` comes from dispatching units, not from here. With
    an ``Idempotency-Key`` header, a retry of the same request returns the first answer."""
    require(principal, "incident.write")
    return tasks.change_incident_status_once(
        session,
        incident_id,
        body.status,
        principal=principal,
        note=body.note,
        key=idempotency_key,
        read=lambda incident: _feature(session, incident, principal),
    )


@router.post(
    "/incidents/{incident_id}/calls",
    status_code=status.HTTP_201_CREATED,
    response_model=CallRead,
    tags=["incidents"],
    responses=conflict(
        "the incident is closed or cancelled, or the Idempotency-Key was used for another request"
    )
    | not_found("the incident"),
)
def post_call(
    incident_id: PathId,
    body: CallCreate,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """Attach another call to an incident (its `calls` goes up by one); nothing is
    dispatched. With an ``Idempotency-Key`` header, a retry of the same request returns
    the first answer and counts no second call."""
    require(principal, "incident.write")
    return incidents.attach_call_once(
        session,
        incident_id,
        caller_phone=body.caller_phone,
        description=body.description,
        people_affected=body.people_affected,
        principal=principal,
        key=idempotency_key,
    )


@router.get(
    "/incidents/{incident_id}/calls",
    response_model=CallPage,
    tags=["incidents"],
    responses=not_found("the incident"),
)
def get_calls(incident_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """The calls taken about an incident, newest first: staff roles, and the responders
    of a unit with a task on it."""
    require(principal, "read")
    found = incidents.list_calls(session, incident_id, principal=principal)
    return {"items": [calls.call_dict(c) for c in found]}


def _feature(session: Session, incident: Incident, principal: Principal) -> dict[str, Any]:
    personal = calls.may_read_personal(principal)
    return incidents.incident_feature(session, incident, personal=personal)
