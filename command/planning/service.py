"""Plans for many things at once: units to incidents, supplies to demand points, people to
shelters. Services gather the data and drive times; the pure solvers in ``dispatch`` decide;
committing a supply or evacuation plan reserves stock or shelter space in one transaction.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
from geoalchemy2.shape import to_shape
from shapely import Geometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from command.incidents.models import SEVERITIES, Incident
from command.incidents.service import location_of
from command.planning.models import PlanRecord
from command.response_plans import service as plans
from command.zones.service import road_closures
from core.db import flush
from core.errors import Conflict, InvalidInput, NotFound
from core.security import Principal
from dispatch import assign, evacuate, supplies
from gis.engine import Closures, Engine, Snap, SnapError
from resources import service as resources
from resources.models import Shelter, Stock, Unit, Warehouse

PRIORITY = {s: float(i + 1) for i, s in enumerate(SEVERITIES)}  # minor 1 .. extreme 4
OPEN = ("reported", "verified")


def _snap(engine: Engine, lon: float, lat: float, what: str) -> Snap:
    try:
        return engine.snap(lon, lat)
    except SnapError as exc:
        raise InvalidInput(f"{what}: {exc}") from exc


def _point(geom: Any) -> tuple[float, float]:
    p = to_shape(geom)
    return float(p.x), float(p.y)


# --- many incidents at once ---------------------------------------------------------------
def plan_dispatch(
    session: Session,
    engine: Engine,
    *,
    incident_ids: list[int] | None,
    time_limit_s: float,
    seed: int,
    coverage_target_s: float | None,
    coverage_grid: int,
) -> dict[str, Any]:
    """A proposal assigning available units to open incidents (applying it is a dispatch)."""
    stmt = select(Incident).where(Incident.drill.is_(False)).order_by(Incident.id)
    if incident_ids:
        stmt = stmt.where(Incident.id.in_(incident_ids))
    else:
        # An alert's incident without a usable location waits for a person (needs_review).
        stmt = stmt.where(Incident.status.in_(OPEN), Incident.location.is_not(None))
    incidents = list(session.scalars(stmt))
    if incident_ids and len(incidents) != len(set(incident_ids)):
        missing = sorted(set(incident_ids) - {i.id for i in incidents})
        raise NotFound(f"incident {missing[0]} not found")
    units = [
        u
        for u in session.scalars(
            select(Unit)
            .where(Unit.status.in_(("available", "returning")), resources.in_scope(None))
            .order_by(Unit.id)
        )
        if u.geom is not None
    ]
    started = time.perf_counter()
    inc_snaps = [_snap(engine, *_located(i), f"incident {i.id}") for i in incidents]
    unit_snaps, kept = [], []
    for u in units:
        try:
            unit_snaps.append(engine.snap(*_point(u.geom)))
            kept.append(u)
        except SnapError:
            continue
    matrix = engine.matrix(unit_snaps, inc_snaps, closures=road_closures(session))
    matrix_s = time.perf_counter() - started
    demands = tuple(
        assign.IncidentDemand(
            i.id,
            PRIORITY[i.severity],
            tuple(
                assign.Need(line.capability, line.count)
                for line in plans.lines(plans.plan_for(session, i.type, i.severity))
            ),
        )
        for i in incidents
    )
    supplies_ = tuple(assign.UnitSupply(u.id, frozenset(u.capabilities)) for u in kept)
    coverage = None
    if coverage_target_s is not None and kept:
        coverage = _coverage(
            engine, unit_snaps, coverage_target_s, coverage_grid, road_closures(session)
        )
    problem = assign.AssignProblem(demands, supplies_, matrix.durations_s, coverage=coverage)
    plan = assign.solve(problem, time_limit_s=time_limit_s, seed=seed)
    callsign = {u.id: u.callsign for u in kept}
    body = asdict(plan)
    for a in body["assignments"]:
        a["callsign"] = callsign[a["unit_id"]]
        a["eta_s"] = round(a["eta_s"], 1)
    body.update(
        incidents=[i.id for i in incidents],
        units_considered=len(kept),
        matrix_seconds=round(matrix_s, 4),
        better_than_greedy_by=round(plan.greedy_cost - plan.cost, 1),
    )
    return body


def _coverage(
    engine: Engine, unit_snaps: list[Snap], target_s: float, grid: int, closures: Closures
) -> assign.Coverage:
    """Districts: a grid over the road network; covered = some unit reaches its centre."""
    west, south, east, north = engine.graph.bbox()
    xs = np.linspace(west, east, grid + 1)
    ys = np.linspace(south, north, grid + 1)
    centres, ids = [], []
    for i in range(grid):
        for j in range(grid):
            lon, lat = (xs[i] + xs[i + 1]) / 2, (ys[j] + ys[j + 1]) / 2
            try:
                centres.append(engine.snap(float(lon), float(lat), max_m=2000))
                ids.append(f"{i}-{j}")
            except SnapError:
                continue  # no road in that cell: not a district to cover
    times = engine.matrix(unit_snaps, centres, closures=closures).durations_s
    return assign.Coverage(tuple(ids), times <= target_s, target_s)


# --- supplies -----------------------------------------------------------------------------
def _demand_point(session: Session, target: str) -> tuple[float, float]:
    kind, _, raw = target.partition(":")
    if kind not in ("shelter", "incident") or not raw.isdigit():
        raise InvalidInput(f"demand target {target!r} must be shelter:<id> or incident:<id>")
    if kind == "shelter":
        shelter = session.get(Shelter, int(raw))
        if shelter is None:
            raise NotFound(f"shelter {raw} not found")
        return _point(shelter.geom)
    incident = session.get(Incident, int(raw))
    if incident is None:
        raise NotFound(f"incident {raw} not found")
    return _located(incident)


def _located(incident: Incident) -> tuple[float, float]:
    return _point(location_of(incident))


def plan_supplies(
    session: Session,
    engine: Engine,
    *,
    demands: list[dict[str, Any]],
    fleet: list[dict[str, Any]],
    time_limit_s: float,
    seed: int,
    commit: bool,
    principal: Principal,
) -> dict[str, Any]:
    """Allocate warehouse stock to demands by drive time, route a fleet, optionally reserve."""
    houses = list(session.scalars(select(Warehouse).order_by(Warehouse.id)))
    if not houses:
        raise InvalidInput("no warehouses")
    points = [_demand_point(session, d["target"]) for d in demands]
    house_snaps = [_snap(engine, *_point(w.geom), f"warehouse {w.id}") for w in houses]
    demand_snaps = [
        _snap(engine, lon, lat, d["target"]) for (lon, lat), d in zip(points, demands, strict=True)
    ]
    closures = road_closures(session)
    eta = engine.matrix(house_snaps, demand_snaps, closures=closures).durations_s
    items = {d["item"] for d in demands}
    stock = [
        supplies.StockLine(s.warehouse_id, s.item, int(s.quantity))
        for s in session.scalars(select(Stock).where(Stock.item.in_(items)))
    ]
    problem = supplies.AllocationProblem(
        tuple(
            supplies.Demand(f"{i}:{d['target']}", d["item"], d["quantity"])
            for i, d in enumerate(demands)
        ),
        tuple(w.id for w in houses),
        tuple(stock),
        eta,
    )
    allocation = supplies.allocate(problem)
    body: dict[str, Any] = {"allocation": asdict(allocation), "routes": None, "committed": None}
    if fleet:
        body["routes"] = _routes(
            engine,
            houses,
            house_snaps,
            demand_snaps,
            allocation,
            fleet,
            time_limit_s,
            seed,
            closures,
        )
    if commit:
        record = _reserve(session, allocation, body, demands, principal)
        body["committed"] = {"plan_id": record.id}
    return body


def _routes(
    engine: Engine,
    houses: list[Warehouse],
    house_snaps: list[Snap],
    demand_snaps: list[Snap],
    allocation: supplies.Allocation,
    fleet: list[dict[str, Any]],
    time_limit_s: float,
    seed: int,
    closures: Closures,
) -> dict[str, Any]:
    """Delivery routes: locations are warehouses then demand points; loads split to fit."""
    index = {w.id: i for i, w in enumerate(houses)}
    every = house_snaps + demand_snaps
    times = engine.matrix(every, every, closures=closures).durations_s
    vehicles: list[supplies.Vehicle] = []
    for f in fleet:
        if f["warehouse_id"] not in index:
            raise NotFound(f"warehouse {f['warehouse_id']} not found")
        for _ in range(f["count"]):
            vehicles.append(
                supplies.Vehicle(len(vehicles) + 1, index[f["warehouse_id"]], f["capacity"])
            )
    biggest = {
        d: max((v.capacity for v in vehicles if v.depot == d), default=0) for d in index.values()
    }
    stops = []
    for n, s in enumerate(allocation.shipments):
        depot = index[s.warehouse_id]
        target = len(houses) + int(s.demand_id.split(":", 1)[0])
        left, part = s.quantity, 0
        size = biggest[depot] or s.quantity
        while left > 0:
            load = min(left, size)
            stops.append(supplies.Stop(f"{n}.{part}", target, load, depot))
            left -= load
            part += 1
    plan = supplies.plan_routes(
        supplies.RouteProblem(
            len(houses) + len(demand_snaps), times, tuple(vehicles), tuple(stops)
        ),
        time_limit_s=time_limit_s,
        seed=seed,
    )
    return asdict(plan)


def _reserve(
    session: Session,
    allocation: supplies.Allocation,
    body: dict[str, Any],
    demands: list[dict[str, Any]],
    principal: Principal,
) -> PlanRecord:
    """Take the shipped quantities out of stock, atomically: a line that no longer holds
    enough (another plan took it meanwhile) aborts the whole commit with 409."""
    totals: dict[tuple[int, str], int] = {}
    for s in allocation.shipments:
        totals[(s.warehouse_id, s.item)] = totals.get((s.warehouse_id, s.item), 0) + s.quantity
    for (warehouse_id, item), quantity in sorted(totals.items()):  # one lock order for all
        try:
            resources.reserve_stock(session, warehouse_id, item, quantity, principal=principal)
        except (Conflict, NotFound) as exc:  # taken or gone since the plan was made
            raise Conflict(f"{exc.message}; plan again") from exc
    record = PlanRecord(
        kind="supplies",
        actor=principal.actor,
        request={"demands": demands},
        plan=body["allocation"],
    )
    session.add(record)
    flush(session)
    return record


# --- evacuation ---------------------------------------------------------------------------
def plan_evacuation(
    session: Session,
    engine: Engine,
    *,
    zones: list[dict[str, Any]],
    shapes: list[Geometry],
    max_eta_s: float | None,
    commit: bool,
    principal: Principal,
) -> dict[str, Any]:
    """People in zones to open shelters with room, by drive time; optionally reserve space."""
    shelters = list(
        session.scalars(select(Shelter).where(Shelter.status == "open").order_by(Shelter.id))
    )
    zone_snaps = [
        _snap(engine, *_xy(shape.representative_point()), f"zone {z['id']}")
        for z, shape in zip(zones, shapes, strict=True)
    ]
    reachable, shelter_snaps = [], []
    for s in shelters:
        try:
            shelter_snaps.append(engine.snap(*_point(s.geom)))
            reachable.append(s)
        except SnapError:
            continue
    eta = engine.matrix(zone_snaps, shelter_snaps, closures=road_closures(session)).durations_s
    problem = evacuate.EvacuationProblem(
        tuple(
            evacuate.Zone(
                z["id"], z["population"], z.get("needs_accessible", 0), z.get("with_pets", 0)
            )
            for z in zones
        ),
        tuple(
            evacuate.ShelterSpace(
                s.id,
                max(0, s.capacity - s.occupancy - s.planned_arrivals),
                s.accessible,
                s.pets_allowed,
            )
            for s in reachable
        ),
        eta.reshape(len(zones), len(reachable)),
        max_eta_s=max_eta_s if max_eta_s is not None else np.inf,
    )
    plan = evacuate.solve(problem)
    body: dict[str, Any] = {"plan": asdict(plan), "committed": None}
    if commit:
        body["committed"] = {"plan_id": _hold_space(session, plan, zones, principal).id}
    return body


def _xy(point: Any) -> tuple[float, float]:
    return float(point.x), float(point.y)


def _hold_space(
    session: Session,
    plan: evacuate.EvacuationPlan,
    zones: list[dict[str, Any]],
    principal: Principal,
) -> PlanRecord:
    """Add the placed people to shelters' planned arrivals, never past capacity."""
    per_shelter: dict[int, int] = {}
    for p in plan.placements:
        per_shelter[p.shelter_id] = per_shelter.get(p.shelter_id, 0) + p.people
    for shelter_id, people in sorted(per_shelter.items()):  # one lock order for all
        try:
            resources.hold_shelter_space(session, shelter_id, people, principal=principal)
        except (Conflict, NotFound) as exc:  # filled or gone since the plan was made
            raise Conflict(f"{exc.message}; plan again") from exc
    record = PlanRecord(
        kind="evacuation", actor=principal.actor, request={"zones": zones}, plan=asdict(plan)
    )
    session.add(record)
    flush(session)
    return record
