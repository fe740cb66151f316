"""The export layers: which there are, what each covers, and the KPIs by area's query.

Each layer is filtered on its own time, in [since, until): incidents on ``reported_at``,
tasks on ``assigned_at``, tracks and fixes on ``recorded_at`` (the partitioned track is
read by that range first), warning zones that were in force at some moment of it (their
``[starts_at, ends_at)`` meets it), KPIs on the incidents' ``reported_at``. Shelters have
no time: all of them, as they are now (the window is still checked).

Personal data is never exported: incidents go through the API's one serialiser with
``personal=False`` and tasks through the event payload's (neither holds the caller's
phone); trackers' device ids are left out. Drill data is left out unless one tabletop
drill is asked for (``drill_id``); its rows then come with the real ones, marked by
``drill_id``. Drill data that no drill owns (an Exercise alert with no tabletop running)
and drill warning zones, which carry no drill id, are never exported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from command.drills.models import Drill
from command.exports import areas, records, tracks
from command.exports.scope import DEFAULT_CELL_M, Scope
from command.exports.table import Kind, Table, table
from command.incidents.models import Incident
from command.kpis.service import resolve_window
from command.tasks.models import Task
from core.errors import InvalidInput, NotFound
from dispatch.targets import TargetTable
from resources.avl.track import MAX_SPAN


@dataclass(frozen=True)
class Layer:
    name: str
    build: Callable[[Session, Scope], Table]
    max_span: timedelta | None = None  # beyond the 366 days every window may span


def layer(name: str) -> Layer:
    """The layer called ``name``, or NotFound naming the layers there are."""
    found = LAYERS.get(name)
    if found is None:
        raise NotFound(f"no export layer {name!r}; the layers are {', '.join(LAYERS)}")
    return found


def scope(
    session: Session,
    found: Layer,
    *,
    since: datetime | None,
    until: datetime | None,
    drill_id: int | None,
    targets: TargetTable,
    now: datetime,
    cell_m: int = DEFAULT_CELL_M,
) -> Scope:
    """The export's scope: the window as the KPIs resolve it (offsets required, since <
    until, at most 366 days; default the 24 h before now), in UTC, at most
    ``found.max_span``; ``drill_id`` must name a drill."""
    try:
        start, end = resolve_window(since, until, now=now)
        start, end = start.astimezone(UTC), end.astimezone(UTC)
    except OverflowError as exc:  # e.g. until=0001-01-01: its default since is before year 1
        raise InvalidInput("the window is out of range (years 1 to 9999, in UTC)") from exc
    if found.max_span is not None and end - start > found.max_span:
        raise InvalidInput(f"{found.name}: the window is at most {found.max_span.days} days")
    if drill_id is not None and session.get(Drill, drill_id) is None:
        raise NotFound(f"drill {drill_id} not found")
    return Scope(start, end, now, drill_id, targets, cell_m)


def export(session: Session, found: Layer, where: Scope) -> Table:
    """The layer's rows for ``where``."""
    return found.build(session, where)


# --- KPIs by area -------------------------------------------------------------------------
KPI_COLUMNS: list[tuple[str, Kind]] = [
    ("cell", "text"),
    ("grid_epsg", "int"),
    ("x_m", "int"),
    ("y_m", "int"),
    ("cell_m", "int"),
    ("drill_id", "int64"),
    ("incidents", "int"),
    ("dispatched", "int"),
    ("dispatch_p50_s", "float"),
    ("dispatch_p90_s", "float"),
    ("responded", "int"),
    ("response_p50_s", "float"),
    ("response_p90_s", "float"),
    ("within", "int"),
    ("missed", "int"),
    ("pending", "int"),
    ("within_share", "float"),
    ("types", "json"),
]


def _arrivals(session: Session, where: Scope, drill_id: int | None) -> list[areas.Arrival]:
    """The window's incidents with a location, real (``drill_id`` None) or one drill's,
    with their first dispatch and first arrival (as command/kpis/service.py's ``firsts``)."""
    scope_clause = (
        and_(Incident.drill.is_(False), Incident.drill_id.is_(None))
        if drill_id is None
        else Incident.drill_id == drill_id
    )
    found = session.execute(
        select(
            Incident.type,
            func.ST_X(Incident.location),
            func.ST_Y(Incident.location),
            Incident.reported_at,
            func.min(Task.assigned_at),
            func.min(Task.on_scene_at),
        )
        .outerjoin(Task, Task.incident_id == Incident.id)
        .where(
            Incident.reported_at >= where.since,
            Incident.reported_at < where.until,
            Incident.location.is_not(None),
            scope_clause,
        )
        .group_by(Incident.id)
        .order_by(Incident.id)
    ).all()
    return [areas.Arrival(*row) for row in found]


def kpis(session: Session, where: Scope) -> Table:
    """The console's response figures per grid cell (command/exports/areas.py): real
    incidents, and the drill's in rows of their own (``drill_id`` set)."""
    groups: list[tuple[int | None, list[areas.Arrival]]] = [(None, _arrivals(session, where, None))]
    if where.drill_id is not None:
        groups.append((where.drill_id, _arrivals(session, where, where.drill_id)))
    epsg = areas.grid_epsg([a for _, found in groups for a in found])
    rows, squares = [], []
    for drill_id, found in groups:
        for figures, square in areas.cells(
            found, cell_m=where.cell_m, epsg=epsg, table=where.targets, as_of=where.as_of
        ):
            rows.append({**figures, "drill_id": drill_id})
            squares.append(square)
    return table("kpis", "Polygon", KPI_COLUMNS, rows, squares)


LAYERS: dict[str, Layer] = {
    one.name: one
    for one in (
        Layer("incidents", records.incidents),
        Layer("tasks", records.tasks),
        Layer("tracks", tracks.tracks, max_span=MAX_SPAN),
        Layer("positions", tracks.positions, max_span=MAX_SPAN),
        Layer("zones", records.zones),
        Layer("shelters", records.shelters),
        Layer("kpis", kpis),
    )
}
