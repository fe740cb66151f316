"""Group commit of alert intake (command/alert_queue.py, alerts_router.take_in): batching,
admission, and a batch's failure isolated to the alert that caused it."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from command.auth import service as auth
from command.auth.models import ApiNonce
from command.incidents.models import Incident
from command.intake import cap
from command.intake import service as intake
from command.intake.models import Alert
from command.intake.queue import AlertQueue, Busy, Item
from command.intake.router import take_in
from command.zones.models import WarningZone
from core.config import Settings
from core.db import AuditedSession
from core.errors import Unauthenticated
from tests.support.alert_traffic import generate, shape_of
from tests.support.cap import alert_xml, square
from tests.support.db import chain_ok

# --- the queue (no database) ----------------------------------------------------------


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_posts_that_arrive_while_a_batch_runs_make_the_next_batch() -> None:
    seen: list[list[bytes]] = []
    release = threading.Event()

    def take(items: Sequence[Item]) -> list[Any]:
        seen.append([i.body for i in items])
        release.wait(5)
        return [({"body": i.body.decode()}, True) for i in items]

    async def main() -> list[Any]:
        queue = AlertQueue(take, max_batch=4, max_waiting=100, timeout_s=5)
        first = asyncio.ensure_future(queue.submit(b"a0", "x", caller()))
        await asyncio.sleep(0.05)  # a0 is being taken in alone
        rest = [asyncio.ensure_future(queue.submit(f"b{n}".encode(), "x", caller()))
                for n in range(6)]  # fmt: skip
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest)

    answers = _run(main())
    assert [a[0]["body"] for a in answers] == ["a0", "b0", "b1", "b2", "b3", "b4", "b5"]
    # in arrival order, at most max_batch per batch
    assert seen == [[b"a0"], [b"b0", b"b1", b"b2", b"b3"], [b"b4", b"b5"]]


def test_a_full_queue_and_a_late_turn_are_busy_and_never_taken_in() -> None:
    taken: list[bytes] = []

    def slow(items: Sequence[Item]) -> list[Any]:
        taken.extend(i.body for i in items)
        time.sleep(0.3)
        return [({}, True) for _ in items]

    async def main() -> list[Any]:
        queue = AlertQueue(slow, max_batch=10, max_waiting=2, timeout_s=0.1)
        running = asyncio.ensure_future(queue.submit(b"first", "x", caller()))
        await asyncio.sleep(0.05)
        late = asyncio.ensure_future(queue.submit(b"late", "x", caller()))
        also = asyncio.ensure_future(queue.submit(b"also-late", "x", caller()))
        await asyncio.sleep(0)
        with pytest.raises(Busy, match="full"):
            await queue.submit(b"one-too-many", "x", caller())
        return await asyncio.gather(running, late, also, return_exceptions=True)

    first, late, also = _run(main())
    assert first == ({}, True)
    assert isinstance(late, Busy) and isinstance(also, Busy)
    assert "too long" in str(late)
    assert taken == [b"first"]


def test_a_failed_batch_answers_every_poster_with_its_error() -> None:
    def broken(items: Sequence[Item]) -> list[Any]:
        raise RuntimeError("database went away")

    async def main() -> list[Any]:
        queue = AlertQueue(broken, max_batch=10, max_waiting=10, timeout_s=5)
        posts = [queue.submit(f"{n}".encode(), "x", caller()) for n in range(3)]
        return await asyncio.gather(*posts, return_exceptions=True)

    results = _run(main())
    assert [str(r) for r in results] == ["database went away"] * 3


def caller() -> auth.Principal:
    return auth.Principal(kind="apikey", id=1, name="warning-system", role="machine")


# --- take_in, against the database ----------------------------------------------------


@pytest.fixture
def signer(session: Session, settings: Settings) -> Any:
    key, secret = auth.add_api_key(session, name="warning-system", secret_key=settings.secret_key)
    session.commit()
    ages = iter(range(10_000))
    now = int(time.time())

    def item(body: str, *, stamp: str | None = None, signature: str | None = None) -> Item:
        raw = body.encode()
        stamp = stamp or str(now - next(ages))
        signed = auth.SignedRequest(
            key.key_id, stamp, signature or auth.sign(secret, stamp, raw), raw
        )
        return Item(raw, "application/cap+xml", signed, 0.0, None)  # type: ignore[arg-type]

    return item


def _status(result: Any) -> Any:
    if isinstance(result, tuple):
        answer, created = result
        return (201 if created else 200, answer["action"])
    return type(result).__name__


def test_a_batch_applies_its_alerts_in_order_as_if_one_by_one(
    session_factory: sessionmaker[Session], settings: Settings, signer: Any, session: Session
) -> None:
    sent = datetime.now(UTC).replace(microsecond=0)
    ref = f"warning@city.gov.cn,QB-1,{sent.isoformat()}"
    first = alert_xml("QB-1", sent=sent)
    batch = [
        signer(first),
        signer(first),  # a retry in the same batch: the first answer again
        signer(alert_xml("QB-2", sent=sent + timedelta(minutes=1), msg_type="Update",
                         references=ref, areas=[square(116.40, 39.91), square(116.42, 39.91)])),
        signer(alert_xml("QB-3", sent=sent + timedelta(minutes=2))),
    ]  # fmt: skip
    results = take_in(session_factory, settings, batch)
    assert [_status(r) for r in results] == [
        (201, "created"), (200, "created"), (201, "updated"), (201, "created"),
    ]  # fmt: skip
    created, again, updated, other = (r[0] for r in results)
    assert again == {**created, "duplicate": True}
    # The Update saw the Alert's uncommitted incident: it changed it and added one.
    assert updated["updated_incident_ids"] == created["incident_ids"]
    assert len(updated["incident_ids"]) == 1 and updated["thread_id"] == created["alert_id"]
    assert other["thread_id"] == other["alert_id"] != created["alert_id"]
    # Plain alerts (QB-3: an Actual Alert referencing nothing) are taken in together, ahead
    # of the rest: QB-3's row is written before QB-2's.
    stored = session.scalars(select(Alert.identifier).order_by(Alert.id)).all()
    assert stored == ["QB-1", "QB-3", "QB-2"]
    assert chain_ok(session)


def test_one_bad_alert_fails_only_itself(
    session_factory: sessionmaker[Session],
    settings: Settings,
    signer: Any,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = intake._store_parts

    def store_parts(conn: Any, stored: Any) -> None:
        if any(a.identifier == "QB-BAD" for _, a in stored):  # the database refuses it
            conn.execute(text("SELECT 1 / 0"))
        real(conn, stored)

    monkeypatch.setattr(intake, "_store_parts", store_parts)
    batch = [signer(alert_xml("QB-OK-1")), signer(alert_xml("QB-BAD")),
             signer(alert_xml("QB-OK-2"))]  # fmt: skip
    results = take_in(session_factory, settings, batch)
    assert [_status(r) for r in results] == [(201, "created"), "DataError", (201, "created")]
    stored = session.scalars(select(Alert.identifier).order_by(Alert.id)).all()
    assert stored == ["QB-OK-1", "QB-OK-2"]
    ok_ids = [i for r in (results[0], results[2]) for i in r[0]["incident_ids"]]
    assert sorted(session.scalars(select(Incident.id).where(Incident.alert_id.is_not(None)))) \
        == sorted(ok_ids)  # fmt: skip
    # The bad alert's signature was rolled back with it: its poster may send it again.
    bad_signature = batch[1].caller.signature.removeprefix("sha256=")  # type: ignore[union-attr]
    assert session.get(ApiNonce, bad_signature) is None
    assert chain_ok(session)


def test_a_batch_checks_each_signature_and_spends_it_once(
    session_factory: sessionmaker[Session], settings: Settings, signer: Any, session: Session
) -> None:
    body = alert_xml("QB-SIG")
    good = signer(body)
    batch = [
        good,
        signer(body, stamp=good.caller.timestamp, signature=good.caller.signature),  # type: ignore[union-attr]
        signer(alert_xml("QB-FORGED"), signature="sha256=" + "0" * 64),
        signer(alert_xml("QB-OLD"), stamp=str(int(time.time()) - 3600)),
    ]
    results = take_in(session_factory, settings, batch)
    assert _status(results[0]) == (201, "created")
    assert [str(r) for r in results[1:]] == [
        "replayed request: this signature was used already; sign again",
        "bad signature",
        "X-Timestamp is outside the allowed clock skew",
    ]
    assert all(isinstance(r, Unauthenticated) for r in results[1:])
    assert session.scalars(select(Alert.identifier)).all() == ["QB-SIG"]
    # A later batch cannot reuse it either.
    (again,) = take_in(session_factory, settings, [batch[1]])
    assert isinstance(again, Unauthenticated) and "replayed" in str(again)


# --- set-based intake of plain alerts: the same outcome as one by one ------------------


def _posted(body: str | bytes, principal: auth.Principal) -> intake.Posted:
    raw = body.encode() if isinstance(body, str) else body
    return intake.Posted(cap.parse(raw, "application/cap+xml"), raw, "application/cap+xml",
                         principal)  # fmt: skip


def _taken(
    connection: Connection, batches: list[list[intake.Posted]], now: datetime, *, batched: bool
) -> tuple[list[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    """Take the batches in, in a savepoint rolled back after; each answer's shape (its
    thread named by the identifier of the thread's first alert) and the incidents and zones
    left, by alert identifier."""
    savepoint = connection.begin_nested()
    try:
        with AuditedSession(bind=connection, join_transaction_mode="create_savepoint") as s:
            answers = []
            for batch in batches:
                if batched:
                    answers += intake.intake_many(s, batch, now)
                else:
                    answers += [
                        intake.intake(s, p.alert, raw=p.raw, content_type=p.content_type,
                                      principal=p.principal, now=now)
                        for p in batch
                    ]  # fmt: skip
            names = {i: ident for i, ident in s.execute(select(Alert.id, Alert.identifier))}
            shapes = [
                (*shape_of(201 if created else 200, a), names[a["thread_id"]],
                 sorted(w["field"] for w in a["warnings"]))
                for a, created in answers
            ]  # fmt: skip
            left: Counter[tuple[Any, ...]] = Counter()
            for ident, status, review, kind, level in s.execute(
                select(Alert.identifier, Incident.status, Incident.needs_review, Incident.type,
                       Incident.severity).join(Alert, Incident.alert_id == Alert.id)
            ):  # fmt: skip
                left[("incident", ident, status, review, kind, level)] += 1
            for ident, status in s.execute(
                select(Alert.identifier, WarningZone.status).join(
                    Alert, WarningZone.alert_id == Alert.id
                )
            ):
                left[("zone", ident, status)] += 1
    finally:
        savepoint.rollback()
    return shapes, left


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_ends_as_if_its_alerts_came_one_by_one(connection: Connection, seed: int) -> None:
    """Realistic traffic (the benchmark's: alerts, updates, cancels, re-posts) with some
    messages arriving before the one they follow, taken in by batches of 25 and one by one:
    the same answers and the same incidents and zones, every time."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    messages = generate(160, 4.0, rng, now - timedelta(minutes=1))
    order = list(messages)
    for m in messages:  # some Updates and Cancels overtake the message they follow
        if m.kind in ("Update", "Cancel") and rng.random() < 0.3:
            at = order.index(m)
            before = max(n for n, o in enumerate(order[:at]) if m.of in (o.index, o.of))
            order.insert(before, order.pop(at))
    bodies = [m.body for m in order]
    posted = [_posted(b, caller()) for b in bodies]
    batches = [posted[i : i + 25] for i in range(0, len(posted), 25)]
    one_by_one = _taken(connection, batches, now, batched=False)
    together = _taken(connection, batches, now, batched=True)
    shapes = Counter(shape[1] for shape in one_by_one[0])
    assert shapes["created"] > 100 and shapes["updated"] > 5 and shapes["stale"] > 0  # covered
    assert together == one_by_one


def test_a_plain_alert_already_named_by_a_later_one_is_stale(session: Session) -> None:
    """Plain in form, but an Update that names it came first (in an earlier batch, or
    earlier in this one): it is stored stale and creates nothing."""
    poster = caller()
    sent = datetime.now(UTC).replace(microsecond=0)
    for n, same_batch in enumerate((False, True)):
        ref = f"warning@city.gov.cn,QS-{n},{sent.isoformat()}"
        update = _posted(alert_xml(f"QS-{n}-U", sent=sent + timedelta(minutes=1),
                                   msg_type="Update", references=ref), poster)  # fmt: skip
        original = _posted(alert_xml(f"QS-{n}", sent=sent), poster)
        other = _posted(alert_xml(f"QS-{n}-other", sent=sent), poster)
        if same_batch:
            results = intake.intake_many(session, [update, original, other])
        else:
            results = intake.intake_many(session, [update])
            results += intake.intake_many(session, [original, other])
        (u, _), (o, _), (x, _) = results
        assert u["action"] == "created"  # an Update of nothing here: taken as new
        assert (o["action"], o["incident_ids"], o["thread_id"]) == ("stale", [], u["alert_id"])
        assert x["action"] == "created" and x["thread_id"] == x["alert_id"]


def test_plain_duplicates_answer_with_the_first(session: Session) -> None:
    poster = caller()
    body = alert_xml("QD-1")
    ((first, created),) = intake.intake_many(session, [_posted(body, poster)])
    results = intake.intake_many(
        session, [_posted(alert_xml("QD-2"), poster), _posted(body, poster),
                  _posted(body, poster)]
    )  # fmt: skip
    assert created and [c for _, c in results] == [True, False, False]
    assert results[1][0] == results[2][0] == {**first, "duplicate": True}
    assert session.scalar(select(func.count()).where(Alert.identifier == "QD-1")) == 1
