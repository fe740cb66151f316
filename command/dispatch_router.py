"""HTTP for response plans, recommendations and dispatching."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field

from command import planning, plans, recommend, tasks, zones
from command.schemas import DispatchRequest, IncidentType, Severity, TaskRead
from core.errors import InvalidInput
from core.security import require
from core.validate import Id, Line, MultiLine, Seed, check_ref
from core.web import PathId, PrincipalDep, SessionDep, TextFilter, conflict, not_found
from gis.engine import SnapError
from gis.features import Strict
from gis.geojson import GeometryError, parse_geometry
from gis.router import closures_of, engine_of

router = APIRouter(prefix="/api")
log = logging.getLogger("emergency.dispatch")


class NeedIn(Strict):
    capability: str = Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    count: int = Field(ge=1, le=50)


class ResponsePlanIn(Strict):
    incident_type: IncidentType
    severity: Severity
    needs: list[NeedIn] = Field(min_length=1, max_length=20)
    note: MultiLine | None = Field(default=None, max_length=2000)


class ResponsePlanRead(BaseModel):
    id: int
    incident_type: str
    severity: str
    needs: list[dict[str, Any]]
    note: str | None
    updated_at: str


@router.get("/response-plans", response_model=list[ResponsePlanRead], tags=["response plans"])
def list_response_plans(
    session: SessionDep,
    principal: PrincipalDep,
    incident_type: Annotated[TextFilter, Query(max_length=40)] = None,
) -> list[dict[str, Any]]:
    """Response plans (预案): what each incident type and severity needs."""
    require(principal, "read")
    return [plans.plan_dict(p) for p in plans.list_plans(session, incident_type=incident_type)]


@router.post("/response-plans", response_model=ResponsePlanRead, tags=["response plans"])
def put_response_plan(
    body: ResponsePlanIn, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Create or replace the plan for an incident type and severity."""
    require(principal, "plan.write")
    if len({n.capability for n in body.needs}) != len(body.needs):
        raise InvalidInput("each capability may appear once in a plan")
    plan = plans.upsert_plan(
        session,
        incident_type=body.incident_type,
        severity=body.severity,
        needs=[n.model_dump() for n in body.needs],
        note=body.note,
        principal=principal,
    )
    session.commit()
    return plans.plan_dict(plan)


@router.get("/incidents/{incident_id}/recommendations", tags=["dispatch"])
def get_recommendations(
    incident_id: PathId,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=0, le=200)] = 10,
    closed_edges: Annotated[str | None, Query(description="edge ids to avoid")] = None,
    stale_after_s: Annotated[float, Query(gt=0, le=86_400)] = 900.0,
) -> JSONResponse:
    """Units ranked by drive time to fill the incident's response plan, each explained;
    units left out say why."""
    require(principal, "read")
    engine = engine_of(request)
    body = recommend.recommend_for(
        session,
        engine,
        incident_id,
        limit=limit,
        closures=closures_of(None, closed_edges, "wgs84"),
        stale_after_s=stale_after_s,
    )
    return JSONResponse(body)  # already JSON-safe: no second encoding pass


@router.post(
    "/incidents/{incident_id}/dispatch",
    status_code=status.HTTP_201_CREATED,
    response_model=list[TaskRead],
    tags=["dispatch"],
    responses=conflict("a unit is not available or listed twice; the incident is closed or a drill")
    | not_found("the incident, or a unit in `unit_ids`"),
)
def dispatch_units(
    incident_id: PathId,
    body: DispatchRequest,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
) -> list[dict[str, Any]]:
    """Assign units to the incident: all or nothing; a busy unit gives 409. What the system
    recommended is recorded next to the choice."""
    require(principal, "dispatch")
    proposed = None
    engine = getattr(request.app.state, "engine", None)
    if engine is not None:
        try:
            body_rec = recommend.recommend_for(session, engine, incident_id, limit=0)
            proposed = recommend.recommended_summary(body_rec)
        except (SnapError, ValueError) as exc:  # dispatch must not fail for want of advice
            log.warning("no recommendation recorded for incident %s: %s", incident_id, exc)
    created = tasks.dispatch(
        session,
        incident_id,
        body.unit_ids,
        principal=principal,
        note=body.note,
        recommended=proposed,
    )
    session.commit()
    return [tasks.task_dict(t) for t in created]


# --- plans for many at once ---------------------------------------------------------------
class CoverageIn(Strict):
    target_s: float = Field(gt=0, le=7200, description="each district within this of a free unit")
    grid: int = Field(default=6, ge=2, le=20, description="districts: grid x grid cells")


class DispatchPlanIn(Strict):
    incident_ids: list[Id] | None = Field(default=None, max_length=2000)
    coverage: CoverageIn | None = None
    time_limit_s: float = Field(default=1.0, gt=0, le=30)
    seed: Seed = 0


@router.post(
    "/dispatch/plan", tags=["dispatch"], responses=not_found("an incident in `incident_ids`")
)
def post_dispatch_plan(
    body: DispatchPlanIn, request: Request, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Assign available units to open incidents at once (priority-weighted drive time, plans
    filled, each unit once), never worse than greedy. A proposal: apply it by dispatching."""
    require(principal, "plan.run")
    return planning.plan_dispatch(
        session,
        engine_of(request),
        incident_ids=body.incident_ids,
        time_limit_s=body.time_limit_s,
        seed=body.seed,
        coverage_target_s=body.coverage.target_s if body.coverage else None,
        coverage_grid=body.coverage.grid if body.coverage else 6,
    )


def _demand_target(value: str) -> str:
    return check_ref(value, ("shelter", "incident"))


class SupplyDemandIn(Strict):
    target: Annotated[str, AfterValidator(_demand_target)] = Field(
        max_length=40,
        pattern=r"^(shelter|incident):[0-9]+$",
        description="shelter:<id> or incident:<id>",
    )
    item: str = Field(min_length=2, max_length=80, pattern=r"^[a-z][a-z0-9_]*$")
    quantity: int = Field(ge=1, le=10_000_000)


class FleetIn(Strict):
    warehouse_id: Id
    capacity: int = Field(ge=1, le=1_000_000)
    count: int = Field(default=1, ge=1, le=100)


class SuppliesIn(Strict):
    demands: list[SupplyDemandIn] = Field(min_length=1, max_length=500)
    fleet: list[FleetIn] = Field(default_factory=list, max_length=100)
    time_limit_s: float = Field(default=2.0, gt=0, le=30)
    seed: Seed = 0
    commit: bool = Field(default=False, description="reserve the allocated stock now")


@router.post(
    "/supplies/allocate",
    tags=["supplies"],
    responses=not_found("a shelter, incident or warehouse the body names")
    | conflict("with `commit`: the stock was taken since it was read; plan again"),
)
def post_supplies(
    body: SuppliesIn, request: Request, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Stock to demand points by drive time (min-cost flow), shortfalls reported; delivery
    routes for the fleet; with `commit`, the stock is reserved in the same transaction."""
    require(principal, "operations.write" if body.commit else "plan.run")
    result = planning.plan_supplies(
        session,
        engine_of(request),
        demands=[d.model_dump() for d in body.demands],
        fleet=[f.model_dump() for f in body.fleet],
        time_limit_s=body.time_limit_s,
        seed=body.seed,
        commit=body.commit,
        principal=principal,
    )
    session.commit()
    return result


class ZoneIn(Strict):
    """A zone to evacuate: its own area, or a warning zone's (``warning_zone_id``)."""

    id: Line = Field(min_length=1, max_length=80)
    geometry: dict[str, Any] | None = None
    warning_zone_id: Id | None = None
    population: int = Field(ge=0, le=10_000_000)
    needs_accessible: int = Field(default=0, ge=0, le=10_000_000)
    with_pets: int = Field(default=0, ge=0, le=10_000_000)


class EvacuationIn(Strict):
    zones: list[ZoneIn] = Field(min_length=1, max_length=500)
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    max_eta_s: float | None = Field(default=None, gt=0, le=86_400)
    commit: bool = Field(default=False, description="hold the shelter space now")


@router.post(
    "/evacuation/plan",
    tags=["evacuation"],
    responses=not_found("a warning zone named by `warning_zone_id`")
    | conflict("with `commit`: a shelter filled up since it was read; plan again"),
)
def post_evacuation(
    body: EvacuationIn, request: Request, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """People in zones (polygons with a population) to open shelters with room, by drive
    time, honouring accessibility and pets; who cannot be placed is reported. With `commit`,
    the shelters' planned arrivals are raised in the same transaction."""
    require(principal, "operations.write" if body.commit else "plan.run")
    shapes = []
    for z in body.zones:
        if z.needs_accessible + z.with_pets > z.population:
            raise InvalidInput(f"zone {z.id}: needs_accessible + with_pets exceed population")
        if (z.geometry is None) == (z.warning_zone_id is None):
            raise InvalidInput(f"zone {z.id}: give geometry or warning_zone_id (one of them)")
        if z.warning_zone_id is not None:
            shapes.append(zones.zone_area(session, z.warning_zone_id))
            continue
        try:
            shapes.append(
                parse_geometry(
                    z.geometry, allowed=("Point", "Polygon", "MultiPolygon"), crs=body.crs
                )
            )
        except GeometryError as exc:
            raise InvalidInput(f"zone {z.id}: {exc}") from exc
    if len({z.id for z in body.zones}) != len(body.zones):
        raise InvalidInput("zone ids must be unique")
    result = planning.plan_evacuation(
        session,
        engine_of(request),
        zones=[z.model_dump(exclude={"geometry"}) for z in body.zones],
        shapes=shapes,
        max_eta_s=body.max_eta_s,
        commit=body.commit,
        principal=principal,
    )
    session.commit()
    return result
