"""The drill benchmark's peer: nearest-idle dispatch written the textbook SimPy way.

``simpy.Environment``; one process feeds the calls and one process per call; the units are
items of a ``simpy.FilterStore`` (in the store = idle at its station). A call, once decided,
takes the idle unit whose station has the least drive time to it, read from a precomputed
stations x demand-junctions matrix, or else waits for the first unit back (first come,
first served). The unit turns out, drives, works on scene, drives back to its station and
only then is idle again: no unit is sent while on its way home, nothing is moved, no
transport. It runs on the drill's own call stream (``drills.calls.generate``: same times,
places, dispatch delay, turnout and time on scene of the first unit sent) and the drill's
own drive-time tables (``drills.travel.Travel``), so the two differ only by the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from drills.calls import generate
from drills.scenario import Scenario
from drills.travel import Travel
from drills.world import Fleet


@dataclass
class Matrix:
    """Drive seconds between the stations and every junction, both ways."""

    out_s: np.ndarray  # [station, junction]: station -> junction
    back_s: np.ndarray  # [station, junction]: junction -> station
    seconds: float  # wall time to compute it


def matrix(travel: Travel, fleet: Fleet) -> Matrix:
    started = time.perf_counter()
    lon = np.array([s.lon for s in fleet.stations])
    lat = np.array([s.lat for s in fleet.stations])
    nodes = travel.nodes(lon, lat)
    out = np.vstack([travel.from_place(int(n)) for n in nodes])
    back = np.vstack([travel.to_place(int(n)) for n in nodes])
    return Matrix(out, back, time.perf_counter() - started)


@dataclass
class _Unit:
    index: int
    station: int


def simulate(
    scenario: Scenario, fleet: Fleet, travel: Travel, m: Matrix, replication: int
) -> dict[str, Any]:
    """One replication: response times (reported -> on scene) and the wall time it took."""
    started = time.perf_counter()
    calls = generate(scenario, replication)
    nodes = travel.nodes(calls.lon, calls.lat)
    out = m.out_s[:, nodes]  # [station, call]
    back = m.back_s[:, nodes]
    env = simpy.Environment()
    idle = simpy.FilterStore(env, capacity=len(fleet.units))
    idle.items.extend(_Unit(k, u.station) for k, u in enumerate(fleet.units))
    response = np.full(len(calls), np.nan)
    queued = np.zeros(len(calls), dtype=bool)

    def call(k: int) -> Any:
        yield env.timeout(float(calls.dispatch_delay_s[k]))
        if idle.items:
            best = min(idle.items, key=lambda u: (out[u.station, k], u.index))
            unit = yield idle.get(lambda u: u is best)
        else:
            queued[k] = True
            unit = yield idle.get()
        yield env.timeout(float(calls.turnout_s[k, 0]) + float(out[unit.station, k]))
        response[k] = env.now - calls.t_s[k]
        yield env.timeout(float(calls.on_scene_s[k, 0]) + float(back[unit.station, k]))
        yield idle.put(unit)

    def source() -> Any:
        for k, t in enumerate(calls.t_s):
            yield env.timeout(float(t) - env.now)
            env.process(call(k))

    env.process(source())
    env.run(until=scenario.duration_s)
    answered = response[~np.isnan(response)]
    return {
        "wall_s": time.perf_counter() - started,
        "calls": len(calls),
        "answered": len(answered),
        "mean_response_s": float(answered.mean()) if len(answered) else None,
        "p90_response_s": float(np.percentile(answered, 90)) if len(answered) else None,
        "queued_fraction": float(queued.mean()) if len(calls) else None,
    }
