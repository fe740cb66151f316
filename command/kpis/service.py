"""The KPI queries: every figure computed in SQL, in one pass over the window's incidents.

Times come from the stored status times: reported = ``incident.reported_at``; dispatched =
the first task's ``assigned_at``; first on scene = the earliest task ``on_scene_at``
(tasks cancelled later still count: the unit was assigned, or was there). Units, shelters
and stock are the state now, not windowed, and have no drill side.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Float,
    Integer,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from command.incidents.models import Incident
from command.tasks.models import Task
from core.config import Settings
from core.errors import InvalidInput
from dispatch.targets import Target, TargetTable, share
from resources.models import Shelter, Stock, Unit, Warehouse

DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=366)
QUANTILES = (0.5, 0.9, 0.95)
HISTOGRAM_BIN_S = 60  # response-time histogram: 60 s bins up to 20 min, then overflow
HISTOGRAM_MAX_S = 1200
LOW_STOCK_LIMIT = 1000  # rows listed; the panel shows the worst first anyway


def targets_read(table: TargetTable) -> dict[str, Any]:
    """The targets as the API shows them: the defaults and the types with their own."""
    return {
        "default": _target_dict(table.default),
        "by_type": {t: _target_dict(v) for t, v in table.overridden().items()},
    }


def target_table(settings: Settings) -> TargetTable:
    """The response targets configured for this installation (EMERGENCY_TARGET_*)."""
    return TargetTable(
        dispatch_s=settings.target_dispatch_s,
        travel_s=settings.target_travel_s,
        by_type=settings.target_by_type,
    )


def resolve_window(
    since: datetime | None, until: datetime | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """[since, until): by default the 24 h before ``until`` (default now). Both need an
    offset; since < until; at most 366 days."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise InvalidInput(f"{name} needs a UTC offset (ISO 8601, e.g. ...+08:00 or Z)")
    end = until if until is not None else now
    try:
        start = since if since is not None else end - DEFAULT_WINDOW
    except OverflowError as exc:  # an `until` within a day of year 1
        raise InvalidInput("until is before the first day a window can start") from exc
    if start >= end:
        raise InvalidInput("since must be before until")
    if end - start > MAX_WINDOW:
        raise InvalidInput("the window is at most 366 days")
    return start, end


def _seconds(interval: ColumnElement[Any]) -> ColumnElement[float]:
    return cast(func.extract("epoch", interval), Float)


def _firsts(*, since: datetime, until: datetime, drill: bool, drill_id: int | None) -> CTE:
    """One row per incident in the window: its type, status, reported, first dispatched
    and first on-scene times (with ``drill_id``, that drill's incidents only)."""
    scope = [] if drill_id is None else [Incident.drill_id == drill_id]
    return (
        select(
            Incident.id,
            Incident.type,
            Incident.status,
            Incident.reported_at,
            func.min(Task.assigned_at).label("dispatched_at"),
            func.min(Task.on_scene_at).label("on_scene_at"),
        )
        .outerjoin(Task, Task.incident_id == Incident.id)
        .where(
            Incident.reported_at >= since,
            Incident.reported_at < until,
            Incident.drill.is_(drill),
            *scope,
        )
        .group_by(Incident.id)
        .cte("firsts")
    )


def _response_target(type_: ColumnElement[str], table: TargetTable) -> ColumnElement[int]:
    whens = [(type_ == t, target.response_s) for t, target in table.overridden().items()]
    default = table.default.response_s
    return case(*whens, else_=default) if whens else literal(default)


def _target_dict(target: Target) -> dict[str, int]:
    return {
        "dispatch_s": target.dispatch_s,
        "travel_s": target.travel_s,
        "response_s": target.response_s,
    }


def _stats(row: Any, prefix: str) -> dict[str, Any]:
    n = int(row[f"{prefix}_n"])
    values = [row[f"{prefix}_p{int(q * 100)}"] for q in QUANTILES]
    return {"n": n} | {
        f"p{int(q * 100)}_s": (None if v is None else float(v))
        for q, v in zip(QUANTILES, values, strict=True)
    }


def _within(row: Any) -> dict[str, Any]:
    within, missed = int(row["within"]), int(row["missed"])
    return {
        "within": within,
        "missed": missed,
        "pending": int(row["pending"]),
        "share": share(within, missed),
    }


def incident_kpis(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    drill: bool,
    table: TargetTable,
    as_of: datetime,
    drill_id: int | None = None,
) -> dict[str, Any]:
    """Counts, interval percentiles, 处置及时率 and the response-time histogram for the
    window, overall, by type and by status in one statement (GROUPING SETS); see
    dispatch/targets.py for outcomes. ``drill_id`` (with ``drill``) narrows it to one
    tabletop drill's incidents (its after-action report)."""
    f = _binned(_firsts(since=since, until=until, drill=drill, drill_id=drill_id))
    target_s = _response_target(f.c.type, table)
    response = _seconds(f.c.on_scene_at - f.c.reported_at)
    arrived = f.c.on_scene_at.is_not(None)
    passed = _seconds(literal(as_of) - f.c.reported_at) >= target_s
    within = and_(arrived, response <= target_s)
    missed = or_(and_(arrived, response > target_s), and_(~arrived, passed))
    pending = and_(~arrived, ~passed)
    intervals = {
        "dispatch": _seconds(f.c.dispatched_at - f.c.reported_at),
        "travel": _seconds(f.c.on_scene_at - f.c.dispatched_at),
        "response": response,
    }
    columns: list[Any] = [
        func.grouping(f.c.type).label("g_type"),
        func.grouping(f.c.status).label("g_status"),
        f.c.type,
        f.c.status,
        func.count().label("count"),
        func.count().filter(within).label("within"),
        func.count().filter(missed).label("missed"),
        func.count().filter(pending).label("pending"),
    ]
    columns += _histogram_columns(f)
    for name, expr in intervals.items():
        columns.append(func.count(expr).label(f"{name}_n"))
        columns += [
            func.percentile_cont(q).within_group(expr).label(f"{name}_p{int(q * 100)}")
            for q in QUANTILES
        ]
    stmt = select(*columns).group_by(func.grouping_sets(tuple_(), f.c.type, f.c.status))
    overall: Any = None
    by_type: list[dict[str, Any]] = []
    by_status: dict[str, int] = {}
    for row in session.execute(stmt).mappings():
        if row["g_type"] and row["g_status"]:
            overall = row
        elif not row["g_type"]:
            by_type.append(
                {
                    "type": row["type"],
                    "count": int(row["count"]),
                    "target": _target_dict(table.for_type(row["type"])),
                    "within_target": _within(row),
                }
            )
        else:
            by_status[row["status"]] = int(row["count"])
    by_type.sort(key=lambda t: t["type"])
    return {
        "incidents": {
            "total": int(overall["count"]),
            "by_status": dict(sorted(by_status.items())),
            "by_type": by_type,
        },
        "times": {
            "reported_to_dispatched": _stats(overall, "dispatch"),
            "dispatched_to_on_scene": _stats(overall, "travel"),
            "reported_to_on_scene": _stats(overall, "response"),
        },
        "within_target": _within(overall),
        "response_histogram": _histogram(overall, target_s=table.default.response_s),
    }


def _binned(firsts: CTE) -> CTE:
    """The window's incidents with their response-time bin (null: no unit on scene yet),
    computed once per incident rather than once per bin."""
    bins = HISTOGRAM_MAX_S // HISTOGRAM_BIN_S
    response = _seconds(firsts.c.on_scene_at - firsts.c.reported_at)
    # GREATEST and LEAST skip nulls (they would put "not yet on scene" into bin 0): CASE first.
    index = func.least(func.greatest(func.floor(response / HISTOGRAM_BIN_S), 0), bins)
    arrived = firsts.c.on_scene_at.is_not(None)
    binned = case((arrived, cast(index, Integer)), else_=None)
    return select(firsts, binned.label("response_bin")).cte("binned")


def _histogram_columns(binned: CTE) -> list[Any]:
    """One count per response-time bin (HISTOGRAM_BIN_S wide up to HISTOGRAM_MAX_S, then
    one overflow bin), as aggregates of the same pass."""
    bins = HISTOGRAM_MAX_S // HISTOGRAM_BIN_S
    return [
        func.count().filter(binned.c.response_bin == i).label(f"hist_{i}") for i in range(bins + 1)
    ]


def _histogram(row: Any, *, target_s: int) -> dict[str, Any]:
    bins = HISTOGRAM_MAX_S // HISTOGRAM_BIN_S
    return {
        "bin_s": HISTOGRAM_BIN_S,
        "max_s": HISTOGRAM_MAX_S,
        "counts": [int(row[f"hist_{i}"]) for i in range(bins + 1)],
        "target_s": target_s,
    }


def unit_kpis(session: Session) -> dict[str, Any]:
    """Real units by status now (a tabletop drill's stand-ins are not units one has)."""
    rows = session.execute(
        select(Unit.status, func.count()).where(Unit.drill_id.is_(None)).group_by(Unit.status)
    ).all()
    by_status = {status: int(n) for status, n in sorted(rows)}
    total = sum(by_status.values())
    available = by_status.get("available", 0)
    return {
        "total": total,
        "by_status": by_status,
        "available": available,
        "available_share": available / total if total else None,
    }


def shelter_kpis(session: Session) -> dict[str, Any]:
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(Shelter.capacity), 0),
            func.coalesce(func.sum(Shelter.occupancy), 0),
            func.coalesce(func.sum(Shelter.planned_arrivals), 0),
        ).where(Shelter.status == "open")
    ).one()
    count, capacity, occupancy, planned = (int(v) for v in row)
    return {
        "open": count,
        "capacity": capacity,
        "occupancy": occupancy,
        "planned_arrivals": planned,
        "occupancy_share": occupancy / capacity if capacity else None,
        "committed_share": (occupancy + planned) / capacity if capacity else None,
    }


def low_stock(session: Session) -> list[dict[str, Any]]:
    """Stock rows below their low-water mark, the emptiest (quantity / low_water) first."""
    stmt = (
        select(Stock, Warehouse.name)
        .join(Warehouse, Warehouse.id == Stock.warehouse_id)
        .where(Stock.low_water.is_not(None), Stock.quantity < Stock.low_water)
        .order_by(
            (cast(Stock.quantity, Float) / Stock.low_water).asc(), Stock.warehouse_id, Stock.item
        )
        .limit(LOW_STOCK_LIMIT)
    )
    return [
        {
            "stock_id": stock.id,
            "warehouse_id": stock.warehouse_id,
            "warehouse": name,
            "item": stock.item,
            "unit_of_measure": stock.unit_of_measure,
            "quantity": stock.quantity,
            "low_water": stock.low_water,
        }
        for stock, name in session.execute(stmt).all()
    ]


def kpis(
    session: Session,
    *,
    since: datetime | None,
    until: datetime | None,
    drill: bool,
    table: TargetTable,
    now: datetime,
    drill_id: int | None = None,
) -> dict[str, Any]:
    """Every KPI for incidents reported in [since, until) (see :func:`resolve_window`),
    judged at ``now``; drill incidents only when ``drill`` (one tabletop drill's with
    ``drill_id``), else only real ones."""
    start, end = resolve_window(since, until, now=now)
    drill = drill or drill_id is not None
    return {
        "since": start,
        "until": end,
        "as_of": now,
        "drill": drill,
        "drill_id": drill_id,
        "targets": targets_read(table),
        **incident_kpis(
            session, since=start, until=end, drill=drill, table=table, as_of=now, drill_id=drill_id
        ),
        "units": unit_kpis(session),
        "shelters": shelter_kpis(session),
        "low_stock": low_stock(session),
    }
