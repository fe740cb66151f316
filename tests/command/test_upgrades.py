"""Upgrades from every earlier release's database, with data.

One database is populated at head through the code's own doors (seed, CLI, API: units,
incidents with calls, tasks through every state, a track over two days, alerts, zones, plans,
a drill, users, devices, imported attributes, the audit chain) and every table snapshotted.
For each earlier head R, a copy of it (CREATE DATABASE ... TEMPLATE) goes down to R, keeps
what R's schema can hold, gets rows written in plain SQL through R's schema (rows that never
saw a later release), and comes back up: the snapshot is back for every column that survives
the round trip, the old rows read through today's models and API, the audit chain verifies
(or, below 0007, fails as documented) and the models match the migrations.

What a round trip loses by design is listed in ``ADDED``: a migration's downgrade drops what
its upgrade added, so every value there is gone after a trip below that migration (a dropped
table comes back empty, a dropped column comes back as its default). The list is checked
against the migrations themselves (``test_the_list_of_losses_is_the_migrations``).
Row-level losses beyond it:
- 0006's downgrade deletes incidents without a shape (the older schema requires one). The
  link between an alert and its incident moved from ``alert.incident_id`` to
  ``incident.alert_id``; both directions carry it (``CARRIED``), an alert keeping its first
  incident in the older schema, which holds one.
- 0007's downgrade drops the chain's identity and each link's key id: after a trip below
  0007 the chain is new and every keyed row reads as an unkeyed one, so ``audit verify``
  reports each of them (there is no way back without the dropped key ids).
- 0013's downgrade drops the track's new columns and the staged changes with no body
  (positions that were never audited; the sealer leaves none staged here).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import sessionmaker

import command.tables  # noqa: F401 - every model on the metadata
import core.audit
import core.outbox  # noqa: F401
import gis.models  # noqa: F401
from command.app import create_app
from command.auth import service as auth
from command.auth.models import User
from command.migrate import downgrade, include_object, status, upgrade
from command.seed import city_extract
from core.config import Settings
from core.db import AuditedSession, Base, sqlalchemy_url
from gis.engine import Engine as RoadEngine
from gis.network import LoadedNetwork, load_network
from resources.models import Unit
from tests.support.cli import invoke
from tests.support.db import create_database, drop_database, unavailable
from tests.support.upgrades import (
    Snapshot,
    cli_env,
    columns_of,
    copy_database,
    insert_row,
    populate,
    snapshot,
)
from tests.support.world import TEST_SECRET

pytestmark = pytest.mark.db

REVISIONS = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009_place_index",
    "0010_kpis",
    "0011_incident_calls",
    "0012_drills",
    "0013_avl",
    "0014_gis_import",
)
HEAD = REVISIONS[-1]
TABLE = None  # the whole table is the migration's: its rows go with it
# What each migration adds, so what its downgrade takes away (whole tables or columns).
ADDED: dict[str, dict[str, set[str] | None]] = {
    "0002": {"road_network": TABLE, "road_node": TABLE, "road_edge": TABLE},
    "0003": {
        "plan_record": TABLE,
        "response_plan": TABLE,
        "dispatch_decision": TABLE,
        "shelter": {"planned_arrivals"},
    },
    "0004": {"warning_zone": TABLE},
    "0005": {
        "idempotency_key": TABLE,
        "topic_ack": TABLE,
        "task": {"acknowledged_at"},
        "unit": {"position_sent_at", "position_sent_wall"},
    },
    "0006": {
        "api_nonce": TABLE,
        "alert_info": TABLE,
        "alert_area": TABLE,
        "alert": {
            "codes",
            "drill",
            "note",
            "received_by",
            "referenced",
            "result",
            "scope",
            "source",
            "thread_id",
            "version",
            "warnings",
        },
        "incident": {"alert_id", "needs_review", "review_reason"},
    },
    "0007": {"audit_chain": TABLE, "pending_change": TABLE, "audit_event": {"key_id"}},
    "0008": {"login_throttle": TABLE, "user": {"token_version"}},
    "0009_place_index": {"place": TABLE},
    "0010_kpis": {"stock": {"low_water"}},
    "0011_incident_calls": {"incident_call": TABLE, "incident": {"calls"}},
    "0012_drills": {"drill": TABLE, "unit": {"drill_id"}, "incident": {"drill_id"}},
    "0013_avl": {
        "device": TABLE,
        "unit_position": {"altitude_m", "battery_pct", "device_id", "flag", "source"},
        "unit": {"position_heading_deg", "position_speed_mps"},
    },
    "0014_gis_import": {
        "road_network": {"kind", "mapping"},
        "shelter": {"attributes", "hazards"},
        "station": {"attributes"},
        "warehouse": {"attributes"},
        "unit": {"attributes", "external_id"},
    },
}
# 0006 dropped alert.incident_id (the link moved to incident.alert_id); its downgrade
# brings the column back empty.
REMOVED = {"0006": {"alert": {"incident_id"}}}
# Columns a migration adds but fills from what its downgrade keeps: they survive the trip.
CARRIED = {"0006": {"incident": {"alert_id"}}}
# Tables a migration fills as it creates them: 0007 names the chain (a new one each time).
MADE_BY_MIGRATION = {"audit_chain": 1}


@dataclass
class Populated:
    url: str
    rows: Snapshot
    ids: dict[str, Any]
    network: LoadedNetwork


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> LoadedNetwork:
    return load_network(city_extract("helsinki"), cache_dir=tmp_path_factory.mktemp("graphs"))


@pytest.fixture(scope="module")
def populated(
    network: LoadedNetwork, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Populated]:
    try:
        url = create_database("emergency_upg_src")
    except Exception as exc:  # the shared fixtures' policy: skip on a laptop, fail in CI
        unavailable(str(exc).splitlines()[0])
        raise
    try:
        upgrade(url)
        ids = populate(url, network, tmp_path_factory.mktemp("upgrade-files"))
        yield Populated(url, snapshot(url), ids, network)
    finally:
        drop_database(url)


@pytest.fixture
def copy(populated: Populated) -> Iterator[str]:
    url = copy_database(populated.url, "emergency_upg")
    try:
        yield url
    finally:
        drop_database(url)


def added_after(revision: str, *, carried: bool = True) -> dict[str, set[str] | None]:
    """What a trip down to ``revision`` and back up loses: everything later migrations add
    (less what they carry; ``carried=False``: what ``revision``'s schema has no column for)."""
    lost: dict[str, set[str] | None] = {}
    for rev in REVISIONS[REVISIONS.index(revision) + 1 :]:
        for table, cols in ADDED.get(rev, {}).items():
            if cols is TABLE or lost.get(table, set()) is TABLE:
                lost[table] = TABLE
            else:
                kept = CARRIED.get(rev, {}).get(table, set()) if carried else set()
                lost[table] = (lost.get(table) or set()) | (cols - kept)
    return lost


def differences(
    before: Snapshot,
    after: Snapshot,
    lost: dict[str, set[str] | None],
    *,
    new_rows: dict[str, set[Any]] | None = None,
) -> list[str]:
    """Where ``after`` is not ``before``, less what ``lost`` names; ``new_rows`` are keys
    that may be in ``after`` only. Lost columns must hold one value (their default)."""
    new_rows = new_rows or {}
    found: list[str] = []
    for table, rows in before.items():
        gone = lost.get(table, set())
        got = after.get(table, {})
        if gone is TABLE:
            if len(got) != MADE_BY_MIGRATION.get(table, 0):
                found.append(f"{table}: {len(got)} rows after its table was dropped and made")
            continue
        for key, row in rows.items():
            if key not in got:
                found.append(f"{table} {key}: gone")
                continue
            changed = sorted(c for c in row if c not in gone and row[c] != got[key].get(c))
            if changed:
                found.append(
                    f"{table} {key}: {changed} {[(row[c], got[key].get(c)) for c in changed]}"
                )
        extra = set(got) - set(rows) - new_rows.get(table, set())
        if extra:
            found.append(f"{table}: rows {sorted(extra)} that were not there")
        for column in sorted(gone or ()):
            values = {json.dumps(r.get(column), sort_keys=True) for r in got.values()}
            if len(values) > 1:
                found.append(f"{table}.{column} came back with {len(values)} values, not a default")
    return found


# --- the list of losses is the migrations' -------------------------------------------------
def test_the_list_of_losses_is_the_migrations():
    """ADDED and REMOVED say exactly which tables and columns each migration adds and drops
    (so which a downgrade takes away): reflected from an empty database, step by step."""
    try:
        url = create_database("emergency_upg_cols")
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
        raise
    try:
        previous: dict[str, set[str]] = {}
        for rev in REVISIONS:
            upgrade(url, rev)
            now = {t: set(cols) for t, cols in columns_of(url).items()}
            if rev == REVISIONS[0]:
                previous = now
                continue
            added = {
                t: (TABLE if t not in previous else cols - previous[t])
                for t, cols in now.items()
                if t not in previous or cols - previous[t]
            }
            removed = {
                t: previous[t] - now.get(t, set())
                for t in previous
                if previous[t] - now.get(t, set())
            }
            assert added == ADDED.get(rev, {}), rev
            assert removed == REMOVED.get(rev, {}), rev
            previous = now
    finally:
        drop_database(url)


# --- `emergency migrate` and the server refuse a newer release's database -----------------
def test_status_says_where_a_database_stands(copy: str):
    at_head = status(copy)
    assert (at_head.current, at_head.head, at_head.at_head, at_head.newer) == (
        (HEAD,),
        HEAD,
        True,
        False,
    )
    assert at_head.pending == () and at_head.refusal() is None
    downgrade(copy, "0011_incident_calls")
    old = status(copy)
    assert (old.at_head, old.newer, old.empty) == (False, False, False)
    assert old.pending == ("0012_drills", "0013_avl", HEAD)


def test_migrate_refuses_a_newer_releases_database_and_changes_nothing(
    copy: str, populated: Populated
):
    engine = create_engine(sqlalchemy_url(copy))
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0015_from_the_future'"))
        before = snapshot(copy)
        found = status(copy)
        assert (found.newer, found.at_head, found.unknown) == (
            True,
            False,
            ("0015_from_the_future",),
        )
        with cli_env(copy):
            result = invoke("migrate")
        assert result.exit_code == 2, result.stdout
        said = " ".join(result.stderr.split())
        assert "revision 0015_from_the_future, which this release does not know" in said
        assert f"its newest is {HEAD}" in said and "migrated by a newer release" in said
        assert snapshot(copy) == before
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == (
                "0015_from_the_future"
            )
        # The server does not start on it either (its lifespan asks first).
        settings = Settings(env="test", database_url=copy, secret_key=TEST_SECRET, realtime=False)
        app = create_app(settings, graph=road_engine(populated.network))
        with pytest.raises(Exception, match="migrated by a newer release"), TestClient(app):
            pass
        assert snapshot(copy) == before
    finally:
        engine.dispose()


def road_engine(network: LoadedNetwork) -> RoadEngine:
    return RoadEngine(network.graph, ch=network.ch)


# --- from each earlier head to today's, with data ---------------------------------------
OLD_DAY = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1, hours=2)


def write_old_rows(url: str, revision: str) -> dict[str, int]:
    """A unit, an incident, its task and a fix, in plain SQL naming only the columns the
    database has at ``revision``: rows that never saw a later release."""
    schema = columns_of(url)
    where = "SRID=4326;POINT(24.9455 60.1695)"
    unit = insert_row(
        url,
        "unit",
        {
            "callsign": f"OLD-{revision[:4]}",
            "name": "旧版本救护车",
            "kind": "vehicle",
            "type": "ambulance",
            "capabilities": ["medical_bls"],
            "crew": 2,
            "status": "en_route",
            "geom": where,
            "position_at": OLD_DAY,
        },
        schema=schema,
    )
    incident = insert_row(
        url,
        "incident",
        {
            "title": "旧版本事件",
            "type": "medical",
            "severity": "moderate",
            "status": "dispatched",
            "source": "manual",
            "reported_by": "user:dispatcher",
            "drill": False,
            "geom": where,
            "reported_at": OLD_DAY,
            "dispatched_at": OLD_DAY + timedelta(minutes=1),
        },
        schema=schema,
    )
    task = insert_row(
        url,
        "task",
        {
            "incident_id": incident,
            "unit_id": unit,
            "status": "en_route",
            "drill": False,
            "created_by": "user:dispatcher",
            "assigned_at": OLD_DAY + timedelta(minutes=1),
            "accepted_at": OLD_DAY + timedelta(minutes=2),
            "en_route_at": OLD_DAY + timedelta(minutes=3),
        },
        schema=schema,
    )
    fix = insert_row(
        url,
        "unit_position",
        {
            "unit_id": unit,
            "geom": where,
            "recorded_at": OLD_DAY + timedelta(minutes=4),
            "speed_mps": 6.5,
            "heading_deg": 45.0,
        },
        schema=schema,
    )
    return {"unit": unit, "incident": incident, "task": task, "unit_position": fix}


def check_old_rows(url: str, network: LoadedNetwork, old: dict[str, int]) -> None:
    """The rows written at the old revision, through today's models and API."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        sessions = sessionmaker(bind=engine, class_=AuditedSession, expire_on_commit=False)
        with sessions() as session:
            unit = session.get(Unit, old["unit"])
            assert unit is not None and unit.callsign.startswith("OLD-")
            assert (unit.external_id, unit.attributes, unit.drill_id) == (None, None, None)
            assert (unit.position_speed_mps, unit.position_heading_deg) == (None, None)
            admin = session.scalars(select(User).where(User.username == "admin")).one()
            token = auth.issue_token(admin, secret=TEST_SECRET, ttl_s=600)
            fix = session.execute(
                text(
                    "SELECT tableoid::regclass::text, source, flag, speed_mps FROM "
                    "unit_position WHERE id = :i"
                ),
                {"i": old["unit_position"]},
            ).one()
            day = (OLD_DAY + timedelta(minutes=4)).astimezone(UTC)
            assert tuple(fix) == (f"unit_position_p{day:%Y%m%d}", "api", None, 6.5)
        settings = Settings(env="test", database_url=url, secret_key=TEST_SECRET, realtime=False)
        app = create_app(settings, session_factory=sessions, graph=road_engine(network))
        h = {"Authorization": f"Bearer {token}"}
        with TestClient(app, client=("127.0.0.1", 50000)) as c:
            r = c.get(f"/api/incidents/{old['incident']}", headers=h)
            assert r.status_code == 200, r.text
            props = r.json()["properties"]
            assert (props["title"], props["status"], props["calls"]) == (
                "旧版本事件",
                "dispatched",
                0,
            )
            assert props["needs_review"] is False and props["drill"] is False
            r = c.get(f"/api/tasks/{old['task']}", headers=h)
            assert r.status_code == 200, r.text
            task = r.json()
            assert (task["status"], task["unit_id"], task["acknowledged_at"]) == (
                "en_route",
                old["unit"],
                None,
            )
            r = c.get(f"/api/units/{old['unit']}/track", headers=h)
            assert r.status_code == 200, r.text
    finally:
        engine.dispose()


def audit_report(url: str) -> dict[str, Any]:
    with cli_env(url):
        result = invoke("audit", "verify", "--json")
    report = json.loads(result.stdout)
    assert (result.exit_code == 0) == report["ok"], result.stdout
    return dict(report)


def models_drift(url: str) -> list[Any]:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"include_object": include_object, "compare_type": True}
            )
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


def earlier(revision: str, than: str) -> bool:
    return REVISIONS.index(revision) < REVISIONS.index(than)


def held_at(before: Snapshot, at: Snapshot, revision: str) -> list[str]:
    """What ``revision``'s schema can hold of ``before`` is all there at ``revision``."""
    expected = {t: rows for t, rows in before.items() if t in at}
    if earlier(revision, "0006"):  # alert.raw was text then: the same characters
        expected["alert"] = {
            key: {**row, "raw": bytes.fromhex(row["raw"][2:]).decode()}
            for key, row in expected["alert"].items()
        }
    return differences(expected, at, added_after(revision, carried=False))


@pytest.mark.parametrize("revision", REVISIONS[:-1])
def test_upgrade_from_an_earlier_head_keeps_the_data(
    revision: str, populated: Populated, copy: str
):
    downgrade(copy, revision)
    assert status(copy).current == (revision,)
    assert held_at(populated.rows, snapshot(copy), revision) == []
    old = write_old_rows(copy, revision)

    upgrade(copy)

    assert status(copy).at_head
    back = snapshot(copy)
    new_rows = {t: {(i,)} for t, i in old.items()}
    assert differences(populated.rows, back, added_after(revision), new_rows=new_rows) == []
    check_old_rows(copy, populated.network, old)
    report = audit_report(copy)
    keyed = len(populated.rows["audit_event"])
    assert report["checked"] == keyed
    if not earlier(revision, "0007"):
        assert report["ok"] and report["legacy_rows"] == 0, report
    else:  # the key ids went with 0007's downgrade: every keyed link now reads as unkeyed
        assert not report["ok"] and report["bad_count"] == keyed, report
        assert report["legacy_rows"] == keyed
    assert models_drift(copy) == []


# --- each migration down and up again, with data -----------------------------------------
def test_each_migration_goes_down_and_up_keeping_the_data(populated: Populated, copy: str):
    """From head down, one revision at a time: at N, down to N-1 and up to N gives N's rows
    back, less what N itself adds (ADDED[N]). 0001 down is the empty database
    (test_migrations: empty -> head -> base -> head), not repeated here."""
    failures: dict[str, list[str]] = {}
    for n in range(len(REVISIONS) - 1, 0, -1):
        here, below = REVISIONS[n], REVISIONS[n - 1]
        before = snapshot(copy)
        downgrade(copy, below)
        upgrade(copy, here)
        assert status(copy).current == (here,)
        lost = {
            t: cols if cols is TABLE else cols - CARRIED.get(here, {}).get(t, set())
            for t, cols in ADDED.get(here, {}).items()
        }
        found = differences(before, snapshot(copy), lost)
        if found:
            failures[here] = found
        downgrade(copy, below)
    assert failures == {}
