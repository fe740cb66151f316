"""Run a scenario: every policy on every replication, in parallel processes, into a report.

The unit of work is one (replication, policy) pair. Each replication's calls are drawn from
its own seeds, so a pair gives the same result wherever it runs; results are put together in
(replication, policy) order, so the report does not depend on which worker finished first.
With ``workers > 1`` pairs run in a process pool whose workers each load the road network
once from the graph cache; with ``backend="dask"`` they run on a Dask cluster instead
(``uv sync --extra distributed``; ``address`` of a scheduler, or a local cluster).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from drills import kpis
from drills.calls import generate
from drills.engine import Simulation
from drills.policies import POLICIES
from drills.report import clean
from drills.scenario import Inject, Scenario, public
from drills.travel import Travel
from drills.world import Fleet, NetworkSource, target_table
from gis.engine import Engine

Progress = Callable[[float], None]


@dataclass
class RunResult:
    report: dict[str, Any]  # report.json (wall-clock figures only under "timing")
    replays: dict[str, dict[str, Any]]  # policy -> replication 0's timeline


# --- one pair ----------------------------------------------------------------------------
_ENGINE: Engine | None = None
_TRAVEL: Travel | None = None


def _engine_from(source: NetworkSource) -> Engine:
    from gis.network import load_gis_network, load_network
    from gis.profile import load_profile

    if source.mapping is not None:
        from gis.road_mapping import parse_mapping

        loaded = load_gis_network(
            source.path, parse_mapping(source.mapping), cache_dir=source.cache_dir
        )
    else:
        loaded = load_network(
            source.path, profile=load_profile(source.profile), cache_dir=source.cache_dir
        )
    return Engine(loaded.graph, ch=loaded.ch).prepare().warm()


def _init_worker(source: NetworkSource) -> None:
    global _ENGINE, _TRAVEL
    _ENGINE = _engine_from(source)
    _TRAVEL = Travel(_ENGINE)


def simulate_pair(
    scenario: Scenario,
    fleet: Fleet,
    injects: Sequence[Inject],
    replication: int,
    policy: str,
    travel: Travel | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """One replication under one policy: its KPIs, plots, timing and (replication 0) the
    replay timeline."""
    travel = travel or _TRAVEL
    if travel is None:
        raise RuntimeError("no road network in this worker")
    targets = target_table(scenario)
    calls = generate(scenario, replication, injects=injects)
    sim = Simulation(
        scenario, fleet, travel, calls,
        policy=POLICIES[policy](), targets=targets, replication=replication,
        record=replication == 0, progress=progress,
    )  # fmt: skip
    out = sim.run()
    result = kpis.replication(out, calls, scenario.start, targets)
    return {"policy": policy, "replication": replication, **result,
            "timeline": out.timeline, "timing": out.timing}  # fmt: skip


# --- the run -----------------------------------------------------------------------------
def run(
    scenario: Scenario,
    fleet: Fleet,
    network: NetworkSource | Engine,
    *,
    injects: Sequence[Inject] = (),
    replications: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    backend: str = "processes",
    address: str | None = None,
) -> RunResult:
    """Simulate every policy of ``scenario`` over its replications; see the module's doc."""
    started = time.perf_counter()
    reps = replications or scenario.replications
    if reps != scenario.replications:
        scenario = scenario.model_copy(update={"replications": reps})
    pairs = [(r, p) for r in range(reps) for p in scenario.policies]
    cold_s = 0.0
    results: dict[tuple[int, str], dict[str, Any]] = {}
    done = 0

    def finished(res: dict[str, Any]) -> None:
        nonlocal done
        results[(res["replication"], res["policy"])] = res
        done += 1
        if progress is not None:
            progress(done / len(pairs))

    if backend == "dask":
        from drills.distributed import run_on_dask

        if not isinstance(network, NetworkSource):
            raise ValueError("a Dask run loads the network in its workers: give a NetworkSource")
        for res in run_on_dask(scenario, fleet, injects, pairs, network, address):
            finished(res)
    elif workers <= 1 or len(pairs) == 1 or isinstance(network, Engine):
        if isinstance(network, Engine):
            engine = network
        else:
            t0 = time.perf_counter()
            engine = _engine_from(network)
            cold_s = time.perf_counter() - t0
        travel = Travel(engine)
        for r, p in pairs:
            inner = None
            if progress is not None:
                base = done
                inner = lambda f, base=base: progress((base + f) / len(pairs))  # noqa: E731
            finished(simulate_pair(scenario, fleet, injects, r, p, travel, inner))
    else:
        ctx = get_context("spawn")  # numba and threads do not survive fork
        n = min(workers, len(pairs), os.cpu_count() or 1)
        with ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_init_worker, initargs=(network,)
        ) as pool:
            futures = [pool.submit(simulate_pair, scenario, fleet, injects, r, p) for r, p in pairs]
            for f in as_completed(futures):
                finished(f.result())
    return _assemble(scenario, fleet, results, reps, time.perf_counter() - started, cold_s, workers)


def _assemble(
    scenario: Scenario,
    fleet: Fleet,
    results: dict[tuple[int, str], dict[str, Any]],
    reps: int,
    wall_s: float,
    cold_s: float,
    workers: int,
) -> RunResult:
    policies: dict[str, Any] = {}
    timing: dict[str, Any] = {
        "wall_s": wall_s,
        "network_load_s": cold_s,
        "workers": workers,
        "policies": {},
    }
    for p in scenario.policies:
        runs = [results[(r, p)] for r in range(reps)]
        policies[p] = kpis.across(runs)
        t = [x["timing"] for x in runs]
        wall = sum(x["wall_s"] for x in t)
        timing["policies"][p] = {
            "replication_wall_s": wall / reps,
            "sim_s_per_wall_s": scenario.duration_s * reps / wall if wall else None,
            "routing_share": sum(x["routing_s"] for x in t) / wall if wall else None,
            "dispatch_share": sum(x["dispatch_s"] for x in t) / wall if wall else None,
            "loop_share": sum(x["loop_s"] for x in t) / wall if wall else None,
            "searches_per_replication": sum(x["searches"] for x in t) / reps,
        }
    targets = target_table(scenario)
    report = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "replications": reps,
        "start": scenario.start.isoformat(),
        "duration_s": scenario.duration_s,
        "warmup_s": scenario.warmup_s,
        "fleet": {
            "stations": len(fleet.stations),
            "units": len(fleet.units),
            "hospitals": len(fleet.hospitals),
        },
        "targets": {
            "default": vars(targets.default),
            "by_type": {k: vars(v) for k, v in targets.overridden().items()},
        },
        "policies": policies,
        "spec": public(scenario),
        "timing": timing,
    }
    replays: dict[str, dict[str, Any]] = {
        p: clean(results[(0, p)]["timeline"]) for p in scenario.policies
    }
    return RunResult(clean(report), replays)
