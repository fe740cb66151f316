"""HTTP for reading and setting run cards."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from command.response_plans import service as plans
from command.response_plans.schemas import ResponsePlanIn, ResponsePlanRead
from core.errors import InvalidInput
from core.security import require
from core.web import PrincipalDep, SessionDep, TextFilter

router = APIRouter(prefix="/api")


@router.get("/response-plans", response_model=list[ResponsePlanRead], tags=["response plans"])
def list_response_plans(
    session: SessionDep,
    principal: PrincipalDep,
    incident_type: Annotated[TextFilter, Query(max_length=40)] = None,
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
