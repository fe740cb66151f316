"""What a simulation runs on once ``from_db`` is resolved: stations, units, hospitals, the
response plans and the targets, as plain frozen data (no database, no web).

The command side builds a ``Fleet`` from today's tables (``command.drills.fleet``); a
scenario with everything inline builds one with ``fleet_from_scenario``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispatch.assign import Need
from dispatch.targets import TargetTable
from drills.scenario import ResponsePlans, Scenario, ScenarioError


@dataclass(frozen=True)
class Place:
    name: str
    lon: float
    lat: float


@dataclass(frozen=True)
class FleetUnit:
    callsign: str
    type: str
    capabilities: frozenset[str]
    station: int  # index into Fleet.stations


Plans = Mapping[str, Mapping[str, tuple[Need, ...]]]  # type -> severity -> plan lines


@dataclass(frozen=True)
class Fleet:
    stations: tuple[Place, ...]
    units: tuple[FleetUnit, ...]
    plans: Plans = field(default_factory=dict)
    hospitals: tuple[Place, ...] = ()

    def plan_for(self, incident_type: str, severity: str) -> tuple[Need, ...]:
        """The response plan's lines; none (one fastest unit of any kind) when unplanned."""
        return tuple(self.plans.get(incident_type, {}).get(severity, ()))


@dataclass(frozen=True)
class NetworkSource:
    """Where a worker process loads the road network from (the graph cache makes it fast):
    an OSM file, the road profile's file (None: the built-in emergency profile) and the
    cache folder (None: the default); or a GIS line layer and its ``load-roads`` mapping
    (as ``road_network.mapping`` stores it)."""

    path: Path
    profile: Path | None = None
    cache_dir: Path | None = None
    mapping: dict[str, Any] | None = field(default=None, hash=False)


def plans_from_scenario(raw: ResponsePlans) -> Plans:
    return {
        type_: {
            sev: tuple(Need(line.capability, line.count) for line in lines)
            for sev, lines in by.items()
        }
        for type_, by in raw.items()
    }


def fleet_from_scenario(scenario: Scenario, *, plans: Plans | None = None) -> Fleet:
    """The fleet of a scenario whose stations and units are inline. ``plans`` replaces
    ``response_plans: from_db`` (the caller read them); inline plans are used as given."""
    if not isinstance(scenario.stations, list) or not isinstance(scenario.units, list):
        raise ScenarioError([("units", "from_db needs the database: resolve it first")])
    stations = tuple(Place(s.name, s.lon, s.lat) for s in scenario.stations)
    index = {s.name: i for i, s in enumerate(stations)}
    units = tuple(
        FleetUnit(u.callsign, u.type, frozenset(u.capabilities), index[u.station])
        for u in scenario.units
    )
    if isinstance(scenario.response_plans, dict):
        plans = plans_from_scenario(scenario.response_plans)
    hospitals = tuple(Place(h.name, h.lon, h.lat) for h in scenario.hospitals)
    return Fleet(stations, units, plans or {}, hospitals)


def target_table(scenario: Scenario) -> TargetTable:
    """The scenario's targets as the live TargetTable (DESIGN "Targets"): ``response_s``
    (default and per type) sets the response target directly."""
    t = scenario.targets
    base = TargetTable()
    by_type: dict[str, dict[str, int]] = {k: dict(v) for k, v in base.by_type.items()}
    dispatch_s = t.dispatch_s if t.dispatch_s is not None else base.dispatch_s
    travel_s = t.travel_s if t.travel_s is not None else base.travel_s
    if t.response_s is not None:
        # One response target for every type without its own; the travel share keeps the
        # coverage radius meaningful (response minus the dispatch target).
        travel_s = max(1, t.response_s - dispatch_s)
        by_type = {k: v for k, v in by_type.items() if k in t.by_type}
    for type_, response_s in t.by_type.items():
        by_type[type_] = {"response_s": response_s, "travel_s": max(1, response_s - dispatch_s)}
    return TargetTable(dispatch_s=dispatch_s, travel_s=travel_s, by_type=by_type)
