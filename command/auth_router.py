"""HTTP for logging in, who-am-I, managing users, and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from command import users
from command.login import Logins, get_logins, request_address
from command.schemas import (
    AuditPage,
    AuditRead,
    AuditVerifyRead,
    Me,
    TokenRequest,
    TokenResponse,
    UserPage,
    UserPatch,
    UserRead,
)
from core import audit, audit_verify
from core.changes import keyring
from core.query import page_body, paginate
from core.security import require
from core.web import PageDep, PathId, PrincipalDep, SessionDep, SettingsDep, TextFilter

router = APIRouter(prefix="/api")


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    tags=["auth"],
    responses={
        401: {"description": "wrong username or password, or the user is disabled"},
        429: {"description": "too many failed logins for this username or address"},
        503: {"description": "too many logins being checked right now"},
    },
)
async def login(
    body: TokenRequest, request: Request, logins: Annotated[Logins, Depends(get_logins)]
) -> dict[str, Any]:
    """Exchange username and password for a bearer token.

    Throttled: after `EMERGENCY_LOGIN_MAX_FAILURES` failures for a username (or
    `EMERGENCY_LOGIN_MAX_FAILURES_PER_ADDRESS` from a client address) within
    `EMERGENCY_LOGIN_WINDOW_S`, logins there get 429 with `Retry-After` for that long,
    even with the right password."""
    settings = logins.settings
    token = await logins.log_in(
        username=body.username,
        password=body.password,
        address=request_address(request, settings),
    )
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


@router.get("/users", response_model=UserPage, tags=["users"])
def list_users(session: SessionDep, principal: PrincipalDep, page: PageDep) -> dict[str, Any]:
    """People who log in, by id (admins only)."""
    require(principal, "user.manage")
    result = users.list_users(session, limit=page.limit, offset=page.offset)
    return page_body(result, users.user_dict)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    tags=["users"],
    responses={409: {"description": "the last active admin cannot be disabled or demoted"}},
)
def update_user(
    user_id: PathId, body: UserPatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Disable or enable a user, change their role, unit or password (admins only).
    Audited; a disable or a new password revokes the user's earlier tokens. The last
    active admin cannot be disabled or demoted (409)."""
    require(principal, "user.manage")
    change = users.UserChange(
        active=body.active,
        role=body.role,
        unit_id=body.unit_id,
        unit_given="unit_id" in body.model_fields_set,
        password=body.password,
    )
    user = users.update_user(session, user_id, change, actor=principal.actor)
    result = users.user_dict(user)
    session.commit()
    return result


@router.get("/audit", response_model=AuditPage, tags=["audit"])
def list_audit(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    entity: Annotated[TextFilter, Query(max_length=40)] = None,
    entity_id: Annotated[TextFilter, Query(max_length=80)] = None,
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
def verify_audit(
    session: SessionDep, principal: PrincipalDep, settings: SettingsDep
) -> dict[str, Any]:
    """Check the whole audit chain: every link, and every checkpoint of this chain in
    EMERGENCY_AUDIT_CHECKPOINT_DIR (so rows cut from the end are found). Names every bad
    row (the first 1,000); changes not sealed yet are counted as pending, not as bad."""
    require(principal, "audit.read")
    report = audit_verify.verify(
        session, keyring(settings), checkpoint_dir=settings.audit_checkpoint_dir
    )
    return report.as_dict()
