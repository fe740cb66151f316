"""Supplies benchmark on Porto: 50 demands, 10 warehouses, 20 vehicles; first plan under 1 s.

Run with ``uv run python -m bench.supplies``. It

1. loads ../shared/data/osm/r5_porto_portugal.osm.pbf (cached after the first parse) and
   warms the engine;
2. picks seeded random junctions that can all reach each other (one strongly connected
   set, so no pair is ``inf``): 10 warehouses and 50 demand points, each demand asking for
   one of a few items, each warehouse holding random stock;
3. times the warehouse x demand drive-time matrix and :func:`dispatch.supplies.allocate`
   (median of 3 each);
4. turns the shipments into stops (split to the largest vehicle at their warehouse), times
   the 60 x 60 location matrix, and plans routes for 20 vehicles (2 per warehouse) with a
   5 s limit, three seeds: first-plan time, final objective against the first plan's,
   total drive time and unserved stops.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from bench.timing import median_time
from dispatch.supplies import (
    AllocationProblem,
    Demand,
    RoutePlan,
    RouteProblem,
    Shipment,
    StockLine,
    Stop,
    Vehicle,
    allocate,
    plan_routes,
)
from gis.engine import Engine, Snap
from gis.network import load_network

ROOT = Path(__file__).resolve().parents[1]
OSM = ROOT.parent / "shared" / "data" / "osm" / "r5_porto_portugal.osm.pbf"

SEED = 20_261_122
N_WAREHOUSES = 10
N_DEMANDS = 50
VEHICLES_PER_WAREHOUSE = 2
CAPACITIES = (40, 80)  # units, the two vehicles of each warehouse
ITEMS = ("water", "food", "blanket", "medkit")
TIME_LIMIT_S = 5.0
RUNS = 3
FIRST_PLAN_TARGET_S = 1.0


def _connected_nodes(engine: Engine, rng: np.random.Generator, need: int) -> list[int]:
    """``need`` random junctions all mutually reachable (through the first one)."""
    candidates = [int(n) for n in rng.choice(engine.graph.n_nodes, 3 * need, replace=False)]
    snaps = [engine.snap_node(n) for n in candidates]
    t = engine.matrix(snaps, snaps).durations_s
    anchor = int(np.argmax(np.isfinite(t).sum(axis=0) + np.isfinite(t).sum(axis=1)))
    linked = np.flatnonzero(np.isfinite(t[anchor]) & np.isfinite(t[:, anchor]))
    if len(linked) < need:
        raise RuntimeError(f"only {len(linked)} mutually reachable junctions, need {need}")
    return [candidates[i] for i in linked[:need]]


def _allocation_problem(rng: np.random.Generator, eta: np.ndarray) -> AllocationProblem:
    demands = tuple(
        Demand(
            f"shelter:{j}" if j % 3 else f"incident:{j}",
            str(rng.choice(ITEMS)),
            int(rng.integers(1, 25)),
        )
        for j in range(N_DEMANDS)
    )
    stock = tuple(
        StockLine(w, item, int(rng.integers(0, 30))) for w in range(N_WAREHOUSES) for item in ITEMS
    )
    return AllocationProblem(demands, tuple(range(N_WAREHOUSES)), stock, eta)


def _route_problem(
    alloc_problem: AllocationProblem, shipments: tuple[Shipment, ...], t_all: np.ndarray
) -> RouteProblem:
    """Locations: warehouses 0..9, then demand points; shipments split to vehicle size."""
    column = {d.id: j for j, d in enumerate(alloc_problem.demands)}
    vehicles = tuple(
        Vehicle(w * VEHICLES_PER_WAREHOUSE + k, w, CAPACITIES[k % len(CAPACITIES)])
        for w in range(N_WAREHOUSES)
        for k in range(VEHICLES_PER_WAREHOUSE)
    )
    biggest = max(CAPACITIES)
    stops = []
    for s in shipments:
        left, part = s.quantity, 0
        while left > 0:  # the caller's job: no stop bigger than a vehicle
            load = min(left, biggest)
            stops.append(
                Stop(
                    f"{s.warehouse_id}>{s.demand_id}/{s.item}#{part}",
                    N_WAREHOUSES + column[s.demand_id],
                    load,
                    s.warehouse_id,
                )
            )
            left, part = left - load, part + 1
    return RouteProblem(t_all.shape[0], t_all, vehicles, tuple(stops))


def main() -> None:
    t0 = time.perf_counter()
    loaded = load_network(OSM)
    engine = Engine(loaded.graph, ch=loaded.ch).warm()
    print(f"network: {loaded.graph.n_nodes:,} nodes, ready in {time.perf_counter() - t0:.1f} s")

    rng = np.random.default_rng(SEED)
    nodes = _connected_nodes(engine, rng, N_WAREHOUSES + N_DEMANDS)
    snaps: list[Snap] = [engine.snap_node(n) for n in nodes]
    wh, dem = snaps[:N_WAREHOUSES], snaps[N_WAREHOUSES:]

    eta_time, eta_m = median_time(lambda: engine.matrix(wh, dem))
    problem = _allocation_problem(rng, eta_m.durations_s)
    alloc_time, alloc = median_time(lambda: allocate(problem))
    all_time, all_m = median_time(lambda: engine.matrix(snaps, snaps))
    routes = _route_problem(problem, alloc.shipments, all_m.durations_s)

    plans: list[RoutePlan] = [
        plan_routes(routes, time_limit_s=TIME_LIMIT_S, seed=seed) for seed in range(RUNS)
    ]
    first = statistics.median(p.first_solution_s for p in plans)
    wanted = sum(d.quantity for d in problem.demands)
    shipped = sum(s.quantity for s in alloc.shipments)

    print(
        f"supplies: {N_DEMANDS} demands, {N_WAREHOUSES} warehouses, "
        f"{len(routes.vehicles)} vehicles, {len(ITEMS)} items (median of {RUNS})"
    )
    print(f"  {f'matrix {N_WAREHOUSES}x{N_DEMANDS}':<28}{eta_time * 1e3:8.1f} ms")
    print(f"  {'allocate (min-cost flow)':<28}{alloc_time * 1e3:8.1f} ms")
    print(
        f"    shipped {shipped}/{wanted} units in {len(alloc.shipments)} shipments, "
        f"{len(alloc.shortfalls)} shortfalls "
        f"({', '.join(sorted({f.reason for f in alloc.shortfalls})) or '-'}), "
        f"cost {alloc.cost / 3600:.1f} unit-hours"
    )
    print(f"  {f'matrix {len(snaps)}x{len(snaps)} (routing)':<28}{all_time * 1e3:8.1f} ms")
    print(f"  routes: {len(routes.stops)} stops, limit {TIME_LIMIT_S:.0f} s, seeds 0..{RUNS - 1}")
    for seed, p in enumerate(plans):
        gain = 1 - p.objective / p.first_objective if p.first_objective else 0.0
        print(
            f"    seed {seed}: first plan {p.first_solution_s * 1e3:7.1f} ms, "
            f"objective {p.first_objective:,} -> {p.objective:,} ({gain:.1%} better), "
            f"total {p.total_s / 60:.1f} min, unserved {len(p.unserved)}, "
            f"{p.status}, {p.seconds:.2f} s"
        )
    verdict = "PASS" if first < FIRST_PLAN_TARGET_S else "FAIL"
    print(
        f"  first plan (median) {first * 1e3:.1f} ms "
        f"(target < {FIRST_PLAN_TARGET_S:.0f} s): {verdict}"
    )


if __name__ == "__main__":
    main()
