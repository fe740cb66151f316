"""`emergency doctor` against real PostgreSQL/PostGIS: a healthy installation is all ok,
and each problem is found with its status and finding, quickly (never a hang)."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from command import doctor
from command.app import create_app
from command.migrate import alembic_config, upgrade
from core.config import PLACEHOLDER_SECRET, get_settings
from core.db import sqlalchemy_url
from core.types import utcnow
from tests.support.cli import cli_database, invoke
from tests.support.db import create_database, drop_database, sql, unavailable
from tests.support.servers import free_port, serve_in_thread


@pytest.fixture
def cli_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new migrated database the CLI reaches through DATABASE_URL (production-like)."""
    with cli_database(monkeypatch, "emergency_doctor") as url:
        monkeypatch.setenv("EMERGENCY_ENV", "production")
        monkeypatch.setenv("EMERGENCY_TRUSTED_PROXIES", '["127.0.0.1"]')
        get_settings.cache_clear()
        yield url


def diagnose(*args: str) -> tuple[int, dict[str, doctor.Result]]:
    """`emergency doctor --json ARGS`: the exit code and the results by name."""
    get_settings.cache_clear()
    result = invoke("doctor", "--json", *args)
    assert result.exit_code in (0, 1), result.output
    found = [doctor.Result(**r) for r in json.loads(result.stdout)]
    return result.exit_code, {r.name: r for r in found}


def head_and_previous() -> tuple[str, str]:
    script = ScriptDirectory.from_config(alembic_config("postgresql://x@localhost/x"))
    head = script.get_current_head()
    assert head is not None
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    return head, previous


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


@contextmanager
def connection(ctx: doctor.Context) -> Iterator[Connection]:
    engine = doctor.open_engine(ctx)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
    finally:
        engine.dispose()


# --- a healthy installation, then broken one piece at a time ----------------------------


def test_a_healthy_installation_is_all_ok_and_each_break_is_named(
    cli_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("EMERGENCY_AUDIT_CHECKPOINT_DIR", str(folder))
    get_settings.cache_clear()
    seeded = invoke("seed", "demo", "--city", "helsinki", "--no-users")
    assert seeded.exit_code == 0, seeded.output
    written = invoke("audit", "checkpoint")
    assert written.exit_code == 0, written.output
    assert Path(written.stdout.strip()).parent == folder
    head, _ = head_and_previous()
    database = sqlalchemy_url(cli_db).rsplit("/", 1)[1]

    with serve_in_thread(create_app(get_settings())) as base:
        code, found = diagnose("--url", base)
        table = invoke("doctor", "--url", base)
    assert code == 0
    assert {name: r.status for name, r in found.items() if r.status != "ok"} == {}
    assert list(found) == [
        "environment",
        "secret key",
        "database",
        "PostGIS",
        "migrations",
        "clock",
        "checkpoints",
        "sealing",
        "road network",
        "connections",
        "disk",
        "proxy",
        "metrics",
        "server",
    ]
    assert found["database"].finding.startswith("PostgreSQL ")
    assert f"/{database} as " in found["database"].finding
    assert found["migrations"].finding == f"at head {head}"
    assert found["secret key"].finding.startswith("set, 64 characters")
    assert found["road network"].finding.endswith("compiled graph cached")
    assert found["server"].finding.startswith(f"{base}/healthz: ok, PostGIS 3.")
    assert found["server"].finding.endswith("realtime bus listening")
    assert found["checkpoints"].finding.startswith(f"{folder}: newest covers row ")
    assert table.exit_code == 0, table.output
    assert table.stdout.count("✓") == len(found)
    assert "14 ok, 0 warning(s), 0 failure(s)" in table.stdout

    # The server stopped: nothing answers at its URL.
    code, found = diagnose("--url", base)
    assert code == 1
    assert found["server"].status == "fail"
    assert found["server"].finding.startswith(f"no answer at {base}/healthz: ")
    assert "Connection refused" in found["server"].finding

    # The road network's file went away: the server would route on the demo city.
    sql(cli_db, "UPDATE road_network SET path = '/nonexistent/city.osm.pbf'")
    _, found = diagnose("--url", base)
    assert found["road network"].status == "fail"
    assert "its file /nonexistent/city.osm.pbf is gone" in found["road network"].finding

    # The checkpoint folder is gone.
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    _, found = diagnose("--url", base)
    assert found["checkpoints"] == doctor.Result(
        "checkpoints",
        "fail",
        f"{folder} does not exist",
        "create it, owned by the service's user (mkdir -p, chown)",
    )

    # A change committed and never sealed (its process died between commit and seal).
    sql(
        cli_db,
        "INSERT INTO pending_change (at, actor, action, entity, topics)"
        " VALUES (now() - interval '120 seconds', 'test', 'x.changed', 'x', '{}')",
    )
    _, found = diagnose("--url", base)
    assert found["sealing"].status == "fail"
    assert found["sealing"].finding.startswith("1 change(s) waiting to be sealed, the oldest 12")


def test_checkpoints_stale_when_rows_wait_longer_than_two_periods(
    cli_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "checkpoints"
    monkeypatch.setenv("EMERGENCY_AUDIT_CHECKPOINT_DIR", str(folder))
    monkeypatch.setenv("EMERGENCY_AUDIT_CHECKPOINT_S", "1")
    added = invoke("user", "add", "alice", "--role", "dispatcher", "--password", "longpassword1")
    assert added.exit_code == 0, added.output
    assert invoke("audit", "checkpoint").exit_code == 0

    # Idle past two periods: the checkpoint still covers the head, so it is not stale.
    time.sleep(2.2)
    _, found = diagnose()
    assert found["checkpoints"].status == "ok"
    assert found["checkpoints"].finding.endswith("0 newer row(s), checkpoint every 1 s")

    added = invoke("user", "add", "bob", "--role", "dispatcher", "--password", "longpassword1")
    assert added.exit_code == 0, added.output
    _, found = diagnose()
    assert found["checkpoints"].status == "ok"  # within two periods: the next is on its way
    time.sleep(2.2)
    code, found = diagnose()
    assert code == 1
    assert found["checkpoints"].status == "fail"
    assert "1 newer row(s), the oldest " in found["checkpoints"].finding
    assert found["checkpoints"].finding.endswith("(one is due every 1 s)")


def test_checkpoint_dir_unset_is_a_warning(cli_db: str):
    code, found = diagnose()
    assert found["checkpoints"].status == "warn"
    assert found["checkpoints"].finding.startswith("EMERGENCY_AUDIT_CHECKPOINT_DIR is not set")
    # No road network and no server: failures, so exit 1.
    assert found["road network"].finding == "no road network in the database"
    assert found["road network"].status == "fail"
    assert code == 1


# --- the database -----------------------------------------------------------------------


def test_an_unreachable_database_fails_at_once(monkeypatch: pytest.MonkeyPatch):
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DATABASE_URL", f"postgresql://emergency@127.0.0.1:{port}/emergency")
    started = time.monotonic()
    code, found = diagnose("--url", f"http://127.0.0.1:{port}")
    elapsed = time.monotonic() - started
    assert code == 1
    assert found["database"].status == "fail"
    assert found["database"].finding.startswith(f"cannot connect to 127.0.0.1:{port}/emergency (")
    assert "Connection refused" in found["database"].finding
    assert "migrations" not in found  # not run without a database
    assert found["server"].status == "fail"
    assert elapsed < 10, elapsed


def test_a_silent_database_and_server_time_out(monkeypatch: pytest.MonkeyPatch):
    with silent_listener() as port:
        monkeypatch.setenv("DATABASE_URL", f"postgresql://emergency@127.0.0.1:{port}/emergency")
        started = time.monotonic()
        code, found = diagnose("--url", f"http://127.0.0.1:{port}", "--timeout", "2")
        elapsed = time.monotonic() - started
    assert code == 1
    assert found["database"].status == "fail"
    assert "timeout" in found["database"].finding.lower()
    assert found["server"].status == "fail"
    assert found["server"].finding.startswith(f"no answer at http://127.0.0.1:{port}/healthz: ")
    assert "timed out" in found["server"].finding
    assert elapsed < 15, elapsed  # two timeouts of 2 s each, and the imports


@pytest.mark.db
def test_a_database_behind_head_fails(monkeypatch: pytest.MonkeyPatch):
    head, previous = head_and_previous()
    try:
        url = create_database("emergency_doctor")
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
        raise
    try:
        upgrade(url, previous)
        monkeypatch.setenv("DATABASE_URL", url)
        code, found = diagnose()
    finally:
        get_settings.cache_clear()
        drop_database(url)
    assert code == 1
    assert found["migrations"] == doctor.Result(
        "migrations",
        "fail",
        f"database at {previous}, 1 migration(s) behind {head}",
        "back up, then run emergency migrate",
    )


def test_a_database_from_a_newer_release_fails(cli_db: str):
    head, _ = head_and_previous()
    sql(cli_db, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    code, found = diagnose()
    assert code == 1
    assert found["migrations"].status == "fail"
    assert found["migrations"].finding == (
        "database at revision 9999_from_the_future, which this release does not know "
        f"(newest: {head}): migrated by a newer release"
    )


def test_clock_skew_is_measured_against_the_database(cli_db: str):
    settings = get_settings()
    for offset_s, status, words in [
        (0.0, "ok", None),
        (2.0, "warn", "the database clock is 2.0 s behind this machine"),
        (-7.0, "fail", "the database clock is 7.0 s ahead of this machine"),
    ]:
        ctx = doctor.Context(
            settings, clock=lambda offset_s=offset_s: utcnow() + timedelta(seconds=offset_s)
        )
        with connection(ctx) as conn:
            result = doctor.check_clock(ctx, conn)
        assert result.status == status, result
        if words:
            assert result.finding.startswith(words), result.finding
            assert result.fix.startswith("keep both machines on NTP")


def test_connections_count_every_worker(cli_db: str, monkeypatch: pytest.MonkeyPatch):
    engine = create_engine(sqlalchemy_url(cli_db))
    try:
        with engine.connect() as conn:
            max_connections = int(conn.exec_driver_sql("SHOW max_connections").scalar_one())
    finally:
        engine.dispose()
    monkeypatch.setenv("EMERGENCY_WORKERS", "4")
    monkeypatch.setenv("EMERGENCY_DB_POOL_SIZE", str(max_connections // 4))
    _, found = diagnose()
    result = found["connections"]
    need = 4 * (2 * (max_connections // 4) + 4)
    assert result.status == "fail"
    assert result.finding.startswith(f"the server may open {need} (4 worker(s) x (2 x pool ")


# --- settings ---------------------------------------------------------------------------


def test_the_placeholder_secret_fails_in_production(cli_db: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMERGENCY_SECRET_KEY", PLACEHOLDER_SECRET)
    code, found = diagnose()
    assert code == 1
    assert found["secret key"].status == "fail"
    assert found["secret key"].finding == (
        "EMERGENCY_SECRET_KEY is the placeholder: production refuses to start"
    )
    assert found["database"].status == "ok"  # the other checks still ran

    monkeypatch.setenv("EMERGENCY_SECRET_KEY", "short-but-not-the-placeholder")
    _, found = diagnose()
    assert found["secret key"].finding == (
        "EMERGENCY_SECRET_KEY is only 29 characters: production refuses to start"
    )

    monkeypatch.setenv("EMERGENCY_ENV", "development")
    monkeypatch.setenv("EMERGENCY_SECRET_KEY", PLACEHOLDER_SECRET)
    _, found = diagnose()
    assert found["secret key"].status == "warn"
    assert found["secret key"].finding.endswith("allowed in development only")
    assert found["environment"].status == "warn"


def test_settings_that_cannot_be_read_fail_alone(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMERGENCY_TRUSTED_PROXIES", '["not-a-network"]')
    code, found = diagnose()
    assert code == 1
    assert list(found) == ["settings"]
    assert found["settings"].finding.startswith("trusted_proxies: ")


def test_a_loopback_server_in_production_should_trust_its_proxy():
    settings = get_settings().model_copy(
        update={"env": "production", "host": "127.0.0.1", "trusted_proxies": ()}
    )
    assert doctor.check_proxy(doctor.Context(settings)).status == "warn"
    trusted = settings.model_copy(update={"trusted_proxies": ("127.0.0.1",)})
    assert doctor.check_proxy(doctor.Context(trusted)).status == "ok"
    exposed = settings.model_copy(update={"metrics_allow": ("0.0.0.0/0",)})
    assert doctor.check_metrics(doctor.Context(exposed)).status == "warn"


def test_default_url_follows_the_bind_address():
    settings = get_settings()
    wildcard = settings.model_copy(update={"host": "0.0.0.0", "port": 9000})  # noqa: S104
    assert doctor.default_url(wildcard) == "http://127.0.0.1:9000"
    assert doctor.default_url(settings.model_copy(update={"host": "::", "port": 80})) == (
        "http://[::1]:80"
    )


def test_thresholds():
    gib = 1 << 30
    assert doctor.disk_status(50 * gib, 100 * gib) == "ok"
    assert doctor.disk_status(9 * gib, 100 * gib) == "warn"  # under 10 %
    assert doctor.disk_status(4 * gib, 20 * gib) == "warn"  # 20 %, but under 5 GiB
    assert doctor.disk_status(1 * gib, 100 * gib) == "fail"  # 1 %
    assert doctor.disk_status(gib // 2, 2 * gib) == "fail"  # under 1 GiB
    assert doctor.connection_status(24, 97) == "ok"
    assert doctor.connection_status(80, 97) == "warn"
    assert doctor.connection_status(98, 97) == "fail"


def test_a_secret_of_32_characters_is_enough():
    settings = get_settings().model_copy(
        update={"env": "production", "secret_key": secrets.token_hex(16)}
    )
    result = doctor.check_secret_key(doctor.Context(settings))
    assert result.status == "ok"
    assert result.finding == "set, 32 characters; audit key derived from this one"
