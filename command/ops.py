"""Operations routes: /healthz for load balancers and /metrics for Prometheus.

Who may read /metrics: clients from the allowed networks, or holders of the token.

The metrics name routes, roles, queue depths and error counts: a map of the system for
whoever reads them, so they are not public. The client address is the one uvicorn
reports: behind a reverse proxy, the proxy's X-Forwarded-For when uvicorn trusts the
proxy (EMERGENCY_TRUSTED_PROXIES), else the proxy's own address, which is often loopback.
So a request that came through a proxy (it carries a forwarding header) is never let in by
address: it needs the token. Prometheus on the host itself asks directly, with none.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from command import openapi
from command.client_address import in_networks
from core.config import Settings
from core.errors import Forbidden, Unauthenticated
from core.metrics import registry
from core.web import SettingsDep
from realtime.hub import Hub

router = APIRouter(tags=["ops"])


def _token_matches(authorization: str, token: str | None) -> bool:
    scheme, _, sent = authorization.partition(" ")
    if token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), token.encode())


FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")


def check_metrics_access(
    settings: Settings, *, host: str | None, authorization: str, forwarded: bool
) -> None:
    """Pass, or raise Unauthenticated (a token is configured) or Forbidden (none is).
    ``forwarded``: the request carries a forwarding header (came through a proxy)."""
    if _token_matches(authorization, settings.metrics_token):
        return
    if not forwarded and in_networks(host, settings.metrics_allow):
        return
    if settings.metrics_token is not None:
        raise Unauthenticated("send Authorization: Bearer <EMERGENCY_METRICS_TOKEN>")
    raise Forbidden("metrics are served only to EMERGENCY_METRICS_ALLOW networks")


def get_hub(request: Request) -> Hub | None:
    """The realtime hub, or None when realtime is off (or the app has not started)."""
    hub: Hub | None = request.app.state.hub
    return hub


@router.get("/healthz", responses=openapi.HEALTH_RESPONSES)
def healthz(request: Request) -> JSONResponse:
    """Liveness, database readiness (PostGIS version) and the realtime bus.

    503 when the database is unreachable; 200 with status "degraded" when only the
    bus's LISTEN connection is down (events then arrive by polling, a little later).
    """
    hub = get_hub(request)
    realtime = hub.status() if hub is not None else {"enabled": False}
    try:
        # Its own session, not the request dependency's: health must answer (503) even
        # when the session cannot be opened.
        with request.app.state.sessionmaker() as session:
            postgis = session.scalar(select(func.postgis_lib_version()))
            session.execute(text("SELECT 1"))
    except Exception as exc:  # health must answer, whatever broke
        body = {"status": "down", "database": str(exc)[:200], "realtime": realtime}
        return JSONResponse(body, 503)
    degraded = hub is not None and not hub.bus_status.listening
    return JSONResponse(
        {
            "status": "degraded" if degraded else "ok",
            "database": "ok",
            "postgis": postgis,
            "realtime": realtime,
        }
    )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus metrics, for the allowed networks or the metrics token."""
    check_metrics_access(
        settings,
        host=request.client.host if request.client else None,
        authorization=request.headers.get("authorization", ""),
        forwarded=any(h in request.headers for h in FORWARDING_HEADERS),
    )
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
