"""Run Alembic migrations programmatically (no alembic.ini needed), and say where a
database stands against this release's migrations (``status``): ``emergency migrate``, the
server's start and ``emergency doctor`` refuse a database that a newer release migrated."""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command as alembic_command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2 import alembic_helpers
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from core.db import sqlalchemy_url
from core.errors import DomainError

SCRIPT_LOCATION = "command:migrations"


class NewerDatabase(DomainError):
    """The database names a revision this release does not know: a newer release migrated
    it. Old code on a newer schema can write rows the newer release reads wrong, so
    nothing is run against it."""

    code = "newer_database"


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands against this release's migrations."""

    current: tuple[str, ...]  # the revisions in alembic_version (none: never migrated)
    head: str  # this release's newest revision
    unknown: tuple[str, ...]  # current revisions this release does not know
    pending: tuple[str, ...]  # what `emergency migrate` would apply, oldest first

    @property
    def at_head(self) -> bool:
        return self.current == (self.head,)

    @property
    def newer(self) -> bool:
        """Migrated by a newer release (or another project's Alembic history)."""
        return bool(self.unknown)

    @property
    def empty(self) -> bool:
        """Never migrated: no alembic_version row."""
        return not self.current

    def refusal(self) -> str | None:
        """Why this release must not run against the database, or None."""
        if not self.newer:
            return None
        return (
            f"the database is at revision {', '.join(self.unknown)}, which this release does "
            f"not know (its newest is {self.head}): it was migrated by a newer release; run "
            "that release, or restore a backup made for this one"
        )


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


def status(database_url: str) -> MigrationStatus:
    """Read the database's revision(s) and compare them with this release's history.

    Raises SQLAlchemy's OperationalError when the database cannot be reached."""
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return status_on(conn)
    finally:
        engine.dispose()


def status_on(conn: Connection) -> MigrationStatus:
    """:func:`status` on an open connection (``emergency doctor`` brings its own, with a
    timeout)."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    assert head is not None  # one linear history
    current = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = tuple(rev for rev in current if rev not in known)
    pending: tuple[str, ...] = ()
    if not unknown:
        # iterate_revisions walks from head down to (excluding) the current revisions.
        steps = script.iterate_revisions(head, current or "base")
        pending = tuple(reversed([rev.revision for rev in steps]))
    return MigrationStatus(current, head, unknown, pending)


def refuse_newer(database_url: str) -> MigrationStatus:
    """The database's status; NewerDatabase if a newer release migrated it."""
    found = status(database_url)
    reason = found.refusal()
    if reason is not None:
        raise NewerDatabase(reason, details={"current": list(found.current), "head": found.head})
    return found


def upgrade(database_url: str, revision: str = "head") -> None:
    refuse_newer(database_url)
    alembic_command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    refuse_newer(database_url)
    alembic_command.downgrade(alembic_config(database_url), revision)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """What autogenerate compares: GeoAlchemy2's rule, less the track's daily partitions
    (``unit_position_pYYYYMMDD``: made by the server as days come, not by the models)."""
    if type_ == "table" and reflected and name and name.startswith("unit_position_p"):
        return False
    keep = alembic_helpers.include_object(  # type: ignore[no-untyped-call]
        obj, name, type_, reflected, compare_to
    )
    return bool(keep)
