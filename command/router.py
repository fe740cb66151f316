"""HTTP for incidents, dispatch and tasks (GeoJSON in and out)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from command import incidents, tasks
from command.incidents import INCIDENTS
from command.schemas import (
    IncidentCreate,
    IncidentPatch,
    IncidentRead,
    IncidentStatusChange,
    TaskPage,
    TaskRead,
    TaskStatusChange,
)
from core import crud
from core.errors import InvalidInput
from core.query import page_body
from core.security import require
from core.web import (
    BBoxDep,
    GeoJSONResponse,
    IdempotencyKeyHeader,
    IdFilter,
    PageDep,
    PathId,
    PrincipalDep,
    SessionDep,
    TextFilter,
    conflict,
)
from gis.features import FeatureCollectionOut, FeatureOut

router = APIRouter(prefix="/api")
StatusFilter = Annotated[
    str | None, Query(max_length=200, description="one status or several, comma-separated")
]


def _statuses(value: str | None, allowed: tuple[str, ...]) -> list[str] | None:
    if not value:
        return None
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown status {unknown[0]!r}; one of {', '.join(allowed)}")
    return wanted


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
        status=_statuses(status, tuple(incidents.INCIDENT_TRANSITIONS)),
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


@router.get("/tasks", response_model=TaskPage, tags=["tasks"])
def list_tasks(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    unit_id: IdFilter = None,
    incident_id: IdFilter = None,
    status: StatusFilter = None,
) -> dict[str, Any]:
    """Tasks; a responder sees only their own unit's."""
    require(principal, "read")
    result = tasks.list_tasks(
        session,
        principal=principal,
        unit_id=unit_id,
        incident_id=incident_id,
        status=_statuses(status, tuple(tasks.TASK_TRANSITIONS)),
        limit=page.limit,
        offset=page.offset,
    )
    return page_body(result, tasks.task_dict)


@router.get("/tasks/{task_id}", response_model=TaskRead, tags=["tasks"])
def get_task(task_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "read")
    return tasks.task_dict(tasks.get_task(session, task_id, principal=principal))


@router.post(
    "/tasks/{task_id}/status",
    response_model=TaskRead,
    tags=["tasks"],
    responses=conflict(
        "the task cannot go to this status, or the Idempotency-Key was used for another request"
    ),
)
def post_task_status(
    task_id: PathId,
    body: TaskStatusChange,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    """A responder's report (accepted, en route, on scene, done); repeating it is harmless.

    With an ``Idempotency-Key`` header, a retry of the same request returns the first
    answer and has no second effect (even if the task has moved on since).
    """
    require(principal, "task.status")
    return tasks.change_task_status_once(
        session, task_id, body.status, principal=principal, note=body.note, key=idempotency_key
    )
