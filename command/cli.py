"""The `emergency` command: serve, migrate, seed, audit, users, API keys, alerts, trackers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.orm import Session, sessionmaker

from core.config import Settings, get_settings
from core.db import make_sessionmaker, session_scope, sqlalchemy_url
from core.errors import DomainError

app = typer.Typer(help="Emergency command and dispatch (智慧应急指挥调度).", no_args_is_help=True)
seed_app = typer.Typer(help="Load data.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
user_app = typer.Typer(help="People who log in.", no_args_is_help=True)
apikey_app = typer.Typer(help="Machine clients (the warning system).", no_args_is_help=True)
app.add_typer(seed_app, name="seed")
app.add_typer(audit_app, name="audit")
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
alert_app = typer.Typer(help="Warning-system alerts (CAP).", no_args_is_help=True)
app.add_typer(alert_app, name="alert")
device_app = typer.Typer(
    help="Trackers (OsmAnd / Traccar client protocol), each bound to one unit.",
    no_args_is_help=True,
)
app.add_typer(device_app, name="device")

from command.drills.cli import drill_app  # noqa: E402 - after the app it joins

app.add_typer(drill_app, name="drill")
from command.exports.cli import export  # noqa: E402 - `emergency export`, body in its room

app.command("export")(export)
from command.backup import backup_command, restore_command  # noqa: E402 - body in command/backup.py

app.command("backup")(backup_command)
app.command("restore")(restore_command)
err = Console(stderr=True)


def replace_settings(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


def _sessions() -> sessionmaker[Session]:
    # No pool: a command's connection closes with its session, none is left open (and
    # warned about) when the engine is garbage-collected.
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    settings = get_settings()
    return make_sessionmaker(
        create_engine(sqlalchemy_url(settings.database_url), poolclass=NullPool)
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="server processes (default 1)")
    ] = None,
) -> None:
    """Run the HTTP and WebSocket server. With several workers, each process has its own
    hub; they share PostgreSQL and the event table, so every client sees every event."""
    import uvicorn

    from command.server import uvicorn_options

    settings = get_settings()
    uvicorn.run(
        "command.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        # Idle, slow-header and slow-body connections are closed (command/server.py).
        **uvicorn_options(settings),
        proxy_headers=True,
        forwarded_allow_ips=list(settings.trusted_proxies),  # none: X-Forwarded-For ignored
        # Oversized WebSocket frames are refused by the protocol layer (close 1009),
        # before they are buffered; protocol pings find dead TCP connections.
        ws_max_size=settings.ws_max_frame_bytes,
        ws_ping_interval=settings.ws_heartbeat_s,
        ws_ping_timeout=settings.ws_heartbeat_s,
        # Events are small JSON; compressing each one again for every connection cost
        # ~40% of the hub's send time with 2,000 clients.
        ws_per_message_deflate=False,
    )


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Bring the database schema up to date (creates the PostGIS extension if allowed);
    a database from a newer release is refused, unchanged (exit 2)."""
    from command.migrate import NewerDatabase, upgrade

    try:
        upgrade(get_settings().database_url, revision)
    except NewerDatabase as exc:
        err.print(f"[red]refused:[/red] {exc.message}")
        raise typer.Exit(2) from exc
    err.print(f"[green]database at {revision}[/green]")


@app.command("load-osm")
def load_osm(
    file: Annotated[
        Path | None, typer.Argument(help=".osm, .osm.bz2 or .osm.pbf (default: demo city)")
    ] = None,
    profile: Annotated[Path | None, typer.Option(help="driving profile YAML")] = None,
    export_graphml: Annotated[Path | None, typer.Option(help="also write GraphML here")] = None,
    rebuild: Annotated[bool, typer.Option(help="parse again even if cached")] = False,
    db: Annotated[bool, typer.Option(help="write road_node / road_edge to PostGIS")] = True,
) -> None:
    """Build the drive-time graph of an OSM file (cached on disk) and load it into PostGIS."""
    from command import roads

    settings = get_settings()
    if profile is not None:
        settings = replace_settings(settings, road_profile=profile)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("reading OSM", total=None)
        try:
            loaded = roads.load(
                settings,
                file,
                rebuild=rebuild,
                progress=lambda stage, done: progress.update(
                    task, description=f"{stage}: {done:,}"
                ),
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise DomainError(f"cannot read {file or 'the demo extract'}: {exc}") from exc
    graph = loaded.graph
    source = "cache " + str(loaded.cache_path) if loaded.from_cache else "parsed"
    err.print(
        f"{graph.meta.get('source')}: {graph.n_nodes:,} nodes, {graph.n_edges:,} edges "
        f"({source}, {loaded.seconds:.2f} s)"
    )
    for line in loaded.report.lines() if loaded.report else []:
        err.print("  " + line)
    if loaded.ch is not None:
        err.print(f"  contraction hierarchy: {loaded.ch.n_shortcuts:,} shortcuts")
    if db:
        from gis.place_extract import extract_places
        from gis.place_index import write_places
        from gis.roads_db import write_network

        osm_path = Path(file or roads.osm_file(settings)).resolve()
        try:
            places = extract_places(osm_path)
        except (OSError, RuntimeError, ValueError) as exc:
            raise DomainError(f"cannot read places from {osm_path}: {exc}") from exc
        with session_scope(_sessions()) as session:
            n_places = write_places(session, places)
            n_nodes, n_edges = write_network(session, graph, path=str(osm_path))
        err.print(
            f"PostGIS: road_node {n_nodes:,} rows, road_edge {n_edges:,} rows, "
            f"place {n_places:,} rows"
        )
    if export_graphml is not None:
        graph.export_graphml(export_graphml)
        err.print(f"GraphML written to {export_graphml}")


@app.command("load-roads")
def load_roads(
    file: Annotated[Path, typer.Argument(help="a line layer: .gpkg, .shp, .zip, .geojson")],
    mapping: Annotated[Path, typer.Option(help="road mapping YAML (docs/gis-data.md)")],
    export_graphml: Annotated[Path | None, typer.Option(help="also write GraphML here")] = None,
    rebuild: Annotated[bool, typer.Option(help="build again even if cached")] = False,
    db: Annotated[bool, typer.Option(help="write road_node / road_edge to PostGIS")] = True,
) -> None:
    """Build the drive-time graph of a GIS road layer (cached on disk) and load it into
    PostGIS; the server routes on it from its next start. Exit 2 for a bad mapping or file."""
    from command.road_layers import load_roads as run

    run(
        file,
        mapping=mapping,
        export_graphml=export_graphml,
        rebuild=rebuild,
        db=db,
        console=err,
        sessions=_sessions,
    )


@app.command("import")
def import_file(
    kind: Annotated[str, typer.Argument(help="stations, shelters, warehouses, units or stock")],
    file: Annotated[
        Path, typer.Argument(help=".geojson, .gpkg, .shp (with sidecars), .zip or .csv")
    ],
    mapping: Annotated[
        Path | None, typer.Option(help="mapping YAML: columns to fields (docs/gis-data.md)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="check and count; store nothing")] = False,
    skip_invalid: Annotated[
        bool, typer.Option(help="store the good rows; list the refused ones")
    ] = False,
) -> None:
    """Create or update resources from a city's own GIS file, matched by external_id.

    Prints one JSON summary {"created","updated","unchanged","refused":[{"row","reason"}]}.
    Exit 2 when any row was refused (without --skip-invalid nothing is stored then)."""
    from core.security import SYSTEM
    from resources.imports.mapping import load_mapping
    from resources.imports.service import import_frame, read_file

    rules = load_mapping(mapping)
    frame = read_file(kind, file, rules)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"importing {kind}", total=max(len(frame), 1))
        with session_scope(_sessions()) as session:
            summary = import_frame(
                session, kind, frame, rules, principal=SYSTEM, skip_invalid=skip_invalid,
                dry_run=dry_run, source=file.name,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )  # fmt: skip
    print(json.dumps(summary.as_dict(), ensure_ascii=False))
    if summary.refused:
        err.print(
            f"[red]refused {len(summary.refused)} row(s)[/red]"
            + ("" if summary.stored else f": {summary.message}")
        )
        raise typer.Exit(2)


@seed_app.command("demo")
def seed_demo(
    users: Annotated[bool, typer.Option(help="also create one demo user per role")] = True,
    city: Annotated[
        str | None, typer.Option(help="columbus or helsinki (default: EMERGENCY_DEMO_CITY)")
    ] = None,
    roads: Annotated[
        bool, typer.Option(help="write the city's roads to PostGIS (skip: load-osm another)")
    ] = True,
) -> None:
    """Load the demo city: stations, units, shelters, warehouses, stock, response plans,
    the place index and the road network (compiled once, then cached on disk)."""
    from command import roads as road_network
    from command.seed import city_extract
    from command.seed import seed_demo as run

    settings = get_settings()
    name = city or settings.demo_city
    password = settings.demo_password if users and settings.env == "development" else None
    with Progress(console=err, transient=True) as progress:
        network = None
        if roads:
            task = progress.add_task("compiling the road network", total=None)
            try:
                network = road_network.load(
                    settings,
                    city_extract(name),
                    progress=lambda stage, done: progress.update(
                        task, description=f"{stage}: {done:,}"
                    ),
                )
            except (OSError, RuntimeError, ValueError) as exc:
                raise DomainError(f"cannot read the roads of {name}: {exc}") from exc
        task = progress.add_task(f"seeding {name}", total=None)
        with session_scope(_sessions()) as session:
            report = run(
                session,
                city=name,
                demo_password=password,
                progress=lambda _: progress.advance(task),
                network=network,
            )
    err.print(f"city: {name}, extract: {report.extract}")
    if network is not None:
        graph = network.graph
        source = "cache" if network.from_cache else "parsed"
        err.print(
            f"roads: {graph.n_nodes:,} junctions, {graph.n_edges:,} edges ({source}, "
            f"{network.seconds:.2f} s); PostGIS road_node {report.road_nodes:,} rows, "
            f"road_edge {report.road_edges:,} rows"
        )
    err.print(f"place index: {report.places:,} addresses, streets and places")
    err.print(f"created: {report.created or 'nothing (already loaded)'}")
    if report.existing:
        err.print(f"already there: {report.existing}")
    if report.users:
        err.print(
            f"demo users {', '.join(report.users)} with password from EMERGENCY_DEMO_PASSWORD"
        )


CheckpointDir = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint-dir",
        help="folder of signed checkpoints (default: EMERGENCY_AUDIT_CHECKPOINT_DIR)",
    ),
]


@audit_app.command("verify")
def audit_verify(
    checkpoint_dir: CheckpointDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="the whole report as JSON")] = False,
) -> None:
    """Check the audit chain: every link (keyed), then every checkpoint of this chain, so
    rows cut from the end are found. Names every bad row; exit 1 if any row is bad or a
    checkpoint is contradicted. Changes not sealed yet are reported as pending."""
    from core.audit_verify import verify
    from core.changes import keyring

    settings = get_settings()
    folder = checkpoint_dir or settings.audit_checkpoint_dir
    with _sessions()() as session:
        report = verify(session, keyring(settings), checkpoint_dir=folder)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        _print_report(report, folder)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: Any, folder: Path | None) -> None:
    walk = report.walk
    if report.ok:
        typer.echo(f"audit chain intact: {walk.checked} rows checked")
    else:
        typer.echo(
            f"audit chain NOT intact: {walk.bad_count} bad rows of {walk.checked} checked, "
            f"{len(report.problems)} checkpoint problems"
        )
    for bad in walk.bad:
        typer.echo(f"  row {bad.id}: {bad.reason}")
    if walk.bad_count > len(walk.bad):
        typer.echo(f"  ... and {walk.bad_count - len(walk.bad)} more bad rows")
    for problem in report.problems:
        typer.echo(f"  {problem}")
    if folder is None:
        typer.echo("no checkpoint folder: links checked alone (rows cut from the end go unseen)")
    elif report.checkpoint is None:
        typer.echo(f"no checkpoint of this chain in {folder}: links checked alone")
    else:
        c = report.checkpoint
        typer.echo(f"{report.checkpoints} checkpoints; newest: row {c.last_id} at {c.at}")
    if report.pending:
        typer.echo(
            f"{report.pending} changes pending (committed, not sealed yet; oldest "
            f"{report.pending_oldest_s or 0:.1f} s): not checked, not tampering"
        )
    if walk.legacy:
        typer.echo(f"{walk.legacy} rows have plain SHA-256 links (written before keyed links)")


@audit_app.command("checkpoint")
def audit_checkpoint(checkpoint_dir: CheckpointDir = None) -> None:
    """Seal what is pending, then write a signed checkpoint of the chain's head into the
    folder (keep it where the database's superuser cannot write). Prints its path."""
    from core import checkpoint
    from core.changes import keyring
    from core.sealer import seal

    settings = get_settings()
    folder = checkpoint_dir or settings.audit_checkpoint_dir
    if folder is None:
        err.print("set EMERGENCY_AUDIT_CHECKPOINT_DIR or pass --checkpoint-dir")
        raise typer.Exit(2)
    keys = keyring(settings)
    sessions = _sessions()
    with session_scope(sessions) as session:
        while seal(session.connection(), keys).rows:
            session.commit()
    path = checkpoint.write_now(sessions, keys, folder)
    if path is None:
        typer.echo("the audit chain is empty: nothing to checkpoint")
        return
    typer.echo(str(path))


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="commander|dispatcher|responder|planner|auditor|admin")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    unit: Annotated[str | None, typer.Option(help="unit id or callsign (responders)")] = None,
) -> None:
    """Add a person who can log in."""
    from command.auth.service import add_user

    with session_scope(_sessions()) as session:
        unit_id = _unit_id(session, unit) if unit is not None else None
        user = add_user(session, username=username, password=password, role=role, unit_id=unit_id)
        typer.echo(
            json.dumps(
                {
                    "id": user.id,
                    "username": user.username,
                    "role": user.role,
                    "unit_id": user.unit_id,
                }
            )
        )


def _unit_id(session: Session, unit: str) -> int:
    """A unit named by id or callsign."""
    from sqlalchemy import or_, select

    from resources.models import Unit

    cond = Unit.callsign == unit
    if unit.isdigit() and len(unit) < 19:  # past that, not a bigint id
        cond = or_(cond, Unit.id == int(unit))
    unit_id = session.scalar(select(Unit.id).where(cond))
    if unit_id is None:
        raise DomainError(f"unit {unit!r} not found")
    return int(unit_id)


def _change_user(username: str, change: Any) -> None:
    """Apply a users.UserChange to USERNAME as the CLI (audited) and print the user."""
    from command.auth import users
    from core.security import SYSTEM

    with session_scope(_sessions()) as session:
        user = users.user_by_name(session, username)
        user = users.update_user(session, user.id, change, actor=SYSTEM.actor)
        shown = users.user_dict(user)
    typer.echo(json.dumps(shown, default=str))


@user_app.command("list")
def user_list() -> None:
    """Print every user, one JSON object per line (no password hashes)."""
    from command.auth import users

    with session_scope(_sessions()) as session:
        page = users.list_users(session, limit=2**31, offset=0)
        for user in page.items:
            typer.echo(json.dumps(users.user_dict(user), default=str))


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Stop USERNAME logging in; their tokens stop working and live sockets close."""
    from command.auth.users import UserChange

    _change_user(username, UserChange(active=False))


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Let a disabled USERNAME log in again (with a new login: old tokens stay revoked)."""
    from command.auth.users import UserChange

    _change_user(username, UserChange(active=True))


@user_app.command("set-role")
def user_set_role(
    username: str,
    role: Annotated[
        str, typer.Argument(help="commander|dispatcher|responder|planner|auditor|admin")
    ],
    unit: Annotated[
        str | None, typer.Option(help="unit id or callsign (needed to become a responder)")
    ] = None,
) -> None:
    """Give USERNAME another role (a role other than responder drops the unit)."""
    from command.auth.users import UserChange

    if unit is None:
        _change_user(username, UserChange(role=role))
        return
    with session_scope(_sessions()) as session:
        unit_id = _unit_id(session, unit)
    _change_user(username, UserChange(role=role, unit_id=unit_id, unit_given=True))


@user_app.command("set-password")
def user_set_password(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin's first line")
    ] = False,
) -> None:
    """Set USERNAME's password (asked twice, not echoed); their earlier tokens stop working."""
    from command.auth.users import UserChange

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    _change_user(username, UserChange(password=password))


@apikey_app.command("add")
def apikey_add(name: str) -> None:
    """Create an API key; prints {"key_id", "secret"} once (the secret is not shown again)."""
    from command.auth.service import add_api_key

    with session_scope(_sessions()) as session:
        key, secret = add_api_key(session, name=name, secret_key=get_settings().secret_key)
        typer.echo(json.dumps({"key_id": key.key_id, "secret": secret}))


@device_app.command("add")
def device_add(
    unit: Annotated[str, typer.Option(help="the unit's callsign")],
    hardware_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="the tracker's own id (an IMEI) when it cannot be given one: weaker, "
            "since such ids are guessable; pair it with --allow",
        ),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option(help="a network a hardware id may send from (CIDR; repeatable)"),
    ] = None,
    name: Annotated[str | None, typer.Option(help="a label (the phone, the vehicle)")] = None,
) -> None:
    """Bind a tracker to a unit; prints {"device_id", "id", "unit"}. Without --id the
    device_id is a new random secret, shown this once: set it as the tracker's id."""
    from core.security import SYSTEM
    from resources.avl.devices import add_device

    with session_scope(_sessions()) as session:
        device, device_id = add_device(
            session,
            unit_callsign=unit,
            principal=SYSTEM,
            hardware_id=hardware_id,
            allow_from=allow or (),
            name=name,
        )
        answer = {"device_id": device_id, "id": device.id, "unit": unit}
    if hardware_id is not None and not allow:
        err.print(
            "[yellow]warning:[/yellow] a hardware id is not a secret; with no --allow, any "
            "address may send fixes as this unit"
        )
    typer.echo(json.dumps(answer))


@device_app.command("list")
def device_list() -> None:
    """Every tracker, one JSON line each (never its id: a hint for hardware ids)."""
    from resources.avl.devices import list_devices

    with session_scope(_sessions()) as session:
        for row in list_devices(session):
            typer.echo(json.dumps(row, ensure_ascii=False))


@device_app.command("revoke")
def device_revoke(device: Annotated[int, typer.Argument(help="the device's number")]) -> None:
    """Refuse this tracker's fixes from now on (its track stays)."""
    from core.security import SYSTEM
    from resources.avl.devices import revoke_device

    with session_scope(_sessions()) as session:
        found = revoke_device(session, device, principal=SYSTEM)
        answer = {
            "id": found.id,
            "revoked_at": found.revoked_at.isoformat() if found.revoked_at else None,
        }
    typer.echo(json.dumps(answer))


@alert_app.command("ingest")
def alert_ingest(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Take CAP files in as if the warning system had posted them (when its link is down);
    prints one answer per file as a JSON line. A refused file is reported and skipped."""
    from command.intake import cap
    from command.intake import service as intake
    from core.security import SYSTEM

    failed = 0
    for path in files:
        raw = path.read_bytes()
        kind = "application/json" if path.suffix.lower() == ".json" else "application/cap+xml"
        try:
            parsed = cap.parse(raw, kind)
            with session_scope(_sessions()) as session:
                answer, _ = intake.intake(
                    session, parsed, raw=raw, content_type=kind, principal=SYSTEM
                )
        except DomainError as exc:
            failed += 1
            err.print(f"[red]{path}: refused:[/red] {exc.message}")
            continue
        typer.echo(json.dumps({"file": str(path), **answer}, ensure_ascii=False))
    if failed:
        raise typer.Exit(2)


@app.command()
def doctor(
    url: Annotated[
        str | None,
        typer.Option(help="the server to ask (default: http://EMERGENCY_HOST:EMERGENCY_PORT)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the findings as a JSON list")] = False,
    timeout: Annotated[
        float, typer.Option(min=1, max=60, help="seconds to wait for the database or server")
    ] = 3.0,
) -> None:
    """Check this installation: database, PostGIS, migrations, secret key, audit
    checkpoints, clock skew, disk, road network, the server. Exit 1 if any check fails."""
    from command.doctor import main as run_doctor

    raise typer.Exit(run_doctor(url=url, as_json=as_json, timeout_s=timeout))


def main() -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        app()
    except DomainError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        sys.exit(2)
    except ProgrammingError as exc:
        # A table the command needs is missing: a database never migrated (or an older one).
        if getattr(exc.orig, "sqlstate", None) != "42P01":  # undefined_table
            raise
        err.print(
            f"[red]error:[/red] {str(exc.orig).splitlines()[0]}: the database is not migrated "
            "to this release; run `emergency migrate` (`emergency doctor` says where it stands)"
        )
        sys.exit(2)
    except OperationalError as exc:
        err.print(f"[red]error:[/red] cannot reach the database: {str(exc.orig).strip()[:300]}")
        sys.exit(2)
