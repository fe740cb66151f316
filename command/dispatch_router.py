"""HTTP for response plans, recommendations and dispatching."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, Field

from command import plans, recommend, tasks
from command.schemas import DispatchRequest, IncidentType, Severity, TaskRead
from core.errors import InvalidInput
from core.security import require
from core.web import PrincipalDep, SessionDep
from gis.engine import SnapError
from gis.features import Strict
from gis.router import closures_of, engine_of

router = APIRouter(prefix="/api")
log = logging.getLogger("emergency.dispatch")


class NeedIn(Strict):
    capability: str = Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    count: int = Field(ge=1, le=50)


class ResponsePlanIn(Strict):
    incident_type: IncidentType
    severity: Severity
    needs: list[NeedIn] = Field(min_length=1, max_length=20)
    note: str | None = Field(default=None, max_length=2000)


class ResponsePlanRead(BaseModel):
    id: int
    incident_type: str
    severity: str
    needs: list[dict[str, Any]]
    note: str | None
    updated_at: str


@router.get("/response-plans", response_model=list[ResponsePlanRead], tags=["response plans"])
def list_response_plans(
    session: SessionDep,
    principal: PrincipalDep,
    incident_type: Annotated[str | None, Query(max_length=40)] = None,
) -> list[dict[str, Any]]:
    """Response plans (预案): what each incident type and severity needs."""
    require(principal, "read")
    return [plans.plan_dict(p) for p in plans.list_plans(session, incident_type=incident_type)]


@router.post("/response-plans", response_model=ResponsePlanRead, tags=["response plans"])
def put_response_plan(
    body: ResponsePlanIn, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Create or replace the plan for an incident type and severity."""
    require(principal, "plan.write")
    if len({n.capability for n in body.needs}) != len(body.needs):
        raise InvalidInput("each capability may appear once in a plan")
    plan = plans.upsert_plan(
        session,
        incident_type=body.incident_type,
        severity=body.severity,
        needs=[n.model_dump() for n in body.needs],
        note=body.note,
        principal=principal,
    )
    session.commit()
    return plans.plan_dict(plan)


@router.get("/incidents/{incident_id}/recommendations", tags=["dispatch"])
def get_recommendations(
    incident_id: int,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=0, le=200)] = 10,
    closed_edges: Annotated[str | None, Query(description="edge ids to avoid")] = None,
    stale_after_s: Annotated[float, Query(gt=0, le=86_400)] = 900.0,
) -> dict[str, Any]:
    """Units ranked by drive time to fill the incident's response plan, each explained;
    units left out say why."""
    require(principal, "read")
    engine = engine_of(request)
    return recommend.recommend_for(
        session,
        engine,
        incident_id,
        limit=limit,
        closures=closures_of(None, closed_edges, "wgs84"),
        stale_after_s=stale_after_s,
    )


@router.post(
    "/incidents/{incident_id}/dispatch",
    status_code=status.HTTP_201_CREATED,
    response_model=list[TaskRead],
    tags=["dispatch"],
)
def dispatch_units(
    incident_id: int,
    body: DispatchRequest,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> list[dict[str, Any]]:
    """Assign units to the incident: all or nothing; a busy unit gives 409. What the system
    recommended is recorded next to the choice."""
    require(principal, "dispatch")
    proposed = None
    engine = getattr(request.app.state, "engine", None)
    if engine is not None:
        try:
            body_rec = recommend.recommend_for(session, engine, incident_id, limit=0)
            proposed = recommend.recommended_summary(body_rec)
        except (SnapError, ValueError) as exc:  # dispatch must not fail for want of advice
            log.warning("no recommendation recorded for incident %s: %s", incident_id, exc)
    created = tasks.dispatch(
        session,
        incident_id,
        body.unit_ids,
        principal=principal,
        note=body.note,
        recommended=proposed,
    )
    session.commit()
    return [tasks.task_dict(t) for t in created]
