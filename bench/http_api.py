"""HTTP API benchmark: incident create and bbox lists through the real server.

Run with ``uv run python -m bench.http_api`` (or ``make bench``). It

1. creates a throwaway PostGIS database, migrates it and bulk-loads 10,000 incidents,
   2,000 units and 60 stations spread over a ~20 x 20 km box around the demo city;
2. starts the real server (``emergency serve``) in a subprocess on a free loopback port;
3. measures, over one keep-alive HTTP connection after a warm-up, each operation N times,
   interleaved one-for-one with a peer that does the same work without HTTP:
   - POST /api/incidents   vs. ``command.incidents.create_incident`` + commit in-process;
   - GET  /api/incidents?bbox / GET /api/units?bbox   vs. the very SQL statements the app
     issues for that request (captured from SQLAlchemy), run directly with psycopg;
4. prints median and p95 of both and their ratio, writes bench/results/http_api.json,
   and drops the database and stops the server whatever happened.

Client, server and PostgreSQL share this machine's cores, so absolute numbers are noisy;
the ratio against the side-by-side peer is the figure to compare between machines.
"""

from __future__ import annotations

import math
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import yaml
from shapely.geometry import Point
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from bench.fresh import report_on_fresh_database, sign_in
from bench.timing import machine, percentile, timed
from command.auth import service as auth
from command.incidents.service import create_incident as create_incident_service
from command.incidents.service import list_incidents
from core import crud
from core.db import make_engine, make_sessionmaker, session_scope
from core.security import Principal
from resources import service
from tests.support.servers import running_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "http_api.json"
CITY = ROOT / "data" / "demo" / "city.yaml"

# Fixed sizes: the issue asks for 10,000 incidents and 2,000 units.
N_INCIDENTS = 10_000
N_UNITS = 2_000
N_STATIONS = 60
CITY_KM = 20.0  # side of the square the data is spread over
N_WARMUP = 20
N_CREATE = 300
N_LIST = 300
SEED = 20_261_122
HTTP_TIMEOUT_S = 30.0
USERNAME = "bench_dispatcher"

INCIDENT_TYPES = (
    ("fire", 25),
    ("medical", 30),
    ("traffic_accident", 20),
    ("flood", 8),
    ("hazmat", 4),
    ("building_collapse", 3),
    ("water_rescue", 5),
    ("gas_leak", 5),
)
INCIDENT_STATUSES = (
    ("reported", 12),
    ("verified", 8),
    ("dispatched", 10),
    ("on_scene", 10),
    ("resolved", 15),
    ("closed", 35),
    ("cancelled", 10),
)
SEVERITIES = (("minor", 35), ("moderate", 40), ("severe", 20), ("extreme", 5))
UNIT_TYPES = (
    ("fire_engine", "vehicle", ["fire_suppression", "rescue"], 30),
    ("ladder_truck", "vehicle", ["fire_suppression", "aerial", "rescue"], 8),
    ("ambulance", "vehicle", ["medical_bls", "medical_als"], 30),
    ("police_car", "vehicle", ["traffic_control", "security"], 15),
    ("hazmat_unit", "vehicle", ["hazmat", "decontamination"], 3),
    ("rescue_team", "team", ["rescue", "rope_rescue", "collapse_search"], 7),
    ("water_rescue_team", "team", ["water_rescue", "rescue"], 4),
    ("medical_team", "team", ["medical_bls"], 3),
)
UNIT_STATUSES = (
    ("available", 60),
    ("assigned", 8),
    ("en_route", 8),
    ("on_scene", 12),
    ("returning", 7),
    ("out_of_service", 5),
)
STATION_KINDS = ("fire", "ambulance", "police", "rescue", "hospital")


# --- geometry of the test city -----------------------------------------------------


@dataclass(frozen=True)
class Box:
    west: float
    south: float
    east: float
    north: float

    @property
    def param(self) -> str:
        return f"{self.west:.6f},{self.south:.6f},{self.east:.6f},{self.north:.6f}"

    @property
    def tuple(self) -> tuple[float, float, float, float]:
        # Exactly what the server parses from ``param`` (same rounding).
        return tuple(float(v) for v in self.param.split(","))  # type: ignore[return-value]


def deg_per_km(lat: float) -> tuple[float, float]:
    """Degrees of longitude and latitude per kilometre at ``lat``."""
    return 1 / (111.320 * math.cos(math.radians(lat))), 1 / 110.574


def box_around(lon: float, lat: float, km: float) -> Box:
    dlon, dlat = deg_per_km(lat)
    half_x, half_y = km / 2 * dlon, km / 2 * dlat
    return Box(lon - half_x, lat - half_y, lon + half_x, lat + half_y)


def city_box() -> Box:
    """The demo city's bbox, grown around its centre to CITY_KM x CITY_KM."""
    city = yaml.safe_load(CITY.read_text(encoding="utf-8"))
    lon, lat = city["center"]
    return box_around(float(lon), float(lat), CITY_KM)


def random_boxes(rng: random.Random, city: Box, km: float, n: int) -> list[Box]:
    """``n`` boxes of ``km`` x ``km`` placed at random entirely inside the city."""
    mid_lat = (city.south + city.north) / 2
    dlon, dlat = deg_per_km(mid_lat)
    half_x, half_y = km / 2 * dlon, km / 2 * dlat
    boxes = []
    for _ in range(n):
        lon = rng.uniform(city.west + half_x, city.east - half_x)
        lat = rng.uniform(city.south + half_y, city.north - half_y)
        boxes.append(Box(lon - half_x, lat - half_y, lon + half_x, lat + half_y))
    return boxes


def weighted(rng: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    return rng.choices(table, weights=[row[-1] for row in table])[0]


# --- bulk load ---------------------------------------------------------------------


def psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def bulk_load(url: str, city: Box, rng: random.Random) -> dict[str, int]:
    """Stations, units and incidents straight into the tables (no HTTP, no audit)."""
    now = datetime.now(UTC)
    with psycopg.connect(psycopg_url(url)) as conn, conn.cursor() as cur:

        def rand_point() -> tuple[float, float]:
            return rng.uniform(city.west, city.east), rng.uniform(city.south, city.north)

        stations = []
        for i in range(N_STATIONS):
            lon, lat = rand_point()
            kind = STATION_KINDS[i % len(STATION_KINDS)]
            stations.append((f"bench-st-{i}", f"Bench {kind} station {i}", kind, lon, lat))
        cur.executemany(
            "INSERT INTO station (external_id, name, kind, geom) "
            "VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            stations,
        )
        cur.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM station ORDER BY id")
        station_rows = cur.fetchall()

        units = []
        for i in range(N_UNITS):
            type_, kind, caps, _ = weighted(rng, UNIT_TYPES)
            (status, _) = weighted(rng, UNIT_STATUSES)
            st_id, st_lon, st_lat = rng.choice(station_rows)
            if status in ("available", "out_of_service") and rng.random() < 0.7:
                lon, lat = st_lon, st_lat  # at home
            else:
                lon, lat = rand_point()
            has_fix = rng.random() > 0.02  # a few units have never reported a position
            units.append(
                (
                    f"BU{i:05d}",
                    f"Bench {type_} {i}",
                    kind,
                    type_,
                    caps,
                    rng.randint(2, 8),
                    st_id,
                    status,
                    lon if has_fix else None,
                    lat if has_fix else None,
                    now - timedelta(seconds=rng.randint(0, 3600)) if has_fix else None,
                )
            )
        cur.executemany(
            "INSERT INTO unit (callsign, name, kind, type, capabilities, crew, "
            "home_station_id, status, geom, position_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            "%s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s)",
            units,
        )

        incidents = []
        for i in range(N_INCIDENTS):
            (type_, _) = weighted(rng, INCIDENT_TYPES)
            (status, _) = weighted(rng, INCIDENT_STATUSES)
            (severity, _) = weighted(rng, SEVERITIES)
            lon, lat = rand_point()
            reported = now - timedelta(seconds=rng.randint(0, 30 * 86400))
            stamps = {s: None for s, _ in INCIDENT_STATUSES if s != "reported"}
            if status != "reported":
                stamps[status] = reported + timedelta(seconds=rng.randint(60, 7200))
            # 3% are areas (a ~150 m square), the rest points.
            if rng.random() < 0.03:
                d = 0.001
                wkt = (
                    f"POLYGON(({lon} {lat},{lon + 2 * d} {lat},{lon + 2 * d} {lat + d},"
                    f"{lon} {lat + d},{lon} {lat}))"
                )
            else:
                wkt = f"POINT({lon} {lat})"
            incidents.append(
                (
                    f"Bench {type_} #{i}",
                    type_,
                    severity,
                    status,
                    f"Street {rng.randint(1, 400)}",
                    rng.choice((None, rng.randint(0, 200))),
                    rng.choice(("manual", "manual", "alert")),
                    "bench",
                    rng.random() < 0.05,
                    wkt,
                    reported,
                    stamps["verified"],
                    stamps["dispatched"],
                    stamps["on_scene"],
                    stamps["resolved"],
                    stamps["closed"],
                    stamps["cancelled"],
                )
            )
        # `location` is generated from geom by PostgreSQL: never inserted.
        cur.executemany(
            "INSERT INTO incident (title, type, severity, status, address, people_affected, "
            "source, reported_by, drill, geom, reported_at, verified_at, dispatched_at, "
            "on_scene_at, resolved_at, closed_at, cancelled_at) VALUES (%s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, ST_GeomFromText(%s, 4326), %s, %s, %s, %s, %s, %s, %s)",
            incidents,
        )
        conn.commit()
        conn.autocommit = True
        cur.execute("ANALYZE")
        counts = {}
        for table in ("station", "unit", "incident"):
            cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
            counts[table] = int(cur.fetchone()[0])  # type: ignore[index]
    return counts


# --- statistics and the measurement loop ------------------------------------------


@dataclass
class Row:
    operation: str
    peer: str
    n: int
    median_ms: float
    p95_ms: float
    peer_median_ms: float
    peer_p95_ms: float
    ratio: float
    number_matched: dict[str, float] | None = None


def side_by_side(
    n: int, http: Callable[[int], Any], peer: Callable[[int], Any]
) -> tuple[list[float], list[float], list[Any]]:
    """Round k = 0 .. N_WARMUP+n-1 calls http(k) and peer(k); the first N_WARMUP are
    warm-up. Measured rounds alternate which of the two goes first, so drift and noise
    hit both alike."""
    for k in range(N_WARMUP):
        http(k)
        peer(k)
    http_ms: list[float] = []
    peer_ms: list[float] = []
    outs: list[Any] = []
    for i in range(n):
        k = N_WARMUP + i
        if i % 2 == 0:
            ms, out = timed(lambda k=k: http(k))
            pms, _ = timed(lambda k=k: peer(k))
        else:
            pms, _ = timed(lambda k=k: peer(k))
            ms, out = timed(lambda k=k: http(k))
        http_ms.append(ms)
        peer_ms.append(pms)
        outs.append(out)
    return http_ms, peer_ms, outs


def make_row(
    operation: str, peer: str, http_ms: list[float], peer_ms: list[float], matched: list[int]
) -> Row:
    med, pmed = statistics.median(http_ms), statistics.median(peer_ms)
    return Row(
        operation=operation,
        peer=peer,
        n=len(http_ms),
        median_ms=round(med, 3),
        p95_ms=round(percentile(http_ms, 95), 3),
        peer_median_ms=round(pmed, 3),
        peer_p95_ms=round(percentile(peer_ms, 95), 3),
        ratio=round(med / pmed, 2) if pmed > 0 else float("nan"),
        number_matched=(
            {"median": statistics.median(matched), "min": min(matched), "max": max(matched)}
            if matched
            else None
        ),
    )


# --- peers -------------------------------------------------------------------------


class SqlCapture:
    """Record the statements an engine sends, to replay them verbatim with psycopg."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []

    def __enter__(self) -> SqlCapture:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        self.statements.append((statement, params))


def capture_list_sql(engine: Engine, run: Callable[[Session], Any]) -> list[tuple[str, Any]]:
    """The SQL (and parameters) that one list call of the app's service layer issues."""
    factory = make_sessionmaker(engine)
    with factory() as session, SqlCapture(engine) as cap:
        run(session)
        session.rollback()
    return [(s, p) for s, p in cap.statements if s.lstrip().upper().startswith("SELECT")]


def replay(conn: psycopg.Connection[Any], statements: list[tuple[str, Any]]) -> int:
    rows = 0
    with conn.cursor() as cur:
        for sql, params in statements:
            cur.execute(sql, params)
            rows += len(cur.fetchall())
    return rows


# --- the operations ----------------------------------------------------------------


def bench_create(
    client: httpx.Client,
    factory: sessionmaker[Session],
    principal: Principal,
    city: Box,
    rng: random.Random,
) -> Row:
    def point() -> tuple[float, float]:
        return rng.uniform(city.west, city.east), rng.uniform(city.south, city.north)

    def http(k: int) -> None:
        lon, lat = point()
        body = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"title": f"HTTP bench fire {k}", "type": "fire", "severity": "severe"},
        }
        r = client.post("/api/incidents", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"POST /api/incidents -> {r.status_code}: {r.text[:300]}")

    def peer(k: int) -> None:
        lon, lat = point()
        props = {"title": f"Direct bench fire {k}", "type": "fire", "severity": "severe"}
        with factory() as session:
            create_incident_service(session, props=props, geom=Point(lon, lat), principal=principal)
            session.commit()

    http_ms, peer_ms, _ = side_by_side(N_CREATE, http, peer)
    return make_row(
        "POST /api/incidents", "create_incident()+commit, no HTTP", http_ms, peer_ms, []
    )


def bench_list(
    client: httpx.Client,
    engine: Engine,
    raw: psycopg.Connection[Any],
    *,
    operation: str,
    path: str,
    boxes: list[Box],
    params: dict[str, Any],
    service_call: Callable[[Session, Box], Any],
) -> Row:
    """GET ``path`` with each box vs. the same SQL (captured per box) through psycopg."""
    sql = [capture_list_sql(engine, lambda s, b=b: service_call(s, b)) for b in boxes]

    def http(k: int) -> int:
        r = client.get(path, params={**params, "bbox": boxes[k].param})
        if r.status_code != 200:
            raise RuntimeError(f"GET {path} -> {r.status_code}: {r.text[:300]}")
        return int(r.json()["numberMatched"])

    def peer(k: int) -> int:
        return replay(raw, sql[k])

    http_ms, peer_ms, matched = side_by_side(len(boxes) - N_WARMUP, http, peer)
    return make_row(operation, "same SQL via psycopg", http_ms, peer_ms, matched)


# --- main --------------------------------------------------------------------------


def run_benchmark(url: str) -> dict[str, Any]:
    rng = random.Random(SEED)
    city = city_box()
    t0 = time.perf_counter()
    counts = bulk_load(url, city, rng)
    load_s = time.perf_counter() - t0

    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    password = secrets.token_urlsafe(18)
    with session_scope(factory) as session:
        user = auth.add_user(session, username=USERNAME, password=password, role="dispatcher")
        principal = Principal(kind="user", id=user.id, name=USERNAME, role="dispatcher")

    raw = psycopg.connect(psycopg_url(url), autocommit=True)
    secret_key = secrets.token_urlsafe(36)  # 48 characters
    rows: list[Row] = []
    try:
        host = machine(raw)
        with (
            running_server(url, secret_key) as base,
            httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client,
        ):
            sign_in(client, USERNAME, password)

            rows.append(bench_create(client, factory, principal, city, rng))
            for km, limit in ((2.0, 100), (10.0, 1000)):
                rows.append(
                    bench_list(
                        client,
                        engine,
                        raw,
                        operation=f"GET /api/incidents bbox {km:g}x{km:g} km limit={limit}",
                        path="/api/incidents",
                        boxes=random_boxes(rng, city, km, N_WARMUP + N_LIST),
                        params={"limit": limit},
                        service_call=lambda s, b, limit=limit: list_incidents(
                            s,
                            bbox=b.tuple,
                            status=None,
                            type=None,
                            drill=None,
                            limit=limit,
                            offset=0,
                        ),
                    )
                )
            unit_filters = {"status": "available", "type": None, "kind": None, "station_id": None}
            rows.append(
                bench_list(
                    client,
                    engine,
                    raw,
                    operation="GET /api/units bbox 10x10 km status=available limit=1000",
                    path="/api/units",
                    boxes=random_boxes(rng, city, 10.0, N_WARMUP + N_LIST),
                    params={"status": "available", "limit": 1000},
                    service_call=lambda s, b: crud.list_page(
                        s, service.UNITS, bbox=b.tuple, filters=unit_filters, limit=1000, offset=0
                    ),
                )
            )
    finally:
        raw.close()
        engine.dispose()

    return {
        "benchmark": "http_api",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "data": {
            **counts,
            "city_bbox": asdict(city),
            "city_km": CITY_KM,
            "bulk_load_s": round(load_s, 2),
        },
        "setup": {
            "warmup_rounds": N_WARMUP,
            "client": "httpx2, one keep-alive connection over loopback",
            "server": "emergency serve (uvicorn, one process) in a subprocess",
            "order": "HTTP and peer alternate one-for-one, who goes first flips every round",
            "bbox": "a new random box inside the city every round; peer replays the SQL the "
            "app's service layer issues for that same box (count + page)",
        },
        "rows": [asdict(r) for r in rows],
    }


def render(result: dict[str, Any]) -> str:
    m, d = result["machine"], result["data"]
    lines = [
        f"HTTP API benchmark ({result['when']}): {m['cpus']} CPUs, {m['postgresql']}, "
        f"PostGIS {m['postgis']}, Python {m['python']}",
        f"data loaded: {d['incident']} incidents, {d['unit']} units, "
        f"{d['station']} stations in {d['city_km']:g}x{d['city_km']:g} km; "
        f"bulk load {d['bulk_load_s']} s",
        f"client, server and PostgreSQL share the machine; {result['setup']['warmup_rounds']} "
        "warm-up rounds, then HTTP and peer interleaved",
        "",
    ]
    header = (
        f"{'operation':<56} {'n':>4} {'median ms':>10} {'p95 ms':>9} "
        f"{'peer med ms':>12} {'peer p95':>9} {'ratio':>6}  {'numberMatched':<22} peer"
    )
    lines += [header, "-" * len(header)]
    for r in result["rows"]:
        nm = r["number_matched"]
        matched = f"{nm['median']:g} ({nm['min']}-{nm['max']})" if nm else "-"
        lines.append(
            f"{r['operation']:<56} {r['n']:>4} {r['median_ms']:>10.2f} {r['p95_ms']:>9.2f} "
            f"{r['peer_median_ms']:>12.2f} {r['peer_p95_ms']:>9.2f} {r['ratio']:>5.1f}x  "
            f"{matched:<22} {r['peer']}"
        )
    lines += [
        "",
        "ratio = HTTP median / peer median. numberMatched = features in the box: median "
        "(min-max) over the measured rounds.",
    ]
    return "\n".join(lines)


def main() -> int:
    return report_on_fresh_database(run_benchmark, render, RESULTS, ROOT)


if __name__ == "__main__":
    sys.exit(main())
