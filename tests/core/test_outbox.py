"""The event outbox: rows in the same transaction, gap-free sequence per topic."""

from __future__ import annotations

import threading

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core import outbox


def test_seq_is_gap_free_per_topic(session):
    a = [
        outbox.publish(session, topic="t:a", type="x.happened", payload={"i": i}) for i in range(3)
    ]
    b = outbox.publish(session, topic="t:b", type="x.happened", payload={})
    a.append(outbox.publish(session, topic="t:a", type="x.happened", payload={"i": 3}))
    assert [e.seq for e in a] == [1, 2, 3, 4]
    assert b.seq == 1
    got = outbox.events_after(session, topic="t:a", seq=2)
    assert [(e.seq, e.payload) for e in got] == [(3, {"i": 2}), (4, {"i": 3})]


def test_rolled_back_change_leaves_no_event(session):
    with session.begin_nested() as sp:
        outbox.publish(session, topic="t:rollback", type="x.happened", payload={})
        sp.rollback()
    assert outbox.events_after(session, topic="t:rollback", seq=0) == []


def test_refused_request_writes_no_event(client, world, count):
    before = (count("event"), count("audit_event"), count("incident"))
    bad = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [24.9, 95.0]},
        "properties": {"title": "x", "type": "fire"},
    }
    assert client.post("/api/incidents", json=bad, headers=world.h("dispatcher")).status_code == 422
    assert (count("event"), count("audit_event"), count("incident")) == before


def test_concurrent_writers_commit_in_seq_order(engine):
    """A later seq is never visible while an earlier one is still uncommitted."""
    topic = "t:concurrent"
    first = Session(engine)
    outbox.publish(first, topic=topic, type="x", payload={})  # holds the topic row lock
    done = threading.Event()

    def second_writer() -> None:
        with Session(engine) as s:
            outbox.publish(s, topic=topic, type="x", payload={})
            s.commit()
        done.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    try:
        # The second writer waits for the first: nothing with seq 2 can be seen yet.
        assert not done.wait(0.5)
        with Session(engine) as reader:
            assert (
                reader.scalars(select(outbox.Event.seq).where(outbox.Event.topic == topic)).all()
                == []
            )
        first.commit()
        thread.join(10)
        with Session(engine) as reader:
            seqs = reader.scalars(
                select(outbox.Event.seq)
                .where(outbox.Event.topic == topic)
                .order_by(outbox.Event.id)
            ).all()
        assert seqs == [1, 2]
    finally:
        first.close()
        thread.join(10)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM event WHERE topic = :t"), {"t": topic})
            conn.execute(text("DELETE FROM topic_seq WHERE topic = :t"), {"t": topic})
