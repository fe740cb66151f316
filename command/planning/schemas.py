"""Request and response shapes for recommendations, plans, supplies and evacuation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from command.response_plans.schemas import ResponsePlanRead
from core.validate import Id, Line, Seed, check_ref
from gis.features import Strict


# --- plans for many at once ---------------------------------------------------------------
class CoverageIn(Strict):
    target_s: float = Field(gt=0, le=7200, description="each district within this of a free unit")
    grid: int = Field(default=6, ge=2, le=20, description="districts: grid x grid cells")


class DispatchPlanIn(Strict):
    incident_ids: list[Id] | None = Field(default=None, max_length=2000)
    coverage: CoverageIn | None = None
    time_limit_s: float = Field(default=1.0, gt=0, le=30)
    seed: Seed = 0


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


# --- answers ------------------------------------------------------------------------------
# Drive times are in seconds, distances in metres, as the solvers in dispatch/ compute them.
Position = Annotated[list[float], Field(min_length=2, max_length=3)]


class LineStringRead(BaseModel):
    """A GeoJSON LineString, [lon, lat] in WGS-84 (simplified to about a metre)."""

    type: Literal["LineString"]
    coordinates: list[Position] = Field(min_length=2)


class RecommendedUnit(BaseModel):
    """A unit ranked for the incident: recommended (fills a plan line) or on standby."""

    unit_id: int
    callsign: str
    rank: int = Field(description="1 = first; recommended units come first")
    eta_s: float = Field(description="drive time to the incident, seconds (0.1 s)")
    distance_m: float = Field(description="driving distance to the incident, metres (0.1 m)")
    fills: str | None = Field(description="the plan line (capability) it fills, if recommended")
    recommended: bool
    why: str = Field(description="the reason, in words")
    type: str
    capabilities: list[str]
    status: str
    route: LineStringRead | None = Field(
        description="the drive to the incident, for recommended units; else null"
    )


class ExcludedUnit(BaseModel):
    """A unit that could have filled the plan but is left out, and why."""

    unit_id: int
    callsign: str
    reason: Literal[
        "busy",
        "out_of_service",
        "lacks_capability",
        "position_stale",
        "no_position",
        "unreachable",
        "inside_zone",
    ]
    why: str = Field(description="the reason, in words")


class CapabilityShortfall(BaseModel):
    """A plan line the eligible units cannot fill: ``missing`` units with ``capability``."""

    capability: str
    missing: int


class RecommendationsRead(BaseModel):
    incident_id: int
    already_sent: int = Field(
        description="units with an active task on the incident; the plan lines they fill "
        "are not recommended again"
    )
    response_plan: ResponsePlanRead | None = Field(
        description="the run card used (null: none, the fastest unit is recommended)"
    )
    recommendations: list[RecommendedUnit]
    excluded: list[ExcludedUnit] = Field(
        description="units left out with their reason (those lacking every needed capability "
        "are only counted in `excluded_counts`)"
    )
    excluded_counts: dict[str, int] = Field(description="units left out, per reason")
    unmet: list[CapabilityShortfall]
    computed_at: datetime


class PlannedAssignment(BaseModel):
    unit_id: int
    incident_id: int
    capability: str = Field(description="the need line it fills")
    eta_s: float = Field(description="drive time to the incident, seconds (0.1 s)")
    callsign: str


class UnmetNeed(BaseModel):
    incident_id: int
    capability: str
    missing: int = Field(description="units of the capability no one fills")


class DispatchPlanRead(BaseModel):
    """A proposal assigning units to incidents; nothing is dispatched."""

    assignments: list[PlannedAssignment]
    unmet: list[UnmetNeed]
    cost: float = Field(
        description="priority-weighted drive time, seconds, penalties for unmet slots included"
    )
    greedy_cost: float = Field(description="the same for the greedy nearest-first plan")
    solver: str = Field(description="min_cost_flow, lp, cp_sat or greedy")
    status: str = Field(description="optimal, feasible, greedy_fallback or greedy")
    seconds: float = Field(description="wall time of the solve, seconds")
    coverage_before: float | None = Field(
        description="share of districts covered by all units (with `coverage`)"
    )
    coverage_after: float | None = Field(
        description="share of districts covered by the units left unassigned"
    )
    incidents: list[int] = Field(description="the incidents planned for")
    units_considered: int
    matrix_seconds: float = Field(description="wall time of the drive-time matrix, seconds")
    better_than_greedy_by: float = Field(description="greedy_cost - cost")


class ShipmentRead(BaseModel):
    warehouse_id: int
    demand_id: str = Field(description="<index of the demand>:<target>, e.g. 0:shelter:3")
    item: str
    quantity: int
    eta_s: float = Field(description="drive time warehouse -> demand point, seconds")


class SupplyShortfall(BaseModel):
    demand_id: str
    item: str
    missing: int
    reason: Literal["no stock", "unreachable", "insufficient stock"]


class AllocationRead(BaseModel):
    shipments: list[ShipmentRead]
    shortfalls: list[SupplyShortfall]
    cost: float = Field(description="sum of quantity x eta_s, unit-seconds")
    seconds: float = Field(description="wall time of the solve, seconds")


class VehicleRouteRead(BaseModel):
    vehicle_id: int
    stop_ids: list[str] = Field(description="in visiting order")
    load: int = Field(description="units carried out of the depot")
    duration_s: float = Field(
        description="depot -> stops -> depot, seconds (0 for an idle vehicle)"
    )


class DeliveryRoutesRead(BaseModel):
    routes: list[VehicleRouteRead] = Field(description="one per vehicle, idle ones empty")
    unserved: list[str] = Field(description="stop ids no vehicle could take")
    total_s: float = Field(description="sum of route durations, seconds")
    first_solution_s: float = Field(description="wall time to the first plan, seconds")
    seconds: float = Field(description="wall time of the routing, seconds")
    status: str = Field(description="the routing solver's status, e.g. optimal, success, empty")
    objective: int = Field(description="solver cost of the plan (tenths of a second + drops)")
    first_objective: int = Field(description="the same for the first plan")


class PlanCommitted(BaseModel):
    plan_id: int = Field(description="the recorded plan whose reservation was made")


class SuppliesPlanRead(BaseModel):
    allocation: AllocationRead
    routes: DeliveryRoutesRead | None = Field(description="with a `fleet`; else null")
    committed: PlanCommitted | None = Field(description="with `commit`; else null")


class PlacementRead(BaseModel):
    zone_id: str
    shelter_id: int
    people: int
    group: Literal["general", "accessible", "pets"]
    eta_s: float = Field(description="drive time zone -> shelter, seconds")


class UnplacedRead(BaseModel):
    zone_id: str
    group: Literal["general", "accessible", "pets"]
    people: int
    reason: Literal[
        "unreachable",
        "no shelter within max_eta",
        "no accessible shelter within reach",
        "no pet-friendly shelter within reach",
        "no capacity",
    ]


class EvacuationSolution(BaseModel):
    placements: list[PlacementRead]
    unplaced: list[UnplacedRead]
    cost: float = Field(description="sum of people x eta_s, person-seconds")
    seconds: float = Field(description="wall time of the solve, seconds")
    status: str = Field(description="optimal")


class EvacuationPlanRead(BaseModel):
    plan: EvacuationSolution
    committed: PlanCommitted | None = Field(description="with `commit`; else null")
