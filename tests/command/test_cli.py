"""The `emergency` CLI against a fresh, committed database (one per test)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from command import cli
from command.auth import service as auth
from command.auth.models import ApiKey, User
from command.seed import city_dir
from core.audit import AuditEvent
from core.config import get_settings
from core.db import AuditedSession, sqlalchemy_url
from core.errors import InvalidInput
from tests.support.cli import CLI_SECRET, cli_database, invoke, rows

DATA_DIR = city_dir("helsinki")  # the tests' city (the demo is Columbus)


@pytest.fixture
def cli_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new migrated database that the CLI reaches through DATABASE_URL."""
    with cli_database(monkeypatch, "emergency_cli") as url:
        yield url


@pytest.fixture
def db(cli_db: str) -> Iterator[Engine]:
    engine = create_engine(sqlalchemy_url(cli_db))
    yield engine
    engine.dispose()


# --- users --------------------------------------------------------------------------


def test_user_add_prints_the_user_as_json(db: Engine):
    result = invoke("user", "add", "alice", "--role", "dispatcher", "--password", "longpassword1")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["username"] == "alice"
    assert printed["role"] == "dispatcher"
    assert printed["unit_id"] is None
    assert isinstance(printed["id"], int)
    with AuditedSession(db) as session:
        user = auth.authenticate(session, username="alice", password="longpassword1")
        assert user.id == printed["id"]
        assert user.password_hash != "longpassword1"
        assert (
            session.scalar(select(AuditEvent.action).where(AuditEvent.entity == "user"))
            == "user.created"
        )


def test_user_add_twice_is_refused(db: Engine):
    args = ("user", "add", "bob", "--role", "planner", "--password", "longpassword1")
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code != 0
    assert "exists" in str(again.exception)
    assert rows(db, "user") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--role", "responder"), "--unit"),
        (("--role", "janitor"), "role must be one of"),
        (("--role", "dispatcher", "--password", "short"), "at least 8"),
    ],
    ids=["responder-without-unit", "unknown-role", "short-password"],
)
def test_user_add_refuses_bad_input(db: Engine, args: tuple[str, ...], message: str):
    full = ["user", "add", "carol", *args]
    if "--password" not in full:
        full += ["--password", "longpassword1"]
    result = invoke(*full)
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput)
    assert message in result.exception.message
    assert rows(db, "user") == 0
    assert rows(db, "audit_event") == 0


def test_entry_point_prints_a_clear_error(
    db: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """`emergency` (cli.main) turns a refused input into a message and exit code 2."""
    argv = ["emergency", "user", "add", "dave", "--role", "responder", "--password", "pw123456789"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error" in err
    assert "responder must be bound to a unit (--unit)" in err
    assert "Traceback" not in err
    assert rows(db, "user") == 0


@pytest.mark.db
def test_entry_point_names_an_unmigrated_or_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """A database never migrated, or none at all: a sentence and exit 2, no traceback."""
    from tests.support.db import create_database, drop_database
    from tests.support.servers import free_port

    empty = create_database("emergency_test_cli_empty")
    try:
        for url, says in (
            (empty, 'relation "pending_change" does not exist: the database is not migrated'),
            (f"postgresql://postgres@127.0.0.1:{free_port()}/x", "cannot reach the database"),
        ):
            with monkeypatch.context() as m:  # the admin URL (to drop it) reads DATABASE_URL
                m.setenv("DATABASE_URL", url)
                m.setattr(sys, "argv", ["emergency", "audit", "verify"])
                get_settings.cache_clear()
                with pytest.raises(SystemExit) as exit_info:
                    cli.main()
            assert exit_info.value.code == 2
            err = " ".join(capsys.readouterr().err.split())
            assert says in err
            assert "Traceback" not in err
    finally:
        get_settings.cache_clear()
        drop_database(empty)


# --- API keys -----------------------------------------------------------------------


def test_apikey_add_prints_the_secret_once_and_the_key_works(db: Engine):
    result = invoke("apikey", "add", "warning-system")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {"key_id", "secret"}
    key_id, secret = printed["key_id"], printed["secret"]
    assert len(secret) >= 32

    with AuditedSession(db) as session:
        stamp = str(int(time.time()))
        principal = auth.principal_from_api_key(
            session,
            key_id=key_id,
            timestamp=stamp,
            signature=auth.sign(secret, stamp, b'{"a":1}'),
            body=b'{"a":1}',
            secret_key=CLI_SECRET,
            skew_s=300,
        )
        assert (principal.kind, principal.name, principal.role) == (
            "apikey",
            "warning-system",
            "machine",
        )
        stored = session.scalar(select(ApiKey.secret_encrypted).where(ApiKey.key_id == key_id))
        assert stored is not None
        assert secret.encode() not in bytes(stored)

    # A second key is a different key with a different secret.
    other = json.loads(invoke("apikey", "add", "warning-system-2").stdout)
    assert other["key_id"] != key_id
    assert other["secret"] != secret
    assert rows(db, "api_key") == 2


# --- audit --------------------------------------------------------------------------


def test_audit_verify_finds_a_tampered_row(db: Engine):
    for name in ("ann", "ben", "cid"):
        added = invoke("user", "add", name, "--role", "auditor", "--password", "longpassword1")
        assert added.exit_code == 0, added.output
    ok = invoke("audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.stdout
    assert "3 rows checked" in ok.stdout

    with db.connect() as conn:
        ids = list(conn.scalars(text("SELECT id FROM audit_event ORDER BY id")))
    assert len(ids) == 3
    victim = ids[1]
    with db.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update"))
        conn.execute(
            text("UPDATE audit_event SET actor = 'user:mallory' WHERE id = :id"), {"id": victim}
        )
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update"))

    broken = invoke("audit", "verify")
    assert broken.exit_code == 1, broken.output
    assert "NOT intact: 1 bad rows of 3 checked" in broken.stdout
    assert f"row {victim}: row content does not match its hash" in broken.stdout


def test_audit_verify_reports_every_bad_row_and_a_chain_cut_short(db: Engine, tmp_path: Path):
    """Rows cut from the end leave intact links; the checkpoint written before the cut
    names them. Every edited row is named, not only the first."""
    for i in range(8):
        assert invoke("apikey", "add", f"k{i}").exit_code == 0
    folder = tmp_path / "checkpoints"
    made = invoke("audit", "checkpoint", "--checkpoint-dir", str(folder))
    assert made.exit_code == 0, made.output
    path = Path(made.stdout.strip())
    assert path.parent == folder and json.loads(path.read_text())["rows"] == 8
    with db.connect() as conn:
        ids = list(conn.scalars(text("SELECT id FROM audit_event ORDER BY id")))
    with db.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_event WHERE id > :id"), {"id": ids[-3]})
        conn.execute(
            text("UPDATE audit_event SET actor = 'user:mallory' WHERE id = ANY(:ids)"),
            {"ids": [ids[1], ids[3]]},
        )
        conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
    links_only = invoke("audit", "verify")
    assert links_only.exit_code == 1
    assert "row content does not match" in links_only.stdout and "gone" not in links_only.stdout
    full = invoke("audit", "verify", "--checkpoint-dir", str(folder), "--json")
    assert full.exit_code == 1, full.output
    report = json.loads(full.stdout)
    assert [(b["id"], b["reason"]) for b in report["bad_rows"]] == [
        (ids[1], "row content does not match its hash"),
        (ids[3], "row content does not match its hash"),
    ]
    assert report["problems"] == [
        f"rows {ids[-2]}..{ids[-1]} are gone: checkpoint {path.name} of "
        f"{json.loads(path.read_text())['at']} had 8 rows up to row {ids[-1]} "
        "(the chain was cut short)"
    ]


def test_audit_checkpoint_needs_a_folder(db: Engine, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("EMERGENCY_AUDIT_CHECKPOINT_DIR", raising=False)
    get_settings.cache_clear()
    result = invoke("audit", "checkpoint")
    assert result.exit_code == 2
    assert "EMERGENCY_AUDIT_CHECKPOINT_DIR" in result.output


def test_audit_rows_cannot_be_changed_with_the_trigger_on(db: Engine):
    assert invoke("apikey", "add", "k").exit_code == 0
    with pytest.raises(DBAPIError, match="append-only"), db.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'user:mallory'"))
    assert invoke("audit", "verify").exit_code == 0


# --- seed and migrate ---------------------------------------------------------------


def _expected_demo() -> dict[str, int]:
    def features(name: str) -> list[dict[str, Any]]:
        data = json.loads((DATA_DIR / name).read_text(encoding="utf-8"))
        return list(data["features"])

    units = yaml.safe_load((DATA_DIR / "units.yaml").read_text(encoding="utf-8"))
    warehouses = features("warehouses.geojson")
    return {
        "station": len(features("stations.geojson")),
        "unit": len(units),
        "shelter": len(features("shelters.geojson")),
        "warehouse": len(warehouses),
        "stock": sum(len(w["properties"].get("stock", [])) for w in warehouses),
    }


def test_seed_demo_loads_the_city_once(db: Engine):
    expected = _expected_demo()
    assert expected["station"] > 0 and expected["unit"] > 0  # the data files are real
    first = invoke("seed", "demo")
    assert first.exit_code == 0, first.output
    assert {t: rows(db, t) for t in expected} == expected
    places = rows(db, "place")
    assert places > 3000  # the place index: addresses, streets and named places
    audited = rows(db, "audit_event")
    events = rows(db, "event")
    assert audited >= sum(expected.values())

    second = invoke("seed", "demo")
    assert second.exit_code == 0, second.output
    assert "nothing (already loaded)" in second.output
    assert {t: rows(db, t) for t in expected} == expected
    assert rows(db, "place") == places  # rebuilt whole, not appended to
    assert rows(db, "audit_event") == audited
    assert rows(db, "event") == events
    assert rows(db, "user") == 0  # demo users only in development

    with db.connect() as conn:
        homeless = conn.scalar(text("SELECT count(*) FROM unit WHERE home_station_id IS NULL"))
    assert homeless == 0
    ok = invoke("audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert f"{audited} rows checked" in ok.stdout


def test_responder_can_be_bound_to_a_unit_by_callsign_or_id(db: Engine):
    assert invoke("seed", "demo").exit_code == 0
    with db.connect() as conn:
        unit_id = conn.scalar(text("SELECT id FROM unit WHERE callsign = 'E101'"))
    by_callsign = invoke(
        "user", "add", "r1", "--role", "responder", "--unit", "E101", "--password", "longpassword1"
    )
    assert by_callsign.exit_code == 0, by_callsign.output
    assert json.loads(by_callsign.stdout)["unit_id"] == unit_id
    by_id = invoke(
        "user",
        "add",
        "r2",
        "--role",
        "responder",
        "--unit",
        str(unit_id),
        "--password",
        "pw12345678",
    )
    assert by_id.exit_code == 0, by_id.output
    assert json.loads(by_id.stdout)["unit_id"] == unit_id
    missing = invoke(
        "user", "add", "r3", "--role", "responder", "--unit", "NOPE9", "--password", "pw12345678"
    )
    assert missing.exit_code != 0
    assert "not found" in str(missing.exception)
    with AuditedSession(db) as session:
        assert set(session.scalars(select(User.username))) == {"r1", "r2"}


def test_migrate_is_idempotent(db: Engine):
    def schema() -> tuple[str, int]:
        with db.connect() as conn:
            version = conn.scalar(text("SELECT version_num FROM alembic_version"))
            tables = conn.scalar(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
            )
        return str(version), int(tables or 0)

    before = schema()
    for _ in range(2):
        result = invoke("migrate")
        assert result.exit_code == 0, result.output
        assert "database at head" in result.output
        assert schema() == before


# --- road network -------------------------------------------------------------------

SHARED_OSM = DATA_DIR.parents[2] / "shared" / "data" / "osm"


def test_load_osm_builds_the_graph_fills_postgis_and_exports_graphml(
    db: Engine, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    import networkx as nx

    monkeypatch.setenv("EMERGENCY_GRAPH_CACHE_DIR", str(tmp_path / "cache"))
    get_settings.cache_clear()
    graphml = tmp_path / "city.graphml"
    source = SHARED_OSM / "osmnx_aguascalientes.osm.bz2"
    first = invoke("load-osm", str(source), "--export-graphml", str(graphml))
    assert first.exit_code == 0, first.output
    assert "parsed" in first.output and "kept the largest" in first.output
    g = nx.read_graphml(graphml)
    assert rows(db, "road_node") == g.number_of_nodes() > 500
    assert rows(db, "road_edge") == g.number_of_edges()
    assert rows(db, "place") > 0  # the place index comes from the same file
    node = next(iter(g.nodes(data=True)))[1]
    edge = next(iter(g.edges(data=True)))[2]
    assert -103 < float(node["x"]) < -102 and 21 < float(node["y"]) < 22  # lon, lat
    assert float(edge["travel_time_s"]) > 0 and float(edge["length_m"]) > 0
    # The second load comes from the on-disk cache.
    second = invoke("load-osm", str(source), "--no-db")
    assert second.exit_code == 0 and "cache" in second.output


def test_load_osm_refuses_a_missing_or_broken_file(db: Engine, tmp_path):
    missing = invoke("load-osm", str(tmp_path / "nowhere.osm.pbf"), "--no-db")
    assert missing.exit_code != 0
    assert "cannot read" in str(missing.exception)
    broken = tmp_path / "broken.osm"
    broken.write_text("<osm><way id='1'><nd ref='", encoding="utf-8")
    result = invoke("load-osm", str(broken), "--no-db")
    assert result.exit_code != 0
    assert "cannot read" in str(result.exception)
    assert rows(db, "road_node") == 0


# --- alerts -------------------------------------------------------------------------


def test_alert_ingest_takes_files_and_reports_refusals(db: Engine, tmp_path: Path):
    from datetime import UTC, datetime

    from tests.support.cap import CAP_DIR, alert_xml

    good = tmp_path / "flood.xml"
    good.write_text(alert_xml("CLI-1", sent=datetime.now(UTC).replace(microsecond=0)))
    hostile = CAP_DIR / "real_feeds_mixed" / "xee.cap"
    result = invoke("alert", "ingest", str(good), str(hostile))
    assert result.exit_code == 2
    answer = json.loads(result.stdout.strip().splitlines()[0])
    assert answer["identifier"] == "CLI-1" and len(answer["incident_ids"]) == 1
    assert "xee.cap: refused" in result.stderr
    assert rows(db, "alert") == 1
    again = invoke("alert", "ingest", str(good))
    assert again.exit_code == 0 and json.loads(again.stdout)["duplicate"] is True
    assert rows(db, "incident") == 1
