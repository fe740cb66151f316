"""`emergency backup FILE`: one archive of the database and its audit checkpoints, taken
while the server keeps writing.

The archive is an uncompressed tar (the dump inside is compressed already) holding, in
this order:

- ``manifest.json``: format and version, when, the server's and PostGIS's versions, the
  alembic revision, the audit chain's id and head, and every table's row count;
- ``database.dump``: ``pg_dump -Fc`` of the whole database (owners and grants kept: the
  restore decides whether to apply them);
- ``checkpoints/audit-<chain>-<row>.json``: the signed checkpoints of this chain found in
  ``EMERGENCY_AUDIT_CHECKPOINT_DIR``, plus one of the head the dump holds.

Consistency without downtime: one REPEATABLE READ transaction exports its snapshot,
``pg_dump --snapshot`` dumps exactly that snapshot while the transaction counts the rows
and reads the audit head in it. So the manifest describes the dump to the row, however
much the server writes meanwhile. The restore (:mod:`command.restore`) checks it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import create_engine, func, select, table, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from core import checkpoint
from core.config import Settings
from core.db import sqlalchemy_url
from core.errors import DomainError

FORMAT = "emergency-backup"
VERSION = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
CHECKPOINTS = "checkpoints/"
# Names that go into SQL the restore writes (table counts, extensions): plain identifiers.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The connection goes to pg_dump/pg_restore/psql through these, never on the command line.
_PG_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE", "PGOPTIONS")
_QUERY_VARS = {
    "host": "PGHOST",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}
Stage = Callable[[str], None]


class BackupError(DomainError):
    """A backup or restore refused (``exit_code`` 2) or failed (1); nothing was changed."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# --- PostgreSQL's own tools -----------------------------------------------------------


def pg_env(database_url: str) -> dict[str, str]:
    """The environment that points libpq tools at ``database_url``."""
    url = make_url(database_url)
    env = {k: v for k, v in os.environ.items() if k not in _PG_VARS}
    for var, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[var] = str(value)
    for key, var in _QUERY_VARS.items():
        given = url.query.get(key)
        if isinstance(given, str):
            env[var] = given
    return env


def tool_major(path: Path) -> int | None:
    """The PostgreSQL major version of a client tool (None: it does not say)."""
    try:
        out = subprocess.run(  # noqa: S603 - a path we found, fixed argument
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    found = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(found.group(1)) if found else None


def find_tool(name: str, major: int) -> Path:
    """``name`` (pg_dump, pg_restore, psql) of the server's major version: on PATH, then in
    /usr/lib/postgresql/<major>/bin. A dump from another major version may not restore."""
    candidates = [Path(p) for p in (shutil.which(name),) if p]
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin/{name}"))
    seen = []
    for path in candidates:
        if not path.is_file():
            continue
        found = tool_major(path)
        if found == major:
            return path
        seen.append(f"{path} is version {found}")
    raise BackupError(
        f"no {name} of PostgreSQL {major} (the server's version): "
        + ("; ".join(seen) if seen else f"none on PATH or in /usr/lib/postgresql/{major}/bin")
        + f"; install postgresql-client-{major}",
        exit_code=1,
    )


def server_major(conn: Connection) -> int:
    return int(conn.scalar(text("SHOW server_version_num")) or 0) // 10000


def engine_for(database_url: str) -> Engine:
    """No pool: the command's connections close with it."""
    return create_engine(sqlalchemy_url(database_url), poolclass=NullPool)


def user_tables(conn: Connection) -> list[str]:
    """The database's own tables in ``public`` (each partition too, not their parents;
    not PostGIS's spatial_ref_sys, which the extension makes)."""
    return list(
        conn.scalars(
            text(
                """
                SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind = 'r'
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                  AND d.objid = c.oid AND d.deptype = 'e')
                ORDER BY c.relname
                """
            )
        )
    )


def count_rows(conn: Connection, tables: list[str]) -> dict[str, int]:
    return {
        name: int(conn.scalar(select(func.count()).select_from(table(name, schema="public"))) or 0)
        for name in tables
    }


# --- backup ---------------------------------------------------------------------------


def backup(settings: Settings, file: Path, *, force: bool, stage: Stage) -> dict[str, Any]:
    """Write the archive to ``file`` (atomically: whole, or not at all); its summary."""
    file = file.absolute()
    if not file.parent.is_dir():
        raise BackupError(f"no folder {file.parent} to write {file.name} in")
    if file.is_dir() or (file.exists() and not force):
        raise BackupError(f"{file} exists: pass --force to replace it")
    started = time.perf_counter()
    engine = engine_for(settings.database_url)
    with tempfile.TemporaryDirectory(dir=file.parent, prefix=f".{file.name}.") as tmp:
        folder = Path(tmp)
        try:
            manifest, checkpoints = _dump(settings, engine, folder / DUMP, stage)
        finally:
            engine.dispose()
        stage("writing the archive")
        manifest["dump"] = {"name": DUMP, **_digest(folder / DUMP)}
        manifest["checkpoints"] = sorted(checkpoints)
        written = _write_tar(folder / "archive.tar", manifest, folder / DUMP, checkpoints)
        _publish(written, file, force=force)
    audit = manifest["audit"]
    return {
        "file": str(file),
        "bytes": file.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
        "tables": len(manifest["tables"]),
        "rows": sum(manifest["tables"].values()),
        "revision": manifest["alembic_revision"],
        "chain_id": audit["chain_id"],
        "audit_last_id": audit["last_id"],
        "pending": audit["pending"],
        "checkpoints": len(checkpoints),
    }


def _dump(
    settings: Settings, engine: Engine, dump_path: Path, stage: Stage
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """pg_dump of one exported snapshot, and the manifest counted in that snapshot."""
    stage("opening a snapshot")
    with (
        engine.connect().execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        ) as conn,
        conn.begin(),
    ):
        snapshot = str(conn.scalar(text("SELECT pg_export_snapshot()")))
        pg_dump = find_tool("pg_dump", server_major(conn))
        stage("dumping")
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, connection in the environment
                [str(pg_dump), "--format=custom", f"--snapshot={snapshot}", "--file",
                 str(dump_path), "--no-password"],
                env=pg_env(settings.database_url), stdout=subprocess.DEVNULL, stderr=errors,
            )  # fmt: skip
            try:
                # The dump runs in its own process; this transaction, which must stay open
                # until the dump has taken the snapshot, counts in the same one meanwhile.
                manifest, checkpoints = _describe(conn, settings)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            if proc.wait() != 0:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip()
                raise BackupError(f"pg_dump failed: {message[-2000:]}", exit_code=1)
    return manifest, checkpoints


def _describe(conn: Connection, settings: Settings) -> tuple[dict[str, Any], dict[str, bytes]]:
    """What the snapshot holds: versions, revision, audit head, row counts; and the
    checkpoints of its chain (the folder's, and a new one of the head it holds)."""
    from core.changes import keyring

    revision = conn.scalar(text("SELECT to_regclass('public.alembic_version')")) and conn.scalar(
        text("SELECT version_num FROM alembic_version")
    )
    if not revision:
        raise BackupError("the database is not migrated (no alembic revision): nothing to back up")
    extensions = [
        {"name": name, "version": version, "schema": schema}
        for name, version, schema in conn.execute(
            text(
                "SELECT extname, extversion, extnamespace::regnamespace::text FROM pg_extension "
                "WHERE extname <> 'plpgsql' ORDER BY extname"
            )
        )
    ]
    keys = keyring(settings)
    with Session(bind=conn) as session:
        head = checkpoint.make(session, keys)
    chain_id = str(conn.scalar(text("SELECT id FROM audit_chain")))
    checkpoints: dict[str, bytes] = {}
    if settings.audit_checkpoint_dir is not None:
        import uuid

        found = checkpoint.load(settings.audit_checkpoint_dir, uuid.UUID(chain_id), keys)
        checkpoints = {path.name: path.read_bytes() for path, _ in found.valid}
    if head is not None:
        # Of the head this dump holds, so a restore verifies against a checkpoint even when
        # the folder has none yet; one of the same row already there is kept instead.
        checkpoints.setdefault(head.name, _checkpoint_bytes(head))
    tables = user_tables(conn)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "server_version": str(conn.scalar(text("SHOW server_version"))),
        "postgis_version": next((e["version"] for e in extensions if e["name"] == "postgis"), None),
        "extensions": extensions,
        "alembic_revision": str(revision),
        "audit": {
            "chain_id": chain_id,
            "last_id": head.last_id if head else None,
            "head_hash": head.head_hash if head else None,
            "rows": head.rows if head else 0,
            "pending": int(conn.scalar(text("SELECT count(*) FROM pending_change")) or 0),
        },
        "database": make_url(settings.database_url).database,
        "tables": count_rows(conn, tables),
        "extension_rows": _extension_rows(conn),
    }
    return manifest, checkpoints


def _extension_rows(conn: Connection) -> dict[str, int]:
    """Rows of extensions' configuration tables that pg_dump dumps (PostGIS's
    spatial_ref_sys: the SRIDs added by hand). The restore skips such a table's data when
    there is none: writing to it needs rights the application's role lacks."""
    found = {}
    for name, qualified, condition in conn.execute(
        text(
            "SELECT c.relname, c.oid::regclass::text, x.cond FROM pg_extension e "
            "CROSS JOIN LATERAL unnest(e.extconfig, e.extcondition) AS x(rel, cond) "
            "JOIN pg_class c ON c.oid = x.rel WHERE c.relkind = 'r'"
        )
    ):
        # The name and filter come from the catalog (what pg_dump itself applies).
        query = text(f"SELECT count(*) FROM {qualified} {condition}")  # noqa: S608 - the catalog's
        found[name] = int(conn.scalar(query) or 0)
    return found


def _checkpoint_bytes(made: checkpoint.Checkpoint) -> bytes:
    # The same text core.checkpoint.write puts in a file.
    return (json.dumps(asdict(made), indent=2, sort_keys=True) + "\n").encode()


def _digest(path: Path) -> dict[str, Any]:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": sha.hexdigest()}


def _write_tar(
    path: Path, manifest: dict[str, Any], dump: Path, checkpoints: dict[str, bytes]
) -> Path:
    now = time.time()

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), int(now), 0o600
        tar.addfile(info, io.BytesIO(data))

    with open(path, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            # The manifest first: a restore reads and checks it before the big member.
            add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
            info = tar.gettarinfo(str(dump), arcname=DUMP)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o600
            with open(dump, "rb") as f:
                tar.addfile(info, f)
            for name, data in sorted(checkpoints.items()):
                add_bytes(tar, CHECKPOINTS + name, data)
        raw.flush()
        os.fsync(raw.fileno())
    return path


def _publish(written: Path, file: Path, *, force: bool) -> None:
    """Move the finished archive under its name: replace only with ``force``; without,
    a file another process put there meanwhile is kept."""
    os.chmod(written, 0o600)  # it holds password hashes and personal data
    if force:
        os.replace(written, file)
    else:
        try:
            os.link(written, file)
        except FileExistsError as exc:
            raise BackupError(f"{file} exists: pass --force to replace it") from exc
    try:
        fd = os.open(file.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # the name's durability, where the OS allows
        pass


# --- the commands (cli.py adds them) ------------------------------------------------------


def _run(work: Callable[[Stage], dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.progress import Progress

    err = Console(stderr=True)
    try:
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("starting", total=None)
            summary = work(lambda what: progress.update(task, description=what))
    except BackupError as exc:
        err.print(f"[red]error:[/red] {exc.message}", soft_wrap=True, highlight=False)
        raise typer.Exit(exc.exit_code) from exc
    except OperationalError as exc:  # the database is away, or refuses the login
        first = str(exc.orig or exc).strip().splitlines()[0]
        err.print(f"[red]error:[/red] cannot reach the database: {first}", soft_wrap=True)
        raise typer.Exit(1) from exc
    for note in summary.pop("notes", []):
        err.print(note, soft_wrap=True, highlight=False)
    typer.echo(json.dumps(summary, ensure_ascii=False))


def backup_command(
    file: Annotated[Path, typer.Argument(help="the archive to write (a .tar)")],
    force: Annotated[bool, typer.Option(help="replace FILE if it exists")] = False,
) -> None:
    """Back up the database and the audit checkpoints into one archive, while the server
    runs (docs/backup.md). Prints one JSON summary; exit 2 if FILE exists."""
    from core.config import get_settings

    _run(lambda stage: backup(get_settings(), file, force=force, stage=stage))


def restore_command(
    file: Annotated[Path, typer.Argument(help="an archive `emergency backup` wrote")],
    replace: Annotated[
        bool, typer.Option(help="replace what the database holds (it must be empty without)")
    ] = False,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint-dir",
            help="copy the archive's checkpoints here (default: EMERGENCY_AUDIT_CHECKPOINT_DIR)",
        ),
    ] = None,
) -> None:
    """Restore an archive into the database DATABASE_URL names, in one transaction, and
    check every table's row count against the archive. Exit 2 for a refused archive or a
    non-empty database (nothing changed), 1 when the restored counts differ (rolled back)."""
    from command.restore import restore
    from core.config import get_settings

    settings = get_settings()
    folder = checkpoint_dir or settings.audit_checkpoint_dir
    _run(lambda stage: restore(settings, file, replace=replace, checkpoint_dir=folder, stage=stage))
