"""What a drill runs on, from today's tables: ``from_db`` stations, units, response plans and
hospitals as a :class:`drills.world.Fleet`; and a scenario's CAP alert files as injects.

The fleet is read once, when the drill is submitted (a snapshot: later edits do not change a
run under way). Only real units are read (``unit.drill_id IS NULL``; a tabletop drill's
stand-ins are never part of a fleet). Rules, each reported in the notes it returns:

- stations: every station except hospitals that no unit calls home (a hospital is where
  patients go, not a post), in id order;
- hospitals: the stations whose kind is ``hospital``, unless the scenario lists its own;
- a unit with no home station is placed at the station nearest its last position, or left
  out when it has none;
- with inline ``stations`` and ``from_db`` units, a unit goes to the inline station of its
  home station's name, else to the inline station nearest its home station (or position);
- response plans: for each incident type with a plan, every severity gets the plan the live
  console would use (that severity's, else the nearest lower one, else the nearest higher).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from geoalchemy2.shape import to_shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from command.incidents.models import SEVERITIES
from command.intake import cap, mapping
from command.intake.cap_read import CapRefused
from command.response_plans import service as response_plans
from dispatch.assign import Need
from drills.scenario import AlertInject, Inject, Scenario, ScenarioError
from drills.world import Fleet, FleetUnit, Place, Plans, fleet_from_scenario, plans_from_scenario
from resources.models import Station, Unit

CAP_TYPES = {".json": "application/json"}  # anything else is read as CAP XML
MAX_CAP_BYTES = 2_097_152  # as the alert endpoint's default limit


def needs_database(scenario: Scenario) -> bool:
    """Whether the scenario reads today's fleet (``from_db`` anywhere)."""
    return "from_db" in (scenario.stations, scenario.units, scenario.response_plans)


def resolve(scenario: Scenario, session: Session | None) -> tuple[Fleet, list[str]]:
    """The scenario's fleet, reading ``from_db`` parts through ``session``, and notes on what
    was placed or left out. ScenarioError when the database is needed and ``session`` is
    None, or when it holds no stations or units to run on."""
    if not needs_database(scenario):
        return fleet_from_scenario(scenario), []
    if session is None:
        raise ScenarioError([("", "the scenario reads from_db: it needs the database")])
    plans = read_plans(session) if scenario.response_plans == "from_db" else None
    if isinstance(scenario.units, list):  # inline units need inline stations (scenario)
        return fleet_from_scenario(scenario, plans=plans), []
    notes: list[str] = []
    rows = list(session.scalars(select(Station).order_by(Station.id)))
    units = list(session.scalars(select(Unit).where(Unit.drill_id.is_(None)).order_by(Unit.id)))
    homes = {u.home_station_id for u in units}
    if isinstance(scenario.stations, list):
        stations = tuple(Place(s.name, s.lon, s.lat) for s in scenario.stations)
        by_name = {s.name: i for i, s in enumerate(stations)}
        db_places = {r.id: _place(r) for r in rows}
        fleet_units = _inline_homes(units, stations, by_name, db_places, notes)
    else:
        posts = [r for r in rows if r.kind != "hospital" or r.id in homes]
        stations = tuple(_place(r) for r in posts)
        index = {r.id: i for i, r in enumerate(posts)}
        fleet_units = _db_homes(units, stations, index, notes)
    problems = []
    if not stations:
        problems.append(("stations", "from_db: the database holds no stations"))
    if not fleet_units:
        problems.append(("units", "from_db: the database holds no units that can be placed"))
    if problems:
        raise ScenarioError(problems)
    if scenario.hospitals:
        hospitals = tuple(Place(h.name, h.lon, h.lat) for h in scenario.hospitals)
    elif scenario.stations == "from_db":
        hospitals = tuple(_place(r) for r in rows if r.kind == "hospital")
    else:
        hospitals = ()
    if plans is None:
        assert isinstance(scenario.response_plans, dict)
        plans = plans_from_scenario(cast(Any, scenario.response_plans))
    return Fleet(stations, tuple(fleet_units), plans, hospitals), notes


def _place(row: Station) -> Place:
    pt = to_shape(row.geom)
    return Place(row.name, float(pt.x), float(pt.y))


def _unit_point(unit: Unit) -> tuple[float, float] | None:
    if unit.geom is None:
        return None
    pt = to_shape(unit.geom)
    return float(pt.x), float(pt.y)


def _fleet_unit(unit: Unit, station: int) -> FleetUnit:
    return FleetUnit(unit.callsign, unit.type, frozenset(unit.capabilities or ()), station)


def _db_homes(
    units: list[Unit], stations: Sequence[Place], index: dict[int, int], notes: list[str]
) -> list[FleetUnit]:
    out = []
    for unit in units:
        if unit.home_station_id in index:
            out.append(_fleet_unit(unit, index[unit.home_station_id]))
            continue
        where = _unit_point(unit)
        if where is None or not stations:
            notes.append(f"unit {unit.callsign}: no home station and no position; left out")
            continue
        near = nearest(stations, *where)
        out.append(_fleet_unit(unit, near))
        notes.append(
            f"unit {unit.callsign}: no home station; placed at the nearest, {stations[near].name}"
        )
    return out


def _inline_homes(
    units: list[Unit],
    stations: Sequence[Place],
    by_name: dict[str, int],
    db_places: dict[int, Place],
    notes: list[str],
) -> list[FleetUnit]:
    out = []
    for unit in units:
        home = db_places.get(unit.home_station_id) if unit.home_station_id else None
        if home is not None and home.name in by_name:
            out.append(_fleet_unit(unit, by_name[home.name]))
            continue
        where = (home.lon, home.lat) if home is not None else _unit_point(unit)
        if where is None:
            notes.append(f"unit {unit.callsign}: no home station and no position; left out")
            continue
        near = nearest(stations, *where)
        out.append(_fleet_unit(unit, near))
        notes.append(f"unit {unit.callsign}: placed at the nearest listed station, "
                     f"{stations[near].name}")  # fmt: skip
    return out


def nearest(places: Sequence[Place], lon: float, lat: float) -> int:
    """The index of the place nearest (lon, lat), great-circle; ties to the first."""

    def metres(p: Place) -> float:
        phi1, phi2 = math.radians(lat), math.radians(p.lat)
        dphi, dlam = phi2 - phi1, math.radians(p.lon - lon)
        h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
        return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))

    return min(range(len(places)), key=lambda i: (metres(places[i]), i))


def read_plans(session: Session) -> Plans:
    """Every incident type's plan at every severity, as the live console picks it."""
    types = sorted({p.incident_type for p in response_plans.list_plans(session)})
    plans: dict[str, dict[str, tuple[Need, ...]]] = {}
    for type_ in types:
        plans[type_] = {
            sev: tuple(response_plans.lines(response_plans.plan_for(session, type_, sev)))
            for sev in SEVERITIES
        }
    return plans


# --- CAP alert files -> injects ------------------------------------------------------------


def alert_injects(alerts: Sequence[AlertInject]) -> list[Inject]:
    """One inject per area of each alert's working-language info blocks, at the alert's
    ``at_s``: placed at the area's centroid (a point inside it when the centroid falls
    outside), typed and graded as intake grades a live alert (command/intake/mapping.py).
    ScenarioError naming every file that cannot be read, is refused by the CAP parser or
    has no area to place an incident in."""
    out: list[Inject] = []
    problems: list[tuple[str, str]] = []
    for i, alert in enumerate(alerts):
        where = f"alerts.{i}.file"
        name = Path(alert.file).name
        try:
            out.extend(_injects_of(alert))
        except OSError as exc:
            problems.append((where, f"cannot read {name}: {exc.strerror or exc}"))
        except ValueError as exc:  # refused by the parser, or by the checks below
            problems.append((where, f"{name}: {exc}"))
    if problems:
        raise ScenarioError(problems)
    return out


def _injects_of(alert: AlertInject) -> list[Inject]:
    path = Path(alert.file)
    if path.stat().st_size > MAX_CAP_BYTES:
        raise ValueError(f"larger than {MAX_CAP_BYTES} bytes")
    raw = path.read_bytes()
    try:
        parsed = cap.parse(raw, CAP_TYPES.get(path.suffix.lower(), "application/cap+xml"))
    except CapRefused as exc:
        raise ValueError(f"CAP refused: {exc.message}") from None
    if parsed.msg_type not in ("Alert", "Update"):
        raise ValueError(f"msgType {parsed.msg_type}: only Alert or Update can be injected")
    out = []
    for info in mapping.primary_infos(parsed.infos):
        type_ = mapping.incident_type(info.categories, info.event)
        severity = mapping.incident_severity(info.severity, info.urgency, info.certainty)
        for area in info.areas:
            if area.shape is None or area.shape.is_empty:
                continue
            centre = area.shape.centroid
            if not area.shape.covers(centre):
                centre = area.shape.representative_point()
            title = (info.headline or info.event or area.desc)[:200]
            out.append(
                Inject(
                    at_s=alert.at_s,
                    lon=round(float(centre.x), 7),
                    lat=round(float(centre.y), 7),
                    type=type_[:40],
                    severity=severity,
                    title=title,
                )
            )
    if not out:
        raise ValueError("no area with a polygon or circle to place an incident in")
    return out
