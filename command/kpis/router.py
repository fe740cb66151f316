"""HTTP for the KPIs: one GET, every figure computed by the server."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from command.kpis import service
from command.kpis.schemas import KpisRead, TargetsRead
from core.security import require
from core.types import utcnow
from core.web import PrincipalDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api")


@router.get("/kpis/targets", response_model=TargetsRead, tags=["kpis"])
def read_targets(principal: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """The response targets (DESIGN "Targets", EMERGENCY_TARGET_*), in seconds: what the
    console's timers count against. Every role (they are not figures about anyone)."""
    require(principal, "read")
    return service.targets_read(service.target_table(settings))


@router.get("/kpis", response_model=KpisRead, tags=["kpis"])
def read_kpis(
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    since: Annotated[
        datetime | None, Query(description="ISO 8601 with offset; default until - 24 h")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="ISO 8601 with offset; default now")
    ] = None,
    drill: Annotated[bool, Query(description="drill incidents only (default: real only)")] = False,
    drill_id: Annotated[
        int | None, Query(ge=1, description="one tabletop drill's incidents (implies drill)")
    ] = None,
) -> dict[str, Any]:
    """Figures for incidents reported in [since, until) (at most 366 days): counts by status
    and type, reported -> dispatched -> first on scene percentiles (s), 处置及时率 against
    the targets (which the answer includes), and now: unit availability, shelter occupancy,
    stock below its low-water mark. Every staff role; not responders."""
    require(principal, "kpis.read")
    return service.kpis(
        session,
        since=since,
        until=until,
        drill=drill,
        drill_id=drill_id,
        table=service.target_table(settings),
        now=utcnow(),
    )
