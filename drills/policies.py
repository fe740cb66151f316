"""Dispatch policies a drill compares, on the live system's own solvers.

- ``nearest``: each call, once decided, gets what the live recommendation
  (``dispatch.recommend.recommend``) picks: its response plan filled line by line with the
  fastest eligible units (available, or returning from a task). A call that cannot be filled
  waits; each unit that comes free is offered to the waiting calls, most severe then oldest.
- ``plan``: every ``plan_interval_s`` the waiting calls are planned together with
  ``dispatch.assign.solve`` (OR-Tools: min-cost flow, priority-weighted drive time; the same
  solver as the console's 全部规划), so a unit is not spent on a minor call that a severe one
  nearby needed more. A call waits for the next tick even when units are free: that is the
  price of planning together, and the report shows it.
- ``move_up``: ``nearest``, plus relocation of idle units to keep coverage. The rule is
  MEXCLP's (Daskin 1983): the expected covered demand is ``sum_d w_d (1 - q^k_d)``, where
  ``w_d`` is the demand at point ``d``, ``k_d`` how many idle units can reach it within the
  travel target, and ``q`` the chance a unit is busy (the scenario's ``busy_fraction``, or
  the offered load per unit). After each dispatch and each return, the single move of one
  idle unit from station ``a`` to station ``b`` that raises it most is made, if it raises it
  by at least ``min_gain`` of all demand and the drive is at most ``max_drive_s``. Units on
  the way count at their destination; a relocating unit can be sent to a call.

Coverage over time (every policy) is the share of demand within the travel target of an
idle unit at a station.
"""

from __future__ import annotations

import math

import numpy as np

from dispatch.assign import AssignProblem, IncidentDemand, Need, UnitSupply, solve
from dispatch.recommend import Candidate, recommend
from drills.calls import demand_points
from drills.engine import (
    AVAILABLE,
    ELIGIBLE,
    RELOCATING,
    RETURNING,
    TICK,
    Call,
    Simulation,
    Unit,
)

# engine status -> the live status the recommender reads (a relocating unit is on the road)
_STATUS = {AVAILABLE: "available", RETURNING: "returning", RELOCATING: "returning"}


def etas(sim: Simulation, call: Call, units: list[Unit], needs: list[Need]) -> np.ndarray:
    """Drive seconds from each of ``units`` (eligible) to ``call``: exact for units at a
    station (one table read) and for any unit on the road that could be among the fastest
    for a line; other units on the road get an upper bound (via their station)."""
    n = len(units)
    out = np.empty(n)
    lower = np.empty(n)
    where = np.empty(n, dtype=np.int64)
    for k, u in enumerate(units):
        station_node = int(sim.station_nodes[u.station])
        from_station = sim.travel.from_place(station_node)
        if u.status == AVAILABLE:
            out[k] = lower[k] = from_station[call.node]
            where[k] = -1
        else:
            node, left = sim.position(u)
            out[k] = left + from_station[call.node]  # drive home, then out
            lower[k] = _lower_bound(sim, station_node, node, left, call.node)
            where[k] = node
    moving = np.flatnonzero(where >= 0)
    if len(moving):
        bound = _threshold(units, out, needs)
        close = moving[lower[moving] < bound]
        if len(close):
            exact = sim.travel.to_call(call.node, where[close], bound)
            out[close] = np.minimum(out[close], exact)
    return out


def _lower_bound(sim: Simulation, station: int, here: int, left_s: float, call: int) -> float:
    """No drive from ``here`` to ``call`` is shorter than either triangle bound through the
    station S (``d(S, call) <= d(S, here) + d(here, call)`` and ``d(here, S) <= d(here,
    call) + d(call, S)``), read from S's two tables; 0 where a closure cut S off."""
    from_s = sim.travel.from_place(station)
    to_s = sim.travel.to_place(station)
    bounds = [0.0]
    if np.isfinite(from_s[here]):
        bounds.append(float(from_s[call] - from_s[here]))
    if np.isfinite(to_s[call]):
        bounds.append(left_s - float(to_s[call]))
    return max(bounds)


def _threshold(units: list[Unit], upper: np.ndarray, needs: list[Need]) -> float:
    """No unit slower than this can be picked: per line, the ``count``-th best upper bound
    among units with its capability; the largest over lines (inf when a line is short)."""
    worst = 0.0
    for line in needs:
        have = np.sort([upper[k] for k, u in enumerate(units) if line.capability in u.capabilities])
        if len(have) < line.count:
            return math.inf
        worst = max(worst, float(have[line.count - 1]))
    return worst


def nearest(sim: Simulation, call: Call) -> bool:
    """Fill what ``call`` still needs with the live recommendation; True if any unit went."""
    needs = call.needs()
    if not needs:
        return False
    wanted = {n.capability for n in needs}
    units = [u for u in sim.units if u.status in ELIGIBLE and wanted & u.capabilities]
    if not units:
        return False
    times = etas(sim, call, units, needs)
    candidates = [
        Candidate(u.index, u.callsign, _STATUS[u.status], u.capabilities, float(t), 0.0)
        for u, t in zip(units, times, strict=True)
    ]
    rec = recommend(call.plan, candidates, stale_after_s=math.inf, limit=0,
                    sent=tuple(call.sent))  # fmt: skip
    chosen = rec.recommended
    for r in chosen:
        sim.assign(sim.units[r.unit_id], call, r.eta_s)
    return bool(chosen)


class Coverage:
    """Demand points, and which stations reach each within the travel target."""

    def __init__(self, sim: Simulation) -> None:
        lonlat, self.weights = demand_points(sim.scenario)
        self.nodes = (
            sim.travel.nodes(lonlat[:, 0], lonlat[:, 1])
            if len(lonlat)
            else np.empty(0, dtype=np.int64)
        )
        self.target_s = float(sim.targets.default.travel_s)
        self.refresh(sim)

    def refresh(self, sim: Simulation) -> None:
        """Recompute who reaches what (after the roads change)."""
        nodes = sim.station_nodes
        self.station_drive_s = np.array(
            [sim.travel.from_place(int(s))[nodes] for s in nodes]
        ).reshape(len(nodes), len(nodes))
        self.covers = np.array(
            [sim.travel.from_place(int(s))[self.nodes] <= self.target_s for s in sim.station_nodes],
            dtype=bool,
        ).reshape(len(sim.station_nodes), len(self.nodes))

    def counts(self, sim: Simulation, *, moving: bool) -> np.ndarray:
        """Idle units per station (those on a move-up counted at its end, if ``moving``)."""
        per = np.zeros(len(sim.station_nodes))
        for u in sim.units:
            if u.status == AVAILABLE or (moving and u.status == RELOCATING):
                per[u.station] += 1
        return per

    def share(self, sim: Simulation) -> float:
        if not len(self.weights):
            return 0.0
        covered = (self.counts(sim, moving=False) @ self.covers) > 0
        return float(self.weights[covered].sum() / self.weights.sum())


class Nearest:
    name = "nearest"

    def start(self, sim: Simulation) -> None:
        self.cover = Coverage(sim)

    def on_call(self, sim: Simulation, call: Call) -> None:
        nearest(sim, call)

    def on_free(self, sim: Simulation, unit: Unit) -> None:
        """Offer the freed unit to the waiting calls, most severe first, then oldest."""
        order = sorted(sim.waiting, key=lambda i: (-sim.calls_state[i].priority, i))
        for i in order:
            if unit.status not in ELIGIBLE:
                return
            call = sim.calls_state[i]
            if any(n.capability in unit.capabilities for n in call.needs()):
                nearest(sim, call)

    def on_home(self, sim: Simulation, unit: Unit) -> None:
        pass

    def on_tick(self, sim: Simulation) -> None:
        pass

    def on_closure(self, sim: Simulation) -> None:
        """Roads changed: coverage is recomputed, and calls that waited because no unit
        could reach them are tried again (a reopened road may reach them now)."""
        self.cover.refresh(sim)
        for i in sorted(sim.waiting, key=lambda i: (-sim.calls_state[i].priority, i)):
            nearest(sim, sim.calls_state[i])

    def coverage(self, sim: Simulation) -> float:
        return self.cover.share(sim)


class Plan(Nearest):
    name = "plan"

    def start(self, sim: Simulation) -> None:
        super().start(sim)
        sim.at(sim.scenario.plan_interval_s, TICK)

    def on_call(self, sim: Simulation, call: Call) -> None:
        pass  # planned at the next tick

    def on_free(self, sim: Simulation, unit: Unit) -> None:
        pass

    def on_closure(self, sim: Simulation) -> None:
        self.cover.refresh(sim)  # the waiting calls are planned at the next tick

    def on_tick(self, sim: Simulation) -> None:
        sim.at(sim.now + sim.scenario.plan_interval_s, TICK)
        calls = [sim.calls_state[i] for i in sim.waiting]
        units = [u for u in sim.units if u.status in ELIGIBLE]
        if not calls or not units:
            return
        eta = np.column_stack([etas(sim, c, units, c.needs()) for c in calls])
        problem = AssignProblem(
            incidents=tuple(IncidentDemand(c.index, c.priority, tuple(c.needs())) for c in calls),
            units=tuple(UnitSupply(u.index, u.capabilities) for u in units),
            eta_s=eta,
        )
        plan = solve(problem, time_limit_s=1.0, seed=sim.scenario.seed)
        for a in sorted(plan.assignments, key=lambda a: (a.incident_id, a.unit_id)):
            j = next(k for k, u in enumerate(units) if u.index == a.unit_id)
            col = next(k for k, c in enumerate(calls) if c.index == a.incident_id)
            sim.assign(units[j], calls[col], float(eta[j, col]))


class MoveUp(Nearest):
    name = "move_up"

    def start(self, sim: Simulation) -> None:
        super().start(sim)
        cfg = sim.scenario.move_up
        if cfg.busy_fraction is not None:
            self.q = cfg.busy_fraction
        else:  # offered load per unit: calls per second x mean time busy / units
            svc = sim.scenario.service
            busy = svc.on_scene_s.mean_s + svc.turnout_s.mean_s + 600.0
            rate = sim.scenario.expected_incidents() / sim.scenario.duration_s
            self.q = min(0.95, max(0.01, rate * busy / max(1, len(sim.units))))
        self.min_gain = cfg.min_gain * float(self.cover.weights.sum())
        self.max_drive_s = cfg.max_drive_s

    def on_call(self, sim: Simulation, call: Call) -> None:
        if nearest(sim, call):
            self.move(sim)

    def on_free(self, sim: Simulation, unit: Unit) -> None:
        super().on_free(sim, unit)
        self.move(sim)

    def on_home(self, sim: Simulation, unit: Unit) -> None:
        self.move(sim)

    def move(self, sim: Simulation) -> None:
        """Make the best single MEXCLP move, if it is worth it (see the module's docstring)."""
        c = self.cover
        if not len(c.weights):
            return
        k = c.counts(sim, moving=True) @ c.covers  # units covering each demand point
        q = self.q
        gain_add = c.weights * (1 - q) * q**k  # one more unit at d
        gain_rem = np.where(k > 0, c.weights * (1 - q) * q ** np.maximum(k - 1, 0), 0.0)
        cov = c.covers.astype(np.float64)
        add = cov @ gain_add
        rem = cov @ gain_rem
        both = (cov * (gain_rem - gain_add)) @ cov.T  # points both stations cover
        delta = add[None, :] - rem[:, None] + both  # [from a, to b]
        idle = np.zeros(len(sim.station_nodes), dtype=bool)
        for u in sim.units:
            if u.status == AVAILABLE:
                idle[u.station] = True
        delta[~idle, :] = -np.inf
        delta[c.station_drive_s > self.max_drive_s] = -np.inf
        np.fill_diagonal(delta, -np.inf)
        a, b = np.unravel_index(int(np.argmax(delta)), delta.shape)
        if not delta[a, b] >= self.min_gain:
            return
        unit = next(u for u in sim.units if u.status == AVAILABLE and u.station == a)
        sim.head_for(unit, int(b), RELOCATING)


POLICIES = {"nearest": Nearest, "plan": Plan, "move_up": MoveUp}
