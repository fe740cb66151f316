"""The single-position path as it was before issue 18 (``git show de89ea9:resources/service.py``:
``report_position``, ``report_position_once``, ``_position_due``, ``_publish_position``),
kept as ``bench.avl``'s peer "today's path".

Each position there is a whole audited transaction: the unit row locked and moved, a track
row, an audit row and an event (the live map's ``unit.position_reported``), committed
through the audit sealer, once per idempotency key. The copy below is that code as it
was; what changed under it is the table: the track row goes into migration 0013's
``unit_position`` (partitioned by day, key ``(unit_id, recorded_at)``, ``source``
defaulting to ``api``) through the same ORM class, which now maps that table. The
benchmark gives every fix of a unit its own ``recorded_at`` (at least a second apart), so
the old code's rows are valid rows there.

It is served by :func:`create_app` (the whole app of ``command.app.create_app`` plus
``POST /bench/legacy/units/{unit_id}/position``), run like ``emergency serve``:
``python -m bench.avl_legacy --port 8001 --workers 2``.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, status
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from core import crud, idempotency
from core.changes import record_change
from core.db import flush
from core.errors import InvalidInput
from core.security import Principal, require, require_unit
from core.types import utcnow
from core.web import IdempotencyKeyHeader, PathId, PrincipalDep, SessionDep
from gis.crs import to_wgs84
from resources.models import Unit, UnitPosition
from resources.schemas import PositionReport
from resources.service import UNITS, unit_topics

PATH = "/bench/legacy/units/{unit_id}/position"

# --- the old code (de89ea9:resources/service.py), verbatim ---------------------------------


def report_position(
    session: Session, unit_id: int, report: PositionReport, *, principal: Principal
) -> UnitPosition:
    """Append to the unit's track; move the unit only if this fix is its newest."""
    unit: Unit = crud.get(session, UNITS, unit_id, for_update=True)
    lon, lat = to_wgs84(report.lon, report.lat, report.crs)
    now = utcnow()
    recorded_at = report.recorded_at or now
    if recorded_at > now.replace(microsecond=0) and (recorded_at - now).total_seconds() > 300:
        raise InvalidInput("recorded_at is more than 5 minutes in the future")
    geom = from_shape(Point(lon, lat), srid=4326, extended=True)  # EWKB: exact
    fix = UnitPosition(
        unit_id=unit.id,
        geom=geom,
        recorded_at=recorded_at,
        speed_mps=report.speed_mps,
        heading_deg=report.heading_deg,
        accuracy_m=report.accuracy_m,
    )
    session.add(fix)
    newest = unit.position_at is None or recorded_at >= unit.position_at
    if newest:
        unit.geom = geom
        unit.position_at = recorded_at
    flush(session)
    if newest and _position_due(unit, now):
        _publish_position(session, unit, fix, principal=principal, now=now)
    return fix


def report_position_once(
    session: Session,
    unit_id: int,
    report: PositionReport,
    *,
    principal: Principal,
    key: str | None,
) -> dict[str, Any]:
    """Store one fix and commit (once per idempotency key); returns its receipt."""

    def work() -> dict[str, Any]:
        fix = report_position(session, unit_id, report, principal=principal)
        return {
            "unit_id": unit_id,
            "position_id": fix.id,
            "recorded_at": fix.recorded_at.isoformat(),
        }

    digest = idempotency.fingerprint("unit.position", unit_id, report.model_dump(mode="json"))
    return idempotency.once(session, actor=principal.actor, key=key, digest=digest, work=work)


# The live map gets at most one position per unit per second; the track keeps every fix,
# and a fix held back is published by `publish_held_positions` a second later.
POSITION_EVERY_S = 1.0


def _position_due(unit: Unit, now: datetime) -> bool:
    sent = unit.position_sent_wall
    return sent is None or (now - sent).total_seconds() >= POSITION_EVERY_S


def _publish_position(
    session: Session, unit: Unit, fix: UnitPosition, *, principal: Principal, now: datetime
) -> None:
    point = to_shape(fix.geom)
    unit.position_sent_at = fix.recorded_at
    unit.position_sent_wall = now
    payload = {
        "unit_id": unit.id,
        "callsign": unit.callsign,
        "status": unit.status,
        "lon": round(point.x, 7),
        "lat": round(point.y, 7),
        "recorded_at": fix.recorded_at.isoformat(),
        "speed_mps": fix.speed_mps,
        "heading_deg": fix.heading_deg,
    }
    record_change(
        session,
        actor=principal.actor,
        action="unit.position_reported",
        entity="unit",
        entity_id=unit.id,
        before=None,
        after=payload,
        topics=unit_topics(unit),
    )


# --- the old route (de89ea9:resources/router.py), under a bench-only path ---------------

router = APIRouter()


@router.post(PATH, status_code=status.HTTP_202_ACCEPTED, include_in_schema=False)
def post_unit_position(
    unit_id: PathId,
    body: PositionReport,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, Any]:
    require(principal, "unit.position")
    require_unit(principal, unit_id)
    return report_position_once(session, unit_id, body, principal=principal, key=idempotency_key)


def create_app() -> FastAPI:
    """The server's app with the old single-position route added (a uvicorn factory)."""
    from command.app import create_app as app_factory

    app = app_factory()
    app.include_router(router)
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve :func:`create_app` with the options ``emergency serve`` gives uvicorn."""
    import uvicorn

    from command.server import uvicorn_options
    from core.config import get_settings

    p = argparse.ArgumentParser(prog="python -m bench.avl_legacy")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    settings = get_settings()
    uvicorn.run(
        "bench.avl_legacy:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        **uvicorn_options(settings),
        proxy_headers=True,
        forwarded_allow_ips=list(settings.trusted_proxies),
        ws_max_size=settings.ws_max_frame_bytes,
        ws_ping_interval=settings.ws_heartbeat_s,
        ws_ping_timeout=settings.ws_heartbeat_s,
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    main()
