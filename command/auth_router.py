"""HTTP for logging in, who-am-I, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from command import auth
from command.schemas import AuditPage, AuditRead, AuditVerifyRead, Me, TokenRequest, TokenResponse
from core import audit
from core.query import page_body, paginate
from core.security import require
from core.web import PageDep, PrincipalDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api")


@router.post("/auth/token", response_model=TokenResponse, tags=["auth"])
def login(body: TokenRequest, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Exchange username and password for a bearer token."""
    user = auth.authenticate(session, username=body.username, password=body.password)
    token = auth.issue_token(user, secret=settings.secret_key, ttl_s=settings.token_ttl_s)
    return {"access_token": token, "token_type": "bearer", "expires_in": settings.token_ttl_s}


@router.get("/me", response_model=Me, tags=["auth"])
def me(principal: PrincipalDep) -> dict[str, Any]:
    """Who the credentials belong to (people and machine keys alike)."""
    return {
        "kind": principal.kind,
        "name": principal.name,
        "role": principal.role,
        "unit_id": principal.unit_id,
    }


@router.get("/audit", response_model=AuditPage, tags=["audit"])
def list_audit(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    entity: Annotated[str | None, Query(max_length=40)] = None,
    entity_id: Annotated[str | None, Query(max_length=80)] = None,
) -> dict[str, Any]:
    """The audit log, newest first, for auditors."""
    require(principal, "audit.read")
    stmt = select(audit.AuditEvent).order_by(audit.AuditEvent.id.desc())
    if entity is not None:
        stmt = stmt.where(audit.AuditEvent.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(audit.AuditEvent.entity_id == entity_id)
    result = paginate(session, stmt, limit=page.limit, offset=page.offset)
    return page_body(result, lambda row: {c: getattr(row, c) for c in AuditRead.model_fields})


@router.get("/audit/verify", response_model=AuditVerifyRead, tags=["audit"])
def verify_audit(session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Check the whole hash chain; names the first tampered row, if any."""
    require(principal, "audit.read")
    result = audit.verify(session)
    return {
        "ok": result.ok,
        "checked": result.checked,
        "first_bad_id": result.first_bad_id,
        "reason": result.reason,
    }
