"""The FastAPI app factory: nothing heavy at import; engine and sessions in lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from command import auth, live, openapi, roads
from command.alerts_router import router as alerts_router
from command.auth_router import router as auth_router
from command.cap import Unreadable, UnsupportedMedia
from command.dispatch_router import router as dispatch_router
from command.middleware import BodySizeLimit, InternalErrors, Metrics
from command.ops import FORWARDING_HEADERS, check_metrics_access
from command.router import router as command_router
from command.zones import road_closures
from command.zones import router as zones_router
from core import checkpoint, gcstats
from core.changes import SEALER, keyring
from core.config import Settings, get_settings
from core.db import integrity_error, make_engine, make_sessionmaker
from core.errors import (
    Busy,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from core.metrics import registry
from core.sealer import Sealer
from core.security import Principal
from gis.engine import Closures, Engine
from gis.graph import RoadGraph
from gis.router import router as routing_router
from gis.tiles import router as tiles_router
from realtime.bus import PgBus
from realtime.connection import endpoint as ws_endpoint
from realtime.hub import Hub
from realtime.protocol import Close
from resources.router import router as resources_router

log = logging.getLogger("emergency")
GC_THRESHOLDS = (10_000, 10, 100)
FRONTEND = Path(__file__).resolve().parent.parent / "frontend"

# Domain errors to HTTP, in one table (most specific class first).
ERROR_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (Unreadable, 400),
    (UnsupportedMedia, 415),
    (InvalidInput, 422),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (TooManyRequests, 429),
    (Unavailable, 503),
    (DomainError, 400),
)


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = next(code for cls, code in ERROR_STATUS if isinstance(exc, cls))
    response = error_response(status, exc.code, exc.message, exc.details)
    if isinstance(exc, TooManyRequests | Busy):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return error_response(422, "validation_error", f"{where}: {first['msg']}", errors)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {
        400: "unreadable",  # a body FastAPI could not decode (not UTF-8)
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }
    response = error_response(
        exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail)
    )
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        # Every method the path takes: the router's own header names only the first
        # route it matched (GET /api/incidents, not POST), or none at all.
        methods = openapi.allowed_methods(request.app, request.url.path)
        response.headers["Allow"] = ", ".join(methods)
    return response


def _integrity_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IntegrityError)
    return _domain_error(_, integrity_error(exc))


def _database_down(_: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable: %s", exc)
    return error_response(503, "database_unavailable", "the database is not reachable; retry")


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


async def authenticator(request: Request, session: Session) -> Principal:
    body = await request.body() if request.headers.get("x-api-key") else b""
    return await run_in_threadpool(authenticate, request, session, body)


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    graph: Engine | RoadGraph | None = None,
) -> FastAPI:
    """Build the app; tests pass their own settings, session factory and road graph
    (without one, the configured network is loaded from its cache at start-up)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = None
        jobs: asyncio.Task[None] | None = None
        sealer: Sealer | None = None
        if session_factory is None:
            db = make_engine(settings.database_url, pool_size=settings.db_pool_size)
            # The sealer's own connection: a committing request holds its pool connection
            # while it waits for the seal, so a full pool must not starve the sealer.
            sealer = Sealer(
                make_engine(settings.database_url, pool_size=1),
                keyring(settings),
                poll_s=settings.audit_seal_poll_s,
            )
            sealer.start()
            app.state.sessionmaker = make_sessionmaker(db, info={SEALER: sealer})
        checkpoints = _start_checkpoints(app, settings)
        if settings.realtime:
            hub = Hub(
                app.state.sessionmaker,
                live.CommandActions(app.state.sessionmaker, settings),
                live.hub_config(settings),
            )
            app.state.hub = hub
            app.state.bus = PgBus(hub, settings.database_url)
            await app.state.bus.start()
            jobs = asyncio.create_task(
                live.background_jobs(hub, app.state.sessionmaker, settings), name="live-jobs"
            )
        if app.state.engine is None:
            app.state.engine = await run_in_threadpool(
                roads.open_engine, settings, app.state.sessionmaker
            )
            # The road network is ~150,000 long-lived objects: keep them out of every
            # garbage collection (a full sweep over them took 200-300 ms, the p95 tail).
            gc.collect()
            gc.freeze()
        # Thousands of sockets are many long-lived objects: with the default thresholds a
        # full collection (~200 ms over 2,000 connections) ran every few seconds and was
        # the fan-out's p99. A larger young generation lets per-event garbage die young
        # (a young collection then takes ~10 ms; 50,000 made it ~50 ms).
        gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])
        gcstats.watch()
        yield
        if app.state.hub is not None:
            await app.state.hub.close_all(Close.RESTART, "server restarting")
            await live.stop_task(jobs)
            await app.state.bus.stop()
            app.state.hub.shutdown()
            app.state.hub = app.state.bus = None
        await live.stop_task(checkpoints)
        if sealer is not None:
            sealer.stop()
        if db is not None:
            db.dispose()

    app = FastAPI(
        title="Emergency command and dispatch (智慧应急指挥调度)",
        version="0.1.0",
        description=(
            "Incidents, units, shelters, warehouses and dispatch for a city's emergency "
            "management. Geometry is GeoJSON in WGS-84 (lon, lat); times are ISO 8601 with "
            "offset. Map data © OpenStreetMap contributors, ODbL 1.0."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.hub = None
    app.state.bus = None
    app.state.engine = Engine(graph) if isinstance(graph, RoadGraph) else graph
    if session_factory is not None:
        app.state.sessionmaker = session_factory

    def standing_closures() -> Closures:
        """Roads closed by active warning zones, for the routing endpoints (gis/)."""
        with app.state.sessionmaker() as session:
            return road_closures(session)

    app.state.standing_closures = standing_closures

    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        paths={"/api/alerts": settings.alert_max_bytes},
    )
    app.add_middleware(Metrics)
    # Outermost of ours: whatever escapes the rest is answered as the JSON 500.
    app.add_middleware(InternalErrors)

    app.include_router(auth_router)
    app.include_router(command_router)
    app.include_router(dispatch_router)
    app.include_router(zones_router)
    app.include_router(alerts_router)
    app.include_router(resources_router)
    app.include_router(tiles_router)
    app.include_router(routing_router)
    app.add_api_websocket_route("/ws", ws_endpoint, name="realtime")
    _add_ops_routes(app)
    openapi.install(app)  # every operation's errors and credentials (command/openapi.py)
    return app


def _start_checkpoints(app: FastAPI, settings: Settings) -> asyncio.Task[None] | None:
    """The audit chain's signed checkpoints, every ``audit_checkpoint_s`` (when a folder
    is set: without one, rows cut from the chain's end would go unseen; say so)."""
    directory = settings.audit_checkpoint_dir
    if directory is None:
        if settings.env != "test":
            log.warning("EMERGENCY_AUDIT_CHECKPOINT_DIR is not set: no audit checkpoints")
        return None
    job = checkpoint.every(
        app.state.sessionmaker, keyring(settings), directory, settings.audit_checkpoint_s
    )
    return asyncio.create_task(job, name="audit-checkpoints")


def _add_ops_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"], responses=openapi.HEALTH_RESPONSES)
    def healthz(request: Request) -> JSONResponse:
        """Liveness, database readiness (PostGIS version) and the realtime bus.

        503 when the database is unreachable; 200 with status "degraded" when only the
        bus's LISTEN connection is down (events then arrive by polling, a little later).
        """
        hub: Hub | None = request.app.state.hub
        realtime = hub.status() if hub is not None else {"enabled": False}
        try:
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

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus metrics, for the allowed networks or the metrics token (command/ops.py)."""
        check_metrics_access(
            request.app.state.settings,
            host=request.client.host if request.client else None,
            authorization=request.headers.get("authorization", ""),
            forwarded=any(h in request.headers for h in FORWARDING_HEADERS),
        )
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(FRONTEND / "index.html")

    @app.get("/screen", include_in_schema=False)
    def screen() -> FileResponse:
        """The command centre's big-screen live situation map."""
        return FileResponse(FRONTEND / "screen.html")

    @app.get("/responder", include_in_schema=False)
    def responder() -> FileResponse:
        """The responder's phone app (a PWA)."""
        return FileResponse(FRONTEND / "responder.html")

    @app.get("/sw.js", include_in_schema=False)
    def service_worker() -> FileResponse:
        """The responder app's service worker, served from the root so it may control
        /responder (and cache its shell for a flaky connection)."""
        return FileResponse(
            FRONTEND / "static" / "sw.js",
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
        )

    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
