"""The staging and sealing hooks of core.changes are on the project's own sessions
(core.db.AuditedSession, what make_sessionmaker makes), not on every SQLAlchemy Session in
the process: a plain session a library or a test makes commits untouched."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from core import audit, changes
from core.changes import record_change
from core.db import AuditedSession, make_sessionmaker
from core.types import utcnow
from tests.support.db import chain_ok

pytestmark = pytest.mark.db

HOOKS = ("before_commit", "after_commit", "after_transaction_create", "after_soft_rollback")


def hooked(target: Any) -> list[bool]:
    return [event.contains(target, name, fn) for name, fn in changes._HOOKS]


def action() -> str:
    return f"scope.{uuid.uuid4().hex[:12]}"  # this test's rows, whatever else is there


def change(session: Session, what: str, n: int = 1) -> None:
    record_change(
        session,
        actor="user:scope",
        action=what,
        entity="thing",
        entity_id=n,
        before=None,
        after={"n": n},
        topics=("t:scope",),
    )


def rows(session: Session, table: str, what: str) -> list[str | None]:
    """The entity ids of ``table``'s rows of action (or event type) ``what``."""
    if table == "event":
        sql = "SELECT payload->>'n' FROM event WHERE type = :a ORDER BY id"
    else:
        sql = f"SELECT entity_id FROM {table} WHERE action = :a ORDER BY id"
    return list(session.execute(text(sql), {"a": what}).scalars())


def plain(connection: Connection) -> Session:
    return Session(bind=connection, join_transaction_mode="create_savepoint")


def audited(engine: Engine, connection: Connection, **info: Any) -> Session:
    """A session from make_sessionmaker, on the test's rolled-back connection."""
    factory = make_sessionmaker(engine, info=info or None)
    return factory(bind=connection, join_transaction_mode="create_savepoint")


def test_the_hooks_are_on_the_audited_class_only(engine: Engine) -> None:
    assert [name for name, _ in changes._HOOKS] == list(HOOKS)
    assert hooked(AuditedSession) == [True] * 4
    assert hooked(Session) == [False] * 4
    factory = make_sessionmaker(engine)
    assert issubclass(factory.class_, AuditedSession)
    with factory() as s, Session(engine) as other:
        assert isinstance(s, AuditedSession)
        assert hooked(other) == [False] * 4


def test_a_plain_session_does_not_stage_or_seal(connection: Connection) -> None:
    """A plain session carrying what the hooks would stage commits without staging it."""
    what = action()
    at = utcnow()
    row = {
        "at": at,
        "actor": "library",
        "action": what,
        "entity": "thing",
        "entity_id": "9",
        "body": audit.body(at, "library", what, "thing", "9", "null", audit.encode({"n": 9})),
        "topics": ["t:scope"],
        "payload": None,
    }  # a pending_change row, as record_change collects them (on an audited session)
    with plain(connection) as s:
        s.info[changes._PENDING] = [row]
        s.execute(text("SELECT 1"))
        s.commit()
        assert s.info[changes._PENDING] == [row]  # nobody took it
        assert hooked(s) == [False] * 4
        for table in ("pending_change", "audit_event", "event"):
            assert rows(s, table, what) == []


def test_a_session_from_make_sessionmaker_stages_and_seals(
    engine: Engine, connection: Connection
) -> None:
    what = action()
    with audited(engine, connection) as s:
        change(s, what, 1)
        assert rows(s, "pending_change", what) == []  # staged when it commits
        s.commit()
        assert rows(s, "audit_event", what) == ["1"]
        assert rows(s, "event", what) == ["1"]
        assert rows(s, "pending_change", what) == []  # sealed in its own commit
        assert chain_ok(s)


def test_with_a_sealer_the_commit_stages_and_waits_for_its_pass(
    engine: Engine, connection: Connection
) -> None:
    what = action()

    class Sealer:
        def __init__(self) -> None:
            self.waits: list[float] = []

        def seal(self, timeout_s: float) -> bool:
            self.waits.append(timeout_s)
            return True

    worker = Sealer()
    with audited(engine, connection, **{changes.SEALER: worker}) as s:
        change(s, what, 7)
        s.commit()
        assert rows(s, "pending_change", what) == ["7"]  # left for the sealer's pass
        assert rows(s, "audit_event", what) == []
        assert worker.waits == [changes.SEAL_WAIT_S]
        s.execute(text("DELETE FROM pending_change WHERE action = :a"), {"a": what})


def test_an_audited_savepoint_rollback_forgets_only_its_changes(
    engine: Engine, connection: Connection
) -> None:
    what = action()
    with audited(engine, connection) as s:
        change(s, what, 1)
        nested = s.begin_nested()
        change(s, what, 2)
        nested.rollback()
        change(s, what, 3)
        s.commit()
        assert rows(s, "audit_event", what) == ["1", "3"]


def test_recording_a_change_on_a_plain_session_is_refused(connection: Connection) -> None:
    """A change recorded where nothing would stage or seal it would be lost at commit: a
    plain session is refused at once, with nothing staged and the class left unhooked."""
    what = action()
    with plain(connection) as s:
        with pytest.raises(TypeError, match="AuditedSession"):
            change(s, what, 5)
        assert changes._PENDING not in s.info
        assert hooked(s) == [False] * 4
        assert hooked(Session) == [False] * 4
