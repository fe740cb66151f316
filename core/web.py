"""FastAPI dependencies shared by every router: session, caller, paging, bbox."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core.config import Settings
from core.errors import InvalidInput
from core.security import Principal
from core.validate import MAX_ID, Line

# Ids in paths and filters: anything past a bigint is a 422 here, not a database error.
PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 .. 2^63-1)")]
IdFilter = Annotated[int | None, Query(ge=1, le=MAX_ID, description="only rows with this id")]
# A text filter: pair with Query(max_length=...), e.g. Annotated[TextFilter, Query(...)].
TextFilter = Line | None


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request; rolled back on any error, so nothing is half-written.

    Opened and (once committed) closed on the event loop: neither talks to the database
    then, and a sync generator would cost two trips through the thread pool per request
    (a quarter of an audited write's CPU). Rolling back and closing a session still in a
    transaction do talk to the database: those go to the thread pool."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    except BaseException:
        await run_in_threadpool(session.rollback)
        raise
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_principal() -> Principal:
    """The caller. A declaration: core/ cannot know how callers sign in, so the app binds
    it to its authenticator (``app.dependency_overrides[get_principal]``,
    command/auth/dependency.py). An app that forgot to is refused loudly, not opened."""
    raise RuntimeError("no authenticator bound to core.web.get_principal")


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_telemetry_principal() -> Principal:
    """The caller of a telemetry route (positions): bound by the app like
    :func:`get_principal`, to an authenticator that may remember a person's verified token
    for a second (a fix a second per vehicle must not cost a database query each)."""
    raise RuntimeError("no authenticator bound to core.web.get_telemetry_principal")


TelemetryPrincipalDep = Annotated[Principal, Depends(get_telemetry_principal)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="a retried request with the same key returns the first answer",
    ),
]


StatusFilter = Annotated[
    str | None, Query(max_length=200, description="one status or several, comma-separated")
]


def parse_statuses(value: str | None, allowed: tuple[str, ...]) -> list[str] | None:
    """A ``StatusFilter``'s value as a list (None: no filter), each one of ``allowed``."""
    if not value:
        return None
    wanted = [s.strip() for s in value.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown status {unknown[0]!r}; one of {', '.join(allowed)}")
    return wanted


class PageParams:
    """``limit`` and ``offset`` query parameters, bounded by the settings."""

    def __init__(
        self,
        settings: SettingsDep,
        limit: Annotated[int | None, Query(ge=1, description="page size")] = None,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> None:
        self.limit = min(limit or settings.page_limit_default, settings.page_limit_max)
        self.offset = offset


PageDep = Annotated[PageParams, Depends()]


def bbox_param(
    bbox: Annotated[
        str | None, Query(description="minLon,minLat,maxLon,maxLat (WGS-84)", max_length=200)
    ] = None,
) -> tuple[float, float, float, float] | None:
    return None if bbox is None else parse_bbox(bbox)


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    """Parse ``minLon,minLat,maxLon,maxLat`` (WGS-84 degrees), checking order and range."""
    parts = value.split(",")
    if len(parts) != 4:
        raise InvalidInput("bbox must be minLon,minLat,maxLon,maxLat")
    try:
        west, south, east, north = (float(p) for p in parts)
    except ValueError as exc:
        raise InvalidInput("bbox values must be numbers") from exc
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise InvalidInput("bbox values must be finite")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InvalidInput("bbox longitude out of range [-180, 180]")
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InvalidInput("bbox latitude out of range [-90, 90]")
    if west > east or south > north:
        raise InvalidInput("bbox must be minLon,minLat,maxLon,maxLat with min <= max")
    return west, south, east, north


BBoxDep = Annotated[tuple[float, float, float, float] | None, Depends(bbox_param)]


class GeoJSONResponse(JSONResponse):
    """GeoJSON (RFC 7946), as ``application/geo+json``: the ``response_class`` of every
    route that answers a Feature or a FeatureCollection, so OpenAPI says so too. A list
    route returns one itself: its dicts are already JSON-safe, so lists skip the
    response-model pass (half the time of a 1,000-feature page); `response_model` still
    documents the shape."""

    media_type = "application/geo+json"


Responses = dict[int | str, dict[str, Any]]


def conflict(why: str) -> Responses:
    """A route's 409, for ``responses=`` (command/openapi.py adds the error body)."""
    return {409: {"description": f"conflict: {why}"}}


def not_found(why: str) -> Responses:
    """A route's 404 for a row its body names (path ids are documented by themselves)."""
    return {404: {"description": f"not found: {why}"}}
