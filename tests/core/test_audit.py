"""The hash-chained, append-only audit log on real PostGIS."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st
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


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    at=st.datetimes(timezones=st.timezones()),
    names=st.tuples(st.text(), st.text(), st.text()),
    entity_id=st.none() | st.text(),
    before=st.none() | st.dictionaries(st.text(), _JSON, max_size=4),
    after=st.none() | st.dictionaries(st.text(), _JSON, max_size=4),
)
def test_a_rows_body_is_built_from_its_encoded_parts_as_the_whole_would_be(
    at, names, entity_id, before, after
):
    """The chain hashes the whole row's canonical JSON; record_many builds that text from
    before/after encoded once: it must be byte for byte the same, or old chains break."""
    actor, action, entity = names
    whole = {"at": at.astimezone(UTC).isoformat(), "actor": actor, "action": action,
             "entity": entity, "entity_id": entity_id, "before": before, "after": after}  # fmt: skip
    body = audit._body(at, actor, action, entity, entity_id, audit.canonical_text(before),
                       audit.canonical_text(after))  # fmt: skip
    assert body == audit.canonical_text(whole)
    assert audit.row_hash("ab" * 32, at=at, actor=actor, action=action, entity=entity,
                          entity_id=entity_id, before=before, after=after) == hashlib.sha256(
        f"{'ab' * 32}|{audit.canonical_text(whole)}".encode()
    ).hexdigest()  # fmt: skip


_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text()
    | st.datetimes(timezones=st.timezones()) | st.dates() | st.decimals(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(), inner, max_size=4)
    | st.dictionaries(st.integers(-20, 20) | st.booleans() | st.none(), inner, max_size=4),
    max_leaves=16,
)  # fmt: skip


@given(value=_ANY)
def test_one_pass_encoding_is_the_round_trip_text(value):
    """record_change encodes a change once (audit.encode); the chain was built on the text
    of a JSON round trip (datetimes as str, keys as text), then canonical JSON. Any value,
    non-string keys and all, gives byte for byte that text, or old and new rows disagree."""
    expected = audit.canonical_text(audit._canonical(value))
    assert audit.encode(value) == expected


def test_a_change_recorded_once_is_written_as_given(session):
    """What record_change encodes is what verify recomputes: the chain holds across a
    commit of changes with datetimes, tuples and integer keys."""
    from datetime import datetime

    from core.changes import record_change

    when = datetime(2026, 12, 4, 8, 30, tzinfo=UTC)
    record_change(
        session, actor="user:test", action="thing.changed", entity="thing", entity_id=7,
        before={"at": when, "pair": (1, 2)}, after={"codes": {3: "x", 10: "y"}, "at": when},
    )  # fmt: skip
    session.flush()
    session.commit()
    session.expunge_all()
    row = session.scalars(
        text("SELECT after FROM audit_event WHERE entity = 'thing' ORDER BY id DESC LIMIT 1")
    ).one()
    assert row == {"codes": {"3": "x", "10": "y"}, "at": str(when)}  # as it always was
    event = session.scalars(
        text("SELECT payload FROM event WHERE type = 'thing.changed' ORDER BY id DESC LIMIT 1")
    ).one()
    assert event == row
    assert audit.verify(session).ok
