"""The incident stream of one replication: when, where, what, and every random service time
it will need, drawn up front.

Each replication draws its stream from its own seeds (``seed``, replication, stream), and
every policy is given the same stream: the same calls and the same time on scene for the
k-th unit at each call (common random numbers), so policies differ by their decisions only.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray

from drills.dist import sample
from drills.scenario import Generator, Inject, Polygon, Scenario, ScenarioError

SLOTS = 8  # service draws kept per call: the k-th unit sent uses slot k % SLOTS
MAX_CSV_ROWS = 2_000_000
_STREAM_CALLS, _STREAM_SERVICE, _STREAM_DEMAND = 1, 2, 3


@dataclass(frozen=True)
class Calls:
    """Calls sorted by time ``t_s`` (seconds since the scenario's start)."""

    t_s: NDArray[np.float64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    type: tuple[str, ...]
    severity: tuple[str, ...]
    dispatch_delay_s: NDArray[np.float64]  # (n,)
    turnout_s: NDArray[np.float64]  # (n, SLOTS)
    on_scene_s: NDArray[np.float64]  # (n, SLOTS)
    transport: NDArray[np.bool_]  # (n,): the first unit takes a patient to hospital
    transport_s: NDArray[np.float64]  # (n,): transport when no hospitals are given
    handover_s: NDArray[np.float64]  # (n,): at the hospital

    def __len__(self) -> int:
        return len(self.t_s)


def rng(seed: int, replication: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, replication, stream])


def _segments(start: datetime, duration_s: float) -> list[tuple[float, float, int]]:
    """``(from_s, to_s, local hour)`` pieces of the run, cut at each local hour."""
    out = []
    first = start.replace(minute=0, second=0, microsecond=0)
    t = 0.0
    boundary = (first + timedelta(hours=1) - start).total_seconds()
    hour = start.hour
    while t < duration_s:
        end = min(boundary, duration_s)
        out.append((t, end, hour))
        t, boundary, hour = end, boundary + 3600, (hour + 1) % 24
    return out


def _points_in(polygon: Polygon, n: int, r: np.random.Generator) -> NDArray[np.float64]:
    """``n`` points uniform in lon/lat inside ``polygon`` (rejection from its bounds)."""
    shape = shapely.Polygon(polygon.coordinates[0], polygon.coordinates[1:])
    x0, y0, x1, y1 = shape.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        want = max(16, int((n - len(out)) * 1.5 * (x1 - x0) * (y1 - y0) / shape.area) + 1)
        cand = np.column_stack((r.uniform(x0, x1, want), r.uniform(y0, y1, want)))
        inside = shapely.contains_xy(shape, cand[:, 0], cand[:, 1])
        out = np.vstack((out, cand[inside]))
    return out[:n]


def place(g: Generator, n: int, r: np.random.Generator) -> NDArray[np.float64]:
    """``n`` incident positions (lon, lat) for a point or polygon generator."""
    if g.points is not None:
        pts = np.asarray(g.points, dtype=np.float64)
        return pts[r.integers(0, len(pts), n)]
    if g.polygon is not None:
        return _points_in(g.polygon, n, r)
    assert g.polygons is not None
    weights = np.array([p.weight for p in g.polygons])
    which = r.choice(len(weights), size=n, p=weights / weights.sum())
    out = np.empty((n, 2))
    for k, wp in enumerate(g.polygons):
        mask = which == k
        if mask.any():
            out[mask] = _points_in(wp.polygon, int(mask.sum()), r)
    return out


def _poisson(g: Generator, scenario: Scenario, r: np.random.Generator) -> NDArray[np.float64]:
    profile = g.hourly_profile or [1.0] * 24
    times = []
    for t0, t1, hour in _segments(scenario.start, scenario.duration_s):
        mean = g.rate_per_h * profile[hour] * (t1 - t0) / 3600
        k = int(r.poisson(mean)) if mean > 0 else 0
        times.append(r.uniform(t0, t1, k))
    return np.sort(np.concatenate(times)) if times else np.empty(0)


def _time_of(cell: str, start: datetime) -> float:
    cell = cell.strip()
    try:
        return float(cell)
    except ValueError:
        pass
    when = datetime.fromisoformat(cell)
    if when.tzinfo is None:
        raise ValueError("a time needs a UTC offset (or give seconds since the start)")
    return (when - start).total_seconds()


CsvRows = tuple[tuple[float, float, float, str, str], ...]


def read_csv(g: Generator, scenario: Scenario, where: str) -> CsvRows:
    """Historical incidents of a ``csv`` generator inside the run's window: (t_s, lon, lat,
    type, severity); ``time`` is ISO 8601 with an offset, or seconds since the start.

    Every replication and policy (each call stream, and each run's demand points) reads the
    same rows: the file is parsed once per process while it is unchanged (its size and
    modification time are part of the key)."""
    assert g.csv is not None
    path = Path(g.csv)
    try:
        st = path.stat()
    except OSError as exc:
        raise ScenarioError([(where, f"cannot read {path.name}: {exc.strerror}")]) from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    return _parse_csv(key, g.type, g.severity, scenario.start, scenario.duration_s, where)


@functools.lru_cache(maxsize=8)
def _parse_csv(
    key: tuple[str, int, int],
    default_type: str,
    default_severity: str,
    start: datetime,
    duration_s: float,
    where: str,
) -> CsvRows:
    path = Path(key[0])
    rows = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ScenarioError([(where, f"cannot read {path.name}: {why}")]) from None
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"time", "lon", "lat"} - set(reader.fieldnames or ())
        if missing:
            raise ScenarioError([(where, f"{path.name}: missing columns {sorted(missing)}")])
        for n, row in enumerate(reader, start=2):
            if n > MAX_CSV_ROWS:
                raise ScenarioError([(where, f"more than {MAX_CSV_ROWS} rows")])
            try:
                t = _time_of(row["time"], start)
                lon, lat = float(row["lon"]), float(row["lat"])
                if not (-180 <= lon <= 180 and -90 <= lat <= 90) or not math.isfinite(t):
                    raise ValueError("lon/lat out of range")
                sev = (row.get("severity") or default_severity).strip()
                if sev not in ("minor", "moderate", "severe", "extreme"):
                    raise ValueError(f"unknown severity {sev!r}")
            except (ValueError, TypeError) as exc:
                raise ScenarioError([(where, f"{path.name} line {n}: {exc}")]) from None
            if 0 <= t < duration_s:
                rows.append((t, lon, lat, (row.get("type") or default_type).strip(), sev))
    return tuple(rows)


def generate(scenario: Scenario, replication: int, *, injects: Sequence[Inject] = ()) -> Calls:
    """The calls of ``replication`` (same for every policy), with their service draws."""
    r = rng(scenario.seed, replication, _STREAM_CALLS)
    rows: list[tuple[float, float, float, str, str]] = []
    for i, g in enumerate(scenario.generators):
        if g.csv is not None:
            rows.extend(read_csv(g, scenario, f"generators.{i}.csv"))
            continue
        times = _poisson(g, scenario, r)
        at = place(g, len(times), r)
        rows.extend(
            (float(tt), float(x), float(y), g.type, g.severity)
            for tt, (x, y) in zip(times, at, strict=True)
        )
    for inj in (*scenario.injects, *injects):
        if inj.at_s < scenario.duration_s:
            rows.append((inj.at_s, inj.lon, inj.lat, inj.type, inj.severity))
    t = [row[0] for row in rows]
    lon = [row[1] for row in rows]
    lat = [row[2] for row in rows]
    types = [row[3] for row in rows]
    sevs = [row[4] for row in rows]
    order = np.argsort(np.asarray(t, dtype=np.float64), kind="stable")
    n = len(order)
    s = rng(scenario.seed, replication, _STREAM_SERVICE)
    svc = scenario.service
    return Calls(
        t_s=np.asarray(t, dtype=np.float64)[order],
        lon=np.asarray(lon, dtype=np.float64)[order],
        lat=np.asarray(lat, dtype=np.float64)[order],
        type=tuple(types[k] for k in order),
        severity=tuple(sevs[k] for k in order),
        dispatch_delay_s=sample(svc.dispatch_delay_s, s, n),
        turnout_s=sample(svc.turnout_s, s, (n, SLOTS)),
        on_scene_s=sample(svc.on_scene_s, s, (n, SLOTS)),
        transport=s.random(n) < svc.transport_probability,
        transport_s=sample(svc.transport_s, s, n),
        handover_s=sample(svc.handover_s, s, n),
    )


def demand_points(
    scenario: Scenario, n: int = 300
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Where calls come from, for coverage: ``(lonlat (k, 2), weights (k,))``, a sample of
    ``n`` points drawn from the generators in proportion to their rates (a CSV generator's
    own rows, as many as it has in the window), from a stream of its own."""
    r = rng(scenario.seed, 0, _STREAM_DEMAND)
    pts: list[NDArray[np.float64]] = []
    weights: list[NDArray[np.float64]] = []
    rates = [
        g.rate_per_h * (sum(g.hourly_profile) / 24 if g.hourly_profile else 1.0)
        for g in scenario.generators
    ]
    total = sum(rates) or 1.0
    for i, (g, rate) in enumerate(zip(scenario.generators, rates, strict=True)):
        if g.csv is not None:
            rows = read_csv(g, scenario, f"generators.{i}.csv")
            if rows:
                pick = r.choice(len(rows), size=min(n, len(rows)), replace=False)
                pts.append(np.array([[rows[k][1], rows[k][2]] for k in sorted(pick)]))
                weights.append(
                    np.full(len(pick), len(rows) / scenario.duration_s * 3600 / len(pick))
                )
            continue
        k = max(1, round(n * rate / total)) if rate > 0 else 0
        if k:
            pts.append(place(g, k, r))
            weights.append(np.full(k, rate / k))
    for inj in scenario.injects:
        pts.append(np.array([[inj.lon, inj.lat]]))
        weights.append(np.array([1e-6]))
    if not pts:
        return np.empty((0, 2)), np.empty(0)
    return np.vstack(pts), np.concatenate(weights)
