"""The discrete-event simulation of one replication under one dispatch policy.

A heap of timed events (ties broken by the order they were scheduled, so a seed gives the
same run on every machine) drives units through the live system's statuses::

    available (at a station) -> assigned (turnout + drive) -> on scene -> [transport ->
    hospital handover] -> returning (to its station; may be sent again on the way) -> available

A call is *reported* at its time, *decided* after the dispatch delay, and then waits until
the policy (``drills.policies``) has filled its response plan. Its response time is reported
-> first unit on scene, judged against the same targets as the live console
(``dispatch.targets``). A unit is busy from assignment until it clears (leaves the scene, or
hands over at the hospital): from then on it can be sent again.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from dispatch.assign import Need
from dispatch.recommend import outstanding
from dispatch.targets import TargetTable
from drills.calls import SLOTS, Calls
from drills.scenario import Scenario
from drills.travel import Travel
from drills.world import Fleet

# unit statuses
AVAILABLE, ASSIGNED, ON_SCENE, TRANSPORT, RETURNING, RELOCATING = range(6)
ELIGIBLE = (AVAILABLE, RETURNING, RELOCATING)
# event kinds, in the order they run when due at the same time
(CLOSURE, CALL, DECIDE, ARRIVE, CLEAR, HANDOVER, HOME, TICK, SAMPLE, END) = range(10)
CALL_OFF_ROAD_M = 3_000.0
PRIORITY = {"minor": 1.0, "moderate": 2.0, "severe": 3.0, "extreme": 4.0}


@dataclass(slots=True)
class Unit:
    index: int
    callsign: str
    capabilities: frozenset[str]
    station: int  # where it is based (after a move-up: the station it was moved to)
    node: int
    status: int = AVAILABLE
    trip_from: int = -1  # returning/relocating: the junction it left, and when
    trip_at: float = 0.0
    token: int = 0  # bumped at each new trip: events of an abandoned trip are ignored
    call: int = -1
    busy_from: float = -1.0
    busy_s: float = 0.0


@dataclass(slots=True)
class Call:
    index: int
    node: int
    priority: float
    plan: tuple[Need, ...]
    sent: list[frozenset[str]] = field(default_factory=list)
    decided_at: float = -1.0
    first_assigned_at: float = -1.0
    first_on_scene_at: float = -1.0
    queued: bool = False
    active: int = 0  # units assigned and not yet cleared
    closed: bool = False
    unmet: int = 0
    slots_used: int = 0
    transported: bool = False

    def needs(self) -> list[Need]:
        """What is still missing (no plan: one unit of any kind, until one is sent)."""
        if not self.plan:
            return [] if self.sent else [Need("*", 1)]
        return outstanding(self.plan, self.sent)


@dataclass
class Outcome:
    """What one replication under one policy produced (input to ``drills.kpis``)."""

    policy: str
    replication: int
    duration_s: float
    warmup_s: float
    response_s: np.ndarray  # per call, nan where no unit arrived
    wait_s: np.ndarray  # per call: decided -> first unit assigned, 0 unless queued
    queued: np.ndarray
    unmet_slots: int
    busy_s: float
    n_units: int
    samples: list[tuple[float, float, int, int]]  # (t, coverage, busy units, waiting)
    timeline: dict[str, Any] | None
    timing: dict[str, float]


class Simulation:
    """One replication of ``scenario`` under ``policy`` (see ``drills.policies``)."""

    def __init__(
        self,
        scenario: Scenario,
        fleet: Fleet,
        travel: Travel,
        calls: Calls,
        *,
        policy: Any,
        targets: TargetTable,
        replication: int = 0,
        record: bool = False,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        self.scenario, self.fleet, self.travel, self.calls = scenario, fleet, travel, calls
        self.policy, self.targets, self.replication = policy, targets, replication
        on_road = travel.engine.max_snap_m
        self.station_nodes = travel.nodes(
            np.array([s.lon for s in fleet.stations]),
            np.array([s.lat for s in fleet.stations]),
            max_m=on_road, names=[s.name for s in fleet.stations], where="stations",
        )  # fmt: skip
        self.hospital_nodes = travel.nodes(
            np.array([h.lon for h in fleet.hospitals]),
            np.array([h.lat for h in fleet.hospitals]),
            max_m=on_road, names=[h.name for h in fleet.hospitals], where="hospitals",
        )  # fmt: skip
        self.units = [
            Unit(
                k, u.callsign, u.capabilities | {"*"}, u.station, int(self.station_nodes[u.station])
            )
            for k, u in enumerate(fleet.units)
        ]
        # calls may fall a little off the network (a generator's polygon over water)
        nodes = travel.nodes(calls.lon, calls.lat, max_m=CALL_OFF_ROAD_M, where="generators",
                             names=[f"a {t} call" for t in calls.type])  # fmt: skip
        self.calls_state = [
            Call(
                k,
                int(nodes[k]),
                PRIORITY[calls.severity[k]],
                fleet.plan_for(calls.type[k], calls.severity[k]),
            )
            for k in range(len(calls))
        ]
        self.waiting: list[int] = []  # decided calls still missing units, in call order
        self.now = 0.0
        self._heap: list[tuple[float, int, int, int, int, int]] = []
        self._seq = 0
        self.samples: list[tuple[float, float, int, int]] = []
        self.events: list[dict[str, Any]] | None = [] if record else None
        self.dispatch_s = 0.0
        self._progress = progress

    # --- the clock ----------------------------------------------------------------------
    def at(self, t: float, kind: int, a: int = -1, b: int = -1, token: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, kind, self._seq, a, b, token))

    def log(self, kind: str, **data: Any) -> None:
        if self.events is not None:
            self.events.append({"t": round(self.now, 3), "kind": kind, **data})

    def run(self) -> Outcome:
        started = time.perf_counter()
        routing0 = self.travel.seconds
        sc = self.scenario
        self.travel.close([])
        for k, t in enumerate(self.calls.t_s):
            self.at(float(t), CALL, k)
        for k, c in enumerate(sc.closures):
            self.at(c.at_s, CLOSURE, k, 1)
            if c.until_s is not None and c.until_s < sc.duration_s:
                self.at(c.until_s, CLOSURE, k, 0)
        self.at(0.0, SAMPLE)
        self.at(sc.duration_s, END)
        self.policy.start(self)
        self._active_closures: set[int] = set()
        next_report = 0.05
        while self._heap:
            t, kind, _, a, b, token = heapq.heappop(self._heap)
            self.now = t
            if kind == END:
                break
            self._handle(kind, a, b, token)
            if self._progress is not None and t / sc.duration_s >= next_report:
                self._progress(min(1.0, t / sc.duration_s))
                next_report += 0.05
        wall = time.perf_counter() - started
        routing = self.travel.seconds - routing0
        return self._outcome(wall, routing)

    def _handle(self, kind: int, a: int, b: int, token: int) -> None:
        if kind == CALL:
            self._call(a)
        elif kind == DECIDE:
            call = self.calls_state[a]
            call.decided_at = self.now
            call.queued = not self._any_free(call)
            self.waiting.append(a)
            self._decide(lambda: self.policy.on_call(self, call))
        elif kind == ARRIVE:
            self._arrive(self.units[a], b, token)
        elif kind == CLEAR:
            self._clear(self.units[a], token)
        elif kind == HANDOVER:
            self._free(self.units[a], token)
        elif kind == HOME:
            self._home(self.units[a], token)
        elif kind == TICK:
            self._decide(lambda: self.policy.on_tick(self))
        elif kind == SAMPLE:
            self._sample()
        elif kind == CLOSURE:
            self._closure(a, bool(b))

    def _decide(self, step: Callable[[], None]) -> None:
        started = time.perf_counter()
        routing0 = self.travel.seconds
        step()
        # dispatch time excludes the searches it asked for (counted as routing)
        self.dispatch_s += time.perf_counter() - started - (self.travel.seconds - routing0)

    # --- events ---------------------------------------------------------------------------
    def _call(self, k: int) -> None:
        c = self.calls
        self.log("call", incident=k)
        self.at(self.now + float(c.dispatch_delay_s[k]), DECIDE, k)

    def _any_free(self, call: Call) -> bool:
        needs = call.needs()
        wanted = {n.capability for n in needs}
        return any(u.status in ELIGIBLE and wanted & u.capabilities for u in self.units)

    def assign(self, unit: Unit, call: Call, drive_s: float) -> None:
        """Send ``unit`` to ``call``: turnout (from a station) then ``drive_s``."""
        slot = call.slots_used % SLOTS
        call.slots_used += 1
        turnout = float(self.calls.turnout_s[call.index, slot]) if unit.status == AVAILABLE else 0.0
        unit.status, unit.call = ASSIGNED, call.index
        unit.token += 1
        unit.busy_from = self.now
        call.sent.append(unit.capabilities - {"*"})
        call.active += 1
        if call.first_assigned_at < 0:
            call.first_assigned_at = self.now
        if not call.needs() and call.index in self.waiting:
            self.waiting.remove(call.index)
        self.log("assign", unit=unit.index, incident=call.index)
        unit.node = call.node
        self.at(self.now + turnout + drive_s, ARRIVE, unit.index, slot, unit.token)

    def _arrive(self, unit: Unit, slot: int, token: int) -> None:
        if token != unit.token:
            return
        call = self.calls_state[unit.call]
        unit.status = ON_SCENE
        if call.first_on_scene_at < 0:
            call.first_on_scene_at = self.now
        self.log("arrive", unit=unit.index, incident=call.index)
        self.at(
            self.now + float(self.calls.on_scene_s[call.index, slot]),
            CLEAR,
            unit.index,
            -1,
            unit.token,
        )

    def _clear(self, unit: Unit, token: int) -> None:
        if token != unit.token:
            return
        call = self.calls_state[unit.call]
        self.log("clear", unit=unit.index, incident=call.index)
        call.active -= 1
        if self.calls.transport[call.index] and not call.transported:
            call.transported = True  # the first unit to leave takes the patient
            unit.status = TRANSPORT
            self.at(self.now + self._transport_s(unit, call), HANDOVER, unit.index, -1, unit.token)
        else:
            self._free(unit, unit.token)
        if call.active == 0 and not call.closed:
            self._close(call)

    def _transport_s(self, unit: Unit, call: Call) -> float:
        k = call.index
        if len(self.hospital_nodes) == 0:
            return float(self.calls.transport_s[k])
        times = np.array([self.travel.to_place(int(h))[call.node] for h in self.hospital_nodes])
        best = int(np.argmin(times))
        unit.node = int(self.hospital_nodes[best])
        return float(times[best] + self.calls.handover_s[k])

    def _free(self, unit: Unit, token: int) -> None:
        """The unit can be sent again: it heads for its station, and the policy may use it."""
        if token != unit.token:
            return
        if unit.status == TRANSPORT:
            lon, lat = self.travel.lonlat(unit.node)
            self.log(
                "hospital",
                unit=unit.index,
                incident=unit.call,
                lon=round(lon, 6),
                lat=round(lat, 6),
            )
        unit.busy_s += self.now - unit.busy_from
        unit.busy_from = -1.0
        unit.call = -1
        self.head_for(unit, unit.station, RETURNING)
        self._decide(lambda: self.policy.on_free(self, unit))

    def head_for(self, unit: Unit, station: int, status: int) -> None:
        """Drive ``unit`` to ``station`` (returning home, or relocated by a move-up)."""
        target = int(self.station_nodes[station])
        unit.station, unit.status, unit.trip_from, unit.trip_at = (
            station,
            status,
            unit.node,
            self.now,
        )
        unit.token += 1
        if status == RELOCATING:
            self.log("move", unit=unit.index, station=station)
        drive = float(self.travel.to_place(target)[unit.node])
        self.at(self.now + drive, HOME, unit.index, -1, unit.token)

    def _home(self, unit: Unit, token: int) -> None:
        if token != unit.token:
            return
        unit.status, unit.node = AVAILABLE, int(self.station_nodes[unit.station])
        self.log("home", unit=unit.index, station=unit.station)
        self._decide(lambda: self.policy.on_home(self, unit))

    def _close(self, call: Call) -> None:
        call.closed = True
        call.unmet += sum(n.count for n in call.needs() if n.capability != "*")
        if call.index in self.waiting:
            self.waiting.remove(call.index)

    def _sample(self) -> None:
        busy = sum(1 for u in self.units if u.busy_from >= 0)
        self.samples.append((self.now, self.policy.coverage(self), busy, len(self.waiting)))
        self.at(self.now + self.scenario.sample_interval_s, SAMPLE)

    def _closure(self, k: int, active: bool) -> None:
        (self._active_closures.add if active else self._active_closures.discard)(k)
        shapes = [
            shapely.Polygon(c.polygon.coordinates[0], c.polygon.coordinates[1:])
            for i, c in enumerate(self.scenario.closures)
            if i in self._active_closures
        ]
        self.travel.close(shapes)
        self.policy.on_closure(self)
        self.log("closure", closure=k, active=active)

    # --- where units are ------------------------------------------------------------------
    def position(self, unit: Unit) -> tuple[int, float]:
        """``(junction, seconds to its station from there)`` of an eligible unit now."""
        target = int(self.station_nodes[unit.station])
        if unit.status == AVAILABLE:
            return target, 0.0
        return self.travel.along(unit.trip_from, target, self.now - unit.trip_at)

    # --- results --------------------------------------------------------------------------
    def _outcome(self, wall: float, routing: float) -> Outcome:
        end = self.scenario.duration_s
        for i in list(self.waiting):
            call = self.calls_state[i]
            call.unmet += sum(n.count for n in call.needs() if n.capability != "*")
        busy = sum(u.busy_s + (end - u.busy_from if u.busy_from >= 0 else 0.0) for u in self.units)
        cs = self.calls_state
        t = self.calls.t_s
        response = np.array(
            [c.first_on_scene_at - t[c.index] if c.first_on_scene_at >= 0 else np.nan for c in cs]
        )
        wait = np.array(
            [
                (c.first_assigned_at if c.first_assigned_at >= 0 else end) - c.decided_at
                if c.queued and c.decided_at >= 0
                else 0.0
                for c in cs
            ]
        )
        queued = np.array([c.queued for c in cs], dtype=bool)
        warm = self.scenario.warmup_s
        return Outcome(
            policy=self.policy.name,
            replication=self.replication,
            duration_s=end,
            warmup_s=warm,
            response_s=response,
            wait_s=wait,
            queued=queued,
            unmet_slots=sum(c.unmet for c in cs if t[c.index] >= warm),
            busy_s=busy,
            n_units=len(self.units),
            samples=self.samples,
            timeline=self._timeline(response) if self.events is not None else None,
            timing={
                "wall_s": wall,
                "routing_s": routing,
                "dispatch_s": self.dispatch_s,
                "loop_s": max(0.0, wall - routing - self.dispatch_s),
                "searches": float(self.travel.searches),
            },
        )

    def _timeline(self, response: np.ndarray) -> dict[str, Any]:
        c, fleet, sc = self.calls, self.fleet, self.scenario
        incidents = []
        for k in range(len(c)):
            target = self.targets.for_type(c.type[k]).response_s
            r = response[k]
            incidents.append(
                {
                    "id": k,
                    "t": round(float(c.t_s[k]), 3),
                    "lon": round(float(c.lon[k]), 6),
                    "lat": round(float(c.lat[k]), 6),
                    "type": c.type[k],
                    "severity": c.severity[k],
                    "response_s": None if np.isnan(r) else round(float(r), 3),
                    "within": None if np.isnan(r) else bool(r <= target),
                }
            )
        return {
            "policy": self.policy.name,
            "replication": self.replication,
            "start": sc.start.isoformat(),
            "duration_s": sc.duration_s,
            "stations": [{"name": s.name, "lon": s.lon, "lat": s.lat} for s in fleet.stations],
            "units": [
                {"id": k, "callsign": u.callsign, "type": u.type, "station": u.station}
                for k, u in enumerate(fleet.units)
            ],
            "incidents": incidents,
            "events": self.events,
            "closures": [
                {
                    "name": cl.name or f"closure {i + 1}",
                    "polygon": cl.polygon.model_dump(mode="json"),
                }
                for i, cl in enumerate(sc.closures)
            ],
        }
