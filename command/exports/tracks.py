"""The track's layers: one line per unit (``tracks``) and one point per fix
(``positions``), read from the partitioned ``unit_position`` by ``recorded_at`` first."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from geoalchemy2 import Geography
from sqlalchemy import cast, func, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from command.exports.scope import Scope, seconds
from command.exports.table import Kind, Table, kinds_of, table
from core.errors import InvalidInput
from resources.models import Unit, UnitPosition

MAX_FIXES = 1_000_000  # a window with more is refused (narrow it)


def _fixes_in(where: Scope) -> list[Any]:
    """The track rows of the window (by ``recorded_at`` first: the partitions), of real
    units and the drill's stand-ins."""
    return [
        UnitPosition.recorded_at >= where.since,
        UnitPosition.recorded_at < where.until,
        Unit.drill_id.is_(None)
        if where.drill_id is None
        else or_(Unit.drill_id.is_(None), Unit.drill_id == where.drill_id),
    ]


def _check_fixes(session: Session, where: Scope) -> None:
    """Refuse a window with more than :data:`MAX_FIXES` fixes (counting no further)."""
    capped = (
        select(UnitPosition.unit_id)
        .join(Unit, Unit.id == UnitPosition.unit_id)
        .where(*_fixes_in(where))
        .limit(MAX_FIXES + 1)
        .subquery()
    )
    if session.execute(select(func.count()).select_from(capped)).scalar_one() > MAX_FIXES:
        raise InvalidInput(f"more than {MAX_FIXES:,} fixes in the window: narrow it")


TRACK_COLUMNS: list[tuple[str, Kind]] = [
    ("unit_id", "int64"),
    ("callsign", "text"),
    ("drill_id", "int64"),
    ("fixes", "int"),
    ("flagged", "int"),
    ("started_at", "datetime"),
    ("ended_at", "datetime"),
    ("duration_s", "float"),
    ("length_m", "float"),
]


def tracks(session: Session, where: Scope) -> Table:
    """One line per unit with fixes in the window: its good fixes in time order (flagged
    ones counted, not drawn; no line below two), its length on the ellipsoid (m)."""
    _check_fixes(session, where)
    good = UnitPosition.flag.is_(None)
    line = func.ST_MakeLine(aggregate_order_by(UnitPosition.geom, UnitPosition.recorded_at)).filter(
        good
    )
    found = session.execute(
        select(
            UnitPosition.unit_id,
            Unit.callsign,
            Unit.drill_id,
            func.count().filter(good),
            func.count().filter(UnitPosition.flag.is_not(None)),
            func.min(UnitPosition.recorded_at).filter(good),
            func.max(UnitPosition.recorded_at).filter(good),
            func.ST_AsBinary(line),
            func.ST_Length(cast(line, Geography)),
        )
        .join(Unit, Unit.id == UnitPosition.unit_id)
        .where(*_fixes_in(where))
        .group_by(UnitPosition.unit_id, Unit.callsign, Unit.drill_id)
        .order_by(UnitPosition.unit_id)
    ).all()
    rows, lines = [], []
    for unit_id, callsign, drill_id, fixes, flagged, first, last, wkb, length_m in found:
        drawn = fixes >= 2
        rows.append(
            {
                "unit_id": unit_id,
                "callsign": callsign,
                "drill_id": drill_id,
                "fixes": fixes,
                "flagged": flagged,
                "started_at": first,
                "ended_at": last,
                "duration_s": seconds(first, last),
                "length_m": length_m if drawn else None,
            }
        )
        lines.append(shapely.from_wkb(bytes(wkb)) if drawn else None)
    return table("tracks", "LineString", TRACK_COLUMNS, rows, lines)


POSITION_COLUMNS: list[tuple[str, Kind]] = [
    ("id", "int64"),
    ("unit_id", "int64"),
    ("callsign", "text"),
    ("drill_id", "int64"),
    *kinds_of(
        UnitPosition,
        (
            "recorded_at",
            "received_at",
            "speed_mps",
            "heading_deg",
            "accuracy_m",
            "altitude_m",
            "battery_pct",
            "source",
            "flag",
        ),
    ),
]


def positions(session: Session, where: Scope) -> Table:
    """Every fix in the window, flagged ones included (``flag``: why it was not used)."""
    _check_fixes(session, where)
    p = UnitPosition
    found = session.execute(
        select(
            p.id,
            p.unit_id,
            Unit.callsign,
            Unit.drill_id,
            p.recorded_at,
            p.received_at,
            p.speed_mps,
            p.heading_deg,
            p.accuracy_m,
            p.altitude_m,
            p.battery_pct,
            p.source,
            p.flag,
            func.ST_X(p.geom),
            func.ST_Y(p.geom),
        )
        .join(Unit, Unit.id == p.unit_id)
        .where(*_fixes_in(where))
        .order_by(p.unit_id, p.recorded_at)
    ).all()
    # Column by column: a window may hold up to MAX_FIXES rows.
    columns = list(zip(*found, strict=True)) or [()] * (len(POSITION_COLUMNS) + 2)
    values = {name: columns[i] for i, (name, _) in enumerate(POSITION_COLUMNS)}
    points = shapely.points(np.column_stack([columns[-2], columns[-1]])) if found else []
    return Table("positions", "Point", tuple(POSITION_COLUMNS), values, list(points))
