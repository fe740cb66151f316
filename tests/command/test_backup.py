"""`emergency backup` and `emergency restore`: the whole loop on a seeded city (dispatch,
positions, an alert, a checkpoint), a backup taken while a writer keeps inserting, a
non-empty target refused and replaced, and hostile archives refused with nothing changed."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from command.app import create_app
from command.backup import user_tables
from command.restore import occupied
from core import audit
from core.config import Settings, get_settings
from core.db import sqlalchemy_url
from gis.engine import Engine as RoadEngine
from tests.support.cap import alert_xml, square
from tests.support.cli import CLI_SECRET, cli_database, invoke
from tests.support.db import create_database, drop_database, unavailable
from tests.support.servers import serve_in_thread

PASSWORD = "backup-pass-2026"


def engine_of(url: str) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_size=1)


def counts(url: str) -> dict[str, int]:
    engine = engine_of(url)
    try:
        with engine.connect() as conn:
            from command.backup import count_rows

            return count_rows(conn, user_tables(conn))
    finally:
        engine.dispose()


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = engine_of(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def tables_of(url: str) -> list[str]:
    engine = engine_of(url)
    try:
        with engine.connect() as conn:
            return occupied(conn)
    finally:
        engine.dispose()


def use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point the CLI (DATABASE_URL) at ``url``."""
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()


@pytest.fixture
def empty_db() -> Iterator[str]:
    """A new database with PostGIS and nothing else (not migrated)."""
    try:
        url = create_database("emergency_restore")
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
        raise
    try:
        yield url
    finally:
        drop_database(url)


def manifest_of(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return dict(json.loads(member.read()))


# --- the whole loop -------------------------------------------------------------------


def _exercise(base: str, tmp_path: Path) -> dict[str, Any]:
    """Incidents, a dispatch, task status changes and positions through the API; an
    alert through the CLI. Returns what was made."""
    with httpx.Client(base_url=base, timeout=60) as client:
        r = client.post("/api/auth/token", json={"username": "disp", "password": PASSWORD})
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        incidents = []
        for i, (lon, lat) in enumerate([(24.9384, 60.1699), (24.9500, 60.1650), (24.93, 60.175)]):
            r = client.post(
                "/api/incidents",
                json={
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [lon, lat]},
                    "properties": {"title": f"火警 {i}", "type": "fire", "severity": "severe"},
                },
            )
            assert r.status_code == 201, r.text
            incidents.append(r.json()["id"])
        r = client.get(f"/api/incidents/{incidents[0]}/recommendations?limit=3")
        assert r.status_code == 200, r.text
        unit_ids = [e["unit_id"] for e in r.json()["recommendations"] if e["recommended"]][:1]
        assert unit_ids
        r = client.post(f"/api/incidents/{incidents[0]}/dispatch", json={"unit_ids": unit_ids})
        assert r.status_code == 201, r.text
        task_id = r.json()[0]["id"]
        for status in ("accepted", "en_route"):
            r = client.post(f"/api/tasks/{task_id}/status", json={"status": status})
            assert r.status_code == 200, r.text
        now = datetime.now(UTC).replace(microsecond=0)
        fixes = [
            {"unit_id": unit_ids[0], "lon": 24.94 + k * 1e-4, "lat": 60.17,
             "recorded_at": datetime.fromtimestamp(now.timestamp() - 30 + k, UTC).isoformat()}
            for k in range(5)
        ]  # fmt: skip
        r = client.post("/api/positions", json={"positions": fixes})
        assert r.status_code == 202 and r.json()["accepted"] == 5, r.text
    cap = tmp_path / "alert.xml"
    cap.write_text(alert_xml("backup-test-1", areas=[square(24.94, 60.17)]), encoding="utf-8")
    ingested = invoke("alert", "ingest", str(cap))
    assert ingested.exit_code == 0, ingested.output
    return {"incidents": incidents, "unit_id": unit_ids[0], "task_id": task_id}


def _server_settings(url: str) -> Settings:
    return Settings(env="test", database_url=url, secret_key=CLI_SECRET, realtime=False)


SAMPLES = {
    "incident": "SELECT id, title, type, severity, status, ST_AsText(geom), reported_at "
    "FROM incident ORDER BY id",
    "task": "SELECT id, incident_id, unit_id, status, accepted_at, en_route_at FROM task "
    "ORDER BY id",
    "unit_position": "SELECT unit_id, recorded_at, ST_AsText(geom) FROM unit_position "
    "ORDER BY unit_id, recorded_at",
    "audit_chain": "SELECT id, created_at FROM audit_chain",
    "audit_event": "SELECT id, hash, prev_hash FROM audit_event ORDER BY id",
    "alert": "SELECT id, identifier, raw FROM alert ORDER BY id",
    "user": 'SELECT id, username, password_hash, role FROM "user" ORDER BY id',
}


def sample(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = engine_of(url)
    try:
        with engine.connect() as conn:
            return {k: [tuple(r) for r in conn.execute(text(q))] for k, q in SAMPLES.items()}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_backup_and_restore_the_whole_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, empty_db: str, road_engine: RoadEngine
):
    checkpoints = tmp_path / "checkpoints"
    monkeypatch.setenv("EMERGENCY_AUDIT_CHECKPOINT_DIR", str(checkpoints))
    with cli_database(monkeypatch, "emergency_backup_src") as source:
        seeded = invoke("seed", "demo")  # the tests' city (Helsinki)
        assert seeded.exit_code == 0, seeded.output
        added = invoke("user", "add", "disp", "--role", "dispatcher", "--password", PASSWORD)
        assert added.exit_code == 0, added.output
        with serve_in_thread(create_app(_server_settings(source), graph=road_engine)) as base:
            made = _exercise(base, tmp_path)
        written = invoke("audit", "checkpoint")
        assert written.exit_code == 0, written.output
        archive = tmp_path / "city.backup"
        backed = invoke("backup", str(archive))
        assert backed.exit_code == 0, backed.output
        summary = json.loads(backed.stdout.strip().splitlines()[-1])
        source_counts, source_rows = counts(source), sample(source)
        chain = scalar(source, "SELECT id::text FROM audit_chain")
        partitions = [t for t in source_counts if t.startswith("unit_position_p")]

        # The manifest: the snapshot's counts, the chain, the checkpoints.
        manifest = manifest_of(archive)
        assert manifest["tables"] == source_counts
        assert summary["rows"] == sum(source_counts.values())
        assert summary["tables"] == len(source_counts) > 30
        assert manifest["audit"]["chain_id"] == chain == summary["chain_id"]
        assert manifest["audit"]["last_id"] == scalar(source, "SELECT max(id) FROM audit_event")
        assert manifest["postgis_version"] and manifest["alembic_revision"]
        assert len(manifest["checkpoints"]) >= 1
        assert source_counts["incident"] >= 4  # three reported, one from the alert
        assert source_counts["task"] == 1 and source_counts["alert"] == 1
        assert sum(source_counts[p] for p in partitions) == 5  # the track's day partitions
        assert archive.stat().st_mode & 0o077 == 0  # not readable by others

        # Restore into an empty database of its own, with a fresh checkpoint folder.
        use_database(monkeypatch, empty_db)
        restored_cp = tmp_path / "restored-checkpoints"
        monkeypatch.setenv("EMERGENCY_AUDIT_CHECKPOINT_DIR", str(restored_cp))
        get_settings.cache_clear()
        result = invoke("restore", str(archive))
        assert result.exit_code == 0, result.output
        restored = json.loads(result.stdout.strip().splitlines()[-1])
        assert restored["rows"] == summary["rows"] and restored["tables"] == summary["tables"]
        assert restored["revision"] == manifest["alembic_revision"]
        assert restored["migrate"] is False and restored["bytes"] == archive.stat().st_size
        assert restored["checkpoints_copied"] == len(manifest["checkpoints"])

        assert counts(empty_db) == source_counts
        assert sample(empty_db) == source_rows
        assert scalar(empty_db, "SELECT id::text FROM audit_chain") == chain

        # The audit chain verifies, against the archive's checkpoints too.
        verified = invoke("audit", "verify", "--json")
        assert verified.exit_code == 0, verified.output
        report = json.loads(verified.stdout)
        assert report["ok"] and report["checked"] == source_counts["audit_event"]
        assert report["checkpoints"] == len(manifest["checkpoints"])
        assert report["checkpoint"]["last_id"] == manifest["audit"]["last_id"]
        # ... and against the folder the source wrote its checkpoints into.
        against_source = invoke("audit", "verify", "--checkpoint-dir", str(checkpoints))
        assert against_source.exit_code == 0, against_source.output

        # The server serves the restored city: its incidents, and drive times on its roads.
        app = create_app(_server_settings(empty_db), graph=road_engine)
        with serve_in_thread(app) as base, httpx.Client(base_url=base, timeout=60) as client:
            r = client.post("/api/auth/token", json={"username": "disp", "password": PASSWORD})
            assert r.status_code == 200, r.text  # the user came back, password and all
            client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            r = client.get("/api/incidents")
            assert r.status_code == 200
            ids = {f["id"] for f in r.json()["features"]}
            assert set(made["incidents"]) <= ids
            r = client.get(f"/api/incidents/{made['incidents'][1]}/recommendations?limit=3")
            assert r.status_code == 200, r.text
            ranked = r.json()["recommendations"]
            assert ranked and all(e["eta_s"] is None or e["eta_s"] >= 0 for e in ranked)
            assert any(e["recommended"] and e["eta_s"] > 0 for e in ranked)


# --- a backup while the server writes ----------------------------------------------------


def test_a_backup_taken_while_writing_restores_exactly_its_manifest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, empty_db: str
):
    with cli_database(monkeypatch, "emergency_backup_busy") as source:
        stop = threading.Event()
        written = [0]

        def writer() -> None:
            engine = engine_of(source)
            try:
                while not stop.is_set():
                    with engine.begin() as conn:
                        conn.execute(
                            text(
                                "INSERT INTO incident (title, type, severity, status, source, "
                                "drill, geom) VALUES ('写入中', 'fire', 'minor', 'reported', "
                                "'phone', false, ST_SetSRID(ST_MakePoint(24.94, 60.17), 4326))"
                            )
                        )
                    written[0] += 1
            finally:
                engine.dispose()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            while written[0] < 50:
                time.sleep(0.01)
            archive = tmp_path / "busy.backup"
            result = invoke("backup", str(archive))
            assert result.exit_code == 0, result.output
            after_backup = written[0]
            while written[0] < after_backup + 50:  # and it goes on writing afterwards
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join(timeout=30)
        manifest = manifest_of(archive)
        in_archive = manifest["tables"]["incident"]
        assert 50 <= in_archive <= after_backup < written[0]
        assert counts(source)["incident"] == written[0] > in_archive

        use_database(monkeypatch, empty_db)
        restored = invoke("restore", str(archive))
        assert restored.exit_code == 0, restored.output
        assert counts(empty_db) == manifest["tables"]
        # The identity continues after the restored rows.
        assert scalar(empty_db, "SELECT max(id) FROM incident") == in_archive


# --- a target that is not empty ---------------------------------------------------------


@pytest.fixture
def small_archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """An archive of a migrated database with one user and one incident."""
    with cli_database(monkeypatch, "emergency_backup_small") as source:
        assert (
            invoke("user", "add", "ada", "--role", "admin", "--password", PASSWORD).exit_code == 0
        )
        engine = engine_of(source)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO incident (title, type, severity, status, source, drill, geom) "
                    "VALUES ('原件', 'flood', 'moderate', 'reported', 'phone', false, "
                    "ST_SetSRID(ST_MakePoint(114.3, 30.6), 4326))"
                )
            )
        engine.dispose()
        archive = tmp_path / "small.backup"
        result = invoke("backup", str(archive))
        assert result.exit_code == 0, result.output
        yield archive


def test_restore_refuses_a_database_that_is_not_empty_and_replaces_it_when_told(
    monkeypatch: pytest.MonkeyPatch, small_archive: Path, tmp_path: Path
):
    with cli_database(monkeypatch, "emergency_restore_busy") as target:
        engine = engine_of(target)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO incident (title, type, severity, status, source, drill, geom) "
                    "VALUES ('在用', 'fire', 'minor', 'reported', 'phone', false, "
                    "ST_SetSRID(ST_MakePoint(1, 1), 4326))"
                )
            )
            conn.execute(text("CREATE TABLE scratch (x int)"))  # not the archive's
        engine.dispose()
        before = counts(target)
        refused = invoke("restore", str(small_archive))
        assert refused.exit_code == 2, refused.output
        assert "is not empty" in refused.output and "--replace" in refused.output
        assert "alembic_version" in refused.output
        assert counts(target) == before

        replaced = invoke("restore", str(small_archive), "--replace")
        assert replaced.exit_code == 0, replaced.output
        manifest = manifest_of(small_archive)
        assert counts(target) == manifest["tables"]
        assert "scratch" not in tables_of(target)
        assert scalar(target, "SELECT title FROM incident") == "原件"
        assert scalar(target, "SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
        assert invoke("audit", "verify").exit_code == 0
        # Restoring the same archive over itself again is the same database.
        again = invoke("restore", str(small_archive), "--replace")
        assert again.exit_code == 0, again.output
        assert counts(target) == manifest["tables"]


def test_backup_refuses_to_overwrite_a_file_unless_forced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    with cli_database(monkeypatch, "emergency_backup_file"):
        path = tmp_path / "taken.backup"
        path.write_bytes(b"someone's file")
        refused = invoke("backup", str(path))
        assert refused.exit_code == 2 and "--force" in refused.output
        assert path.read_bytes() == b"someone's file"
        forced = invoke("backup", str(path), "--force")
        assert forced.exit_code == 0, forced.output
        assert manifest_of(path)["format"] == "emergency-backup"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
        missing = invoke("backup", str(tmp_path / "no-such-dir" / "x.backup"))
        assert missing.exit_code == 2 and "no folder" in missing.output


# --- hostile and damaged archives ---------------------------------------------------------


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
        return out


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _with_manifest(members: dict[str, bytes], **changes: Any) -> bytes:
    manifest = json.loads(members["manifest.json"])
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            manifest[outer][inner] = value
        else:
            manifest[key] = value
    return json.dumps(manifest).encode()


def _hostile(kind: str, good: Path, tmp: Path) -> Path:
    m = _members(good)
    rest = [(k, v) for k, v in m.items() if k != "manifest.json"]
    bad = tmp / f"{kind}.backup"
    if kind == "not-an-archive":
        bad.write_bytes(b"PGDMP this is not a tar at all " * 40)
    elif kind == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "other-format":
        _tar(bad, [("manifest.json", _with_manifest(m, format="pg_dump")), *rest])
    elif kind == "newer-version":
        _tar(bad, [("manifest.json", _with_manifest(m, version=2)), *rest])
    elif kind == "missing-dump":
        _tar(bad, [(k, v) for k, v in m.items() if k != "database.dump"])
    elif kind == "traversal":
        _tar(bad, [("manifest.json", m["manifest.json"]), ("../evil.sql", b"DROP TABLE x;"), *rest])
    elif kind == "absolute":
        _tar(bad, [("manifest.json", m["manifest.json"]), ("/var/emergency-evil.sql", b"x"), *rest])
    elif kind == "damaged-dump":
        dump = bytearray(m["database.dump"])
        dump[len(dump) // 2] ^= 0xFF
        _tar(bad, [("manifest.json", m["manifest.json"]),
                   *[(k, bytes(dump) if k == "database.dump" else v) for k, v in rest]])  # fmt: skip
    elif kind == "newer-revision":
        _tar(bad, [("manifest.json", _with_manifest(m, alembic_revision="9999_future")), *rest])
    elif kind == "sql-in-table-name":
        tables = json.loads(m["manifest.json"])["tables"]
        tables["x'); DROP TABLE incident; --"] = 1
        _tar(bad, [("manifest.json", _with_manifest(m, tables=tables)), *rest])
    elif kind == "counts-differ":
        tables = json.loads(m["manifest.json"])["tables"]
        tables["incident"] += 1
        _tar(bad, [("manifest.json", _with_manifest(m, tables=tables)), *rest])
    else:
        raise AssertionError(kind)
    return bad


HOSTILE = {
    "not-an-archive": (2, "not a backup archive"),
    "truncated": (2, "truncated"),
    "other-format": (2, "not 'emergency-backup'"),
    "newer-version": (2, "format version 2"),
    "missing-dump": (2, "no database.dump"),
    "traversal": (2, "outside the archive"),
    "absolute": (2, "outside the archive"),
    "damaged-dump": (2, "damaged or truncated"),
    "newer-revision": (2, "does not know"),
    "sql-in-table-name": (2, "malformed"),
    "counts-differ": (1, "incident: 1 rows restored, the archive says 2"),
}


def test_hostile_or_damaged_archives_are_refused_and_change_nothing(
    monkeypatch: pytest.MonkeyPatch, small_archive: Path, tmp_path: Path, empty_db: str
):
    use_database(monkeypatch, empty_db)
    for kind, (code, message) in HOSTILE.items():
        bad = _hostile(kind, small_archive, tmp_path)
        result = invoke("restore", str(bad))
        assert result.exit_code == code, (kind, result.output)
        flat = " ".join(result.output.split())
        assert message in flat, (kind, flat)
        assert "Traceback" not in result.output
        assert tables_of(empty_db) == [], kind  # nothing was restored, not even in part
    assert not (tmp_path.parent / "evil.sql").exists()
    assert not Path("/var/emergency-evil.sql").exists()
    # The good archive still restores into the same database afterwards.
    good = invoke("restore", str(small_archive))
    assert good.exit_code == 0, good.output
    assert counts(empty_db) == manifest_of(small_archive)["tables"]


def test_restore_of_a_missing_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, empty_db: str, tmp_path: Path
):
    use_database(monkeypatch, empty_db)
    result = invoke("restore", str(tmp_path / "nope.backup"))
    assert result.exit_code == 2 and "no such file" in result.output


def test_pending_changes_travel_and_are_sealed_after_the_restore(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, empty_db: str
):
    """A change committed but not yet sealed when the backup is taken (the server seals
    within a second) is in the dump as a pending change: the restored database verifies,
    reports it pending, and seals it onto the same chain."""
    with cli_database(monkeypatch, "emergency_backup_pending") as source:
        assert (
            invoke("user", "add", "ada", "--role", "admin", "--password", PASSWORD).exit_code == 0
        )
        rows = scalar(source, "SELECT count(*) FROM audit_event")
        at = datetime.now(UTC)
        # What core.changes stages: the row's canonical body, linked when it is sealed.
        body = audit.body(at, "test", "note.added", "note", "1", "null", audit.encode({"n": 1}))
        engine = engine_of(source)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO pending_change (at, actor, action, entity, entity_id, body, "
                    "topics) VALUES (:at, 'test', 'note.added', 'note', '1', :body, '{}')"
                ),
                {"at": at, "body": body},
            )
        engine.dispose()
        archive = tmp_path / "pending.backup"
        result = invoke("backup", str(archive))
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.strip().splitlines()[-1])["pending"] == 1

        use_database(monkeypatch, empty_db)
        assert invoke("restore", str(archive)).exit_code == 0
        verified = invoke("audit", "verify", "--json")
        assert verified.exit_code == 0, verified.output
        assert json.loads(verified.stdout)["pending"] == 1
        # `audit checkpoint` seals what is pending (as the restored server's sealer would).
        assert (
            invoke("audit", "checkpoint", "--checkpoint-dir", str(tmp_path / "cp")).exit_code == 0
        )
        sealed = json.loads(invoke("audit", "verify", "--json").stdout)
        assert sealed["ok"] and sealed["pending"] == 0 and sealed["checked"] == rows + 1


def test_the_secret_never_reaches_a_command_line(monkeypatch: pytest.MonkeyPatch):
    from command.backup import pg_env

    password = secrets.token_urlsafe(12)
    env = pg_env(f"postgresql://someone:{password}@db.example:6543/city?sslmode=require")
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == (
        "db.example", "6543", "someone", "city",
    )  # fmt: skip
    assert env["PGPASSWORD"] == password and env["PGSSLMODE"] == "require"


def test_an_unreachable_database_is_a_clear_error_and_writes_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        result = invoke("backup", str(tmp_path / "x.backup"))
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "cannot reach the database" in result.output
    assert list(tmp_path.iterdir()) == []
