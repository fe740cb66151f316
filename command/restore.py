"""`emergency restore FILE`: an archive of `emergency backup` into an empty database (or,
with ``--replace``, in place of what one holds), in one transaction.

Everything that can be checked before the database is touched is checked first: the tar
(only the members a backup writes, no path leaving the archive), the manifest (format,
version, a revision this release knows), the dump (its size and SHA-256, and that
pg_restore reads it), the target (empty, PostGIS there or creatable) and the checkpoint
folder (no file contradicting the archive's). Then ``pg_restore`` writes the dump as SQL
into ``psql --single-transaction``, between a preamble (extensions; the emptiness check
again, or the drop of what is replaced) and a check of every table's row count and the
audit head against the manifest: a difference rolls the whole restore back.

Extensions are created here, not from the dump: ``COMMENT ON EXTENSION`` in a dump needs
the extension's owner, so a dump restored by the application's own role would stop there.
Owners and grants are not restored (``--no-owner --no-privileges``): the restoring role,
the one the application connects as, owns what it restores, in any cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from command.backup import (
    CHECKPOINTS,
    DUMP,
    FORMAT,
    IDENTIFIER,
    MANIFEST,
    VERSION,
    BackupError,
    Stage,
    count_rows,
    engine_for,
    find_tool,
    pg_env,
    server_major,
    user_tables,
)
from core.config import Settings

_CHECKPOINT = re.compile(r"audit-[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}-\d{12}\.json")
_EXTENSION_ENTRY = re.compile(r"\d+; \d+ \d+ (?:EXTENSION|COMMENT - EXTENSION) ")
_DATA_ENTRY = re.compile(r"\d+; \d+ \d+ TABLE DATA public (\S+) ")
_MAX_MANIFEST = 4 << 20
_MAX_CHECKPOINT = 64 << 10
_MARK = "emergency-restore"  # psql error lines of our own checks start with this
_EXT_MEMBER = """NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass
                  AND d.objid = {oid} AND d.deptype = 'e')"""


@dataclass
class Archive:
    manifest: dict[str, Any]
    dump: Path
    dump_bytes: int
    dump_sha256: str
    checkpoints: dict[str, bytes] = field(default_factory=dict)


# --- the archive ----------------------------------------------------------------------


def read_archive(file: Path, folder: Path) -> Archive:
    """The archive's members, checked, the dump extracted into ``folder``."""
    if not file.is_file():
        raise BackupError(f"{file}: no such file")
    manifest: dict[str, Any] | None = None
    dump: tuple[int, str] | None = None
    checkpoints: dict[str, bytes] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(file, mode="r:") as tar:
            for member in tar:
                name = _member_name(file, member, seen)
                if name == MANIFEST:
                    manifest = check_manifest(_read(tar, member, _MAX_MANIFEST))
                elif manifest is None:
                    raise BackupError(f"{file}: {name} before {MANIFEST}: not a backup archive")
                elif name == DUMP:
                    dump = _extract(tar, member, folder / DUMP)
                elif name.startswith(CHECKPOINTS) and _CHECKPOINT.fullmatch(
                    name[len(CHECKPOINTS) :]
                ):
                    checkpoints[name[len(CHECKPOINTS) :]] = _read(tar, member, _MAX_CHECKPOINT)
                else:
                    raise BackupError(f"{file}: unexpected member {name!r}: not a backup archive")
    except (tarfile.TarError, EOFError, UnicodeDecodeError) as exc:
        raise BackupError(f"{file} is not a backup archive, or is damaged: {exc}") from exc
    if manifest is None:
        raise BackupError(f"{file}: no {MANIFEST}: not an archive `emergency backup` wrote")
    if dump is None:
        raise BackupError(f"{file}: no {DUMP} (the archive is incomplete)")
    want = manifest["dump"]
    if dump != (want["bytes"], want["sha256"]):
        raise BackupError(
            f"{file}: {DUMP} is {dump[0]:,} bytes with SHA-256 {dump[1][:12]}..., the manifest "
            f"says {want['bytes']:,} bytes, {str(want['sha256'])[:12]}...: damaged or truncated"
        )
    missing = set(manifest.get("checkpoints", [])) - set(checkpoints)
    if missing:
        raise BackupError(f"{file}: checkpoints missing from the archive: {sorted(missing)}")
    return Archive(manifest, folder / DUMP, dump[0], dump[1], checkpoints)


def _member_name(file: Path, member: tarfile.TarInfo, seen: set[str]) -> str:
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", name):
        raise BackupError(f"{file}: member {name!r} names a path outside the archive (refused)")
    if not member.isfile():
        raise BackupError(f"{file}: member {name!r} is not a plain file (refused)")
    if name in seen:
        raise BackupError(f"{file}: member {name!r} twice (refused)")
    seen.add(name)
    return name


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise BackupError(f"member {member.name!r} is {member.size:,} bytes: too big")
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    data = source.read()
    if len(data) != member.size:
        raise BackupError(f"member {member.name!r} is cut short (the archive is truncated)")
    return data


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> tuple[int, str]:
    source = tar.extractfile(member)
    assert source is not None
    sha, size = hashlib.sha256(), 0
    with open(path, "wb") as out:
        while chunk := source.read(1 << 20):
            sha.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def check_manifest(raw: bytes) -> dict[str, Any]:
    """The manifest, if it is one this release reads (BackupError otherwise)."""
    try:
        data = json.loads(raw.decode())
    except ValueError as exc:
        raise BackupError(f"{MANIFEST} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise BackupError(f"{MANIFEST} is of format {found!r}, not {FORMAT!r}")
    if data.get("version") != VERSION:
        raise BackupError(
            f"archive format version {data.get('version')!r}: this release reads {VERSION} "
            "(restore it with the release that made it)"
        )
    tables, audit, dump = data.get("tables"), data.get("audit"), data.get("dump")
    ok = (
        isinstance(tables, dict)
        and all(isinstance(k, str) and IDENTIFIER.fullmatch(k) for k in tables)
        and all(type(v) is int and v >= 0 for v in tables.values())
        and isinstance(audit, dict)
        and isinstance(dump, dict)
        and type(dump.get("bytes")) is int
        and isinstance(dump.get("sha256"), str)
        and isinstance(data.get("alembic_revision"), str)
        and isinstance(data.get("extension_rows", {}), dict)
        and all(type(v) is int for v in data.get("extension_rows", {}).values())
        and all(
            isinstance(e, dict)
            and IDENTIFIER.fullmatch(str(e.get("name")))
            and IDENTIFIER.fullmatch(str(e.get("schema")))
            for e in data.get("extensions", [])
        )
    )
    if not ok:
        raise BackupError(f"{MANIFEST} is malformed (tables, audit, dump or extensions)")
    return data


# --- checks on the target -------------------------------------------------------------


def check_revision(database_url: str, revision: str) -> bool:
    """Whether the archive's schema is older than this release's (then: migrate after).
    A revision this release does not know is refused: a newer release made the archive."""
    from alembic.script import ScriptDirectory

    from command.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config(database_url))
    head = script.get_current_head()
    if revision == head:
        return False
    if revision not in {rev.revision for rev in script.walk_revisions()}:
        raise BackupError(
            f"the archive's schema is at revision {revision!r}, which this release does not "
            f"know (its newest is {head!r}): restore it with the release that made it"
        )
    return True


def occupied(conn: Connection) -> list[str]:
    """The database's own tables in public (not PostGIS's spatial_ref_sys)."""
    return list(conn.scalars(_OCCUPIED))


_OCCUPIED = text(
    """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY c.relname
    """
)


def check_target(conn: Connection, manifest: dict[str, Any], *, replace: bool) -> list[str]:
    """Refuse a non-empty database (without ``replace``) and one whose server lacks an
    extension the archive needs; notes for the user (versions that differ)."""
    database = conn.scalar(text("SELECT current_database()"))
    tables = occupied(conn)
    if tables and not replace:
        shown = ", ".join(tables[:8]) + (f" and {len(tables) - 8} more" if len(tables) > 8 else "")
        raise BackupError(
            f"database {database} is not empty: it holds {len(tables)} tables ({shown}). "
            "Restore into an empty database, or pass --replace to replace what it holds"
        )
    notes = []
    superuser = bool(
        conn.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    )
    for ext in manifest.get("extensions", []):
        name = ext["name"]
        row = conn.execute(
            text(
                "SELECT a.installed_version, bool_or(v.trusted) FROM pg_available_extensions a "
                "JOIN pg_available_extension_versions v USING (name) WHERE a.name = :name "
                "GROUP BY a.installed_version"
            ),
            {"name": name},
        ).first()
        hint = " (Debian: apt install postgresql-<major>-postgis-3)" if name == "postgis" else ""
        if row is None:
            raise BackupError(
                f"the target server has no {name} extension, which the archive needs "
                f"({name} {ext.get('version')}): install it there first{hint}"
            )
        installed, trusted = row
        if installed is None and not (superuser or trusted):
            raise BackupError(
                f"{name} is not installed in database {database} and this role may not create "
                f"it: as a superuser, run CREATE EXTENSION {name} in {database} first"
            )
        if installed is not None and installed != ext.get("version"):
            notes.append(f"{name} {installed} here, {ext.get('version')} in the archive")
    return notes


# --- checkpoints ----------------------------------------------------------------------


def plan_checkpoints(
    found: dict[str, bytes], folder: Path | None, manifest: dict[str, Any]
) -> tuple[dict[str, bytes], list[str]]:
    """Which of the archive's checkpoints to copy into ``folder`` (one already there of the
    same row and hash is kept; one contradicting the archive is refused), and notes."""
    if not found:
        return {}, []
    if folder is None:
        return {}, [
            f"{len(found)} checkpoints stay in the archive (checkpoints/): set "
            "EMERGENCY_AUDIT_CHECKPOINT_DIR or pass --checkpoint-dir to copy them"
        ]
    copy, notes = {}, []
    for name, data in found.items():
        path = folder / name
        if not path.exists():
            copy[name] = data
        elif path.read_bytes() != data and _head(path.read_bytes()) != _head(data):
            raise BackupError(
                f"{path} names the same row as the archive's {name} with another hash: "
                "the folder holds another history of this chain (nothing restored)"
            )
    chain, last = manifest["audit"].get("chain_id"), manifest["audit"].get("last_id") or 0
    later = sorted(
        p.name for p in folder.glob(f"audit-{chain}-*.json") if int(p.stem.rsplit("-", 1)[1]) > last
    )
    if later:
        notes.append(
            f"{folder} has checkpoints of this chain past row {last}, the archive's head "
            f"({later[-1]}): `audit verify` will report the rows written after the backup "
            "as gone (they are: record why)"
        )
    return copy, notes


def _head(data: bytes) -> tuple[Any, ...]:
    try:
        doc = json.loads(data)
        return (doc["chain_id"], doc["last_id"], doc["head_hash"])
    except (ValueError, KeyError, TypeError):
        return (None, data)


def copy_checkpoints(copy: dict[str, bytes], folder: Path) -> int:
    """Write each once, atomically; a file of that name written meanwhile is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, data in copy.items():
        tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
        tmp.write_bytes(data)
        try:
            os.link(tmp, folder / name)
            written += 1
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return written


# --- the restore --------------------------------------------------------------------------


def restore(
    settings: Settings, file: Path, *, replace: bool, checkpoint_dir: Path | None, stage: Stage
) -> dict[str, Any]:
    """Restore ``file`` into the configured database; its summary (BackupError when
    refused or failed: then the database is as it was)."""
    started = time.perf_counter()
    url = settings.database_url
    with tempfile.TemporaryDirectory(prefix="emergency-restore-") as tmp:
        folder = Path(tmp)
        stage("reading the archive")
        archive = read_archive(file.absolute(), folder)
        manifest = archive.manifest
        migrate = check_revision(url, manifest["alembic_revision"])
        engine = engine_for(url)
        try:
            with engine.connect() as conn:
                notes = check_target(conn, manifest, replace=replace)
                major = server_major(conn)
            pg_restore, psql = find_tool("pg_restore", major), find_tool("psql", major)
            stage("checking the dump")
            listing = _listing(pg_restore, archive.dump, folder / "toc.list", manifest)
            copy, more = plan_checkpoints(archive.checkpoints, checkpoint_dir, manifest)
            notes += more
            stage("restoring")
            _apply(pg_restore, psql, archive, listing, folder, url, replace=replace)
            with engine.connect() as conn:
                counts = count_rows(conn, user_tables(conn))
        finally:
            engine.dispose()
    copied = copy_checkpoints(copy, checkpoint_dir) if checkpoint_dir and copy else 0
    if migrate:
        notes.append(
            f"the archive's schema is at {manifest['alembic_revision']}, older than this "
            "release: run `emergency migrate` now"
        )
    return {
        "file": str(file),
        "database": make_url(url).database,
        "tables": len(counts),
        "rows": sum(counts.values()),
        "seconds": round(time.perf_counter() - started, 3),
        "bytes": file.stat().st_size,
        "revision": manifest["alembic_revision"],
        "migrate": migrate,
        "replaced": replace,
        "chain_id": manifest["audit"].get("chain_id"),
        "audit_last_id": manifest["audit"].get("last_id"),
        "pending": manifest["audit"].get("pending", 0),
        "checkpoints_copied": copied,
        "notes": [f"note: {n}" for n in notes],
    }


def _listing(pg_restore: Path, dump: Path, path: Path, manifest: dict[str, Any]) -> Path:
    """The dump's table of contents less its extensions (made by the preamble instead) and
    the data of extensions' tables that hold none of the database's own rows."""
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [str(pg_restore), "--list", str(dump)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BackupError(f"{DUMP} is not a dump pg_restore reads: {proc.stderr.strip()[-1000:]}")
    empty = {k for k, v in manifest.get("extension_rows", {}).items() if v == 0}

    def wanted(line: str) -> bool:
        if _EXTENSION_ENTRY.match(line):
            return False
        data = _DATA_ENTRY.match(line)
        return not (data and data.group(1) in empty)

    kept = [line for line in proc.stdout.splitlines() if wanted(line)]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def _apply(
    pg_restore: Path,
    psql: Path,
    archive: Archive,
    listing: Path,
    folder: Path,
    url: str,
    *,
    replace: bool,
) -> None:
    """pg_restore's SQL through psql in one transaction, between our preamble and checks."""
    pre, post = folder / "pre.sql", folder / "post.sql"
    pre.write_text(_preamble(archive.manifest, replace=replace), encoding="utf-8")
    post.write_text(_POSTAMBLE, encoding="utf-8")
    audit = archive.manifest["audit"]
    head = {k: audit.get(k) for k in ("chain_id", "last_id", "head_hash")}
    env = pg_env(url)
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        producer = subprocess.Popen(  # noqa: S603 - fixed argv
            [str(pg_restore), "--no-owner", "--no-privileges", "--use-list", str(listing),
             "--file", "-", str(archive.dump)],
            env=env, stdout=subprocess.PIPE, stderr=restore_err,
        )  # fmt: skip
        consumer = subprocess.Popen(  # noqa: S603 - fixed argv, connection in the environment
            [str(psql), "--no-psqlrc", "--quiet", "--no-password", "--single-transaction",
             "--set", "ON_ERROR_STOP=1", "--output", os.devnull,
             "--set", f"counts={json.dumps(archive.manifest['tables'])}",
             "--set", f"head={json.dumps(head)}",
             "--file", str(pre), "--file", "-", "--file", str(post)],
            env=env, stdin=producer.stdout, stdout=subprocess.DEVNULL, stderr=psql_err,
        )  # fmt: skip
        assert producer.stdout is not None
        producer.stdout.close()  # psql holds the pipe: pg_restore sees it close if psql stops
        psql_code, restore_code = consumer.wait(), producer.wait()
        if psql_code == 0 and restore_code == 0:
            return
        raise _failure(_text(psql_err), _text(restore_err))


def _text(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


def _failure(psql_err: str, restore_err: str) -> BackupError:
    found = re.search(rf"ERROR:\s+{_MARK}-(\w+): (.*)", psql_err)
    if found and found.group(1) == "counts":
        items = found.group(2).split("; ")
        return BackupError(
            "the restored database differs from the archive, so the restore was rolled back "
            "(nothing changed):\n  " + "\n  ".join(items),
            exit_code=1,
        )
    if found:
        return BackupError(found.group(2) + " (nothing restored)")
    error = re.search(r"(?:ERROR|FATAL):.*", psql_err) or re.search(r"error:.*", restore_err)
    shown = error.group(0) if error else (psql_err or restore_err).strip()[-1500:]
    return BackupError(
        f"restore failed and was rolled back (nothing changed): {shown}", exit_code=1
    )


def _preamble(manifest: dict[str, Any], *, replace: bool) -> str:
    lines = []
    if replace:
        lines.append(_DROP_OWN_OBJECTS)
    else:
        lines.append(_REFUSE_NON_EMPTY)
    for ext in manifest.get("extensions", []):  # names checked: identifiers (IDENTIFIER)
        if ext["schema"] != "public":
            lines.append(f'CREATE SCHEMA IF NOT EXISTS "{ext["schema"]}";')
        lines.append(
            f'CREATE EXTENSION IF NOT EXISTS "{ext["name"]}" WITH SCHEMA "{ext["schema"]}";'
        )
    return "\n".join(lines) + "\n"


# Checked again inside the transaction: a table made after the first check refuses too.
_REFUSE_NON_EMPTY = f"""
DO $$
DECLARE found text;
BEGIN
  SELECT string_agg(c.relname, ', ' ORDER BY c.relname) INTO found
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
    AND {_EXT_MEMBER.format(catalog="pg_class", oid="c.oid")};
  IF found IS NOT NULL THEN
    RAISE EXCEPTION '{_MARK}-target: the database is not empty (%): pass --replace', found;
  END IF;
END $$;
"""  # noqa: S608 - constant text: no input reaches it

# Everything of the database's own in public (not the extensions' objects): views, tables
# (with their partitions, sequences, triggers), functions and types, in that order.
_DROP_OWN_OBJECTS = f"""
DO $$
DECLARE stmts text[]; stmt text;
BEGIN
  SELECT array_agg(s ORDER BY rank, s) INTO stmts FROM (
    SELECT CASE WHEN c.relkind IN ('r', 'p', 'f') THEN 1 ELSE 0 END
             + CASE WHEN c.relkind = 'S' THEN 2 ELSE 0 END AS rank,
           format('DROP %s IF EXISTS %I.%I CASCADE',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                 ELSE 'TABLE' END, n.nspname, c.relname) AS s
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND NOT c.relispartition AND {_EXT_MEMBER.format(catalog="pg_class", oid="c.oid")}
    UNION ALL
    SELECT 3, format('DROP %s IF EXISTS %I.%I(%s) CASCADE',
                     CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                                    ELSE 'FUNCTION' END,
                     n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND {_EXT_MEMBER.format(catalog="pg_proc", oid="p.oid")}
    UNION ALL
    SELECT 4, format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r')
      AND {_EXT_MEMBER.format(catalog="pg_type", oid="t.oid")}
  ) AS own;
  FOREACH stmt IN ARRAY coalesce(stmts, '{{}}') LOOP
    EXECUTE stmt;
  END LOOP;
END $$;
"""  # noqa: S608 - constant text: no input reaches it

# After the data, before the commit: every table's rows and the audit head as the manifest
# says (psql variables :'counts' and :'head', quoted by psql), or the whole restore rolls back.
_POSTAMBLE = f"""
SELECT set_config('emergency.restore_counts', :'counts', false),
       set_config('emergency.restore_head', :'head', false);
DO $$
DECLARE
  expected jsonb := current_setting('emergency.restore_counts')::jsonb;
  head jsonb := current_setting('emergency.restore_head')::jsonb;
  t text; want bigint; got bigint; bad text[] := '{{}}';
  chain text; last_id bigint; last_hash text;
BEGIN
  FOR t, want IN SELECT key, value::bigint FROM jsonb_each_text(expected) LOOP
    IF to_regclass(format('public.%I', t)) IS NULL THEN
      bad := bad || format('%s: missing (the archive has %s rows)', t, want);
    ELSE
      EXECUTE format('SELECT count(*) FROM public.%I', t) INTO got;
      IF got <> want THEN
        bad := bad || format('%s: %s rows restored, the archive says %s', t, got, want);
      END IF;
    END IF;
  END LOOP;
  SELECT id::text INTO chain FROM public.audit_chain;
  SELECT id, hash INTO last_id, last_hash FROM public.audit_event ORDER BY id DESC LIMIT 1;
  IF chain IS DISTINCT FROM head->>'chain_id' THEN
    bad := bad || format('audit chain %s, the archive says %s', chain, head->>'chain_id');
  END IF;
  IF last_id IS DISTINCT FROM (head->>'last_id')::bigint
     OR last_hash IS DISTINCT FROM head->>'head_hash' THEN
    bad := bad || format('audit head row %s, the archive says %s', last_id, head->>'last_id');
  END IF;
  IF cardinality(bad) > 0 THEN
    RAISE EXCEPTION '{_MARK}-counts: %', array_to_string(bad, '; ');
  END IF;
END $$;
"""  # noqa: S608 - constant text: no input reaches it
