"""Tabletop drills (演练): dispatchers work drill incidents in the real console while a
simulated clock injects the scenario's incidents.

A tabletop drill is a ``drill`` row (mode ``tabletop``) whose clock runs ``speed`` times
real time from ``started_at``. Starting one creates stand-in units that mirror the fleet
(``unit.drill_id`` set, callsign ``D<drill>-<callsign>``) and fixes the inject schedule:
the scenario's generated incidents (``drills.calls``, seeded), its ``injects:`` and its CAP
``alerts:`` files. :func:`advance` creates the injects that are due as drill incidents
(``drill_id`` set); whoever runs the clock calls it (the CLI's foreground loop, or the
server's background task). Drill incidents go only to their drill's stand-ins, and every
event of a drill row is published on ``drill:<id>`` only (see the isolation in
command/tasks, command/incidents, resources and command/live).

The schedule and its progress are kept in ``drill.replay["tabletop"]`` (a tabletop has no
policy replays): ``{"injects": [{at_s, lon, lat, type, severity, title, source,
incident_id}], "done": n}``. Stopping or finishing stores the after-action report in
``drill.report`` (command/drills/tabletop_report.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from geoalchemy2.shape import to_shape
from shapely import Geometry
from shapely.geometry import Point
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from command.drills.models import Drill
from command.drills.tabletop_report import build_report
from command.incidents.models import Incident
from command.incidents.service import create_incident, drill_topic, incident_features
from command.live.snapshots import ENDED, fixed_layers
from command.tasks import service as tasks
from command.tasks.models import ACTIVE_TASK_STATUSES, Task
from command.zones.models import WarningZone
from command.zones.service import ZONES, active_clause
from core import crud
from core.changes import record_change
from core.errors import Conflict, InvalidInput, NotFound
from core.security import Principal
from core.types import utcnow
from drills import scenario as sc
from resources import service as resources
from resources.models import Station, Unit

RUNNER = Principal(kind="system", id=0, name="tabletop", role="admin")
MAX_INJECTS = 20_000  # a tabletop is people at consoles: more is a mistake in the scenario
SHOWN = 200  # injects listed in the state (the rest are counted)


class StopClock(Exception):
    """Raised by a clock runner's ``sleep`` to stop the drill (its server is closing)."""


@dataclass
class Tick:
    """What one :func:`advance` did: the drill's status and clock after it, the injects it
    created (each with its ``incident_id``), and the simulated seconds to the next one."""

    status: str
    clock_s: float
    injected: list[dict[str, Any]] = field(default_factory=list)
    next_in_s: float | None = None
    speed: float = 1.0


# --- the schedule -----------------------------------------------------------------------------
def schedule(scenario: sc.Scenario) -> list[dict[str, Any]]:
    """Every inject of the drill in time order: the generators' incidents (the seeded
    stream of replication 0, as ``drill run`` draws it), ``injects:`` and CAP alerts."""
    from command.drills.fleet import alert_injects
    from drills import calls

    cap = alert_injects(scenario.alerts)  # ScenarioError names each unreadable file
    stream = calls.generate(scenario, 0, injects=cap)
    titled = {
        (i.at_s, i.lon, i.lat, i.type): (i.title, src)
        for src, items in (("inject", scenario.injects), ("alert", cap))
        for i in items
    }
    out = []
    for k in range(len(stream)):
        key = (float(stream.t_s[k]), float(stream.lon[k]), float(stream.lat[k]), stream.type[k])
        title, source = titled.get(key, (None, "generator"))
        out.append({
            "at_s": round(key[0], 3), "lon": key[1], "lat": key[2], "type": key[3],
            "severity": stream.severity[k], "title": title, "source": source,
            "incident_id": None,
        })  # fmt: skip
    if len(out) > MAX_INJECTS:
        raise InvalidInput(
            f"the scenario injects {len(out)} incidents; a tabletop takes at most "
            f"{MAX_INJECTS} (shorten duration_s or lower the rates)"
        )
    return out


# --- start: the drill row and its stand-in units ------------------------------------------------
def start(session: Session, scenario: sc.Scenario, *, speed: float, principal: Principal) -> Drill:
    """Create a running tabletop drill, its stand-in units and its schedule (the caller
    commits). The clock starts now."""
    if not 0 < speed <= 100_000:
        raise InvalidInput("speed must be > 0 and at most 100000 (times real time)")
    injects = schedule(scenario)
    drill = Drill(
        name=scenario.name, mode="tabletop", status="running", progress=0.0,
        scenario=sc.public(scenario), created_by=principal.actor[:160], speed=speed,
        replay={"tabletop": {"injects": injects, "done": 0}},
    )  # fmt: skip
    session.add(drill)
    session.flush()
    standins = create_standins(session, drill, scenario, principal=principal)
    if not standins:
        raise InvalidInput("no units to stand in: the database has none (units: from_db)")
    drill.started_at = utcnow()
    session.flush()
    _record(session, drill, "drill.started", principal)
    return drill


def _mirrors(session: Session, scenario: sc.Scenario) -> list[tuple[dict[str, Any], Geometry]]:
    """(props, position) of each unit to stand in for: the real fleet (``from_db``), or
    the scenario's inline units at their inline stations."""
    if isinstance(scenario.units, list):
        assert isinstance(scenario.stations, list)  # the scenario checks it
        at = {s.name: Point(s.lon, s.lat) for s in scenario.stations}
        return [({"callsign": u.callsign, "name": u.callsign, "kind": "vehicle", "type": u.type,
                  "capabilities": list(u.capabilities), "crew": 0, "home_station_id": None},
                 at[u.station]) for u in scenario.units]  # fmt: skip
    rows = session.execute(
        select(Unit, Station.geom)
        .outerjoin(Station, Station.id == Unit.home_station_id)
        .where(resources.in_scope(None))
        .order_by(Unit.id)
    ).all()
    fields = ("callsign", "name", "kind", "type", "crew", "home_station_id")
    return [
        (
            {**{f: getattr(u, f) for f in fields}, "capabilities": list(u.capabilities)},
            to_shape(u.geom if u.geom is not None else home),
        )
        for u, home in rows
        if u.geom is not None or home is not None
    ]


def create_standins(
    session: Session, drill: Drill, scenario: sc.Scenario, *, principal: Principal
) -> list[int]:
    """Stand-in units of ``drill`` mirroring the scenario's units (type, capabilities,
    home station and position; callsign ``D<drill>-<callsign>``), all available, their
    events on ``drill:<id>``. Returns their ids."""
    prefix = f"D{drill.id}-"
    items = [({**props, "callsign": (prefix + props["callsign"])[:40],
               "name": f"演练 {props['name']}"[:200], "status": "available",
               "drill_id": drill.id}, where)
             for props, where in _mirrors(session, scenario)]  # fmt: skip
    return crud.create_many(
        session, resources.UNITS, items, principal=principal, topics=(drill_topic(drill.id),)
    )


# --- the clock ---------------------------------------------------------------------------------
def duration_s(drill: Drill) -> float:
    return float(drill.scenario.get("duration_s", 0))


def clock_s(drill: Drill, now: datetime | None = None) -> float:
    """Simulated seconds since the start: ``speed`` x real time, frozen once it ended."""
    if drill.started_at is None:
        return 0.0
    until = drill.finished_at if drill.status != "running" and drill.finished_at else now
    wall = ((until or utcnow()) - drill.started_at).total_seconds()
    return max(0.0, min(wall * float(drill.speed or 1.0), duration_s(drill)))


def get_tabletop(session: Session, drill_id: int, *, for_update: bool = False) -> Drill:
    drill = session.get(Drill, drill_id, with_for_update=for_update)
    if drill is None:
        raise NotFound(f"drill {drill_id} not found")
    if drill.mode != "tabletop":
        raise Conflict(f"drill {drill_id} is a simulation run, not a tabletop drill")
    if for_update:
        session.refresh(drill)  # as locked, not as last loaded
    return drill


def _state(drill: Drill) -> dict[str, Any]:
    return dict((drill.replay or {}).get("tabletop") or {"injects": [], "done": 0})


def advance(
    session: Session, drill_id: int, *, principal: Principal = RUNNER, now: datetime | None = None
) -> Tick:
    """Create the injects the clock has reached (under the drill's row lock, so two clock
    runners never inject twice); finish the drill at the end of its duration. The caller
    commits."""
    now = now or utcnow()
    drill = get_tabletop(session, drill_id, for_update=True)
    clock = clock_s(drill, now)
    speed = float(drill.speed or 1.0)
    if drill.status != "running":
        return Tick(drill.status, clock, speed=speed)
    state = _state(drill)
    injects = [dict(i) for i in state["injects"]]
    done = int(state["done"])
    injected = []
    while done < len(injects) and injects[done]["at_s"] <= clock:
        item = injects[done]
        item["incident_id"] = _inject(session, drill, item, done + 1, now, principal)
        injected.append({**item, "n": done + 1, "of": len(injects)})
        done += 1
    if injected:
        drill.replay = {"tabletop": {"injects": injects, "done": done}}
    drill.progress = clock / duration_s(drill) if duration_s(drill) else 1.0
    next_in = injects[done]["at_s"] - clock if done < len(injects) else None
    if clock >= duration_s(drill):
        end(session, drill, "finished", principal=principal, now=now)
    session.flush()
    return Tick(drill.status, clock, injected, next_in, speed)


def _inject(
    session: Session, drill: Drill, item: dict[str, Any], n: int, now: datetime, p: Principal
) -> int:
    hms = _hms(item["at_s"])
    props = {
        "title": (item["title"] or f"演练 {item['type']} #{n}")[:200],
        "type": item["type"], "severity": item["severity"],
        "description": f"演练 {drill.name}: inject {n} at T+{hms}",
        "source": "drill", "reported_by": f"drill:{drill.id}"[:120],
        "drill": True, "drill_id": drill.id, "reported_at": now,
    }  # fmt: skip
    incident = create_incident(session, props=props, geom=Point(item["lon"], item["lat"]),
                               principal=p)  # fmt: skip
    return int(incident.id)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def end(
    session: Session, drill: Drill, status: str, *, principal: Principal, now: datetime
) -> Drill:
    """Stop (``stopped``) or finish (``finished``) a locked running drill: the clock
    freezes and the after-action report is stored in ``drill.report``."""
    drill.status = status
    drill.finished_at = now
    drill.progress = clock_s(drill, now) / duration_s(drill) if duration_s(drill) else 1.0
    session.flush()
    drill.report = build_report(session, drill, clock_s=clock_s(drill, now), now=now)
    session.flush()
    _record(session, drill, f"drill.{status}", principal)
    return drill


def stop(session: Session, drill_id: int, *, principal: Principal) -> Drill:
    """Stop a running tabletop drill (from another shell, or over HTTP); the runner notices
    at its next tick. 409 if it is not running. The caller commits."""
    drill = get_tabletop(session, drill_id, for_update=True)
    if drill.status != "running":
        raise Conflict(f"drill {drill_id} is {drill.status}, not running")
    return end(session, drill, "stopped", principal=principal, now=utcnow())


def new_alert_injects(session: Session, drill_id: int, after_id: int) -> list[dict[str, Any]]:
    """The drill's incidents from CAP Exercise alerts with ids above ``after_id``, as
    injects (``source`` alert)."""
    stmt = select(Incident).where(
        Incident.drill_id == drill_id, Incident.source == "alert", Incident.id > after_id
    )
    return [{"at_s": None, "type": i.type, "severity": i.severity, "title": i.title,
             "source": "alert", "incident_id": i.id}
            for i in session.scalars(stmt.order_by(Incident.id))]  # fmt: skip


def run_clock(
    sessions: sessionmaker[Session],
    drill_id: int,
    *,
    on_inject: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
    tick_s: float = 0.5,
    principal: Principal = RUNNER,
) -> str:
    """Run a tabletop drill's clock in this thread until it finishes or is stopped (from
    another shell, or over HTTP: the next tick sees it); ``on_inject`` hears of each inject
    made, and of CAP Exercise alerts that became injects. Ctrl-C stops the drill. Returns
    its final status (``sleep`` may raise :class:`StopClock` to stop it too)."""
    seen = 0
    try:
        while True:
            with sessions() as session:
                tick = advance(session, drill_id, principal=principal)
                alerts = new_alert_injects(session, drill_id, seen)
                session.commit()
            for item in tick.injected + alerts:
                on_inject(item)
            seen = max([seen] + [a["incident_id"] for a in alerts])
            if tick.status != "running":
                return tick.status
            due = tick_s if tick.next_in_s is None else tick.next_in_s / tick.speed
            sleep(min(tick_s, max(due, 0.005)))
    except (KeyboardInterrupt, StopClock):
        with sessions() as session:
            drill = get_tabletop(session, drill_id, for_update=True)
            if drill.status == "running":
                end(session, drill, "stopped", principal=principal, now=utcnow())
            status = drill.status
            session.commit()
        return status


# --- what screens and the API read ----------------------------------------------------------
def drill_dict(drill: Drill, now: datetime | None = None) -> dict[str, Any]:
    """The drill as the console shows it (the ``drill`` object of its snapshot)."""
    scenario = drill.scenario or {}
    return {
        "id": drill.id, "name": drill.name, "mode": drill.mode, "status": drill.status,
        "clock_s": round(clock_s(drill, now), 1), "speed": drill.speed,
        "duration_s": duration_s(drill), "start": scenario.get("start"),
        "progress": round(drill.progress, 4),
        "started_at": crud.json_value(drill.started_at),
        "finished_at": crud.json_value(drill.finished_at),
    }  # fmt: skip


def _record(session: Session, drill: Drill, action: str, principal: Principal) -> None:
    record_change(
        session,
        actor=principal.actor,
        action=action,
        entity="drill",
        entity_id=drill.id,
        before=None,
        after=drill_dict(drill),
        topics=(drill_topic(drill.id),),
    )


def tabletop_state(drill: Drill, now: datetime | None = None) -> dict[str, Any]:
    """The clock and the injects done and pending (the first ``SHOWN`` of each listed)."""
    state = _state(drill)
    injects: Sequence[dict[str, Any]] = state["injects"]
    done = int(state["done"])
    return {
        "drill": drill_dict(drill, now),
        "injects": {"total": len(injects), "done": done, "pending": len(injects) - done},
        "done": list(injects[:done][-SHOWN:]),
        "pending": list(injects[done : done + SHOWN]),
        "standin_prefix": f"D{drill.id}-",
    }


def drill_snapshot(session: Session, drill_id: int) -> dict[str, Any] | None:
    """The ``drill:<id>`` topic's snapshot for a tabletop drill: the situation snapshot's
    shape over the drill's own incidents, stand-in units and tasks, plus ``drill``; None
    when no tabletop drill has this id (a CAP Exercise thread's topic)."""
    drill = session.get(Drill, drill_id)
    if drill is None or drill.mode != "tabletop":
        return None
    incidents = list(session.scalars(
        select(Incident).where(Incident.drill_id == drill_id, Incident.status.not_in(ENDED))
        .order_by(Incident.id)
    ))  # fmt: skip
    active = session.scalars(
        select(Task).join(Incident, Incident.id == Task.incident_id)
        .where(Incident.drill_id == drill_id, Task.status.in_(ACTIVE_TASK_STATUSES))
        .order_by(Task.id)
    )  # fmt: skip
    units = session.scalars(select(Unit).where(resources.in_scope(drill_id)).order_by(Unit.id))
    alerts = select(Incident.alert_id).where(
        Incident.drill_id == drill_id, Incident.alert_id.is_not(None)
    )
    zones = session.scalars(
        select(WarningZone).where(active_clause(), WarningZone.alert_id.in_(alerts))
        .order_by(WarningZone.id)
    )  # fmt: skip
    return {
        "incidents": incident_features(session, incidents, personal=False),
        "units": [crud.feature(resources.UNITS, u) for u in units],
        "tasks": [tasks.task_dict(t) for t in active],
        **fixed_layers(session),
        "warning_zones": [crud.feature(ZONES, z) for z in zones],
        "drill": drill_dict(drill),
    }
