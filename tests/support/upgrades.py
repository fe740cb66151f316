"""A populated database for the upgrade tests (``populate``: a day's work written through the
real code: seed, CLI, API), copies of it (``copy_database``: CREATE DATABASE ... TEMPLATE),
every table's rows as JSON (``snapshot``), and rows written with plain SQL through an older
schema (``insert_row``: only the columns that schema has)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from command.app import create_app
from command.seed import seed_demo
from core.config import Settings, get_settings
from core.db import make_engine, make_sessionmaker, session_scope, sqlalchemy_url
from gis.engine import Engine as RoadEngine
from gis.network import LoadedNetwork
from tests.support.cap import alert_xml, ref, square
from tests.support.cli import invoke
from tests.support.db import admin_url
from tests.support.world import PASSWORD, TEST_SECRET

# Tables the snapshot leaves out: PostGIS's own, Alembic's marker (it differs by design).
NOT_DATA = {"spatial_ref_sys", "alembic_version"}
NOW = datetime.now(UTC).replace(microsecond=0)


def copy_database(source_url: str, prefix: str) -> str:
    """A new database with ``source_url``'s schema and rows (no one may be connected to it)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    source = make_url(source_url).database
    admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    finally:
        admin.dispose()
    return make_url(admin_url()).set(database=name).render_as_string(False)


def tables(conn: Any) -> list[str]:
    """The public tables holding data: a partitioned table once, never its partitions."""
    found = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "ORDER BY c.relname"
        )
    ).scalars()
    return [t for t in found if t not in NOT_DATA]


def row_key(columns: set[str], pk: list[str]) -> list[str]:
    # `id` where there is one: unit_position's key is (unit_id, recorded_at) from 0013 on and
    # id before; its id survives both ways, so rows meet across revisions.
    return ["id"] if "id" in columns else pk


Snapshot = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


def snapshot(database_url: str) -> Snapshot:
    """Every table's rows as ``{table: {key: {column: JSON value}}}`` (geometry as GeoJSON,
    bytea as hex, times as ISO text in UTC)."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET TIME ZONE 'UTC'"))
            insp = inspect(conn)
            out: Snapshot = {}
            for table in tables(conn):
                columns = {c["name"] for c in insp.get_columns(table)}
                pk = list(insp.get_pk_constraint(table)["constrained_columns"])
                key = row_key(columns, pk)
                rows = conn.execute(text(f'SELECT to_jsonb(t) FROM "{table}" t')).scalars()
                out[table] = {tuple(r[k] for k in key): r for r in rows}
            return out
    finally:
        engine.dispose()


def columns_of(database_url: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Each table's columns as the database has them now (reflected)."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            return {t: {c["name"]: c for c in insp.get_columns(t)} for t in tables(conn)}
    finally:
        engine.dispose()


def insert_row(
    database_url: str, table: str, values: Mapping[str, Any], *, schema: Mapping[str, Any]
) -> int:
    """Insert a row naming only the columns ``schema`` (the table's reflected columns at
    some revision) has; every required column must be among ``values``."""
    have = schema[table]
    required = {
        name
        for name, c in have.items()
        if not c["nullable"]
        and c.get("default") is None
        and not c.get("identity")
        and not c.get("computed")
    }
    missing = required - set(values)
    assert not missing, f"{table} at this revision needs {sorted(missing)}"
    used = {k: v for k, v in values.items() if k in have}
    names = ", ".join(f'"{k}"' for k in used)
    params = ", ".join(f":{k}" for k in used)
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            found = conn.execute(
                text(f'INSERT INTO "{table}" ({names}) VALUES ({params}) RETURNING id'), used
            )
            return int(found.scalar_one())
    finally:
        engine.dispose()


# --- the workload ----------------------------------------------------------------------
@contextmanager
def cli_env(url: str) -> Iterator[None]:
    """The CLI (in this process) reaches ``url`` through the environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", url)
        mp.delenv("EMERGENCY_DATABASE_URL", raising=False)
        mp.setenv("EMERGENCY_SECRET_KEY", TEST_SECRET)
        mp.setenv("EMERGENCY_ENV", "test")
        mp.setenv("EMERGENCY_DEMO_CITY", "helsinki")
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()


def cli(*args: str) -> Any:
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def populate(url: str, network: LoadedNetwork, folder: Path) -> dict[str, Any]:
    """A day's work on a migrated database, through the code's own doors; returns the ids
    the tests look for."""
    engine = make_engine(url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            seed_demo(session, city="helsinki", network=network, demo_password=PASSWORD)
    finally:
        engine.dispose()
    with cli_env(url):
        _by_cli(folder)
        return _by_api(url, network)


def _by_cli(folder: Path) -> None:
    cli("user", "add", "resp_e101", "--role", "responder", "--password", PASSWORD, "--unit", "E101")
    cli("apikey", "add", "warning-system")
    cli("device", "add", "--unit", "E102")
    sent = NOW - timedelta(hours=2)
    first, update = folder / "flood.xml", folder / "flood-update.xml"
    first.write_text(alert_xml("flood-1", sent=sent, blocks_roads=True), encoding="utf-8")
    update.write_text(
        alert_xml(
            "flood-2",
            sent=sent + timedelta(minutes=30),
            msg_type="Update",
            references=ref("flood-1", sent),
            areas=[square(24.95, 60.17)],
        ),
        encoding="utf-8",
    )
    cli("alert", "ingest", str(first), str(update))
    shelters = folder / "shelters.csv"
    shelters.write_text(
        "编号,名称,人数,经度,纬度,管理单位\n"
        "SH-UPG-1,体育馆,800,24.9380,60.1690,区应急局\n"
        "SH-UPG-2,中学,300,24.9480,60.1750,教育局\n",
        encoding="utf-8",
    )
    mapping = folder / "shelters.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "fields": {"external_id": "编号", "name": "名称", "capacity": "人数"},
                "defaults": {"hazards": ["earthquake", "flood"]},
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    cli("import", "shelters", str(shelters), "--mapping", str(mapping))


def _by_api(url: str, network: LoadedNetwork) -> dict[str, Any]:
    settings = Settings(env="test", database_url=url, secret_key=TEST_SECRET, realtime=False)
    app = create_app(settings, graph=RoadEngine(network.graph, ch=network.ch))
    with TestClient(app, client=("127.0.0.1", 50000)) as c:
        h = {role: _login(c, role) for role in ("dispatcher", "commander", "admin", "planner")}
        h["responder"] = _login(c, "resp_e101")
        bad = c.post("/api/auth/token", json={"username": "planner", "password": "wrong-one"})
        assert bad.status_code == 401  # a login_throttle row
        units = {u["properties"]["callsign"]: u["id"] for u in _get(c, "/api/units", h)}
        fire = _post(c, "/api/incidents", h["dispatcher"], _incident("厂房起火", "fire", 24.945))
        fall = _post(c, "/api/incidents", h["dispatcher"], _incident("老人摔倒", "medical", 24.94))
        _post(
            c,
            f"/api/incidents/{fire}/calls",
            h["dispatcher"],
            {"caller_phone": "138 0013 8000", "description": "浓烟", "people_affected": 4},
        )
        tasks = c.post(
            f"/api/incidents/{fire}/dispatch",
            headers=h["dispatcher"],
            json={"unit_ids": [units["E101"], units["E102"]]},
        )
        assert tasks.status_code == 201, tasks.text
        task_ids = {t["unit_id"]: t["id"] for t in tasks.json()}
        for step in ("accepted", "en_route", "on_scene", "done"):
            r = c.post(
                f"/api/tasks/{task_ids[units['E101']]}/status",
                json={"status": step},
                headers={**h["responder"], "Idempotency-Key": f"e101-{step}"},
            )
            assert r.status_code == 200, r.text
        day = NOW - timedelta(days=1)
        fixes = [
            {
                "unit_id": units["E101"],
                "lon": 24.94 + k / 1000,
                "lat": 60.17,
                "recorded_at": (when + timedelta(minutes=k)).isoformat(),
                "speed_mps": 8.5,
            }
            for when in (day, NOW - timedelta(minutes=20))
            for k in range(3)
        ]
        r = c.post("/api/positions", json={"positions": fixes}, headers=h["dispatcher"])
        assert r.status_code == 202 and r.json()["accepted"] == len(fixes), r.text
        _post(c, "/api/warning-zones", h["dispatcher"], _zone())
        r = c.post(
            "/api/response-plans",
            headers=h["admin"],
            json={
                "incident_type": "chemical",
                "severity": "severe",
                "needs": [{"capability": "hazmat", "count": 1}],
            },
        )
        assert r.status_code == 200, r.text
        stock = _get(c, "/api/stock", h)[0]
        r = c.patch(f"/api/stock/{stock['id']}", json={"low_water": 50}, headers=h["admin"])
        assert r.status_code == 200, r.text
        shelter = next(s for s in _get(c, "/api/shelters", h) if s["properties"]["capacity"])
        r = c.post(
            "/api/supplies/allocate",
            headers=h["dispatcher"],
            json={
                "demands": [
                    {"target": f"shelter:{shelter['id']}", "item": stock["item"], "quantity": 5}
                ],
                "commit": True,
            },
        )
        assert r.status_code == 200, r.text
        users = {
            u["username"]: u["id"] for u in c.get("/api/users", headers=h["admin"]).json()["items"]
        }
        r = c.patch(f"/api/users/{users['auditor']}", json={"active": False}, headers=h["admin"])
        assert r.status_code == 200, r.text
    _drill(url, units["E103"])
    return {"fire": fire, "fall": fall, "units": units, "tasks": task_ids}


def _drill(url: str, real_unit: int) -> None:
    """A tabletop drill's rows (drill, its stand-in unit and drill incident) and one
    acknowledged unit topic: written as the hub and the drill room do, in SQL."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            drill = conn.execute(
                text(
                    "INSERT INTO drill (name, mode, status, progress, scenario, created_by) "
                    "VALUES ('桌面推演', 'tabletop', 'finished', 1, '{\"name\": \"t\"}', "
                    "'user:planner') RETURNING id"
                )
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO unit (callsign, name, kind, type, capabilities, crew, status, "
                    "geom, drill_id) SELECT 'D-' || callsign, name, kind, type, capabilities, "
                    "crew, status, geom, :d FROM unit WHERE id = :u"
                ),
                {"d": drill, "u": real_unit},
            )
            conn.execute(
                text(
                    "INSERT INTO incident (title, type, severity, status, source, geom, reported_by, "
                    "drill, drill_id) VALUES ('演练: 起火', 'fire', 'moderate', 'reported', 'manual', "
                    "ST_SetSRID(ST_MakePoint(24.95, 60.17), 4326), 'user:planner', true, :d)"
                ),
                {"d": drill},
            )
            conn.execute(
                text(
                    "INSERT INTO topic_ack (topic, seq, acked_at, acked_by) "
                    "VALUES (:t, 1, now(), 'user:resp_e101')"
                ),
                {"t": f"unit:{real_unit}"},
            )
    finally:
        engine.dispose()


def _login(c: TestClient, username: str) -> dict[str, str]:
    r = c.post("/api/auth/token", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _get(c: TestClient, path: str, h: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    r = c.get(path, headers=h["commander"])
    assert r.status_code == 200, r.text
    body = r.json()
    return list(body.get("features", body.get("items", [])))


def _post(c: TestClient, path: str, headers: dict[str, str], body: Any) -> int:
    r = c.post(path, json=body, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _incident(title: str, kind: str, lon: float) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, 60.17]},
        "properties": {
            "title": title,
            "type": kind,
            "severity": "severe",
            "caller_phone": "010 6552 0000",
            "people_affected": 2,
        },
    }


def _zone() -> dict[str, Any]:
    ring = [
        [24.950, 60.165],
        [24.953, 60.165],
        [24.953, 60.167],
        [24.950, 60.167],
        [24.950, 60.165],
    ]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"name": "积水路段", "kind": "flood", "blocks_roads": True},
    }
