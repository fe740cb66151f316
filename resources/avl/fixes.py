"""Position fixes as the ingest sees them, and the checks that need no database.

A :class:`Fix` is one position report, from any path (the single endpoint, the batch
endpoint, the phone's WebSocket, an OsmAnd / Traccar tracker), already in WGS-84 and
checked for range and time. The writer (:mod:`resources.avl.writer`) stores fixes in
groups and answers each with an :class:`Outcome`. The impossible-jump rule is here,
pure, so it can be tested on its own: :func:`judge`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from gis.crs import Crs, to_wgs84
from gis.places import haversine_m

Source = Literal["api", "batch", "ws", "osmand"]
Status = Literal["stored", "duplicate", "refused"]
KNOT_MPS = 1852.0 / 3600.0  # OsmAnd's `speed` is in knots, as Traccar reads it
# A jump is judged with this much slack for GPS noise, or the fix's accuracy if larger.
JUMP_SLACK_M = 50.0


class BadFix(ValueError):
    """A fix that cannot be stored (out of range, too old, too far ahead): its reason."""


@dataclass(slots=True)
class Fix:
    """One fix, in WGS-84, ready to store. ``unit_id`` is 0 until a device's fix is
    resolved to its unit (``device_hash`` set)."""

    unit_id: int
    lon: float
    lat: float
    recorded_at: datetime
    source: Source = "api"
    speed_mps: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    altitude_m: float | None = None
    battery_pct: float | None = None
    device_hash: str | None = None  # an OsmAnd tracker's id, hashed
    address: str | None = None  # where a device's fix came from (hardware allowlists)
    device_id: int | None = None  # set when resolved
    flag: str | None = None  # set by the writer: "jump"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one fix: stored (its track id), a duplicate, or refused (why)."""

    status: Status
    position_id: int | None = None
    flag: str | None = None
    reason: str | None = None
    unit_id: int | None = None


@dataclass(frozen=True, slots=True)
class Window:
    """The times a fix may carry: not older than the track keeps (or the configured
    maximum age), not further ahead than the allowed clock skew."""

    max_age_s: float
    max_future_s: float

    def check(self, at: datetime, now: datetime | None = None) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise BadFix("recorded_at needs a UTC offset")
        now = now or datetime.now(UTC)
        if at < now - timedelta(seconds=self.max_age_s):
            raise BadFix(f"recorded_at is more than {self.max_age_s:g} s in the past")
        if at > now + timedelta(seconds=self.max_future_s):
            raise BadFix(f"recorded_at is more than {self.max_future_s:g} s in the future")
        return at.astimezone(UTC)


def window(max_age_s: float, max_future_s: float, retention_days: int) -> Window:
    return Window(min(float(max_age_s), retention_days * 86400.0), float(max_future_s))


def make_fix(
    unit_id: int,
    lon: float,
    lat: float,
    recorded_at: datetime,
    *,
    times: Window,
    crs: Crs = "wgs84",
    source: Source = "api",
    speed_mps: float | None = None,
    heading_deg: float | None = None,
    accuracy_m: float | None = None,
    altitude_m: float | None = None,
    battery_pct: float | None = None,
    now: datetime | None = None,
) -> Fix:
    """A checked fix: coordinates finite and in range (converted from ``crs``), the time
    inside ``times``, speed, heading, accuracy and battery sane. Raises :class:`BadFix`."""
    for name, value in (("lon", lon), ("lat", lat)):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise BadFix(f"{name} must be a finite number")
    if not -180.0 <= lon <= 180.0:
        raise BadFix("lon must be between -180 and 180")
    if not -90.0 <= lat <= 90.0:
        raise BadFix("lat must be between -90 and 90")
    if lon == 0.0 and lat == 0.0:
        raise BadFix("lon, lat is 0, 0: a tracker without a fix")
    at = times.check(recorded_at, now)
    _optional("speed_mps", speed_mps, 0.0, 300.0)
    _optional("accuracy_m", accuracy_m, 0.0, 100_000.0)
    _optional("altitude_m", altitude_m, -1000.0, 50_000.0)
    _optional("battery_pct", battery_pct, 0.0, 100.0)
    if heading_deg is not None:
        _optional("heading_deg", heading_deg, 0.0, 360.0)
        heading_deg = float(heading_deg) % 360.0
    wlon, wlat = to_wgs84(float(lon), float(lat), crs)
    return Fix(
        unit_id=unit_id,
        lon=wlon,
        lat=wlat,
        recorded_at=at,
        source=source,
        speed_mps=speed_mps,
        heading_deg=heading_deg,
        accuracy_m=accuracy_m,
        altitude_m=altitude_m,
        battery_pct=battery_pct,
    )


def _optional(name: str, value: float | None, lo: float, hi: float) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or not math.isfinite(value) or not lo <= value <= hi:
        raise BadFix(f"{name} must be a number from {lo:g} to {hi:g}")


def device_hash(device_id: str) -> str:
    """What is stored of a tracker's id: its SHA-256 (the id is the tracker's secret)."""
    return hashlib.sha256(device_id.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class Last:
    """A unit's last good position (the one the map shows)."""

    lon: float
    lat: float
    at: datetime


@dataclass(slots=True)
class Judged:
    """Each fix's flag, and per unit the newest good fix (it moves the unit)."""

    flags: list[str | None] = field(default_factory=list)
    newest: dict[int, int] = field(default_factory=dict)  # unit id -> index of its fix


def judge(fixes: list[Fix], last: dict[int, Last], max_speed_mps: float) -> Judged:
    """Flag impossible jumps: a fix farther from the unit's last good fix than
    ``max_speed_mps`` could drive in the time between them (at least 1 s), plus the GPS
    slack. Fixes are judged per unit in time order; a good fix newer than the last good
    one becomes the last. An older fix (out of order) is judged against the last good
    one too, but never becomes the last."""
    out = Judged(flags=[None] * len(fixes))
    order = sorted(range(len(fixes)), key=lambda i: (fixes[i].unit_id, fixes[i].recorded_at))
    for i in order:
        fix = fixes[i]
        prev = last.get(fix.unit_id)
        if prev is not None and _impossible(fix, prev, max_speed_mps):
            out.flags[i] = "jump"
            continue
        if prev is None or fix.recorded_at > prev.at:
            last[fix.unit_id] = Last(fix.lon, fix.lat, fix.recorded_at)
            out.newest[fix.unit_id] = i
    return out


def _impossible(fix: Fix, prev: Last, max_speed_mps: float) -> bool:
    gap_s = max(abs((fix.recorded_at - prev.at).total_seconds()), 1.0)
    slack = max(JUMP_SLACK_M, fix.accuracy_m or 0.0)
    return haversine_m(prev.lon, prev.lat, fix.lon, fix.lat) > max_speed_mps * gap_s + slack


def first_of_each(fixes: Iterable[Fix]) -> tuple[list[int], list[int]]:
    """Indexes of the first fix of each (unit, time), and of the repeats after it."""
    seen: set[tuple[int, datetime]] = set()
    firsts: list[int] = []
    repeats: list[int] = []
    for i, fix in enumerate(fixes):
        key = (fix.unit_id, fix.recorded_at)
        (repeats if key in seen else firsts).append(i)
        seen.add(key)
    return firsts, repeats
