"""The event outbox: events staged with their change, sequenced gap-free per topic."""

from __future__ import annotations

from core import outbox
from core.changes import record_change


def _publish(session, topic: str, i: int | None = None) -> None:
    record_change(
        session,
        actor="user:test",
        action="x.happened",
        entity="x",
        entity_id=i,
        before=None,
        after={} if i is None else {"i": i},
        topics=(topic,),
    )


def test_seq_is_gap_free_per_topic(session):
    for i in range(3):
        _publish(session, "t:a", i)
    _publish(session, "t:b")
    _publish(session, "t:a", 3)
    session.commit()
    got = outbox.events_after(session, topic="t:a", seq=0)
    assert [(e.seq, e.type, e.payload) for e in got] == [
        (1, "x.happened", {"i": 0}),
        (2, "x.happened", {"i": 1}),
        (3, "x.happened", {"i": 2}),
        (4, "x.happened", {"i": 3}),
    ]
    assert [e.seq for e in outbox.events_after(session, topic="t:b", seq=0)] == [1]
    assert [e.seq for e in outbox.events_after(session, topic="t:a", seq=2)] == [3, 4]


def test_one_change_on_several_topics_gets_each_topics_next_seq(session):
    _publish(session, "t:c")
    session.commit()
    record_change(
        session,
        actor="user:test",
        action="x.moved",
        entity="x",
        entity_id=1,
        before={"i": 0},
        after=None,
        topics=("t:c", "t:d"),
        payload={"why": "test"},
    )
    session.commit()
    c = outbox.events_after(session, topic="t:c", seq=0)
    d = outbox.events_after(session, topic="t:d", seq=0)
    assert [(e.seq, e.type, e.payload) for e in c] == [
        (1, "x.happened", {}),
        (2, "x.moved", {"why": "test"}),
    ]
    assert [(e.seq, e.payload) for e in d] == [(1, {"why": "test"})]


def test_a_deletion_publishes_what_was_deleted(session):
    record_change(
        session,
        actor="user:test",
        action="x.deleted",
        entity="x",
        entity_id=1,
        before={"i": 9},
        after=None,
        topics=("t:del",),
    )
    session.commit()
    assert [e.payload for e in outbox.events_after(session, topic="t:del", seq=0)] == [{"i": 9}]


def test_rolled_back_change_leaves_no_event(session):
    with session.begin_nested() as sp:
        _publish(session, "t:rollback")
        sp.rollback()
    session.rollback()
    session.commit()
    assert outbox.events_after(session, topic="t:rollback", seq=0) == []


def test_refused_request_writes_no_event(client, world, count):
    before = (count("event"), count("audit_event"), count("incident"), count("pending_change"))
    bad = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [24.9, 95.0]},
        "properties": {"title": "x", "type": "fire"},
    }
    assert client.post("/api/incidents", json=bad, headers=world.h("dispatcher")).status_code == 422
    after = (count("event"), count("audit_event"), count("incident"), count("pending_change"))
    assert after == before


def test_a_savepoint_rolled_back_forgets_only_what_was_recorded_in_it(session):
    _publish(session, "t:sp", 1)
    with session.begin_nested() as sp:
        _publish(session, "t:sp", 2)
        sp.rollback()
    _publish(session, "t:sp", 3)
    session.commit()
    got = outbox.events_after(session, topic="t:sp", seq=0)
    assert [e.payload for e in got] == [{"i": 1}, {"i": 3}]
