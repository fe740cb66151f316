"""HTTP for dispatching units to an incident and for tasks: list, read, move."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, status

from command.planning import recommendations
from command.tasks import service as tasks
from command.tasks.schemas import DispatchRequest, TaskPage, TaskRead, TaskStatusChange
from core.security import require
from core.web import (
    IdempotencyKeyHeader,
    IdFilter,
    PageDep,
    PathId,
    PrincipalDep,
    SessionDep,
    StatusFilter,
    conflict,
    not_found,
    parse_statuses,
)
from gis.engine import SnapError
from gis.router import MaybeEngineDep

router = APIRouter(prefix="/api")
log = logging.getLogger("emergency.dispatch")


@router.get("/tasks", response_model=TaskPage, tags=["tasks"])
def list_tasks(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    unit_id: IdFilter = None,
    incident_id: IdFilter = None,
    status: StatusFilter = None,
) -> dict[str, Any]:
    """Tasks; a responder sees only their own unit's (with the caller's phone, as staff
    do)."""
    require(principal, "read")
    result = tasks.list_tasks(
        session,
        principal=principal,
        unit_id=unit_id,
        incident_id=incident_id,
        status=parse_statuses(status, tuple(tasks.TASK_TRANSITIONS)),
        limit=page.limit,
        offset=page.offset,
    )
    items = tasks.task_reads(session, result.items, principal=principal)
    return {"items": items, "numberMatched": result.total, "numberReturned": len(items)}


@router.get("/tasks/{task_id}", response_model=TaskRead, tags=["tasks"])
def get_task(task_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """A task; with the caller's phone for staff and for the task's own unit's responders."""
    require(principal, "read")
    task = tasks.get_task(session, task_id, principal=principal)
    return tasks.task_reads(session, [task], principal=principal)[0]


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


@router.post(
    "/incidents/{incident_id}/dispatch",
    status_code=status.HTTP_201_CREATED,
    response_model=list[TaskRead],
    tags=["dispatch"],
    responses=conflict(
        "a unit is not available or listed twice; the incident is closed or a drill; or the "
        "Idempotency-Key was used for another request"
    )
    | not_found("the incident, or a unit in `unit_ids`"),
)
def dispatch_units(
    incident_id: PathId,
    body: DispatchRequest,
    engine: MaybeEngineDep,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> list[dict[str, Any]]:
    """Assign units to the incident: all or nothing; a busy unit gives 409. What the system
    recommended is recorded next to the choice.

    With an ``Idempotency-Key`` header, a retry of the same request returns the first
    answer and creates no second task: a dispatcher whose request was cut off (its server
    died) cannot tell whether it committed, and sends it again.
    """
    require(principal, "dispatch")

    def advice() -> list[dict[str, Any]] | None:
        if engine is None:
            return None
        try:
            body_rec = recommendations.recommend_for(session, engine, incident_id, limit=0)
            return recommendations.recommended_summary(body_rec)
        except (SnapError, ValueError) as exc:  # dispatch must not fail for want of advice
            log.warning("no recommendation recorded for incident %s: %s", incident_id, exc)
            return None

    return tasks.dispatch_once(
        session,
        incident_id,
        body.unit_ids,
        principal=principal,
        note=body.note,
        key=idempotency_key,
        advice=advice,
    )
