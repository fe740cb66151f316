"""Recommendation benchmark: GET /api/incidents/{id}/recommendations on Porto, 1,000 units.

Run with ``uv run python -m bench.recommend`` (``--profile`` adds a cProfile of the
in-process service call). It

1. creates a throwaway PostGIS database, migrates it, loads the Porto network
   (../shared/data/osm/r5_porto_portugal.osm.pbf, through the usual graph cache) in-process
   and puts, at seeded random junctions, 30 stations, 1,000 units (1-2 capabilities each;
   85% available, the rest busy or out of service; 3% with a two-hour-old, stale position)
   and 50 incidents whose type and severity have a response plan; the plans are those of
   data/demo/response_plans.yaml, written with ``plans.upsert_plan``;
2. starts the real server (``emergency serve``) in a subprocess on a free loopback port, with
   EMERGENCY_OSM_FILE = Porto and the same graph cache, so it starts from the cache; times
   the very first recommendation after /healthz answers (the engine's kernels are still
   warming in a background thread then), then makes 20 warm-up requests;
3. measures N rounds over the 50 incidents (round robin), each round doing, in a rotating
   order, three things for the same incident:
   - HTTP: GET /api/incidents/{id}/recommendations?limit=10 over one keep-alive connection;
   - service: ``command.recommend.recommend_for`` in this process, with a fresh SQLAlchemy
     session against the same database and an engine built and warmed like the server's;
   - routing part: the same ``recommend_for`` call, with every public method of that engine
     instance wrapped in a timer (outermost calls only, so ``matrix`` calling ``snap`` is not
     counted twice). The engine time of that call is the routing part: snapping, the matrix
     and the routes of the recommended units, exactly as the service does them, whatever
     shape the service gives them (one snap per unit or a bulk snap, one route per unit or
     one tree for all). Its remainder is the database, ranking and body-building part. The
     timers cost about a microsecond per call, which is why the plain service call is timed
     on its own, unwrapped;
   Garbage-collector pauses inside the plain in-process calls are timed too (gc callbacks):
   full collections over the ~450,000 objects a loaded server holds are what p95 meets;
4. checks once that the server and the in-process call agree (same ranked units and ETAs),
   prints median and p95 with the issue's targets, writes bench/results/recommend.json, and
   stops the server and drops the database whatever happened.

Targets (issue "Speed, on Porto ..., 1,000 units"): recommendation over HTTP p95 < 50 ms;
the routing part p95 < 20 ms. Client, server and PostgreSQL share this machine's cores.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import inspect
import io
import os
import pstats
import random
import secrets
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import yaml
from sqlalchemy.orm import Session, sessionmaker

from bench.fresh import report_on_fresh_database, sign_in
from bench.http_api import psycopg_url
from bench.timing import machine, percentile
from command.auth import service as auth
from command.planning.recommendations import recommend_for
from command.response_plans import service as plans
from core.config import Settings
from core.db import make_engine, make_sessionmaker, session_scope
from core.security import SYSTEM
from gis.engine import Engine
from gis.network import LoadedNetwork, default_cache_dir, load_network
from resources.models import STATION_KINDS
from tests.support import servers

ROOT = Path(__file__).resolve().parent.parent
OSM = ROOT.parent / "shared" / "data" / "osm" / "r5_porto_portugal.osm.pbf"
PLANS = ROOT / "data" / "demo" / "response_plans.yaml"
RESULTS = ROOT / "bench" / "results" / "recommend.json"

SEED = 20_261_123
N_UNITS = 1_000
N_STATIONS = 30
N_INCIDENTS = 50
N_WARMUP = 20
N_MEASURE = 200
LIMIT = 10
TARGET_HTTP_P95_MS = 50.0
TARGET_ROUTING_P95_MS = 20.0
STALE_FRACTION = 0.03
STALE_AGE = timedelta(hours=2)
HTTP_TIMEOUT_S = 30.0
SERVER_START_TIMEOUT_S = 120.0
MEASURE_BUDGET_S = 600.0  # the measured loop stops early (and says so) past this
USERNAME = "bench_dispatcher"

CAPABILITIES = (
    "fire_suppression",
    "ladder",
    "medical_bls",
    "medical_als",
    "rescue",
    "police",
    "hazmat",
    "water_rescue",
)
# A unit's type and kind follow its first capability.
UNIT_TYPE = {
    "fire_suppression": ("fire_engine", "vehicle"),
    "ladder": ("ladder_truck", "vehicle"),
    "medical_bls": ("ambulance", "vehicle"),
    "medical_als": ("ambulance_als", "vehicle"),
    "rescue": ("rescue_team", "team"),
    "police": ("police_car", "vehicle"),
    "hazmat": ("hazmat_unit", "vehicle"),
    "water_rescue": ("water_rescue_team", "team"),
}
UNIT_STATUSES = (  # 85% available; the rest busy or out of service
    ("available", 85),
    ("assigned", 4),
    ("en_route", 3),
    ("on_scene", 4),
    ("out_of_service", 4),
)
INCIDENT_TYPES = ("fire", "medical", "traffic_accident", "flood")


# --- data --------------------------------------------------------------------------


def load_plans() -> list[dict[str, Any]]:
    return list(yaml.safe_load(PLANS.read_text(encoding="utf-8")))


def write_plans(factory: sessionmaker[Session], rows: list[dict[str, Any]]) -> int:
    with session_scope(factory) as session:
        for row in rows:
            plans.upsert_plan(
                session,
                incident_type=row["incident_type"],
                severity=row["severity"],
                needs=row["needs"],
                note=row.get("note"),
                principal=SYSTEM,
            )
    return len(rows)


def bulk_load(
    url: str, net: LoadedNetwork, plan_rows: list[dict[str, Any]], rng: random.Random
) -> dict[str, Any]:
    """Stations, units and incidents at random junctions, straight into the tables."""
    g = net.graph
    now = datetime.now(UTC)

    def node() -> tuple[float, float]:
        i = rng.randrange(g.n_nodes)
        return float(g.node_lon[i]), float(g.node_lat[i])

    with psycopg.connect(psycopg_url(url)) as conn, conn.cursor() as cur:
        stations = []
        for i in range(N_STATIONS):
            kind = STATION_KINDS[i % 5]  # fire, ambulance, police, hospital, rescue
            stations.append((f"bench-st-{i}", f"Bench {kind} station {i}", kind, *node()))
        cur.executemany(
            "INSERT INTO station (external_id, name, kind, geom) "
            "VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            stations,
        )
        cur.execute("SELECT id FROM station ORDER BY id")
        station_ids = [int(r[0]) for r in cur.fetchall()]

        statuses, weights = zip(*UNIT_STATUSES, strict=True)
        units = []
        stale = 0
        for i in range(N_UNITS):
            caps = rng.sample(CAPABILITIES, rng.choice((1, 2)))
            type_, kind = UNIT_TYPE[caps[0]]
            status = rng.choices(statuses, weights=weights)[0]
            if rng.random() < STALE_FRACTION:
                at = now - STALE_AGE
                stale += 1
            else:
                at = now - timedelta(seconds=rng.uniform(0, 300))
            units.append(
                (
                    f"BR{i:04d}",
                    f"Bench {type_} {i}",
                    kind,
                    type_,
                    caps,
                    rng.randint(2, 6),
                    rng.choice(station_ids),
                    status,
                    *node(),
                    at,
                )
            )
        cur.executemany(
            "INSERT INTO unit (callsign, name, kind, type, capabilities, crew, "
            "home_station_id, status, geom, position_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            "%s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s)",
            units,
        )

        choices = [
            (p["incident_type"], p["severity"])
            for p in plan_rows
            if p["incident_type"] in INCIDENT_TYPES
        ]
        incidents = []
        for i in range(N_INCIDENTS):
            type_, severity = rng.choice(choices)
            lon, lat = node()
            incidents.append(
                (f"Bench {type_} #{i}", type_, severity, "reported", "bench", "bench", lon, lat)
            )
        # `location` is generated from geom by PostgreSQL: never inserted.
        cur.executemany(
            "INSERT INTO incident (title, type, severity, status, source, reported_by, drill, "
            "geom) VALUES (%s, %s, %s, %s, %s, %s, false, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            incidents,
        )
        cur.execute("SELECT id FROM incident ORDER BY id")
        incident_ids = [int(r[0]) for r in cur.fetchall()]
        conn.commit()
        conn.autocommit = True
        cur.execute("ANALYZE")
        cur.execute("SELECT status, count(*) FROM unit GROUP BY status ORDER BY status")
        by_status = {str(s): int(n) for s, n in cur.fetchall()}
        cur.execute("SELECT type || '/' || severity, count(*) FROM incident GROUP BY 1 ORDER BY 1")
        by_kind = {str(s): int(n) for s, n in cur.fetchall()}
    return {
        "incident_ids": incident_ids,
        "stations": len(station_ids),
        "units": len(units),
        "units_by_status": by_status,
        "units_stale": stale,
        "incidents": len(incident_ids),
        "incidents_by_type": by_kind,
    }


# --- the engine, as the server builds it, and its clock ---------------------------


def server_like_engine(net: LoadedNetwork) -> Engine:
    """What ``command.roads.open_engine`` builds, warmed now instead of in a thread, and,
    as the server does, its long-lived objects frozen out of garbage collection (else this
    process's own full collections would stall the HTTP client mid-measurement)."""
    engine = Engine(net.graph, ch=net.ch, max_snap_m=Settings().max_snap_m).prepare().warm()
    gc.collect()
    gc.freeze()
    return engine


@dataclass
class EngineClock:
    """Time spent in one Engine instance's public methods, outermost calls only."""

    engine: Engine
    total_ns: int = 0
    by_method_ns: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _depth: int = 0
    _names: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.total_ns = 0
        self.by_method_ns = defaultdict(int)
        self.calls = defaultdict(int)

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                ns = time.perf_counter_ns() - start
                self._depth -= 1
                self.total_ns += ns
                self.by_method_ns[name] += ns
                self.calls[name] += 1

        return timed

    def __enter__(self) -> EngineClock:
        for name, _fn in inspect.getmembers(type(self.engine), inspect.isfunction):
            if name.startswith("_") or name in ("prepare", "warm", "warm_in_background"):
                continue
            # An instance attribute shadows the class function for this instance only.
            setattr(self.engine, name, self._wrap(name, getattr(self.engine, name)))
            self._names.append(name)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self._names:
            self.engine.__dict__.pop(name, None)
        self._names.clear()


class GcClock:
    """Time the garbage collector spends, in this process, by generation."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, ms)
        self._start = 0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
        else:
            self.pauses.append((int(info["generation"]), ms_since(self._start)))

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def ms(self, since: int = 0) -> float:
        return sum(ms for _, ms in self.pauses[since:])


# --- the server --------------------------------------------------------------------


@contextmanager
def running_server(url: str, secret_key: str, cache_dir: Path) -> Iterator[tuple[str, float]]:
    """The real server (routing on Porto, from the cache); yields its base URL and the
    seconds it took to become healthy."""
    started = time.monotonic()
    extra = {"EMERGENCY_OSM_FILE": str(OSM), "EMERGENCY_GRAPH_CACHE_DIR": str(cache_dir)}
    with servers.running_server(
        url, secret_key, extra_env=extra, timeout_s=SERVER_START_TIMEOUT_S
    ) as base:
        yield base, time.monotonic() - started


# --- measurement -------------------------------------------------------------------


@dataclass
class Row:
    operation: str
    n: int
    median_ms: float
    p95_ms: float
    target: str = "-"
    verdict: str = "-"
    note: str = ""


def row(
    operation: str, values: list[float], *, target_p95: float | None = None, note: str = ""
) -> Row:
    p95 = percentile(values, 95)
    return Row(
        operation=operation,
        n=len(values),
        median_ms=round(statistics.median(values), 3),
        p95_ms=round(p95, 3),
        target="-" if target_p95 is None else f"p95 < {target_p95:g} ms",
        verdict="-" if target_p95 is None else ("PASS" if p95 < target_p95 else "FAIL"),
        note=note,
    )


def ms_since(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


def ranked(body: dict[str, Any]) -> list[tuple[int, float, bool]]:
    return [(e["unit_id"], e["eta_s"], e["route"] is not None) for e in body["recommendations"]]


def measure(
    client: httpx.Client,
    factory: sessionmaker[Session],
    engine: Engine,
    incident_ids: list[int],
) -> dict[str, Any]:
    path = "/api/incidents/{}/recommendations"

    def http(incident_id: int) -> dict[str, Any]:
        r = client.get(path.format(incident_id), params={"limit": LIMIT})
        if r.status_code != 200:
            raise RuntimeError(f"GET {path.format(incident_id)} -> {r.status_code}: {r.text[:300]}")
        return dict(r.json())

    def service(incident_id: int) -> dict[str, Any]:
        with factory() as session:
            body = recommend_for(session, engine, incident_id, limit=LIMIT)
            session.rollback()
        return body

    clock = EngineClock(engine)
    gc_clock = GcClock()
    gc_ms: list[float] = []  # collector time inside each plain service call
    http_ms: list[float] = []
    service_ms: list[float] = []
    routing_ms: list[float] = []
    rest_ms: list[float] = []
    per_method: dict[str, list[float]] = defaultdict(list)
    per_calls: dict[str, list[int]] = defaultdict(list)
    sizes: list[tuple[int, int, int]] = []  # ranked, recommended, with route

    def do_http(incident_id: int) -> None:
        start = time.perf_counter_ns()
        body = http(incident_id)
        http_ms.append(ms_since(start))
        recs = body["recommendations"]
        sizes.append(
            (
                len(recs),
                sum(1 for e in recs if e["recommended"]),
                sum(1 for e in recs if e["route"] is not None),
            )
        )

    def do_service(incident_id: int) -> None:
        before = len(gc_clock.pauses)
        start = time.perf_counter_ns()
        service(incident_id)
        service_ms.append(ms_since(start))
        gc_ms.append(gc_clock.ms(before))

    def do_routing(incident_id: int) -> None:
        with clock:
            clock.reset()
            start = time.perf_counter_ns()
            service(incident_id)
            total = ms_since(start)
        routing_ms.append(clock.total_ns / 1e6)
        rest_ms.append(total - clock.total_ns / 1e6)
        for name, ns in clock.by_method_ns.items():
            per_method[name].append(ns / 1e6)
            per_calls[name].append(clock.calls[name])

    # Warm-up (the server's first request is timed by the caller), then agreement.
    for k in range(N_WARMUP):
        incident_id = incident_ids[k % len(incident_ids)]
        http(incident_id)
        service(incident_id)
    disagree = []
    for incident_id in incident_ids:
        a, b = ranked(http(incident_id)), ranked(service(incident_id))
        if a != b:
            disagree.append(incident_id)

    steps = (do_http, do_service, do_routing)
    deadline = time.monotonic() + MEASURE_BUDGET_S
    done = 0
    with gc_clock:
        for i in range(N_MEASURE):
            if time.monotonic() > deadline:
                break
            incident_id = incident_ids[i % len(incident_ids)]
            for j in range(3):  # rotate who goes first, so drift hits all three alike
                steps[(i + j) % 3](incident_id)
            done += 1
    full = [ms for gen, ms in gc_clock.pauses if gen == 2]

    methods = sorted(per_method, key=lambda m: -statistics.median(per_method[m]))
    return {
        "n": done,
        "stopped_early": done < N_MEASURE,
        "http_ms": http_ms,
        "service_ms": service_ms,
        "routing_ms": routing_ms,
        "rest_ms": rest_ms,
        "gc_ms": gc_ms,
        "gc": {
            "objects_tracked": len(gc.get_objects()),
            "gen2_collections": len(full),
            "gen2_median_ms": round(statistics.median(full), 1) if full else None,
            "gen2_max_ms": round(max(full), 1) if full else None,
            "young_collections": len(gc_clock.pauses) - len(full),
        },
        "per_method": {
            m: {
                "median_ms": round(statistics.median(per_method[m]), 3),
                "p95_ms": round(percentile(per_method[m], 95), 3),
                "calls_per_request": statistics.median(per_calls[m]),
                "requests_calling": len(per_method[m]),
            }
            for m in methods
        },
        "sizes": {
            "ranked_median": statistics.median(s[0] for s in sizes),
            "recommended_median": statistics.median(s[1] for s in sizes),
            "with_route_median": statistics.median(s[2] for s in sizes),
        },
        "agreement": {"checked": len(incident_ids), "disagree": disagree},
    }


def profile_service(
    factory: sessionmaker[Session], engine: Engine, incident_ids: list[int], rounds: int = 50
) -> str:
    """cProfile of ``rounds`` in-process service calls: the top functions by own time."""
    prof = cProfile.Profile()
    for k in range(rounds):
        with factory() as session:
            prof.enable()
            recommend_for(session, engine, incident_ids[k % len(incident_ids)], limit=LIMIT)
            prof.disable()
            session.rollback()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(18)
    stats.sort_stats("cumulative").print_stats("recommend|engine|dispatch", 14)
    return out.getvalue()


# --- main --------------------------------------------------------------------------


def run_benchmark(url: str, *, profile: bool) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    rng = random.Random(SEED)
    cache_dir = default_cache_dir()
    t0 = time.perf_counter()
    net = load_network(OSM, cache_dir=cache_dir)
    network_s = time.perf_counter() - t0
    plan_rows = load_plans()

    db = make_engine(url, pool_size=2)
    factory = make_sessionmaker(db)
    try:
        n_plans = write_plans(factory, plan_rows)
        t0 = time.perf_counter()
        data = bulk_load(url, net, plan_rows, rng)
        load_s = time.perf_counter() - t0
        incident_ids = data.pop("incident_ids")
        password = secrets.token_urlsafe(18)
        with session_scope(factory) as session:
            auth.add_user(session, username=USERNAME, password=password, role="dispatcher")

        t0 = time.perf_counter()
        engine = server_like_engine(net)
        engine_warm_s = time.perf_counter() - t0
        with psycopg.connect(psycopg_url(url), autocommit=True) as raw:
            host = machine(raw)

        secret_key = secrets.token_urlsafe(36)  # 48 characters
        with (
            running_server(url, secret_key, cache_dir) as (base, healthy_s),
            httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as client,
        ):
            sign_in(client, USERNAME, password)
            start = time.perf_counter_ns()
            r = client.get(
                f"/api/incidents/{incident_ids[0]}/recommendations", params={"limit": LIMIT}
            )
            first_ms = ms_since(start)
            r.raise_for_status()
            m = measure(client, factory, engine, incident_ids)
        profile_text = profile_service(factory, engine, incident_ids) if profile else None
    finally:
        db.dispose()

    rows = [
        row("first request after start (HTTP)", [first_ms], note="kernels may still be warming"),
        row(
            f"GET /api/incidents/{{id}}/recommendations?limit={LIMIT}",
            m["http_ms"],
            target_p95=TARGET_HTTP_P95_MS,
            note="real server, keep-alive",
        ),
        row(
            "recommend_for() in-process (no HTTP)",
            m["service_ms"],
            note="fresh session per call",
        ),
        row(
            "  of which garbage collection",
            m["gc_ms"],
            note="gc callbacks, same calls",
        ),
        row(
            "  routing part (engine calls in recommend_for)",
            m["routing_ms"],
            target_p95=TARGET_ROUTING_P95_MS,
            note="timed wrappers",
        ),
        row(
            "  the rest (DB, ranking, body)",
            m["rest_ms"],
            note="same calls as routing part",
        ),
    ]
    for name, s in m["per_method"].items():
        rows.append(
            Row(
                operation=f"    engine.{name}",
                n=s["requests_calling"],
                median_ms=s["median_ms"],
                p95_ms=s["p95_ms"],
                note=f"{s['calls_per_request']:g} calls/request",
            )
        )
    g = net.graph
    return {
        "benchmark": "recommend",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "network": {
            "file": OSM.name,
            "nodes": int(g.n_nodes),
            "edges": int(g.n_edges),
            "load_s": round(network_s, 2),
            "from_cache": net.from_cache,
            "contraction_hierarchy": net.ch is not None,
            "in_process_engine_warm_s": round(engine_warm_s, 2),
        },
        "data": {**data, "response_plans": n_plans, "bulk_load_s": round(load_s, 2)},
        "setup": {
            "limit": LIMIT,
            "warmup_requests": N_WARMUP,
            "measured_rounds": m["n"],
            "stopped_early": m["stopped_early"],
            "server_healthy_after_s": round(healthy_s, 2),
            "client": "httpx2, one keep-alive connection over loopback",
            "server": "emergency serve (uvicorn, one process) in a subprocess",
            "order": "per round HTTP, service and instrumented service for the same "
            "incident, the order rotating every round; incidents round robin",
            "routing_part": "outermost time in the engine instance's public methods during "
            "recommend_for (snap, matrix, route, ...), via per-instance timing wrappers",
        },
        "targets": {"http_p95_ms": TARGET_HTTP_P95_MS, "routing_p95_ms": TARGET_ROUTING_P95_MS},
        "first_request_ms": round(first_ms, 3),
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "gc": m["gc"],
        "response": m["sizes"],
        "agreement": m["agreement"],
        "rows": [asdict(r) for r in rows],
        "profile": profile_text,
    }


def render(result: dict[str, Any]) -> str:
    mc, net, d, s = result["machine"], result["network"], result["data"], result["setup"]
    agree = result["agreement"]["checked"] - len(result["agreement"]["disagree"])
    lines = [
        f"Recommendation benchmark ({result['when']}): {mc['cpus']} CPUs, {mc['postgresql']}, "
        f"PostGIS {mc['postgis']}, Python {mc['python']}",
        f"network {net['file']}: {net['nodes']:,} nodes, {net['edges']:,} edges "
        f"({'cache' if net['from_cache'] else 'parsed'} {net['load_s']} s, "
        f"CH {'yes' if net['contraction_hierarchy'] else 'no'}); server healthy after "
        f"{s['server_healthy_after_s']} s",
        f"data: {d['units']} units {d['units_by_status']} ({d['units_stale']} stale), "
        f"{d['stations']} stations, {d['incidents']} incidents, {d['response_plans']} plans",
        f"per response: {result['response']['ranked_median']:g} ranked, "
        f"{result['response']['recommended_median']:g} recommended, "
        f"{result['response']['with_route_median']:g} with a route (medians); HTTP and "
        f"in-process agree on {agree}/{result['agreement']['checked']} incidents",
        f"{s['warmup_requests']} warm-up requests, then {s['measured_rounds']} rounds"
        + (" (STOPPED EARLY: time budget)" if s["stopped_early"] else ""),
        "",
    ]
    header = (
        f"{'operation':<50} {'n':>4} {'median ms':>10} {'p95 ms':>9} {'target':>14} {'':>5}  note"
    )
    lines += [header, "-" * len(header)]
    for r in result["rows"]:
        lines.append(
            f"{r['operation']:<50} {r['n']:>4} {r['median_ms']:>10.2f} {r['p95_ms']:>9.2f} "
            f"{r['target']:>14} {r['verdict']:>5}  {r['note']}"
        )
    http = next(r for r in result["rows"] if r["operation"].startswith("GET "))
    svc = next(r for r in result["rows"] if r["operation"].startswith("recommend_for"))
    lines += [
        "",
        f"HTTP overhead (median): {http['median_ms'] - svc['median_ms']:.2f} ms over the "
        "in-process service call (auth, session, JSON, uvicorn, loopback).",
    ]
    gcs, la = result["gc"], result["load_average"]
    if gcs["gen2_collections"]:
        lines.append(
            f"in this process: {gcs['gen2_collections']} full (gen2) collections during the "
            f"measured rounds, median {gcs['gen2_median_ms']} ms, max {gcs['gen2_max_ms']} ms, "
            f"over {gcs['objects_tracked']:,} tracked objects (the server holds a similar heap)."
        )
    lines.append(f"load average (1/5/15 min) before {la['before']}, after {la['after']}.")
    if result.get("profile"):
        lines += ["", "cProfile of the in-process service call:", result["profile"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="add a cProfile of the service")
    args = parser.parse_args()
    if not OSM.is_file():
        print(f"no Porto extract at {OSM}", file=sys.stderr)
        return 2
    return report_on_fresh_database(
        lambda url: run_benchmark(url, profile=args.profile), render, RESULTS, ROOT
    )


if __name__ == "__main__":
    sys.exit(main())
