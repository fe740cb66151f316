"""The track: daily partitions, retention, and a unit's drive as a line for review.

``unit_position`` is partitioned by day on ``recorded_at`` (migration 0013). Partitions
are made ahead of time by the live jobs (today and the next two days) and on demand by the
writer; those wholly older than ``EMERGENCY_TRACK_RETENTION_DAYS`` are dropped, which is
how the track forgets (a ``DELETE`` of millions of rows would bloat the table and the WAL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

_PARTITION = re.compile(r"^unit_position_p(\d{8})$")
MAX_POINTS = 2000  # a longer track is simplified to about this many vertices
MAX_SPAN = timedelta(days=31)


def make_partitions(session: Session, days: Iterable[date]) -> list[str]:
    """Make the daily partitions for ``days`` (those that exist are left alone)."""
    names = []
    for day in sorted(set(days)):
        names.append(
            session.execute(text("SELECT unit_position_partition(:d)"), {"d": day}).scalar_one()
        )
    return names


def partitions(session: Session) -> dict[date, str]:
    """The track's partitions by day."""
    rows = session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'unit_position'::regclass"
        )
    ).scalars()
    out = {}
    for name in rows:
        match = _PARTITION.match(name)
        if match:
            out[datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date()] = name
    return out


def maintain(
    session: Session, *, retention_days: int, now: datetime | None = None, ahead_days: int = 2
) -> list[str]:
    """Make today's and the next ``ahead_days`` partitions; drop every partition whose
    whole day is older than the retention. Returns the names dropped. The caller commits.

    A drop takes a brief exclusive lock on the track: ``lock_timeout`` keeps a busy
    moment from queueing the writers behind it (it is tried again next round)."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    make_partitions(session, (today + timedelta(days=k) for k in range(ahead_days + 1)))
    cutoff = (now - timedelta(days=retention_days)).astimezone(UTC)
    dropped = []
    for day, name in sorted(partitions(session).items()):
        day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if day_end <= cutoff:
            session.execute(text("SET LOCAL lock_timeout = '2s'"))
            session.execute(text(f'DROP TABLE "{name}"'))
            dropped.append(name)
    return dropped


@dataclass(frozen=True)
class Track:
    coordinates: list[tuple[float, float]]
    times: list[datetime]
    fixes: int  # fixes in the window (good ones)
    flagged: int
    simplified: bool


def unit_track(
    session: Session,
    unit_id: int,
    since: datetime,
    until: datetime,
    *,
    tolerance_m: float | None = None,
    max_points: int = MAX_POINTS,
) -> Track:
    """The unit's good fixes between ``since`` and ``until`` in time order, simplified
    (Douglas-Peucker, each kept vertex keeping its time) when a tolerance is asked for or
    there are more than ``max_points``. Flagged fixes are counted, not drawn."""
    rows = session.execute(
        text(
            "SELECT ST_X(geom), ST_Y(geom), extract(epoch FROM recorded_at), flag "
            "FROM unit_position WHERE unit_id = :u AND recorded_at >= :a AND recorded_at <= :b "
            "ORDER BY recorded_at"
        ),
        {"u": unit_id, "a": since, "b": until},
    ).all()
    good = [(x, y, t) for x, y, t, flag in rows if flag is None]
    flagged = len(rows) - len(good)
    if not good:
        return Track([], [], 0, flagged, False)
    xyz = np.array(good, dtype=float)
    simplified = False
    if len(xyz) > 2 and (tolerance_m or len(xyz) > max_points):
        xyz = _simplify(xyz, tolerance_m, max_points)
        simplified = len(xyz) < len(good)
    coords = [(round(float(x), 7), round(float(y), 7)) for x, y, _ in xyz]
    times = [datetime.fromtimestamp(float(t), UTC) for _, _, t in xyz]
    return Track(coords, times, len(good), flagged, simplified)


def _simplify(xyz: np.ndarray, tolerance_m: float | None, max_points: int) -> np.ndarray:
    """Douglas-Peucker in a local metric plane (GEOS keeps each kept vertex's Z, here its
    time). Without a tolerance, the smallest of 1, 2, 4, ... m that fits ``max_points``."""
    lat0 = float(np.radians(xyz[:, 1].mean()))
    scale = np.array([111_320.0 * np.cos(lat0), 110_540.0])
    plane = np.column_stack([(xyz[:, :2] - xyz[0, :2]) * scale, np.arange(len(xyz))])
    line = shapely.linestrings(plane)
    tolerance = tolerance_m if tolerance_m else 1.0
    while True:
        kept = shapely.get_coordinates(
            shapely.simplify(line, tolerance, preserve_topology=False), include_z=True
        )
        if tolerance_m or len(kept) <= max_points:
            break
        tolerance *= 2.0
    index = kept[:, 2].astype(int)
    out: np.ndarray = xyz[index]
    return out


def track_feature(unit: Any, since: datetime, until: datetime, track: Track) -> dict[str, Any]:
    """The track as a GeoJSON Feature: a LineString (None below 2 vertices) with a time
    for every vertex."""
    geometry = (
        {"type": "LineString", "coordinates": [list(c) for c in track.coordinates]}
        if len(track.coordinates) >= 2
        else None
    )
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "unit_id": unit.id,
            "callsign": unit.callsign,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "times": [t.isoformat() for t in track.times],
            "fixes": track.fixes,
            "simplified": track.simplified,
            "flagged": track.flagged,
        },
    }
