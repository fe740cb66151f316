"""KPI benchmark: GET /api/kpis over 10,000 incidents and 20,000 tasks, against a naive peer.

Run with ``uv run python -m bench.kpis``. It creates a throwaway PostGIS database, loads
(straight into the tables) 10,000 incidents reported over the last 30 days (5% drills, four
types), 20,000 tasks (two per incident: the first assigned after 5-150 s, on scene after a
further 120-700 s for 90% of them), 200 units, 50 shelters and 400 stock rows; starts the
real server (``emergency serve``) and times ``GET /api/kpis`` for the whole 30-day window
over one keep-alive connection, alternating with the peer: the same figures computed in
Python from every incident and task row of the window loaded through SQLAlchemy (what a
client-side KPI panel did). It checks once that both agree, prints medians and p95 and the
ratio, and drops the database whatever happened.
"""

from __future__ import annotations

import random
import secrets
import statistics
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.fresh import on_fresh_database, sign_in
from bench.timing import percentile, timed
from command.auth import service as auth
from command.incidents.models import Incident
from command.tasks.models import Task
from core.db import make_engine, make_sessionmaker, session_scope
from dispatch.targets import TargetTable, outcome, share
from resources.models import Shelter, Stock, Unit
from tests.support.servers import running_server

SEED = 16
N_INCIDENTS = 10_000
N_UNITS = 200
DAYS = 30
ROUNDS = 30
WARMUP = 5
TYPES = ("fire", "medical", "traffic_accident", "flood")
USERNAME = "bench-commander"


def psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def bulk_load(url: str, now: datetime) -> dict[str, int]:
    rng = random.Random(SEED)
    with psycopg.connect(psycopg_url(url)) as conn, conn.cursor() as cur:
        statuses = ("available",) * 6 + ("assigned", "en_route", "on_scene", "out_of_service")
        cur.executemany(
            "INSERT INTO unit (callsign, name, kind, type, capabilities, crew, status) "
            "VALUES (%s, %s, 'vehicle', 'ambulance', '{}', 2, %s)",
            [(f"U{i}", f"Unit {i}", rng.choice(statuses)) for i in range(N_UNITS)],
        )
        cur.execute("SELECT id FROM unit ORDER BY id")
        unit_ids = [r[0] for r in cur.fetchall()]
        incidents = []
        for i in range(N_INCIDENTS):
            reported = now - timedelta(seconds=rng.uniform(60, DAYS * 86_400 - 3600))
            incidents.append(
                (f"Incident {i}", rng.choice(TYPES), "on_scene", rng.random() < 0.05, reported)
            )
        with cur.copy(
            "COPY incident (title, type, status, drill, reported_at, severity, source) FROM STDIN"
        ) as copy:
            for row in incidents:
                copy.write_row((*row, "moderate", "manual"))
        cur.execute("SELECT id, reported_at, drill FROM incident ORDER BY id")
        rows = cur.fetchall()
        with cur.copy(
            "COPY task (incident_id, unit_id, status, drill, assigned_at, on_scene_at) FROM STDIN"
        ) as copy:
            for incident_id, reported, drill in rows:
                assigned = reported + timedelta(seconds=rng.uniform(5, 150))
                arrives = rng.random() < 0.9
                for k in range(2):
                    at = assigned + timedelta(seconds=30 * k)
                    on_scene = at + timedelta(seconds=rng.uniform(120, 700)) if arrives else None
                    status = "done" if on_scene else "cancelled"
                    copy.write_row((incident_id, rng.choice(unit_ids), status, drill, at, on_scene))
        cur.executemany(
            "INSERT INTO shelter (name, capacity, occupancy, planned_arrivals, accessible, "
            "pets_allowed, status, geom) VALUES (%s, %s, %s, %s, false, false, 'open', "
            "ST_SetSRID(ST_MakePoint(24.9, 60.2), 4326))",
            [(f"Shelter {i}", 200, rng.randint(0, 200), rng.randint(0, 50)) for i in range(50)],
        )
        cur.executemany(
            "INSERT INTO warehouse (name, geom) "
            "VALUES (%s, ST_SetSRID(ST_MakePoint(24.9, 60.2), 4326))",
            [(f"Depot {i}",) for i in range(20)],
        )
        cur.execute("SELECT id FROM warehouse ORDER BY id")
        stock = [
            (w, f"item{j}", rng.randint(0, 1000), rng.choice((None, 100, 500)))
            for (w,) in cur.fetchall()
            for j in range(20)
        ]
        cur.executemany(
            "INSERT INTO stock (warehouse_id, item, unit_of_measure, quantity, low_water) "
            "VALUES (%s, %s, 'piece', %s, %s)",
            stock,
        )
        cur.execute("ANALYZE")
    return {"incidents": N_INCIDENTS, "tasks": 2 * N_INCIDENTS, "units": N_UNITS}


def _pcts(values: list[float]) -> list[float | None]:
    if not values:
        return [None, None, None]
    return [percentile(values, q) for q in (50, 90, 95)]


def naive_kpis(
    session: Session, *, since: datetime, until: datetime, table: TargetTable, now: datetime
) -> dict[str, Any]:
    """The peer: every row of the window into Python, the same figures computed there."""
    incidents = session.scalars(
        select(Incident).where(
            Incident.reported_at >= since, Incident.reported_at < until, Incident.drill.is_(False)
        )
    ).all()
    tasks: dict[int, list[Task]] = defaultdict(list)
    for task in session.scalars(
        select(Task)
        .join(Incident, Incident.id == Task.incident_id)
        .where(
            Incident.reported_at >= since, Incident.reported_at < until, Incident.drill.is_(False)
        )
    ):
        tasks[task.incident_id].append(task)
    dispatch, travel, response, outcomes = [], [], [], Counter[str]()
    for incident in incidents:
        own = tasks.get(incident.id, [])
        assigned = min((t.assigned_at for t in own), default=None)
        on_scene = min((t.on_scene_at for t in own if t.on_scene_at), default=None)
        if assigned is not None:
            dispatch.append((assigned - incident.reported_at).total_seconds())
        if assigned is not None and on_scene is not None:
            travel.append((on_scene - assigned).total_seconds())
            response.append((on_scene - incident.reported_at).total_seconds())
        target = table.for_type(incident.type).response_s
        outcomes[
            outcome(
                reported_at=incident.reported_at,
                on_scene_at=on_scene,
                response_s=target,
                as_of=now,
            )
        ] += 1
    units = Counter(u.status for u in session.scalars(select(Unit)))
    shelters = [s for s in session.scalars(select(Shelter)) if s.status == "open"]
    low = [
        s
        for s in session.scalars(select(Stock))
        if s.low_water is not None and s.quantity < s.low_water
    ]
    return {
        "total": len(incidents),
        "dispatch": _pcts(dispatch),
        "travel": _pcts(travel),
        "response": _pcts(response),
        "within_share": share(outcomes["within"], outcomes["missed"]),
        "available": units["available"],
        "occupancy": sum(s.occupancy for s in shelters),
        "low_stock": len(low),
    }


def summary(body: dict[str, Any]) -> dict[str, Any]:
    times = body["times"]

    def p(name: str) -> list[float | None]:
        return [times[name][k] for k in ("p50_s", "p90_s", "p95_s")]

    return {
        "total": body["incidents"]["total"],
        "dispatch": p("reported_to_dispatched"),
        "travel": p("dispatched_to_on_scene"),
        "response": p("reported_to_on_scene"),
        "within_share": body["within_target"]["share"],
        "available": body["units"]["available"],
        "occupancy": body["shelters"]["occupancy"],
        "low_stock": len(body["low_stock"]),
    }


def agree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    for key, value in a.items():
        other = b[key]
        if isinstance(value, list):
            if any(abs(x - y) > 1e-3 for x, y in zip(value, other, strict=True)):
                return False
        elif isinstance(value, float):
            if abs(value - other) > 1e-9:
                return False
        elif value != other:
            return False
    return True


def run(url: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    counts = bulk_load(url, now)
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    password = secrets.token_urlsafe(18)
    with session_scope(factory) as session:
        auth.add_user(session, username=USERNAME, password=password, role="commander")
    since, until = now - timedelta(days=DAYS), now + timedelta(minutes=1)
    params = {"since": since.isoformat(), "until": until.isoformat()}
    table = TargetTable()
    http_ms: list[float] = []
    peer_ms: list[float] = []
    try:
        with (
            running_server(url, secrets.token_urlsafe(36)) as base,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            sign_in(client, USERNAME, password)

            def http() -> dict[str, Any]:
                r = client.get("/api/kpis", params=params)
                r.raise_for_status()
                body: dict[str, Any] = r.json()
                return body

            def peer() -> dict[str, Any]:
                with factory() as session:
                    return naive_kpis(
                        session, since=since, until=until, table=table, now=datetime.now(UTC)
                    )

            served, computed = summary(http()), peer()
            if not agree(served, computed):
                raise SystemExit(f"server and peer disagree:\n{served}\n{computed}")
            for k in range(WARMUP + ROUNDS):
                order = (http, peer) if k % 2 else (peer, http)
                for fn in order:
                    ms, _ = timed(fn)
                    if k >= WARMUP:
                        (http_ms if fn is http else peer_ms).append(ms)
    finally:
        engine.dispose()
    return {"counts": counts, "http_ms": http_ms, "peer_ms": peer_ms, "figures": served}


def main() -> int:
    result = on_fresh_database(run)
    if result is None:
        return 2
    http_ms, peer_ms = result["http_ms"], result["peer_ms"]
    c = result["counts"]
    print(
        f"GET /api/kpis, {DAYS}-day window: {c['incidents']:,} incidents, {c['tasks']:,} tasks, "
        f"{c['units']} units; {ROUNDS} rounds after {WARMUP} warm-up, alternating"
    )
    for name, values in (("server (SQL)", http_ms), ("naive peer (Python)", peer_ms)):
        print(
            f"  {name:<20} median {statistics.median(values):8.1f} ms   "
            f"p95 {percentile(values, 95):8.1f} ms"
        )
    ratio = statistics.median(peer_ms) / statistics.median(http_ms)
    print(f"  peer / server median ratio: {ratio:.1f}x")
    print(f"  figures: {result['figures']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
