"""HTTP for recommendations, multi-incident dispatch plans, supply allocation and
evacuation plans."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from command.planning import recommendations
from command.planning import service as planning
from command.planning.schemas import (
    DispatchPlanIn,
    DispatchPlanRead,
    EvacuationIn,
    EvacuationPlanRead,
    RecommendationsRead,
    SuppliesIn,
    SuppliesPlanRead,
)
from command.zones import service as zones
from core.errors import InvalidInput
from core.security import require
from core.web import PathId, PrincipalDep, SessionDep, conflict, not_found
from gis.geojson import GeometryError, parse_geometry
from gis.router import closures_of, engine_of

router = APIRouter(prefix="/api")
log = logging.getLogger("emergency.dispatch")


# The JSONResponse returned is sent as is (not validated again): the model documents it.
@router.get(
    "/incidents/{incident_id}/recommendations",
    response_model=RecommendationsRead,
    tags=["dispatch"],
)
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
    body = recommendations.recommend_for(
        session,
        engine,
        incident_id,
        limit=limit,
        closures=closures_of(None, closed_edges, "wgs84"),
        stale_after_s=stale_after_s,
    )
    return JSONResponse(body)  # already JSON-safe: no second encoding pass


@router.post(
    "/dispatch/plan",
    response_model=DispatchPlanRead,
    tags=["dispatch"],
    responses=not_found("an incident in `incident_ids`"),
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


@router.post(
    "/supplies/allocate",
    response_model=SuppliesPlanRead,
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


@router.post(
    "/evacuation/plan",
    response_model=EvacuationPlanRead,
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
