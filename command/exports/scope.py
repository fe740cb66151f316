"""What an export covers (:class:`Scope`) and the small helpers every layer's query uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import and_, or_

from dispatch.targets import TargetTable

DEFAULT_CELL_M = 1000


@dataclass(frozen=True)
class Scope:
    """What to export: the window [since, until), the tabletop drill whose data comes
    with the real data (None: real data only), when outcomes are judged, the response
    targets and the KPI grid's cell size (m)."""

    since: datetime
    until: datetime
    as_of: datetime
    drill_id: int | None
    targets: TargetTable
    cell_m: int = DEFAULT_CELL_M


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    """``end - start`` in seconds; None unless both are known."""
    return None if start is None or end is None else (end - start).total_seconds()


def shape(element: Any) -> Any:
    """A stored geometry as a shapely shape (None stays None)."""
    return None if element is None else to_shape(element)


def real_or_drill(drill: Any, drill_id_column: Any, where: Scope) -> Any:
    """Real rows (not drill data), and the asked-for drill's."""
    real = and_(drill.is_(False), drill_id_column.is_(None))
    return real if where.drill_id is None else or_(real, drill_id_column == where.drill_id)
