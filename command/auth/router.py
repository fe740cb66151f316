"""HTTP for logging in, who-am-I and managing users."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from command.auth import users
from command.auth.login import Logins, get_logins, request_address
from command.auth.schemas import Me, TokenRequest, TokenResponse, UserPage, UserPatch, UserRead
from core.query import page_body
from core.security import require
from core.web import PageDep, PathId, PrincipalDep, SessionDep

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
