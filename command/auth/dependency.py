"""Who is calling, as a FastAPI dependency: the app binds it to core.web's PrincipalDep.

Routers in every layer (resources/, gis/ and command/'s rooms) declare ``PrincipalDep``;
core/ cannot know how people and machines sign in, so the app factory binds that
declaration to :func:`authenticated` (``app.dependency_overrides``) once, at start."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from command.auth import service as auth
from core.config import Settings
from core.errors import Unauthenticated
from core.security import Principal
from core.web import SessionDep


def authenticate(request: Request, session: Session, body: bytes) -> Principal:
    """Bearer token for people; X-Api-Key + X-Timestamp + X-Signature for machines."""
    settings: Settings = request.app.state.settings
    key_id = request.headers.get("x-api-key")
    if key_id:
        return auth.principal_from_api_key(
            session,
            key_id=key_id,
            timestamp=request.headers.get("x-timestamp", ""),
            signature=request.headers.get("x-signature", ""),
            body=body,
            secret_key=settings.secret_key,
            skew_s=settings.api_key_clock_skew_s,
            version=request.headers.get("x-signature-version", "1"),
            method=request.method,
            target=auth.request_target(request.scope),
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("send Authorization: Bearer <token> or an API key")
    return auth.principal_from_token(session, token.strip(), secret=settings.secret_key)


async def authenticated(request: Request, session: SessionDep) -> Principal:
    """The caller of this request (a person's bearer token or a machine's signed key)."""
    body = await request.body() if request.headers.get("x-api-key") else b""
    return await run_in_threadpool(authenticate, request, session, body)
