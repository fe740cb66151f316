"""Response plans (预案 / run cards): what an incident type at a severity needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from command.incidents.models import SEVERITIES
from command.response_plans.models import ResponsePlan
from core.changes import record_change
from core.security import Principal
from dispatch.assign import Need

PLAN_FIELDS = ("id", "incident_type", "severity", "needs", "note", "updated_at")


def plan_dict(plan: ResponsePlan) -> dict[str, Any]:
    out = {f: getattr(plan, f) for f in PLAN_FIELDS}
    out["updated_at"] = plan.updated_at.isoformat()
    return out


def list_plans(session: Session, *, incident_type: str | None = None) -> list[ResponsePlan]:
    stmt = select(ResponsePlan).order_by(ResponsePlan.incident_type, ResponsePlan.id)
    if incident_type is not None:
        stmt = stmt.where(ResponsePlan.incident_type == incident_type)
    return list(session.scalars(stmt))


def upsert_plan(
    session: Session,
    *,
    incident_type: str,
    severity: str,
    needs: list[dict[str, Any]],
    note: str | None,
    principal: Principal,
) -> ResponsePlan:
    """Create or replace the plan for (type, severity); audited like every change."""
    existing = session.scalar(
        select(ResponsePlan)
        .where(ResponsePlan.incident_type == incident_type, ResponsePlan.severity == severity)
        .with_for_update()
    )
    before = plan_dict(existing) if existing is not None else None
    stmt = (
        insert(ResponsePlan)
        .values(incident_type=incident_type, severity=severity, needs=needs, note=note)
        .on_conflict_do_update(
            constraint="uq_response_plan_type_severity",
            set_={
                "needs": needs,
                "note": note,
                "updated_at": insert(ResponsePlan).excluded.updated_at,
            },
        )
        .returning(ResponsePlan.id)
    )
    plan_id = session.execute(stmt).scalar_one()
    plan = session.get(ResponsePlan, plan_id, populate_existing=True)
    assert plan is not None
    record_change(
        session,
        actor=principal.actor,
        action="response_plan.updated" if before else "response_plan.created",
        entity="response_plan",
        entity_id=plan.id,
        before=before,
        after=plan_dict(plan),
    )
    return plan


def plan_exact(session: Session, incident_type: str, severity: str) -> ResponsePlan | None:
    return session.scalar(
        select(ResponsePlan).where(
            ResponsePlan.incident_type == incident_type, ResponsePlan.severity == severity
        )
    )


def plan_for(session: Session, incident_type: str, severity: str) -> ResponsePlan | None:
    """The plan for this type and severity, else the nearest lower severity, else higher."""
    plans = {p.severity: p for p in list_plans(session, incident_type=incident_type)}
    level = SEVERITIES.index(severity)
    order = list(range(level, -1, -1)) + list(range(level + 1, len(SEVERITIES)))
    for i in order:
        if SEVERITIES[i] in plans:
            return plans[SEVERITIES[i]]
    return None


def lines(plan: ResponsePlan | None) -> list[Need]:
    if plan is None:
        return []
    return [Need(str(n["capability"]), int(n["count"])) for n in plan.needs if n["count"] > 0]
