"""The same alert posted twice at once, and an Update racing its Cancel, on real commits.

Exactly one of two concurrent identical posts creates; the other waits on the unique key
and answers with the first's result. These need concurrent transactions, so they run on a
database of their own (created, migrated and dropped here).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from command.intake import cap
from command.intake import service as intake
from command.migrate import upgrade
from core.db import AuditedSession, sqlalchemy_url
from tests.support.cap import WARNING_SYSTEM, alert_xml, ref
from tests.support.db import create_database, drop_database


@pytest.fixture(scope="module")
def own_db(database_url: str) -> Iterator[Engine]:
    del database_url  # skip or fail like the other database tests
    url = create_database("emergency_alert_race")
    engine = create_engine(sqlalchemy_url(url), pool_size=6)
    try:
        upgrade(url)
        yield engine
    finally:
        engine.dispose()
        drop_database(url)


def _race(engine: Engine, bodies: list[str]) -> list[dict[str, Any]]:
    """Intake each body in its own thread and transaction, all released at once."""
    sessions = sessionmaker(class_=AuditedSession, bind=engine, expire_on_commit=False)
    barrier = threading.Barrier(len(bodies))
    answers: list[dict[str, Any]] = [{} for _ in bodies]
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            parsed = cap.parse(bodies[n].encode(), "application/cap+xml")
            with sessions() as session:
                barrier.wait(timeout=10)
                answers[n], _ = intake.intake(
                    session, parsed, raw=bodies[n].encode(), content_type="application/cap+xml",
                    principal=WARNING_SYSTEM,
                )  # fmt: skip
                session.commit()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return answers


def _count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_duplicates_create_once(own_db: Engine, round_: int):
    sent = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=round_)
    body = alert_xml(f"RACE-{round_}", sent=sent)
    first, second = _race(own_db, [body, body])
    assert sorted([first["duplicate"], second["duplicate"]]) == [False, True]
    assert first["alert_id"] == second["alert_id"]
    assert first["incident_ids"] == second["incident_ids"] and len(first["incident_ids"]) == 1
    ident = f"RACE-{round_}"
    assert _count(own_db, "SELECT count(*) FROM alert WHERE identifier = :i", i=ident) == 1
    assert _count(own_db, "SELECT count(*) FROM incident WHERE alert_id = :a",
                  a=first["alert_id"]) == 1  # fmt: skip
    assert _count(own_db, "SELECT count(*) FROM event WHERE type = 'alert.received' "
                          "AND (payload->>'alert_id')::bigint = :a", a=first["alert_id"]) == 1  # fmt: skip


def test_update_racing_cancel_leaves_the_thread_consistent(own_db: Engine):
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    (first,) = _race(own_db, [alert_xml("UC-1", sent=sent)])
    update = alert_xml("UC-2", sent=sent + timedelta(minutes=1), msg_type="Update",
                       references=ref("UC-1", sent), severity="Extreme")  # fmt: skip
    cancel = alert_xml("UC-3", sent=sent + timedelta(minutes=2), msg_type="Cancel",
                       references=ref("UC-1", sent))  # fmt: skip
    _race(own_db, [update, cancel])
    zone = first["zone_ids"][0]
    incident = first["incident_ids"][0]
    # Whatever order the two committed in, the later-sent Cancel wins: applied after the
    # Update, it ends what the Update changed; applied first, the Update is stale.
    with own_db.connect() as conn:
        status = conn.execute(text("SELECT status FROM warning_zone WHERE id = :z"),
                              {"z": zone}).scalar_one()  # fmt: skip
        inc = conn.execute(text("SELECT status FROM incident WHERE id = :i"),
                           {"i": incident}).scalar_one()  # fmt: skip
    assert status == "ended"
    assert inc == "cancelled"
    thread = first["thread_id"]
    assert _count(own_db, "SELECT count(*) FROM incident i JOIN alert a ON a.id = i.alert_id "
                          "WHERE coalesce(a.thread_id, a.id) = :t", t=thread) == 1  # fmt: skip
