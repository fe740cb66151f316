"""KPIs by area: the console's response figures (command/kpis/service.py) per square cell
of a metric grid.

The area is a square cell of ``cell_m`` metres in the UTM zone of the incidents' mean
position (EPSG:326zz north, 327zz south), cells aligned on multiples of ``cell_m`` from the
zone's origin, so two exports with the same cell size share their cells. Equal cells make
counts comparable across the city, cover all of it, and do not overlap (warning zones do
both, and most incidents lie in none). Only cells with incidents are listed.

Per cell, with the console's definitions: dispatched = the first task's assignment, on
scene = the first task on scene, outcome against the type's response target judged at
``as_of`` (dispatch/targets.py); percentiles are continuous (numpy's linear, which is
PostgreSQL's percentile_cont).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyproj
import shapely
from shapely import Polygon

from dispatch.targets import TargetTable, outcome, share


@dataclass(frozen=True)
class Arrival:
    """One incident as the KPIs see it."""

    type: str
    lon: float
    lat: float
    reported_at: datetime
    dispatched_at: datetime | None  # the first task's assigned_at
    on_scene_at: datetime | None  # the first task's on_scene_at


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the UTM zone at (``lon``, ``lat``), degrees (WGS-84)."""
    zone = min(math.floor((lon + 180.0) / 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def grid_epsg(arrivals: Sequence[Arrival]) -> int:
    """The grid's CRS for these incidents: the UTM zone of their mean position."""
    if not arrivals:
        return 32631
    return utm_epsg(
        float(np.mean([a.lon for a in arrivals])), float(np.mean([a.lat for a in arrivals]))
    )


def cells(
    arrivals: Sequence[Arrival],
    *,
    cell_m: int,
    epsg: int,
    table: TargetTable,
    as_of: datetime,
) -> list[tuple[dict[str, Any], Polygon]]:
    """Each cell holding incidents, in (x, y) order: its figures and its square
    (WGS-84).

    Parameters
    ----------
    arrivals : the window's incidents (with a location)
    cell_m : the cells' side, metres
    epsg : the grid's projected CRS (a UTM zone, :func:`grid_epsg`)
    table : the response targets by incident type, seconds
    as_of : when outcomes are judged (an incident not yet reached is pending until its
        target passes)
    """
    if not arrivals:
        return []
    to_grid = pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    to_wgs84 = pyproj.Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    x, y = to_grid.transform([a.lon for a in arrivals], [a.lat for a in arrivals])
    ix = np.floor(np.asarray(x) / cell_m).astype(np.int64)
    iy = np.floor(np.asarray(y) / cell_m).astype(np.int64)
    groups: dict[tuple[int, int], list[Arrival]] = {}
    for i, j, arrival in zip(ix.tolist(), iy.tolist(), arrivals, strict=True):
        groups.setdefault((i, j), []).append(arrival)
    out = []
    for (i, j), members in sorted(groups.items()):
        figures = {
            "cell": f"{epsg}:{i}:{j}",
            "grid_epsg": epsg,
            "x_m": i * cell_m,
            "y_m": j * cell_m,
            "cell_m": cell_m,
            **figures_of(members, table=table, as_of=as_of),
        }
        out.append((figures, _square(i * cell_m, j * cell_m, cell_m, to_wgs84)))
    return out


def figures_of(
    arrivals: Sequence[Arrival], *, table: TargetTable, as_of: datetime
) -> dict[str, Any]:
    """Count, dispatch and response percentiles (s), outcomes and 处置及时率 of a group."""
    dispatch = [
        (a.dispatched_at - a.reported_at).total_seconds()
        for a in arrivals
        if a.dispatched_at is not None
    ]
    response = [
        (a.on_scene_at - a.reported_at).total_seconds()
        for a in arrivals
        if a.on_scene_at is not None
    ]
    outcomes = [
        outcome(
            reported_at=a.reported_at,
            on_scene_at=a.on_scene_at,
            response_s=table.for_type(a.type).response_s,
            as_of=as_of,
        )
        for a in arrivals
    ]
    within, missed = outcomes.count("within"), outcomes.count("missed")
    types: dict[str, int] = {}
    for a in arrivals:
        types[a.type] = types.get(a.type, 0) + 1
    return {
        "incidents": len(arrivals),
        "dispatched": len(dispatch),
        "dispatch_p50_s": _percentile(dispatch, 50),
        "dispatch_p90_s": _percentile(dispatch, 90),
        "responded": len(response),
        "response_p50_s": _percentile(response, 50),
        "response_p90_s": _percentile(response, 90),
        "within": within,
        "missed": missed,
        "pending": outcomes.count("pending"),
        "within_share": share(within, missed),
        "types": dict(sorted(types.items())),
    }


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _square(x0: float, y0: float, side: float, to_wgs84: pyproj.Transformer) -> Polygon:
    """The cell's square in WGS-84, each side densified to 8 segments so the outline
    follows the grid's straight lines where it is projected."""
    box = shapely.segmentize(shapely.box(x0, y0, x0 + side, y0 + side), side / 8)
    xy = shapely.get_coordinates(box)
    lon, lat = to_wgs84.transform(xy[:, 0], xy[:, 1])
    return Polygon(np.column_stack([lon, lat]))
