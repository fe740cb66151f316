"""HTTP: /api/drills (simulation runs: submit, status, report, replay, delete)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from command.drills import schemas, service
from command.drills.schemas import DrillDeleted, DrillDetail, DrillPage, DrillSubmitted
from core.security import require
from core.web import PageDep, PathId, PrincipalDep, Responses, SessionDep, conflict
from gis.router import engine_of


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Nothing to build at start (the runner is made on first use); at the end, the run
    in progress gives up and queued ones are dropped."""
    yield
    runner: service.DrillRunner | None = getattr(app.state, "drill_runner", None)
    if runner is not None:
        await run_in_threadpool(runner.shutdown)
        app.state.drill_runner = None


router = APIRouter(prefix="/api/drills", tags=["drills"], lifespan=lifespan)


def drill_runner(request: Request) -> service.DrillRunner:
    """The app's drill runner (made on first use, stopped with the app)."""
    runner: service.DrillRunner | None = getattr(request.app.state, "drill_runner", None)
    if runner is None:
        runner = service.DrillRunner(request.app.state.sessionmaker)
        request.app.state.drill_runner = runner
    return runner


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]

EXAMPLE = {
    "name": "Two more ambulances",
    "network": "loaded",
    "start": "2026-07-01T08:00:00+08:00",
    "duration_s": 86400,
    "seed": 7,
    "replications": 5,
    "policies": ["nearest", "move_up"],
    "targets": {"response_s": 480},
    "stations": "from_db",
    "units": "from_db",
    "response_plans": "from_db",
    "generators": [
        {"type": "medical", "severity": "moderate", "rate_per_h": 4.2,
         "points": [[24.94, 60.17]]}
    ],
}  # fmt: skip
_POST_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": EXAMPLE},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
_HTML: Responses = {200: {"content": {"text/html": {"schema": {"type": "string"}}}}}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DrillSubmitted,
    openapi_extra=_POST_DOC,
    responses={
        415: {"description": "not application/json or application/yaml"},
        422: {"description": "the scenario cannot run; `details` lists each problem "
              "(`field`, `message`), HTTP limits included"},
        503: {"description": "no road network loaded, or too many drills queued "
              "(busy: retry after `Retry-After` seconds)"},
    },
)  # fmt: skip
def post_drill(
    body: RawBody,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> JSONResponse:
    """Queue a simulation run of a scenario (DESIGN "Drills"), as JSON or YAML. Over HTTP
    it routes on the server's road network (`network: loaded`), reads no files (no `csv`
    generators, no `alerts`), and is bounded: at most 50 replications, 100 runs
    (replications x policies), 31 days and 1,000,000 incidents in all. `from_db` reads
    today's fleet now. 202 with the queued drill; poll `links.self` for its progress."""
    require(principal, "drill.run")
    scenario = schemas.read_scenario(body, request.headers.get("content-type"))
    engine = engine_of(request)  # network: loaded (503 when none is)
    answer = service.submit(
        session, drill_runner(request), scenario=scenario, network=engine, principal=principal
    )
    return JSONResponse(answer, status_code=202, headers={"Location": answer["links"]["self"]})


@router.get("", response_model=DrillPage)
def list_drills(session: SessionDep, principal: PrincipalDep, paging: PageDep) -> dict[str, Any]:
    """Drills (runs and tabletop exercises), newest first, without reports or replays."""
    require(principal, "drill.watch")
    return service.page(session, limit=paging.limit, offset=paging.offset)


@router.get("/{drill_id:int}", response_model=DrillDetail)
def get_drill(drill_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """A drill's status, progress (0..1), error, times, mode and scenario."""
    require(principal, "drill.watch")
    return service.drill_dict(service.get(session, drill_id), detail=True)


@router.get(
    "/{drill_id:int}/report",
    responses={**_HTML, **conflict("the drill has not finished (or failed)")},
    response_model=dict[str, Any],
)
def get_report(
    drill_id: PathId,
    session: SessionDep,
    principal: PrincipalDep,
    format: Annotated[Literal["json", "html"], Query(description="json or html")] = "json",
) -> Response:
    """report.json of a finished drill (`?format=html`: the report page with its plots)."""
    require(principal, "drill.watch")
    report = service.report(session, drill_id)
    if format == "html":
        from drills import html  # the report page: ECharts plots of report.json

        return HTMLResponse(html.render(report))
    return JSONResponse(report)


@router.get(
    "/{drill_id:int}/replay",
    response_model=dict[str, Any],
    responses={
        **conflict("the drill has no replay yet (not finished, or failed)"),
        404: {"description": "no such drill, or no replay of that policy (the message "
              "names the known ones)"},
    },
)  # fmt: skip
def get_replay(
    drill_id: PathId,
    session: SessionDep,
    principal: PrincipalDep,
    policy: Annotated[
        str | None, Query(max_length=40, description="default: the scenario's first policy")
    ] = None,
) -> JSONResponse:
    """The replay timeline of one policy (replication 0): stations, units, incidents and
    events in simulated seconds since `start`, for the big screen to play."""
    require(principal, "drill.watch")
    return JSONResponse(service.replay(session, drill_id, policy))


@router.delete(
    "/{drill_id:int}",
    response_model=DrillDeleted,
    responses=conflict("the drill is running, or a user is bound to one of its stand-ins"),
)
def delete_drill(drill_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Delete a drill with its incidents, calls, tasks, dispatch decisions, stand-in units
    and events. Its audit rows stay (the chain is append-only); the deletion is audited."""
    require(principal, "drill.run")
    counts = service.remove(session, drill_id, principal=principal)
    session.commit()
    return {"id": drill_id, "deleted": counts}
