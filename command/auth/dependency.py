"""Who is calling, as a FastAPI dependency: the app binds it to core.web's PrincipalDep.

Routers in every layer (resources/, gis/ and command/'s rooms) declare ``PrincipalDep``;
core/ cannot know how people and machines sign in, so the app factory binds that
declaration to :func:`authenticated` (``app.dependency_overrides``) once, at start."""

from __future__ import annotations

import time

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


# Telemetry (positions) comes every second from every vehicle: a person's token, once
# checked against the database, is taken again for this long without a query. A disabled
# user's or a revoked token's positions are refused within this time; everything else is
# checked every time.
TELEMETRY_TOKEN_TTL_S = 1.0
_MAX_REMEMBERED = 20_000


class TokenMemory:
    """Bearer tokens checked in the last ``ttl_s``, and their callers (per process)."""

    def __init__(self, ttl_s: float = TELEMETRY_TOKEN_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._seen: dict[str, tuple[float, Principal]] = {}

    def get(self, token: str) -> Principal | None:
        found = self._seen.get(token)
        if found is None:
            return None
        until, principal = found
        if time.monotonic() >= until:
            del self._seen[token]
            return None
        return principal

    def put(self, token: str, principal: Principal, expires_at: float) -> None:
        if len(self._seen) >= _MAX_REMEMBERED:
            self._seen.clear()
        # Never past the token's own expiry.
        left = min(self.ttl_s, expires_at - time.time())
        if left > 0:
            self._seen[token] = (time.monotonic() + left, principal)


def _checked(request: Request, body: bytes) -> Principal:
    with request.app.state.sessionmaker() as session:
        return authenticate(request, session, body)


async def authenticated_telemetry(request: Request) -> Principal:
    """The caller of a telemetry route: a machine's signed key is checked in full (its
    nonce must be used once); a person's bearer token is remembered for
    ``TELEMETRY_TOKEN_TTL_S`` once checked. No session is held by the request."""
    if request.headers.get("x-api-key"):
        body = await request.body()
        return await run_in_threadpool(_checked, request, body)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("send Authorization: Bearer <token> or an API key")
    memory: TokenMemory | None = getattr(request.app.state, "token_memory", None)
    if memory is None:
        memory = request.app.state.token_memory = TokenMemory()
    principal = memory.get(token)
    if principal is None:
        principal = await run_in_threadpool(_checked, request, b"")
        memory.put(token, principal, auth.token_expiry(token))
    return principal
