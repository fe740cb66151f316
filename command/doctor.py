"""`emergency doctor`: check a running installation and say what is wrong, and what to do.

Each check is a small function returning a :class:`Result` (name, ok / warn / fail, a
one-line finding, the fix). Checks that need the database share one autocommit connection
(a failed query spoils no other check); every connection and request has a short timeout,
so a dead host or a silent port gives a failure, never a hang.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from command.client_address import in_networks
from command.migrate import status_on
from core import audit, checkpoint, sealer
from core.config import PLACEHOLDER_SECRET, Settings
from core.db import sqlalchemy_url
from core.types import utcnow

Status = Literal["ok", "warn", "fail"]
MARKS: dict[str, str] = {"ok": "✓", "warn": "!", "fail": "✗"}

# Thresholds, and why.
# A request makes several round trips; past ~20 ms each, the database's distance shows in
# every answer (on one machine or a LAN it is well under 1 ms).
ROUND_TRIP_WARN_S = 0.020
# Fix times, task timestamps and KPIs mix this machine's clock (the app's utcnow) with the
# database's now(): a second skews a 60 s dispatch target visibly, five make timers lie.
SKEW_WARN_S, SKEW_FAIL_S = 1.0, 5.0
# A commit waits at most 5 s for its seal (core.changes.SEAL_WAIT_S): older unsealed rows
# mean no sealer is passing, and their events are not on the live map either.
UNSEALED_WARN_S, UNSEALED_FAIL_S = 10.0, 60.0
# PostgreSQL stops when it cannot write WAL: under 2 % (or 1 GiB) an outage is hours away;
# under 10 % (or 5 GiB) it is time to act (a pg_dump, or days of a big fleet's track, is GBs).
DISK_FAIL = (0.02, 1 << 30)
DISK_WARN = (0.10, 5 << 30)
# Connections one server process may open: the pool and its overflow (core.db.make_engine),
# the sealer's engine (pool 1 + overflow 1) and the bus's LISTEN and reader connections.
EXTRA_CONNECTIONS_PER_WORKER = 4
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    finding: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Context:
    """What the checks look at: the settings, the server's URL and this machine's clock
    (a function, so a test can set it off by a known amount)."""

    settings: Settings
    url: str = ""
    env: str = ""  # the configured EMERGENCY_ENV (settings.env unless they were refused)
    timeout_s: float = 3.0
    clock: Callable[[], datetime] = utcnow
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = self.env or self.settings.env
        self.url = (self.url or default_url(self.settings)).rstrip("/")


def default_url(settings: Settings) -> str:
    """Where `emergency serve` answers with these settings (a wildcard bind: loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
        settings.host, settings.host
    )
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def load_settings() -> tuple[Settings | None, str, Result | None]:
    """The settings, the configured environment, and a failure when they cannot be read.
    Settings production refuses (a weak secret) are read as development, so every other
    check still runs; the secret check then fails."""
    try:
        settings = Settings()
        return settings, settings.env, None
    except ValidationError as exc:
        refused = exc
    try:
        settings = Settings(env="development")
    except ValidationError as exc:
        lines = [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        return None, "", Result("settings", "fail", "; ".join(lines), "fix the environment")
    if "EMERGENCY_SECRET_KEY" in str(refused):
        return settings, "production", None
    return None, "", Result("settings", "fail", str(refused).splitlines()[0], "")


# --- settings alone ---------------------------------------------------------------------


def check_environment(ctx: Context) -> Result:
    if ctx.env == "production":
        return Result("environment", "ok", "EMERGENCY_ENV=production")
    return Result(
        "environment",
        "warn",
        f"EMERGENCY_ENV={ctx.env}: the placeholder secret and demo users are allowed",
        "set EMERGENCY_ENV=production in the service's environment file",
    )


def check_secret_key(ctx: Context) -> Result:
    key = ctx.settings.secret_key
    weak = (
        "the placeholder"
        if key == PLACEHOLDER_SECRET
        else (f"only {len(key)} characters" if len(key) < 32 else "")
    )
    if not weak:
        audit_key = "its own" if ctx.settings.audit_key else "derived from this one"
        return Result("secret key", "ok", f"set, {len(key)} characters; audit key {audit_key}")
    production = ctx.env == "production"
    return Result(
        "secret key",
        "fail" if production else "warn",
        f"EMERGENCY_SECRET_KEY is {weak}: "
        + ("production refuses to start" if production else f"allowed in {ctx.env} only"),
        "set EMERGENCY_SECRET_KEY to 32+ random characters: "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'",
    )


def check_proxy(ctx: Context) -> Result:
    trusted = ctx.settings.trusted_proxies
    host = ctx.settings.host
    if ctx.env == "production" and host in LOOPBACK and not in_networks("127.0.0.1", trusted):
        # Bound to loopback, clients can only come through a proxy on this machine: without
        # trusting it, every client is 127.0.0.1 and 100 failed logins lock everyone out.
        return Result(
            "proxy",
            "warn",
            f"the server binds {host} (behind a local proxy?) and EMERGENCY_TRUSTED_PROXIES "
            "is empty: every client counts as the proxy's address (login throttling)",
            """set EMERGENCY_TRUSTED_PROXIES='["127.0.0.1"]' (the proxy's address)""",
        )
    shown = ", ".join(trusted) if trusted else "none"
    return Result("proxy", "ok", f"binds {host}:{ctx.settings.port}; trusted proxies: {shown}")


def check_metrics(ctx: Context) -> Result:
    import ipaddress

    allow = ctx.settings.metrics_allow
    token = " or the token" if ctx.settings.metrics_token else ""
    open_to_all = [n for n in allow if ipaddress.ip_network(n, strict=False).prefixlen == 0]
    if open_to_all:
        return Result(
            "metrics",
            "warn",
            f"EMERGENCY_METRICS_ALLOW includes {', '.join(open_to_all)}: any client reaching "
            "the server directly reads /metrics",
            "allow only Prometheus's address, or set EMERGENCY_METRICS_TOKEN",
        )
    return Result("metrics", "ok", f"/metrics for {', '.join(allow) or 'nobody'}{token}")


# --- the database -----------------------------------------------------------------------


def open_engine(ctx: Context) -> Engine:
    """An engine whose connections give up after the timeout, and whose statements too."""
    return create_engine(
        sqlalchemy_url(ctx.settings.database_url),
        poolclass=NullPool,
        connect_args={
            "connect_timeout": max(1, round(ctx.timeout_s)),  # libpq counts whole seconds
            "options": f"-c statement_timeout={int(ctx.timeout_s * 1000)}",
            "application_name": "emergency-doctor",
        },
    )


def where(settings: Settings) -> str:
    """host:port/db of the database URL, without the password."""
    url = make_url(sqlalchemy_url(settings.database_url))
    host = url.host or ",".join(url.query.get("host", ()) or ("local socket",))
    return f"{host}:{url.port or 5432}/{url.database}"


def check_database(ctx: Context, conn: Connection, connect_s: float) -> Result:
    trips = []
    for _ in range(5):
        started = time.perf_counter()
        conn.execute(text("SELECT 1"))
        trips.append(time.perf_counter() - started)
    trip_s = sorted(trips)[len(trips) // 2]
    version = conn.scalar(text("SHOW server_version"))
    info = conn.connection.dbapi_connection.info  # type: ignore[union-attr]
    ctx.notes["db_host"] = info.host
    standby = conn.scalar(text("SELECT pg_is_in_recovery()"))
    finding = (
        f"PostgreSQL {version} at {info.host}:{info.port}/{info.dbname} as {info.user}; "
        f"connect {connect_s * 1000:.0f} ms, round trip {trip_s * 1000:.1f} ms"
    )
    if standby:
        return Result(
            "database",
            "fail",
            finding + "; it is a standby (read-only)",
            "connect to the primary: HAProxy's primary port, or target_session_attrs=read-write",
        )
    if trip_s > ROUND_TRIP_WARN_S:
        return Result(
            "database", "warn", finding, "put the app next to the database (same LAN or host)"
        )
    return Result("database", "ok", finding)


def check_postgis(ctx: Context, conn: Connection) -> Result:
    installed = conn.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'postgis'"))
    if installed is None:
        return Result(
            "PostGIS",
            "fail",
            "the postgis extension is not installed in this database",
            "emergency migrate (as a role allowed to CREATE EXTENSION postgis)",
        )
    lib = str(conn.scalar(select(func.postgis_lib_version())))
    if int(lib.split(".")[0]) < 3:
        return Result("PostGIS", "warn", f"PostGIS {lib}: older than 3", "upgrade to PostGIS 3")
    return Result("PostGIS", "ok", f"PostGIS {lib} (extension {installed})")


def check_migrations(ctx: Context, conn: Connection) -> Result:
    found = status_on(conn)
    at = ", ".join(found.current)
    if found.newer:
        return Result(
            "migrations",
            "fail",
            f"database at revision {at}, which this release does not know "
            f"(newest: {found.head}): migrated by a newer release",
            "run the release that migrated it, or restore a backup made for this release",
        )
    if found.empty:
        return Result(
            "migrations", "fail", "database not migrated (no alembic_version)", "emergency migrate"
        )
    if found.pending:
        return Result(
            "migrations",
            "fail",
            f"database at {at}, {len(found.pending)} migration(s) behind {found.head}",
            "back up, then run emergency migrate",
        )
    return Result("migrations", "ok", f"at head {found.head}")


def graded(name: str, value: float, warn: float, fail: float, finding: str, fix: str) -> Result:
    """fail above ``fail``, warn above ``warn``, else ok (with no fix to show)."""
    if value > fail:
        return Result(name, "fail", finding, fix)
    if value > warn:
        return Result(name, "warn", finding, fix)
    return Result(name, "ok", finding)


def check_clock(ctx: Context, conn: Connection) -> Result:
    samples = []
    for _ in range(3):
        local = ctx.clock()
        started = time.perf_counter()
        remote = conn.execute(select(func.clock_timestamp())).scalar_one()
        trip_s = time.perf_counter() - started
        samples.append((trip_s, (remote - (local + timedelta(seconds=trip_s / 2))).total_seconds()))
    trip_s, skew_s = min(samples)  # the shortest round trip bounds the error best
    zone = conn.scalar(text("SHOW TimeZone"))
    error_s = trip_s / 2
    off_s = max(0.0, abs(skew_s) - error_s)
    side = "ahead of" if skew_s > 0 else "behind"
    finding = (
        f"the database clock is {abs(skew_s):.1f} s {side} this machine "
        f"(±{error_s * 1000:.0f} ms); database TimeZone {zone}"
    )
    fix = "keep both machines on NTP (chrony: chronyc tracking)"
    return graded("clock", off_s, SKEW_WARN_S, SKEW_FAIL_S, finding, fix)


def check_checkpoints(ctx: Context, conn: Connection) -> Result:
    from core.changes import keyring

    folder = ctx.settings.audit_checkpoint_dir
    period_s = ctx.settings.audit_checkpoint_s
    if folder is None:
        return Result(
            "checkpoints",
            "warn",
            "EMERGENCY_AUDIT_CHECKPOINT_DIR is not set: rows cut from the audit chain's end "
            "would go unseen",
            "set it to a folder the database's superuser cannot write (docs/security.md)",
        )
    if not folder.is_dir():
        return Result(
            "checkpoints",
            "fail",
            f"{folder} does not exist",
            "create it, owned by the service's user (mkdir -p, chown)",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return Result(
            "checkpoints",
            "fail",
            f"{folder} is not writable by this user (uid {os.getuid()})",
            "chown it to the service's user, and run the doctor as that user",
        )
    chain_id = conn.scalar(select(audit.AuditChain.id))
    if chain_id is None:
        return Result("checkpoints", "fail", "audit_chain is empty", "emergency migrate")
    found = checkpoint.load(folder, chain_id, keyring(ctx.settings))
    if found.problems:
        return Result(
            "checkpoints",
            "fail",
            f"{len(found.problems)} checkpoint file(s) cannot be trusted: {found.problems[0]}",
            "emergency audit verify",
        )
    newest = found.valid[-1][1] if found.valid else None
    covered = newest.last_id if newest else 0
    head = conn.scalar(select(func.max(audit.AuditEvent.id)))
    if head is None:
        return Result("checkpoints", "ok", f"{folder}: the audit chain is empty")
    if covered > head:
        return Result(
            "checkpoints",
            "fail",
            f"checkpoint names row {covered}, beyond the chain's head {head}: rows cut?",
            "emergency audit verify",
        )
    uncovered, oldest_s = conn.execute(
        select(func.count(), func.extract("epoch", func.now() - func.min(audit.AuditEvent.at)))
        .select_from(audit.AuditEvent)
        .where(audit.AuditEvent.id > covered)
    ).one()
    newest_text = f"newest covers row {covered} ({newest.at})" if newest else "none yet"
    # An idle chain gets no new checkpoint (the same head is not written twice), so the age
    # that matters is that of the oldest row no checkpoint covers.
    if uncovered and float(oldest_s) > 2 * period_s:
        return Result(
            "checkpoints",
            "fail",
            f"{folder}: {newest_text}; {uncovered} newer row(s), the oldest "
            f"{float(oldest_s):.0f} s old (one is due every {period_s:.0f} s)",
            "is emergency serve running with this folder, and can it write there? "
            "(its log: 'audit checkpoint failed')",
        )
    return Result(
        "checkpoints",
        "ok",
        f"{folder}: {newest_text}; {uncovered} newer row(s), checkpoint every {period_s:.0f} s",
    )


def check_sealing(ctx: Context, conn: Connection) -> Result:
    waiting, oldest_s = sealer.pending(conn)
    age_s = oldest_s or 0.0
    finding = f"{waiting} change(s) waiting to be sealed" + (
        f", the oldest {age_s:.0f} s: their audit rows and live events wait" if waiting else ""
    )
    fix = (
        "is emergency serve running? Its sealer takes what others left within "
        "EMERGENCY_AUDIT_SEAL_POLL_S; see its log"
    )
    return graded("sealing", age_s, UNSEALED_WARN_S, UNSEALED_FAIL_S, finding, fix)


def check_roads(ctx: Context, conn: Connection) -> Result:
    from gis.models import RoadNetwork
    from gis.network import cache_path, default_cache_dir, layer_sha256
    from gis.osm_io import file_sha256
    from gis.profile import load_profile

    meta = conn.execute(select(RoadNetwork).limit(1)).first()
    fix_load = "emergency load-osm FILE (or load-roads FILE --mapping M.yaml) as the service user"
    if meta is None:
        return Result("road network", "fail", "no road network in the database", fix_load)
    settings = ctx.settings
    loaded = f"{meta.source}: {meta.node_count:,} junctions, {meta.edge_count:,} edges"
    path = settings.osm_file or (Path(meta.path) if meta.path else None)
    if path is None or not path.is_file():
        return Result(
            "road network",
            "fail",
            f"{loaded}, but its file {path} is gone: the server routes on the demo city "
            f"({settings.demo_city}) instead",
            "restore the file, or load the network again: " + fix_load,
        )
    gis = settings.osm_file is None and meta.kind == "gis"
    digest = layer_sha256(path) if gis else file_sha256(path)
    if digest != meta.sha256:
        return Result(
            "road network",
            "warn",
            f"{path} is not the file the road tables were loaded from ({meta.source}): "
            "routes and map tiles differ",
            fix_load,
        )
    cache_dir = settings.graph_cache_dir or default_cache_dir()
    if gis:
        cached = any(cache_dir.glob(f"{path.stem}-gis-{digest[:16]}-*.npz"))
    else:
        cached = cache_path(path, load_profile(settings.road_profile), cache_dir).is_file()
    if not cached:
        return Result(
            "road network",
            "warn",
            f"{loaded}; no compiled graph in {cache_dir}: the server compiles it at start",
            fix_load + " (with the service's EMERGENCY_GRAPH_CACHE_DIR)",
        )
    return Result("road network", "ok", f"{loaded}; compiled graph cached")


def connection_status(need: int, available: int) -> Status:
    """Fail when the server processes may open more than the database allows; warn past
    80 % (backups, migrations and psql need some)."""
    if need > available:
        return "fail"
    return "warn" if need > 0.8 * available else "ok"


def check_connections(ctx: Context, conn: Connection) -> Result:
    settings = ctx.settings
    max_conn = int(conn.scalar(text("SHOW max_connections")) or 0)
    reserved = int(conn.scalar(text("SHOW superuser_reserved_connections")) or 0)
    now = conn.scalar(
        text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
    )
    per_worker = 2 * settings.db_pool_size + EXTRA_CONNECTIONS_PER_WORKER
    need = settings.workers * per_worker
    available = max_conn - reserved
    finding = (
        f"the server may open {need} ({settings.workers} worker(s) x (2 x pool "
        f"{settings.db_pool_size} + {EXTRA_CONNECTIONS_PER_WORKER})) of max_connections "
        f"{max_conn} ({reserved} reserved); {now} open now"
    )
    status = connection_status(need, available)
    fix = "" if status == "ok" else "raise max_connections, or lower EMERGENCY_DB_POOL_SIZE"
    return Result("connections", status, finding, fix)


def disk_status(free: int, total: int) -> Status:
    share = free / total if total else 0.0
    if share < DISK_FAIL[0] or free < DISK_FAIL[1]:
        return "fail"
    if share < DISK_WARN[0] or free < DISK_WARN[1]:
        return "warn"
    return "ok"


def check_disk(ctx: Context, conn: Connection | None) -> Result:
    from gis.network import default_cache_dir

    places: list[tuple[str, Path]] = []
    notes: list[str] = []
    if conn is not None:
        size = conn.scalar(
            select(func.pg_size_pretty(func.pg_database_size(func.current_database())))
        )
        notes.append(f"database {size}")
        host = str(ctx.notes.get("db_host") or "")
        if host.startswith("/") or host in LOOPBACK:
            try:  # superuser or pg_read_all_settings only
                places.append(("database", Path(str(conn.scalar(text("SHOW data_directory"))))))
            except SQLAlchemyError:
                notes.append("its data directory is not shown to this role")
        else:
            notes.append(f"on {host}: check that machine's disk")
    if ctx.settings.audit_checkpoint_dir is not None:
        places.append(("checkpoints", ctx.settings.audit_checkpoint_dir))
    places.append(("graph cache", ctx.settings.graph_cache_dir or default_cache_dir()))
    seen: dict[int, str] = {}
    worst: Status = "ok"
    parts: list[str] = []
    order = {"ok": 0, "warn": 1, "fail": 2}
    for label, path in places:
        while not path.exists() and path != path.parent:
            path = path.parent  # not made yet: the filesystem it will be on
        try:
            device = path.stat().st_dev
            usage = shutil.disk_usage(path)
        except OSError:
            continue
        if device in seen:
            continue
        seen[device] = label
        status = disk_status(usage.free, usage.total)
        worst = status if order[status] > order[worst] else worst
        parts.append(
            f"{label} {path}: {usage.free / (1 << 30):.1f} GiB free "
            f"({100 * usage.free / usage.total:.0f} %)"
        )
    finding = "; ".join(parts + notes)
    fix = "" if worst == "ok" else "free space or grow the disk (PostgreSQL stops when full)"
    return Result("disk", worst, finding, fix)


# --- the server -------------------------------------------------------------------------


def check_server(ctx: Context) -> Result:
    address = f"{ctx.url}/healthz"
    fix = "start it (systemctl start emergency-server, or emergency serve); or give --url"
    if not address.startswith(("http://", "https://")):
        return Result("server", "fail", f"{ctx.url} is not an http(s) URL", "give --url http://...")
    try:
        # An http(s) URL (checked above) the operator gave, or the server's own address.
        with urllib.request.urlopen(address, timeout=ctx.timeout_s) as answer:  # noqa: S310
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            return Result("server", "fail", f"{address} answered {exc.code}", fix)
    except (TimeoutError, urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Result("server", "fail", f"no answer at {address}: {reason}", fix)
    status = body.get("status")
    realtime = body.get("realtime") or {}
    if status == "down":
        return Result(
            "server", "fail", f"{address}: down: {body.get('database')}", "check the database"
        )
    if not realtime.get("enabled", True):
        return Result(
            "server",
            "warn",
            f"{address}: {status}; realtime off: screens and phones get no live updates",
            "unset EMERGENCY_REALTIME=false",
        )
    bus = realtime.get("bus") or {}
    finding = (
        f"{address}: {status}, PostGIS {body.get('postgis')}, "
        f"{realtime.get('connections', 0)} socket(s)"
    )
    if status != "ok":
        return Result(
            "server",
            "warn",
            f"{finding}; the bus's LISTEN is down ({bus.get('last_error')}): events come "
            "by polling, late",
            "check the database connection from the server (its log: 'bus listener lost')",
        )
    return Result("server", "ok", finding + "; realtime bus listening")


# --- all of them ------------------------------------------------------------------------


def _guarded(name: str, check: Callable[..., Result], *args: Any) -> Result:
    try:
        return check(*args)
    except Exception as exc:  # one broken check must not hide the others' findings
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return Result(name, "fail", f"the check failed: {first}")


DATABASE_CHECKS: tuple[tuple[str, Callable[[Context, Connection], Result]], ...] = (
    ("PostGIS", check_postgis),
    ("migrations", check_migrations),
    ("clock", check_clock),
    ("checkpoints", check_checkpoints),
    ("sealing", check_sealing),
    ("road network", check_roads),
    ("connections", check_connections),
    ("disk", check_disk),
)


def run(ctx: Context) -> list[Result]:
    """Every check, in the order an operator reads them."""
    results = [check_environment(ctx), check_secret_key(ctx)]
    engine = open_engine(ctx)
    started = time.perf_counter()
    try:
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        results.append(
            Result(
                "database",
                "fail",
                f"cannot connect to {where(ctx.settings)} ({time.perf_counter() - started:.1f} s)"
                f": {first}; checks that need it not run",
                "check DATABASE_URL, that PostgreSQL runs, and pg_hba.conf for this host",
            )
        )
        results.append(_guarded("disk", check_disk, ctx, None))
    else:
        with conn:
            connect_s = time.perf_counter() - started
            results.append(_guarded("database", check_database, ctx, conn, connect_s))
            results += [_guarded(name, check, ctx, conn) for name, check in DATABASE_CHECKS]
    finally:
        engine.dispose()
    results += [check_proxy(ctx), check_metrics(ctx), check_server(ctx)]
    return results


def exit_code(results: list[Result]) -> int:
    """1 when any check failed; warnings alone are 0."""
    return 1 if any(r.status == "fail" for r in results) else 0


def render(results: list[Result]) -> None:
    """One line per check (mark, name, finding; the fix under a warning or failure)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column()
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for r in results:
        text_ = r.finding + (f"\n→ {r.fix}" if r.fix and r.status != "ok" else "")
        table.add_row(f"[{colours[r.status]}]{MARKS[r.status]}[/]", r.name, text_)
    console = Console()
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "warn", "fail")}
    console.print(f"{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)")


def main(*, url: str | None, as_json: bool, timeout_s: float) -> int:
    """`emergency doctor`: print the findings; the exit code."""
    settings, env, refused = load_settings()
    if settings is None:
        results = [refused] if refused else []
    else:
        ctx = Context(settings, url=url or "", env=env, timeout_s=timeout_s)
        results = run(ctx)
    if as_json:
        print(json.dumps([r.as_dict() for r in results], ensure_ascii=False, indent=2))
    else:
        render(results)
    return exit_code(results)
