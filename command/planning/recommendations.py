"""Recommendations for one incident: units, positions and drive times from the database and
the road engine, ranked and explained by the pure recommender in ``dispatch``."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import shapely
from geoalchemy2.shape import to_shape
from shapely import Geometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from command.incidents.models import Incident
from command.incidents.service import INCIDENTS, location_of
from command.response_plans import service as plans
from command.tasks.models import ACTIVE_TASK_STATUSES, Task
from command.zones.service import road_closures
from core import crud
from core.errors import InvalidInput
from core.types import utcnow
from dispatch.recommend import Candidate, Recommendation, recommend
from gis.engine import Closures, Engine, Route, Snap, SnapError
from resources.models import Station, Unit
from resources.service import in_scope

ROUTE_TOLERANCE_DEG = 1e-5
ROUTES_FOR = 50  # route geometry for the recommended units (one shortest-path tree)


class CannotRecommend(InvalidInput, ValueError):
    """No advice for this input: the incident is beyond the road network, or a closure
    names an edge it does not have. 422 to whoever asked; a dispatch, which catches
    ValueError, goes ahead without advice."""


def _unit_rows(
    session: Session, needed: set[str], drill_id: int | None = None
) -> tuple[list[Any], int]:
    """Units of the scope (real units; with ``drill_id``, that tabletop drill's stand-ins)
    that have a capability the plan needs (all of them without a plan), with where they
    are (last position, else home station), as plain rows; and how many units of the scope
    lack every needed capability (counted in the database, not loaded)."""
    scope = in_scope(drill_id)
    where = func.coalesce(Unit.geom, Station.geom)
    stmt = (
        select(
            Unit.id, Unit.callsign, Unit.status, Unit.type, Unit.capabilities, Unit.position_at,
            func.ST_X(where).label("lon"), func.ST_Y(where).label("lat"),
        )
        .outerjoin(Station, Station.id == Unit.home_station_id)
        .where(scope)
        .order_by(Unit.id)
    )  # fmt: skip
    if not needed:
        return list(session.execute(stmt)), 0
    useful = Unit.capabilities.overlap(sorted(needed))  # the GIN index answers this
    lacking = session.scalar(select(func.count()).select_from(Unit).where(scope, ~useful)) or 0
    return list(session.execute(stmt.where(useful))), int(lacking)


def recommend_for(
    session: Session,
    engine: Engine,
    incident_id: int,
    *,
    limit: int = 10,
    closures: Closures | None = None,
    stale_after_s: float = 900.0,
) -> dict[str, Any]:
    """Rank every unit for ``incident_id`` against its response plan; explain each. A
    tabletop drill's incident is matched with that drill's stand-in units only, a live
    incident with real units only."""
    incident: Incident = crud.get(session, INCIDENTS, incident_id)
    target = to_shape(location_of(incident))
    plan = plans.plan_for(session, incident.type, incident.severity)
    try:
        snap = engine.snap(target.x, target.y)
    except SnapError as exc:
        raise CannotRecommend(
            f"incident {incident_id} is not near the road network: {exc}"
        ) from exc
    # The units already on their way count against the plan (a second look, or a second
    # call about the same fire, recommends only what is still missing).
    sent = [
        frozenset(caps)
        for caps in session.scalars(
            select(Unit.capabilities)
            .join(Task, Task.unit_id == Unit.id)
            .where(Task.incident_id == incident.id, Task.status.in_(ACTIVE_TASK_STATUSES))
        )
    ]
    body = rank_units(
        session, engine, snap, plan=plan, limit=limit,
        closures=closures, stale_after_s=stale_after_s, sent=sent, drill_id=incident.drill_id,
    )  # fmt: skip
    return {"incident_id": incident.id, "already_sent": len(sent), **body}


def rank_units(
    session: Session,
    engine: Engine,
    target: Snap,
    *,
    plan: Any,
    limit: int,
    closures: Closures | None,
    stale_after_s: float,
    outside: Geometry | None = None,
    sent: Sequence[frozenset[str]] = (),
    drill_id: int | None = None,
) -> dict[str, Any]:
    """Rank units by drive time to ``target`` to fill ``plan``; explain each. Units inside
    ``outside`` (a warning zone being staged around) are left out as ``inside_zone``. Real
    units only; with ``drill_id``, that tabletop drill's stand-in units only."""
    lines = plans.lines(plan)
    units, lacking = _unit_rows(session, {line.capability for line in lines}, drill_id)
    inside = []
    if outside is not None:
        located = [u for u in units if u.lon is not None]
        hit = shapely.contains_xy(outside, [u.lon for u in located], [u.lat for u in located])
        inside = [u for u, h in zip(located, hit, strict=True) if h]
        skip = {u.id for u in inside}
        units = [u for u in units if u.id not in skip]
    now = utcnow()
    free = [u for u in units if u.lon is not None and u.status in ("available", "returning")]
    found = engine.snap_many([u.lon for u in free], [u.lat for u in free])
    # A unit far from any road is left out here and reported as unreachable below.
    snapped = [u for u, s in zip(free, found, strict=True) if s is not None]
    snaps = [s for s in found if s is not None]
    closures = road_closures(session, closures)
    try:
        matrix = engine.matrix(snaps, [target], closures=closures)
    except ValueError as exc:  # a closed edge id the network does not have
        raise CannotRecommend(str(exc)) from exc
    eta = {u.id: (float(matrix.durations_s[i, 0]), float(matrix.distances_m[i, 0]))
           for i, u in enumerate(snapped)}  # fmt: skip
    candidates = []
    for u in units:
        age = (now - u.position_at).total_seconds() if u.position_at is not None else None
        t, d = eta.get(u.id, (math.inf, math.inf))
        candidates.append(
            Candidate(u.id, u.callsign, u.status, frozenset(u.capabilities), t, d,
                      position_age_s=age, has_position=u.lon is not None)
        )  # fmt: skip
    result = recommend(lines, candidates, stale_after_s=stale_after_s, limit=limit, sent=sent)
    body = _body(plan, result, engine, snaps, snapped, target, closures, units)
    if lacking:
        body["excluded_counts"]["lacks_capability"] = lacking
    for u in inside:
        body["excluded"].append({"unit_id": u.id, "callsign": u.callsign, "reason": "inside_zone",
                                 "why": "inside the warning zone"})  # fmt: skip
    if inside:
        body["excluded_counts"]["inside_zone"] = len(inside)
    return body


def _body(
    plan: Any,
    result: Recommendation,
    engine: Engine,
    snaps: list[Snap],
    snapped: list[Any],
    incident_snap: Snap,
    closures: Closures | None,
    units: list[Any],
) -> dict[str, Any]:
    by_id = {u.id: u for u in units}
    snap_of = {u.id: s for u, s in zip(snapped, snaps, strict=True)}
    routed = [r.unit_id for r in result.ranked if r.recommended][:ROUTES_FOR]
    found = engine.routes_to(
        incident_snap, [snap_of[u] for u in routed], closures=closures or Closures()
    )
    routes = dict(zip(routed, found, strict=True))
    entries = []
    for r in result.ranked:
        entry = asdict(r)
        unit = by_id[r.unit_id]
        entry.update(type=unit.type, capabilities=list(unit.capabilities), status=unit.status)
        entry["eta_s"] = round(r.eta_s, 1)
        entry["distance_m"] = round(r.distance_m, 1)
        entry["route"] = _line(routes.get(r.unit_id))
        entries.append(entry)
    return {
        "response_plan": None if plan is None else plans.plan_dict(plan),
        "recommendations": entries,
        # Units that could have filled the plan but are left out, each with its reason;
        # the rest (no needed capability) as counts, not a thousand lines.
        "excluded": [
            {"unit_id": e.unit_id, "callsign": e.callsign, "reason": e.reason, "why": e.why}
            for e in result.excluded
            if e.reason != "lacks_capability"
        ],
        "excluded_counts": dict(Counter(e.reason for e in result.excluded)),
        "unmet": [asdict(s) for s in result.unmet],
        "computed_at": utcnow().isoformat(),
    }


def _line(route: Route | None) -> dict[str, Any] | None:
    if route is None:
        return None
    # ~1 m tolerance: what a map shows, at a fraction of the points of the road polylines.
    line = shapely.simplify(shapely.linestrings(route.coords), ROUTE_TOLERANCE_DEG)
    coords = np.round(shapely.get_coordinates(line), 7).tolist()
    return {"type": "LineString", "coordinates": coords if len(coords) > 1 else coords * 2}


def recommended_summary(body: dict[str, Any]) -> list[dict[str, Any]]:
    """What to keep of a recommendation next to the dispatcher's choice."""
    return [
        {"unit_id": e["unit_id"], "rank": e["rank"], "eta_s": e["eta_s"], "fills": e["fills"]}
        for e in body["recommendations"]
        if e["recommended"]
    ]
