"""The app factory: builds the database, road engine, realtime hub and bus in lifespan,
and puts the rooms' routers together. Nothing heavy at import."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from command import errors, openapi, ops, pages, redact, roads
from command.audit.router import router as audit_router
from command.auth.dependency import authenticated, authenticated_telemetry
from command.auth.router import router as auth_router
from command.drills.router import router as drills_router
from command.drills.tabletop_router import router as tabletop_router
from command.exports.router import router as exports_router
from command.incidents.router import router as incidents_router
from command.intake.router import router as intake_router
from command.kpis.router import router as kpis_router
from command.live.actions import CommandActions, hub_config
from command.live.jobs import background_jobs, stop_task, track_jobs
from command.middleware import BodySizeLimit, InternalErrors, Metrics
from command.migrate import refuse_newer
from command.planning.router import router as planning_router
from command.response_plans.router import router as response_plans_router
from command.tasks.router import router as tasks_router
from command.zones.router import router as zones_router
from command.zones.service import road_closures
from core import checkpoint, gcstats
from core.changes import SEALER, keyring
from core.config import Settings, get_settings
from core.db import make_engine, make_sessionmaker
from core.sealer import Sealer
from core.web import get_principal, get_telemetry_principal
from gis.engine import Closures, Engine
from gis.graph import RoadGraph
from gis.places import router as places_router
from gis.router import router as routing_router
from gis.tiles import router as tiles_router
from realtime.bus import PgBus
from realtime.connection import endpoint as ws_endpoint
from realtime.hub import Hub
from realtime.protocol import Close
from resources.avl.router import router as avl_router
from resources.avl.writer import writer_for
from resources.imports.router import router as import_router
from resources.imports.service import KIND_NAMES as IMPORT_KINDS
from resources.router import router as resources_router

log = logging.getLogger("emergency")
GC_THRESHOLDS = (10_000, 10, 100)


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    graph: Engine | RoadGraph | None = None,
) -> FastAPI:
    """Build the app; tests pass their own settings, session factory and road graph
    (without one, the configured network is loaded from its cache at start-up)."""
    settings = settings or get_settings()
    redact.install()  # trackers' ids out of the access log (command/redact.py)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = None
        jobs: asyncio.Task[None] | None = None
        sealer: Sealer | None = None
        if session_factory is None:
            # Old code on a newer release's schema could write rows it reads wrong: refuse.
            await run_in_threadpool(refuse_newer, settings.database_url)
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
        # A server of its own (not a test's shared session): the track's partitions.
        track = (
            asyncio.create_task(track_jobs(app.state.sessionmaker, settings), name="track")
            if session_factory is None
            else None
        )
        if settings.realtime:
            hub = Hub(
                app.state.sessionmaker,
                CommandActions(
                    app.state.sessionmaker, settings, positions=lambda: writer_for(app.state)
                ),
                hub_config(settings),
            )
            app.state.hub = hub
            app.state.bus = PgBus(hub, settings.database_url)
            await app.state.bus.start()
            jobs = asyncio.create_task(
                background_jobs(hub, app.state.sessionmaker, settings), name="live-jobs"
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
            await stop_task(jobs)
            await app.state.bus.stop()
            app.state.hub.shutdown()
            app.state.hub = app.state.bus = None
        await stop_task(checkpoints)
        await stop_task(track)
        positions = getattr(app.state, "positions", None)
        if positions is not None:  # commit what is queued before the pool goes
            await run_in_threadpool(positions.stop)
            app.state.positions = None
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
        # /docs and /redoc are served by command/pages.py from vendored assets (offline).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
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

    app.dependency_overrides[get_principal] = authenticated  # command/auth/dependency.py
    app.dependency_overrides[get_telemetry_principal] = authenticated_telemetry
    errors.install(app)  # domain errors to HTTP, one table (command/errors.py)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        paths={
            "/api/alerts": settings.alert_max_bytes,
            "/api/positions": settings.positions_max_bytes,
            **{f"/api/import/{kind}": settings.import_max_bytes for kind in IMPORT_KINDS},
        },
    )
    app.add_middleware(Metrics)
    # Outermost of ours: whatever escapes the rest is answered as the JSON 500.
    app.add_middleware(InternalErrors)

    for router in (
        auth_router,
        audit_router,
        incidents_router,
        tasks_router,
        planning_router,
        response_plans_router,
        zones_router,
        intake_router,
        kpis_router,
        exports_router,
        drills_router,
        tabletop_router,
        avl_router,
        resources_router,
        import_router,
        tiles_router,
        routing_router,
        places_router,
        ops.router,
    ):
        app.include_router(router)
    app.add_api_websocket_route("/ws", ws_endpoint, name="realtime")
    pages.install(app)
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
