"""HTTP: tabletop drills: start one on the server, read its clock and injects, stop it.

``POST /api/drills/tabletop`` runs the drill's clock in a background thread of this server
process (as ``emergency drill start --live`` does in the foreground); the server stopping
stops the drill (its report is stored). Console: ``/screen?drill=<id>`` over ``drill:<id>``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from command.drills import tabletop
from core.security import require
from core.web import PathId, PrincipalDep, SessionDep, conflict, not_found

log = logging.getLogger("emergency.drills.tabletop")


class Clocks:
    """The tabletop clocks this server process runs: one thread each."""

    def __init__(self) -> None:
        self.closing = threading.Event()
        self.threads: dict[int, threading.Thread] = {}

    def sleep(self, seconds: float) -> None:
        if self.closing.wait(seconds):
            raise tabletop.StopClock

    def start(self, sessions: sessionmaker[Session], drill_id: int) -> None:
        def run() -> None:
            try:
                status_ = tabletop.run_clock(
                    sessions, drill_id, sleep=self.sleep,
                    on_inject=lambda i: log.info("drill %s: inject %s", drill_id, i),
                )  # fmt: skip
                log.info("drill %s: %s", drill_id, status_)
            except Exception:  # the drill stays running; `drill stop` ends it
                log.exception("drill %s: the clock failed", drill_id)
            finally:
                self.threads.pop(drill_id, None)

        thread = threading.Thread(target=run, name=f"tabletop-{drill_id}", daemon=True)
        self.threads[drill_id] = thread
        thread.start()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self.closing.set()
        for thread in list(self.threads.values()):
            thread.join(timeout_s)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    clocks: Clocks | None = getattr(app.state, "tabletop_clocks", None)
    if clocks is not None:
        await run_in_threadpool(clocks.shutdown)
        app.state.tabletop_clocks = None


router = APIRouter(prefix="/api/drills", tags=["drills"], lifespan=lifespan)


def clocks_of(request: Request) -> Clocks:
    clocks: Clocks | None = getattr(request.app.state, "tabletop_clocks", None)
    if clocks is None:
        clocks = request.app.state.tabletop_clocks = Clocks()
    return clocks


async def raw_body(request: Request) -> bytes:
    return await request.body()


_POST_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/tabletop",
    status_code=status.HTTP_201_CREATED,
    response_model=dict[str, Any],
    openapi_extra=_POST_DOC,
    responses={
        415: {"description": "not application/json or application/yaml"},
        422: {"description": "the scenario cannot run; `details` lists each problem"},
    },
)
def post_tabletop(
    body: Annotated[bytes, Depends(raw_body)],
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    speed: Annotated[float, Query(gt=0, le=100_000, description="x real time")] = 1.0,
) -> dict[str, Any]:
    """Start a tabletop drill of a scenario (JSON or YAML, as for `POST /api/drills`; no
    server files): stand-in units mirror the fleet, and this server injects the scenario's
    incidents into the drill's scope as its clock (`speed` x real time) reaches them."""
    from command.drills.schemas import read_scenario

    require(principal, "drill.run")
    scenario = read_scenario(body, request.headers.get("content-type"))
    drill = tabletop.start(session, scenario, speed=speed, principal=principal)
    session.commit()
    clocks_of(request).start(request.app.state.sessionmaker, drill.id)
    return tabletop.tabletop_state(drill)


@router.get(
    "/{drill_id:int}/tabletop",
    response_model=dict[str, Any],
    responses=conflict("the drill is a simulation run") | not_found("the drill"),
)
def get_tabletop(drill_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """A tabletop drill's clock (simulated seconds since its start, `speed` x real time)
    and its injects: counts, the last done (with their incident ids) and the next pending."""
    require(principal, "drill.watch")
    return tabletop.tabletop_state(tabletop.get_tabletop(session, drill_id))


@router.post(
    "/{drill_id:int}/stop",
    response_model=dict[str, Any],
    responses=conflict("the drill is not running, or is a simulation run") | not_found("the drill"),
)
def post_stop(drill_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Stop a running tabletop drill: its clock freezes, no more injects, its incidents
    can no longer be dispatched, and its report is stored (`GET /api/drills/{id}/report`)."""
    require(principal, "drill.run")
    drill = tabletop.stop(session, drill_id, principal=principal)
    session.commit()
    return tabletop.tabletop_state(drill)
