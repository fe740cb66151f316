"""Engine, sessions and the declarative base shared by every package's models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from core.errors import Conflict, DomainError, InvalidInput

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention Alembic can follow."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def sqlalchemy_url(url: str) -> str:
    """Turn `postgresql://...` (the public contract) into the psycopg 3 dialect URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for `url`, with pre-ping so a restarted database is noticed."""
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )


class AuditedSession(Session):
    """The project's sessions: the changes recorded on one (:func:`core.changes.record_change`)
    are staged and sealed when it commits. :mod:`core.changes` attaches the hooks that do it
    to this class, not to :class:`Session`: a plain session a library or a test makes is
    left alone, and recording a change on one is refused."""


def make_sessionmaker(
    engine: Engine, *, info: dict[str, Any] | None = None
) -> sessionmaker[Session]:
    """Sessions (:class:`AuditedSession`) that keep loaded values after commit (responses
    read them); ``info`` is each session's ``info`` to start with (the server's sealer:
    core.changes)."""
    factory: sessionmaker[Session] = sessionmaker(
        bind=engine, class_=AuditedSession, expire_on_commit=False, info=info
    )
    return factory


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error (CLI use)."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def integrity_error(exc: IntegrityError) -> DomainError:
    """Translate a constraint violation into the domain error a caller should see."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    diag = getattr(orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or "constraint"
    if constraint in CONSTRAINT_MESSAGES:
        cls, message = CONSTRAINT_MESSAGES[constraint]
        return cls(message)
    if sqlstate == "23505":
        return Conflict(f"already exists ({constraint})")
    if sqlstate == "23503":
        return InvalidInput(f"refers to something that does not exist ({constraint})")
    if sqlstate == "23514":
        return InvalidInput(f"value not allowed ({constraint})")
    return InvalidInput(f"value not allowed ({constraint})")


# Friendlier words for the constraints a user is likely to hit.
CONSTRAINT_MESSAGES: dict[str, tuple[type[DomainError], str]] = {
    "uq_task_unit_active": (Conflict, "the unit already has an active task"),
    "ck_shelter_occupancy": (InvalidInput, "occupancy must be between 0 and capacity"),
    "uq_unit_callsign": (Conflict, "a unit with this callsign exists"),
    "uq_stock_warehouse_item": (Conflict, "this warehouse already stocks this item"),
}


def flush(session: Session) -> None:
    """Flush, turning constraint violations into domain errors (409 / 422)."""
    try:
        session.flush()
    except IntegrityError as exc:
        raise integrity_error(exc) from exc
