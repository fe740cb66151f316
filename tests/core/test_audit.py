"""The audit chain on real PostGIS: canonical form, keyed links, every bad row reported."""

from __future__ import annotations

import hashlib
import itertools
import math
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from core import audit, changes
from core.changes import record_change


def _append(session, n: int, **after) -> list[audit.AuditEvent]:
    """``n`` changes committed (sealed in the commit: the session has no sealer)."""
    for i in range(n):
        record_change(
            session,
            actor="user:test",
            action="incident.created",
            entity="incident",
            entity_id=i,
            before=None,
            after={"title": f"fire {i}", "n": i, "ratio": 0.1 + 0.2, **after},
            topics=(),
        )
    session.commit()
    session.expunge_all()
    return list(
        session.scalars(select(audit.AuditEvent).order_by(audit.AuditEvent.id.desc()).limit(n))
    )[::-1]


def _walk(session, keys=None) -> audit.Walk:
    session.expunge_all()  # verify what the database returns, not the objects in memory
    return audit.walk(session, keys or changes.keyring())


def test_rows_chain_with_keyed_links_and_verify(session):
    rows = _append(session, 5)
    for a, b in itertools.pairwise(rows):
        assert b.prev_hash == a.hash
    key = changes.keyring().current
    assert {r.key_id for r in rows} == {key.id}
    chain_id = audit.chain(session).id
    for row in rows:  # an HMAC over the chain, the previous hash and the canonical body
        assert row.hash == key.link(chain_id, row.prev_hash, audit.row_body(row))
        assert row.hash != audit.legacy_link(row.prev_hash, audit.row_body(row))
    found = _walk(session)
    assert found.bad_count == 0 and found.checked >= 5 and found.last_id == rows[-1].id


def test_update_and_delete_are_refused_by_the_database(session):
    (row,) = _append(session, 1)
    for sql in (
        "UPDATE audit_event SET actor = 'someone else' WHERE id = :id",
        "DELETE FROM audit_event WHERE id = :id",
        "UPDATE audit_chain SET legacy_until_id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text(sql), {"id": row.id})
    for table in ("audit_event", "audit_chain"):
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text(f"TRUNCATE {table}"))


def _as_superuser(session, sql: str, **params) -> None:
    """What a superuser (or the tables' owner) can do: switch the triggers off and write."""
    for table in ("audit_event", "audit_chain"):
        session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    session.execute(text(sql), params)
    for table in ("audit_event", "audit_chain"):
        session.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
    session.expunge_all()


def test_every_edited_row_is_reported_not_only_the_first(session):
    rows = _append(session, 8)
    for victim in (rows[2], rows[5]):
        _as_superuser(
            session,
            'UPDATE audit_event SET after = \'{"title": "x"}\' WHERE id = :id',
            id=victim.id,
        )
    found = _walk(session)
    assert [(b.id, b.reason) for b in found.bad] == [
        (rows[2].id, "row content does not match its hash"),
        (rows[5].id, "row content does not match its hash"),
    ]
    assert found.bad_count == 2


def test_the_row_after_a_deleted_one_is_reported(session):
    rows = _append(session, 6)
    _as_superuser(session, "DELETE FROM audit_event WHERE id = :id", id=rows[2].id)
    found = _walk(session)
    assert [(b.id, b.reason) for b in found.bad] == [
        (rows[3].id, "prev_hash is not the previous row's hash")
    ]


def test_a_chain_recomputed_without_the_key_does_not_verify(session):
    """The probe's attack: triggers off, row changed, every later link recomputed. Without
    the key the forger can only make SHA-256 links (or guess a key): each row is bad."""
    rows = _append(session, 6)
    chain_id = audit.chain(session).id
    session.expunge_all()  # the rows are edited below as values, not flushed
    forger = audit.AuditKey.derive("not-the-server-secret-" * 2)
    prev = rows[1].hash
    for row in rows[2:]:
        if row is rows[2]:
            row.actor = "user:mallory"
        body = audit.row_body(row)
        for attempt, digest in (
            ("sha256", audit.legacy_link(prev, body)),
            ("guessed key", forger.link(chain_id, prev, body)),
        ):
            assert digest != row.hash, attempt
        digest = forger.link(chain_id, prev, body)
        _as_superuser(
            session,
            "UPDATE audit_event SET actor = :actor, prev_hash = :prev, hash = :hash WHERE id = :id",
            actor=row.actor,
            prev=prev,
            hash=digest,
            id=row.id,
        )
        prev = digest
    found = _walk(session)
    assert [b.id for b in found.bad] == [r.id for r in rows[2:]]
    assert {b.reason for b in found.bad} == {"row content does not match its hash"}


def test_unkeyed_links_are_refused_after_the_upgrade(session):
    """Rewriting rows as 'legacy' (plain SHA-256, no key id) does not pass either: a
    database made after keyed links came has no legacy rows."""
    rows = _append(session, 3)
    prev = rows[0].hash
    for row in rows[1:]:
        digest = audit.legacy_link(prev, audit.row_body(row))
        _as_superuser(
            session,
            "UPDATE audit_event SET key_id = NULL, prev_hash = :p, hash = :h WHERE id = :id",
            p=prev,
            h=digest,
            id=row.id,
        )
        prev = digest
    found = _walk(session)
    assert [(b.id, b.reason) for b in found.bad] == [
        (r.id, "unkeyed link where only keyed links may be") for r in rows[1:]
    ]


def test_rotated_keys_still_verify_old_rows_and_unknown_keys_are_reported(session):
    old = audit.Keyring.from_secrets("old-secret-" * 4)
    new = audit.Keyring.from_secrets("new-secret-" * 4, retired=["old-secret-" * 4])
    session.info[changes.KEYRING] = old
    first = _append(session, 2)
    session.info[changes.KEYRING] = new
    second = _append(session, 2)
    assert {r.key_id for r in first} == {old.current.id}
    assert {r.key_id for r in second} == {new.current.id} != {old.current.id}
    assert second[0].prev_hash == first[-1].hash  # one chain across the rotation
    ours = [r.id for r in first + second]
    assert not [b for b in _walk(session, new).bad if b.id in ours]
    forgot = audit.Keyring.from_secrets("new-secret-" * 4)
    bad = [b for b in _walk(session, forgot).bad if b.id in ours]
    assert [b.id for b in bad] == [r.id for r in first]
    assert bad[0].reason == f"linked with key {old.current.id}, which this server does not have"


# --- the canonical form ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        (-0.0, 0.0),
        (1e16, 10**16),
        (-1.5e16, -15 * 10**15),
        (1e23, 10**23),  # the decimal text (int(1e23) is 99999999999999991611392)
        (1e300, 10**300),
        (1e-7, 1e-7),
        (5e-324, 5e-324),
        (0.1 + 0.2, 0.1 + 0.2),
        ({1: (1, 2), None: True, 1.5: "x"}, {"1": [1, 2], "null": True, "1.5": "x"}),
    ],
)
def test_normalize_gives_what_jsonb_gives_back(session, value, normal):
    assert audit.normalize(value) == normal
    assert audit.encode(value) == audit.canonical_text(normal)
    back = session.execute(
        text("SELECT CAST(:v AS jsonb)"),
        {
            "v": audit.canonical_text(
                value if not isinstance(value, dict) else audit.normalize(value)
            )
        },
    ).scalar_one()
    assert audit.canonical_text(back) == audit.encode(value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {"x": [math.nan]}])
def test_non_finite_numbers_have_no_canonical_form(bad):
    with pytest.raises(ValueError, match="no JSON form"):
        audit.encode(bad)


def test_a_negative_zero_keeps_the_chain_intact(session):
    """The probe's first finding: -0.0 was hashed as -0.0, stored by jsonb as 0.0."""
    rows = _append(session, 2, at=[-0.0, 60.17], heading_deg=-0.0, nested={"z": [-0.0]})
    assert rows[0].after["at"] == [0.0, 60.17]
    found = _walk(session)
    assert found.bad_count == 0, found.bad


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([-0.0, 0.0, 1e16, -1e300, 1e-300, 5e-324, 1.7976931348623157e308])
    | st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(
                st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=8
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=16,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=_JSON, after=_JSON)
def test_any_json_value_hashes_the_same_after_the_database(session, before, after):
    """Whatever JSON the API takes (signed zeros, huge and tiny floats, unicode, nesting):
    staged, sealed, read back from jsonb, its body is the one its link was made over."""
    record_change(
        session,
        actor="user:ü",
        action="thing.changed",
        entity="thing",
        entity_id="7",
        before={"v": before},
        after={"v": after},
        topics=(),
    )
    session.commit()
    session.expunge_all()
    row = session.scalars(select(audit.AuditEvent).order_by(audit.AuditEvent.id.desc())).first()
    assert row.before == {"v": audit.normalize(before)}
    assert row.after == {"v": audit.normalize(after)}
    key = changes.keyring().current
    assert row.hash == key.link(audit.chain(session).id, row.prev_hash, audit.row_body(row))


_BODY_PARTS = st.tuples(st.text(), st.text(), st.text())


@given(
    at=st.datetimes(timezones=st.timezones()),
    names=_BODY_PARTS,
    entity_id=st.none() | st.text(),
    before=_JSON,
    after=_JSON,
)
def test_a_body_built_from_encoded_parts_is_the_canonical_whole(
    at, names, entity_id, before, after
):
    actor, action, entity = names
    whole = {
        "at": at.astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "before": audit.normalize(before),
        "after": audit.normalize(after),
    }
    assert audit.body(
        at, actor, action, entity, entity_id, audit.encode(before), audit.encode(after)
    ) == audit.canonical_text(whole)


def test_legacy_links_are_plain_sha256():
    assert (
        audit.legacy_link("ab" * 32, "{}")
        == hashlib.sha256(f"{'ab' * 32}|{{}}".encode()).hexdigest()
    )


def test_a_change_recorded_once_is_written_as_given(session):
    """What record_change encodes is what the chain and the events hold: datetimes as
    text, tuples as lists, integer keys as text."""
    when = datetime(2026, 12, 4, 8, 30, tzinfo=UTC)
    record_change(
        session,
        actor="user:test",
        action="thing.changed",
        entity="thing",
        entity_id=7,
        before={"at": when, "pair": (1, 2)},
        after={"codes": {3: "x", 10: "y"}, "at": when},
    )
    session.commit()
    session.expunge_all()
    row = session.scalars(
        text("SELECT after FROM audit_event WHERE entity = 'thing' ORDER BY id DESC LIMIT 1")
    ).one()
    assert row == {"codes": {"3": "x", "10": "y"}, "at": str(when)}
    event = session.scalars(
        text("SELECT payload FROM event WHERE type = 'thing.changed' ORDER BY id DESC LIMIT 1")
    ).one()
    assert event == row
    assert _walk(session).bad_count == 0


def test_api_writes_are_audited_with_before_and_after(client, world, session):
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [-0.0, 60.17]},
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
    assert (verdict["bad_count"], verdict["bad_rows"], verdict["pending"]) == (0, [], 0)
