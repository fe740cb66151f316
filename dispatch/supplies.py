"""Supplies: warehouse stock to demand points, then delivery routes.

Two pure solvers, data -> model -> solve -> extract, over frozen dataclasses and numpy
drive-time matrices (seconds, ``inf`` = unreachable):

- :func:`allocate`: per item, an exact min-cost flow (OR-Tools ``SimpleMinCostFlow``) from
  warehouse stock to demands on drive time. It meets as much demand as the stock and the
  roads allow (maximum flow) and, among those plans, the one with the least
  ``sum(quantity * eta_s)``. What cannot be met comes back as :class:`Shortfall`.
- :func:`plan_routes`: a capacitated vehicle routing problem (OR-Tools routing). Each vehicle
  starts and ends at its depot (a warehouse location) and may only carry stops loaded at
  that depot. Stops no vehicle can take are dropped and reported, never raised.

The caller turns shipments into stops. A stop whose load exceeds the capacity of every
vehicle at its depot must be split into several stops by the caller (one per vehicle load);
:func:`plan_routes` only reports such a stop as unserved.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.graph.python import min_cost_flow

FloatArray = NDArray[np.float64]

COST_SCALE = 1000  # allocation costs in milliseconds: exact for eta_s given to 1 ms
TIME_SCALE = 10  # routing transits in tenths of a second
_INT_BUDGET = 2**60  # keep every scaled sum clear of int64 overflow


# --- allocation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Demand:
    """A demand point's need: ``quantity`` units of ``item`` (``id`` e.g. ``"shelter:3"``)."""

    id: str
    item: str
    quantity: int  # units, > 0 (0 is accepted and asks for nothing)


@dataclass(frozen=True)
class StockLine:
    """Units of ``item`` available at one warehouse (several lines for one pair add up)."""

    warehouse_id: int
    item: str
    quantity: int  # units, >= 0


@dataclass(frozen=True)
class AllocationProblem:
    """Demands against stock. ``eta_s[w, d]``: drive time (s) from ``warehouse_ids[w]`` to
    ``demands[d]``; ``inf`` = unreachable."""

    demands: tuple[Demand, ...]
    warehouse_ids: tuple[int, ...]
    stock: tuple[StockLine, ...]
    eta_s: FloatArray  # (n_warehouses, n_demands), seconds


@dataclass(frozen=True)
class Shipment:
    warehouse_id: int
    demand_id: str
    item: str
    quantity: int  # units
    eta_s: float  # drive time warehouse -> demand point, seconds


@dataclass(frozen=True)
class Shortfall:
    """Units of a demand left unmet. ``reason``: ``"no stock"`` (no warehouse holds the
    item), ``"unreachable"`` (stock exists, none of it can reach the demand) or
    ``"insufficient stock"`` (the reachable stock ran out)."""

    demand_id: str
    item: str
    missing: int  # units
    reason: str


@dataclass(frozen=True)
class Allocation:
    shipments: tuple[Shipment, ...]
    shortfalls: tuple[Shortfall, ...]
    cost: float  # sum of quantity * eta_s over shipments, unit-seconds
    seconds: float  # wall time of the solve


def allocate(problem: AllocationProblem) -> Allocation:
    """Allocate warehouse stock to demands by exact min-cost flow on drive time.

    For every item separately: warehouses (supply = stock) and demands (sink = quantity)
    joined by an arc wherever ``eta_s`` is finite, cost ``round(eta_s * COST_SCALE)``
    (milliseconds, scaled down only if the sums would overflow int64). OR-Tools'
    ``solve_max_flow_with_min_cost`` ships the maximum number of units and, among such
    plans, the cheapest one. Stock is never exceeded.

    Parameters
    ----------
    problem : AllocationProblem
        Demands, warehouses, stock lines and the warehouse x demand drive-time matrix (s).

    Returns
    -------
    Allocation
        Shipments (in demand order, then warehouse order), shortfalls with a reason, the
        cost ``sum(quantity * eta_s)`` in unit-seconds and the wall time (s).

    Raises
    ------
    ValueError
        On a matrix of the wrong shape, NaN or negative times, negative quantities, unknown
        or repeated warehouse ids, or a repeated (demand id, item).
    """
    started = time.perf_counter()
    stock = _check_allocation(problem)
    eta = np.asarray(problem.eta_s, dtype=np.float64)
    by_item: dict[str, list[int]] = defaultdict(list)
    for d, demand in enumerate(problem.demands):
        if demand.quantity > 0:
            by_item[demand.item].append(d)
    sent: dict[str, NDArray[np.int64]] = {}  # per item: units [warehouse, demand]
    for item, idx in by_item.items():
        supply = stock.get(item, np.zeros(len(problem.warehouse_ids), dtype=np.int64))
        sent[item] = np.zeros((len(problem.warehouse_ids), len(problem.demands)), np.int64)
        need = [problem.demands[d].quantity for d in idx]
        sent[item][:, idx] = _flow_one_item(supply, need, eta[:, idx])
    shipments: list[Shipment] = []
    shortfalls: list[Shortfall] = []
    for d, demand in enumerate(problem.demands):
        if demand.quantity == 0:
            continue
        units = sent[demand.item][:, d]
        shipments.extend(
            Shipment(
                problem.warehouse_ids[w],
                demand.id,
                demand.item,
                int(units[w]),
                float(eta[w, d]),
            )
            for w in np.flatnonzero(units)
        )
        missing = demand.quantity - int(units.sum())
        if missing > 0:
            supply = stock.get(demand.item, np.zeros(1, dtype=np.int64))
            reachable = np.isfinite(eta[:, d]) & (supply > 0)
            reason = (
                "no stock"
                if not supply.any()
                else "unreachable"
                if not reachable.any()
                else "insufficient stock"
            )
            shortfalls.append(Shortfall(demand.id, demand.item, missing, reason))
    cost = math.fsum(s.quantity * s.eta_s for s in shipments)
    return Allocation(tuple(shipments), tuple(shortfalls), cost, time.perf_counter() - started)


def _check_allocation(problem: AllocationProblem) -> dict[str, NDArray[np.int64]]:
    """Validate; return the stock per item as a vector over ``warehouse_ids``."""
    n_w, n_d = len(problem.warehouse_ids), len(problem.demands)
    eta = np.asarray(problem.eta_s)
    if eta.shape != (n_w, n_d):
        raise ValueError(
            f"eta_s has shape {eta.shape}, expected (n_warehouses, n_demands) = ({n_w}, {n_d})"
        )
    if np.isnan(eta).any() or (eta < 0).any():
        raise ValueError("eta_s must be >= 0 seconds (inf for unreachable), not NaN or negative")
    if len(set(problem.warehouse_ids)) != n_w:
        raise ValueError("warehouse_ids must not repeat")
    seen: set[tuple[str, str]] = set()
    for demand in problem.demands:
        if demand.quantity < 0:
            raise ValueError(f"demand {demand.id!r} ({demand.item}) has a negative quantity")
        if (demand.id, demand.item) in seen:
            raise ValueError(f"demand {demand.id!r} asks for {demand.item!r} twice")
        seen.add((demand.id, demand.item))
    rank = {w: i for i, w in enumerate(problem.warehouse_ids)}
    stock: dict[str, NDArray[np.int64]] = {}
    for line in problem.stock:
        if line.quantity < 0:
            raise ValueError(f"stock of {line.item!r} at warehouse {line.warehouse_id} < 0")
        if line.warehouse_id not in rank:
            raise ValueError(f"stock line for unknown warehouse {line.warehouse_id}")
        vec = stock.setdefault(line.item, np.zeros(n_w, dtype=np.int64))
        vec[rank[line.warehouse_id]] += line.quantity
    return stock


def _flow_one_item(
    supply: NDArray[np.int64], need: list[int], eta_s: FloatArray
) -> NDArray[np.int64]:
    """Units sent ``[warehouse, demand]`` by a max-flow min-cost flow for one item."""
    n_w, n_d = eta_s.shape
    sent = np.zeros((n_w, n_d), dtype=np.int64)
    w_idx, d_idx = np.nonzero(np.isfinite(eta_s) & (supply[:, None] > 0))
    if len(w_idx) == 0:
        return sent
    times = eta_s[w_idx, d_idx]
    units = int(min(supply.sum(), sum(need)))
    # OR-Tools scales costs by (nodes + 1) internally; keep cost * flow within int64.
    worst = float(times.max()) * units * (n_w + n_d + 2) + 1.0
    scale = min(float(COST_SCALE), _INT_BUDGET / worst)
    cap = np.minimum(supply[w_idx], np.asarray(need, dtype=np.int64)[d_idx])
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        w_idx.astype(np.int32),
        (n_w + d_idx).astype(np.int32),
        cap.astype(np.int64),
        np.rint(times * scale).astype(np.int64),
    )
    flow.set_nodes_supplies(
        np.arange(n_w + n_d, dtype=np.int32),
        np.concatenate([supply, -np.asarray(need, dtype=np.int64)]).astype(np.int64),
    )
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:  # cannot happen with validated, scaled inputs
        raise RuntimeError(f"min-cost flow failed with status {status}")
    sent[w_idx, d_idx] = flow.flows(arcs)
    return sent


# --- routing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Vehicle:
    id: int
    depot: int  # index into the route problem's locations (a warehouse location)
    capacity: int  # units of load, same unit as Stop.load


@dataclass(frozen=True)
class Stop:
    """A delivery: ``load`` units picked up at location ``depot``, dropped at ``location``."""

    id: str  # e.g. a shipment key
    location: int  # index into locations
    load: int  # units, > 0
    depot: int  # the location the load comes from; only vehicles based there carry it


@dataclass(frozen=True)
class RouteProblem:
    locations: int  # number of locations
    time_s: FloatArray  # (locations, locations) drive times, seconds; inf = unreachable
    vehicles: tuple[Vehicle, ...]
    stops: tuple[Stop, ...]


@dataclass(frozen=True)
class VehicleRoute:
    vehicle_id: int
    stop_ids: tuple[str, ...]  # in visiting order
    load: int  # units carried out of the depot
    duration_s: float  # depot -> stops -> back to depot, seconds (0 for an idle vehicle)


@dataclass(frozen=True)
class RoutePlan:
    """Routes for every vehicle (input order, idle ones empty) and the stops left over.

    ``objective`` and ``first_objective`` are the solver's costs (drive time in tenths of a
    second plus a fixed penalty per dropped stop) of the final and the first plan.
    """

    routes: tuple[VehicleRoute, ...]
    unserved: tuple[str, ...]  # stop ids no vehicle could take (capacity/unreachable/depot)
    total_s: float  # sum of route durations, seconds
    first_solution_s: float  # wall time until the first feasible plan, seconds
    seconds: float  # wall time of the whole call
    status: str  # "optimal", "success", "partial", "timeout", "fail", "empty", ...
    objective: int = 0
    first_objective: int = 0


_STATUS = {
    0: "not solved",
    1: "success",
    2: "partial",
    3: "fail",
    4: "timeout",
    5: "invalid",
    6: "infeasible",
    7: "optimal",
}


def plan_routes(problem: RouteProblem, *, time_limit_s: float = 2.0, seed: int = 0) -> RoutePlan:
    """Plan capacitated delivery routes with OR-Tools routing.

    Every vehicle starts and ends at its depot. A stop may only go on a vehicle whose depot
    is the stop's depot, with the capacity for its load, and with finite drive times depot
    -> stop -> depot; others are reported unserved up front. The rest enter the model with
    a drop penalty larger than any detour, so a stop is dropped only when no route can take
    it (capacity used up). Transit is ``round(time_s * TIME_SCALE)``; unreachable arcs are
    removed from the model. First solution by PATH_CHEAPEST_ARC, then guided local search
    until ``time_limit_s``.

    Parameters
    ----------
    problem : RouteProblem
        Locations, the location x location drive-time matrix (s), vehicles and stops.
    time_limit_s : float
        Wall-time budget of the search, seconds.
    seed : int
        0 keeps the stops' input order; another value shuffles, reproducibly, the order
        they enter the model, which only breaks ties between equally good moves. Runs are
        repeatable up to the time limit: a slower machine may stop the search earlier.

    Returns
    -------
    RoutePlan
        Never raises for infeasibility: unservable stops are listed in ``unserved``.

    Raises
    ------
    ValueError
        On a matrix of the wrong shape, NaN or negative times, out-of-range locations,
        non-positive loads, negative capacities or repeated ids.
    """
    started = time.perf_counter()
    times = _check_routes(problem)
    n_veh = len(problem.vehicles)
    allowed = {
        s: [
            v
            for v, veh in enumerate(problem.vehicles)
            if veh.depot == stop.depot and veh.capacity >= stop.load
        ]
        for s, stop in enumerate(problem.stops)
        if np.isfinite(times[stop.depot, stop.location])
        and np.isfinite(times[stop.location, stop.depot])
    }
    served = [s for s, vs in allowed.items() if vs]
    if seed:
        served = [served[i] for i in np.random.default_rng(seed).permutation(len(served))]
    if not served:
        return _plan(problem, [[] for _ in range(n_veh)], times, started, started, "empty")
    depots = sorted({veh.depot for veh in problem.vehicles})
    node_loc = depots + [problem.stops[s].location for s in served]
    node_of_depot = {loc: i for i, loc in enumerate(depots)}
    ends = [node_of_depot[veh.depot] for veh in problem.vehicles]
    manager = pywrapcp.RoutingIndexManager(len(node_loc), n_veh, ends, ends)
    routing = pywrapcp.RoutingModel(manager)
    _build_model(routing, manager, problem, times, node_loc, served, allowed, len(depots))

    first: list[float] = []

    def on_solution() -> None:
        if not first:
            first.extend([time.perf_counter(), float(routing.CostVar().Value())])

    routing.AddAtSolutionCallback(on_solution)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromMilliseconds(max(1, round(time_limit_s * 1000)))
    solution = routing.SolveWithParameters(params)
    status = _STATUS.get(int(routing.status()), str(routing.status()))
    if solution is None:
        return _plan(problem, [[] for _ in range(n_veh)], times, started, started, status)
    visits: list[list[int]] = []
    for v in range(n_veh):
        index, seq = solution.Value(routing.NextVar(routing.Start(v))), []
        while not routing.IsEnd(index):
            seq.append(served[manager.IndexToNode(index) - len(depots)])
            index = solution.Value(routing.NextVar(index))
        visits.append(seq)
    first_at = first[0] if first else time.perf_counter()
    plan = _plan(problem, visits, times, started, first_at, status)
    first_cost = int(first[1]) if first else int(solution.ObjectiveValue())
    return RoutePlan(
        plan.routes,
        plan.unserved,
        plan.total_s,
        plan.first_solution_s,
        time.perf_counter() - started,
        status,
        int(solution.ObjectiveValue()),
        first_cost,
    )


def _build_model(
    routing: Any,
    manager: Any,
    problem: RouteProblem,
    times: FloatArray,
    node_loc: list[int],
    served: list[int],
    allowed: dict[int, list[int]],
    n_depots: int,
) -> None:
    """Transit costs, capacity dimension, allowed vehicles, removed arcs, drop penalties."""
    sub = times[np.ix_(node_loc, node_loc)]
    finite = np.isfinite(sub)
    ticks = np.rint(np.where(finite, sub, 0.0) * TIME_SCALE).astype(np.int64)
    penalty = int(4 * ticks.max() + 1_000)  # more than any detour: serve whenever feasible
    ticks[~finite] = penalty  # never used: those arcs are removed below
    # Node-indexed matrices are evaluated natively: no Python call in the search loop.
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(ticks.tolist()))
    loads = [0] * n_depots + [problem.stops[s].load for s in served]
    load_cb = routing.RegisterUnaryTransitVector(loads)
    routing.AddDimensionWithVehicleCapacity(
        load_cb, 0, [max(0, veh.capacity) for veh in problem.vehicles], True, "load"
    )
    for k, s in enumerate(served):
        index = manager.NodeToIndex(n_depots + k)
        # SetAllowedVehiclesForIndex's Span argument does not convert in the 9.15 wrapper;
        # restricting VehicleVar is the same constraint (-1 keeps "unperformed" open).
        routing.VehicleVar(index).SetValues([-1, *allowed[s]])
        routing.AddDisjunction([index], penalty)
    if finite.all():
        return
    indices: dict[int, list[int]] = defaultdict(list)  # node -> solver indices
    for index in range(routing.Size() + routing.vehicles()):
        indices[int(manager.IndexToNode(index))].append(index)
    for node_i, node_j in zip(*np.nonzero(~finite), strict=True):
        for i in indices[int(node_i)]:
            if routing.IsEnd(i):
                continue
            var = routing.NextVar(i)
            for j in indices[int(node_j)]:
                if not routing.IsStart(j):
                    var.RemoveValue(j)


def _plan(
    problem: RouteProblem,
    visits: list[list[int]],
    times: FloatArray,
    started: float,
    first_at: float,
    status: str,
) -> RoutePlan:
    routes = []
    for veh, seq in zip(problem.vehicles, visits, strict=True):
        path = [veh.depot] + [problem.stops[s].location for s in seq] + [veh.depot]
        duration = float(times[path[:-1], path[1:]].sum()) if seq else 0.0
        routes.append(
            VehicleRoute(
                veh.id,
                tuple(problem.stops[s].id for s in seq),
                sum(problem.stops[s].load for s in seq),
                duration,
            )
        )
    done = {s for seq in visits for s in seq}
    unserved = tuple(stop.id for s, stop in enumerate(problem.stops) if s not in done)
    now = time.perf_counter()
    return RoutePlan(
        tuple(routes),
        unserved,
        math.fsum(r.duration_s for r in routes),
        first_at - started,
        now - started,
        status,
    )


def _check_routes(problem: RouteProblem) -> FloatArray:
    """Validate; return the time matrix as float64."""
    n = problem.locations
    times = np.asarray(problem.time_s, dtype=np.float64)
    if times.shape != (n, n):
        raise ValueError(
            f"time_s has shape {times.shape}, expected (locations, locations) = ({n}, {n})"
        )
    if np.isnan(times).any() or (times < 0).any():
        raise ValueError("time_s must be >= 0 seconds (inf for unreachable), not NaN or negative")
    if len({v.id for v in problem.vehicles}) != len(problem.vehicles):
        raise ValueError("vehicle ids must not repeat")
    if len({s.id for s in problem.stops}) != len(problem.stops):
        raise ValueError("stop ids must not repeat")
    for veh in problem.vehicles:
        if not 0 <= veh.depot < n:
            raise ValueError(f"vehicle {veh.id} has depot {veh.depot} outside 0..{n - 1}")
        if veh.capacity < 0:
            raise ValueError(f"vehicle {veh.id} has a negative capacity")
    for stop in problem.stops:
        if not (0 <= stop.location < n and 0 <= stop.depot < n):
            raise ValueError(f"stop {stop.id!r} refers to a location outside 0..{n - 1}")
        if stop.load <= 0:
            raise ValueError(f"stop {stop.id!r} has load {stop.load}; loads must be > 0")
    return times
