"""The hash-chained, append-only audit log on real PostGIS."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import audit


def _append(session, n: int) -> list[audit.AuditEvent]:
    return [
        audit.record(
            session,
            actor="user:test",
            action="incident.created",
            entity="incident",
            entity_id=i,
            before=None,
            after={"title": f"fire {i}", "n": i, "ratio": 0.1 + 0.2},
        )
        for i in range(n)
    ]


def test_rows_chain_and_verify(session):
    rows = _append(session, 5)
    assert rows[0].prev_hash == audit.GENESIS or rows[0].prev_hash == _prev_of(session, rows[0])
    for a, b in itertools.pairwise(rows):
        assert b.prev_hash == a.hash
    session.expunge_all()  # verify what the database returns, not the objects in memory
    result = audit.verify(session)
    assert result.ok and result.checked >= 5


def _prev_of(session, row) -> str:
    return session.execute(
        text("SELECT hash FROM audit_event WHERE id < :id ORDER BY id DESC LIMIT 1"),
        {"id": row.id},
    ).scalar_one()


def test_update_and_delete_are_refused_by_the_database(session):
    (row,) = _append(session, 1)
    for sql in (
        "UPDATE audit_event SET actor = 'someone else' WHERE id = :id",
        "DELETE FROM audit_event WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text(sql), {"id": row.id})
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("TRUNCATE audit_event"))


def _tamper(session, sql: str, row_id: int) -> None:
    session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update"))
    session.execute(text(sql), {"id": row_id})
    session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update"))
    session.expunge_all()


def test_verify_names_the_first_edited_row(session):
    rows = _append(session, 6)
    _tamper(session, 'UPDATE audit_event SET after = \'{"title": "x"}\' WHERE id = :id', rows[3].id)
    result = audit.verify(session)
    assert not result.ok
    assert result.first_bad_id == rows[3].id
    assert result.reason == "row content does not match its hash"


def test_verify_names_the_row_after_a_deleted_one(session):
    rows = _append(session, 6)
    _tamper(session, "DELETE FROM audit_event WHERE id = :id", rows[2].id)
    result = audit.verify(session)
    assert result.first_bad_id == rows[3].id
    assert result.reason == "prev_hash does not match the previous row"


def test_recomputed_hash_still_breaks_the_chain(session):
    # A forger who recomputes the edited row's own hash still breaks the next link.
    rows = _append(session, 4)
    target = rows[1]
    forged = audit.row_hash(
        target.prev_hash,
        at=target.at,
        actor="user:forger",
        action=target.action,
        entity=target.entity,
        entity_id=target.entity_id,
        before=target.before,
        after=target.after,
    )
    _tamper(
        session,
        f"UPDATE audit_event SET actor = 'user:forger', hash = '{forged}' WHERE id = :id",
        target.id,
    )
    result = audit.verify(session)
    assert result.first_bad_id == rows[2].id


def test_api_writes_are_audited_with_before_and_after(client, world, session):
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [24.95, 60.17]},
        "properties": {"title": "Smoke", "type": "fire"},
    }
    iid = client.post("/api/incidents", json=body, headers=world.h("dispatcher")).json()["id"]
    client.patch(
        f"/api/incidents/{iid}",
        json={"properties": {"severity": "extreme"}},
        headers=world.h("commander"),
    )
    page = client.get(
        f"/api/audit?entity=incident&entity_id={iid}", headers=world.h("auditor")
    ).json()
    actions = [(i["action"], i["actor"]) for i in page["items"]]
    assert actions == [
        ("incident.updated", "user:commander"),
        ("incident.created", "user:dispatcher"),
    ]
    update = page["items"][0]
    assert update["before"]["properties"]["severity"] == "moderate"
    assert update["after"]["properties"]["severity"] == "extreme"
    verdict = client.get("/api/audit/verify", headers=world.h("auditor")).json()
    assert verdict["ok"] is True and verdict["checked"] >= 2
