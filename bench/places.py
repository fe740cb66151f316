"""Place search benchmark: GET /api/places over HTTP on the demo city's index (Columbus,
or EMERGENCY_DEMO_CITY).

Run with ``uv run python -m bench.places`` (or ``make bench``). It

1. creates a throwaway PostGIS database, migrates it and builds the place index from the
   demo city's extract (``extract_places`` + ``write_places``, timed);
2. starts the real server (``emergency serve``) in a subprocess on a free loopback port;
3. sends N searches (names from the index, every other one with a letter dropped or
   swapped, half with ``near``) and N reverse lookups (random points in the city's bbox)
   over one keep-alive connection, after a warm-up; interleaved one-for-one with
   - the same service call in-process (``search_places`` / ``nearest_places``), and
   - the naive peer: that call with ``enable_indexscan``, ``enable_bitmapscan`` and
     ``enable_indexonlyscan`` off, so PostgreSQL scans the whole table (what the index saves);
4. prints median and p95 of each with ratios, writes bench/results/places.json, and drops
   the database and stops the server whatever happened. Target: HTTP p95 < 30 ms.

Client, server and PostgreSQL share this machine's cores; the ratios are the figures to
compare between machines.
"""

from __future__ import annotations

import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from bench.fresh import report_on_fresh_database, sign_in
from bench.timing import machine, percentile, timed
from command.auth import service as auth
from command.seed import city_dir, load_city, locate_extract
from core.config import get_settings
from core.db import make_engine, make_sessionmaker, session_scope
from gis.place_extract import PlaceRecord, extract_places
from gis.place_index import nearest_places, search_places, write_places
from tests.support.servers import running_server

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "places.json"
SEED = 16
N = 200
N_WARMUP = 20
LIMIT = 10
TARGET_P95_MS = 30.0
USERNAME = "bench_dispatcher"
_SEQSCAN = "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off"


def misspell(rng: random.Random, name: str) -> str:
    """``name`` with one letter dropped or two neighbours swapped (if long enough)."""
    if len(name) < 6:
        return name
    i = rng.randrange(1, len(name) - 2)
    if rng.random() < 0.5:
        return name[:i] + name[i + 1 :]
    return name[:i] + name[i + 1] + name[i] + name[i + 2 :]


def make_queries(
    rng: random.Random, records: list[PlaceRecord], bbox: list[float], n: int
) -> list[dict[str, Any]]:
    named = [r for r in records if r.kind != "coordinates"]
    out = []
    for k in range(n):
        r = rng.choice(named)
        q = r.name.split(",")[0]
        params: dict[str, Any] = {"q": misspell(rng, q) if k % 2 else q, "limit": LIMIT}
        if k % 4 >= 2:
            params["near"] = (
                f"{rng.uniform(bbox[0], bbox[2]):.6f},{rng.uniform(bbox[1], bbox[3]):.6f}"
            )
        out.append(params)
    return out


def make_points(rng: random.Random, bbox: list[float], n: int) -> list[dict[str, Any]]:
    return [
        {"near": f"{rng.uniform(bbox[0], bbox[2]):.6f},{rng.uniform(bbox[1], bbox[3]):.6f}"}
        for _ in range(n)
    ]


def _call(session: Session, params: dict[str, Any]) -> int:
    near = None
    if "near" in params:
        lon, lat = (float(v) for v in params["near"].split(","))
        near = (lon, lat)
    if "q" in params:
        return len(search_places(session, q=params["q"], near=near, limit=params["limit"]))
    assert near is not None
    return len(nearest_places(session, near=near, limit=5))


def side_by_side(
    name: str,
    cases: list[dict[str, Any]],
    http: Callable[[dict[str, Any]], int],
    indexed: Callable[[dict[str, Any]], int],
    naive: Callable[[dict[str, Any]], int],
) -> dict[str, Any]:
    runners = {"http": http, "sql": indexed, "seqscan": naive}
    times: dict[str, list[float]] = {k: [] for k in runners}
    hits: list[int] = []
    for k, params in enumerate(cases):
        order = list(runners)
        order = order[k % 3 :] + order[: k % 3]  # who goes first rotates
        for who in order:
            ms, found = timed(lambda w=who, p=params: runners[w](p))
            if k >= N_WARMUP:
                times[who].append(ms)
            if who == "http" and k >= N_WARMUP:
                hits.append(found)
    row: dict[str, Any] = {"operation": name, "n": len(times["http"])}
    for who, values in times.items():
        row[f"{who}_median_ms"] = round(statistics.median(values), 3)
        row[f"{who}_p95_ms"] = round(percentile(values, 95), 3)
    row["seqscan_over_sql"] = round(row["seqscan_median_ms"] / row["sql_median_ms"], 2)
    row["http_over_sql"] = round(row["http_median_ms"] / row["sql_median_ms"], 2)
    row["hits_median"] = statistics.median(hits)
    row["p95_target_met"] = row["http_p95_ms"] < TARGET_P95_MS
    return row


def naive_engine(url: str) -> Engine:
    """An engine whose sessions scan the table: index scans off, and the service's own
    ``SET LOCAL enable_seqscan = off`` (which steers it to the index) turned back on."""
    eng = make_engine(url, pool_size=1)

    @event.listens_for(eng, "before_cursor_execute", retval=True)
    def _seqscan(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> Any:
        return statement.replace("enable_seqscan = off", "enable_seqscan = on"), params

    return eng


def run_benchmark(url: str) -> dict[str, Any]:
    rng = random.Random(SEED)
    name = get_settings().demo_city
    city = load_city(city_dir(name))
    extract = locate_extract(city, city_dir(name))
    bbox = [float(v) for v in city["bbox"]]
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    naive_factory = make_sessionmaker(naive_engine(url))
    t0 = time.perf_counter()
    records = extract_places(extract)
    extract_s = time.perf_counter() - t0
    password = secrets.token_urlsafe(18)
    t0 = time.perf_counter()
    with session_scope(factory) as session:
        n_places = write_places(session, records)
        auth.add_user(session, username=USERNAME, password=password, role="dispatcher")
    load_s = time.perf_counter() - t0
    raw = psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    )
    rows = []
    try:
        host = machine(raw)
        with (
            running_server(url, secrets.token_urlsafe(36)) as base,
            httpx.Client(base_url=base, timeout=30) as client,
            factory() as indexed,
            naive_factory() as naive,
        ):
            sign_in(client, USERNAME, password)
            for statement in _SEQSCAN.split(";"):
                naive.execute(text(statement))

            def http(params: dict[str, Any]) -> int:
                response = client.get("/api/places", params=params)
                response.raise_for_status()
                return len(response.json()["features"])

            searches = make_queries(rng, records, bbox, N + N_WARMUP)
            rows.append(
                side_by_side(
                    "search q (half misspelled, half with near)",
                    searches,
                    http,
                    lambda p: _call(indexed, p),
                    lambda p: _call(naive, p),
                )
            )
            rows.append(
                side_by_side(
                    "reverse lookup near (5 nearest)",
                    make_points(rng, bbox, N + N_WARMUP),
                    http,
                    lambda p: _call(indexed, p),
                    lambda p: _call(naive, p),
                )
            )
            indexed.rollback()
            naive.rollback()
    finally:
        raw.close()
        engine.dispose()
    return {
        "benchmark": "places",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "data": {
            "city": name,
            "extract": extract.name,
            "places": n_places,
            "extract_s": round(extract_s, 2),
            "load_s": round(load_s, 2),
        },
        "setup": {
            "warmup_rounds": N_WARMUP,
            "client": "httpx2, one keep-alive connection over loopback",
            "server": "emergency serve (uvicorn, one process) in a subprocess",
            "peers": "sql: the same service call in-process; seqscan: that call with index "
            "scans, bitmap scans and index-only scans off (and sequential scans on)",
        },
        "rows": rows,
    }


def render(result: dict[str, Any]) -> str:
    m, d = result["machine"], result["data"]
    lines = [
        f"Place search benchmark ({result['when']}): {m['cpus']} CPUs, {m['postgresql']}, "
        f"PostGIS {m['postgis']}, Python {m['python']}",
        f"index: {d['places']} places from {d['extract']} ({d['city']}; extract "
        f"{d['extract_s']} s, load {d['load_s']} s); {result['setup']['warmup_rounds']} "
        "warm-up rounds",
        "",
    ]
    header = (
        f"{'operation':<44} {'n':>4} {'HTTP med':>9} {'HTTP p95':>9} {'SQL med':>8} "
        f"{'seq med':>8} {'seq p95':>8} {'seq/SQL':>8} {'HTTP/SQL':>9}"
    )
    lines += [header, "-" * len(header)]
    for r in result["rows"]:
        lines.append(
            f"{r['operation']:<44} {r['n']:>4} {r['http_median_ms']:>9.2f} "
            f"{r['http_p95_ms']:>9.2f} {r['sql_median_ms']:>8.2f} {r['seqscan_median_ms']:>8.2f} "
            f"{r['seqscan_p95_ms']:>8.2f} {r['seqscan_over_sql']:>7.1f}x "
            f"{r['http_over_sql']:>8.1f}x"
        )
    met = all(r["p95_target_met"] for r in result["rows"])
    lines += [
        "",
        f"times in ms; target HTTP p95 < {TARGET_P95_MS:g} ms: {'met' if met else 'MISSED'}",
    ]
    return "\n".join(lines)


def main() -> int:
    return report_on_fresh_database(run_benchmark, render, RESULTS, ROOT)


if __name__ == "__main__":
    sys.exit(main())
