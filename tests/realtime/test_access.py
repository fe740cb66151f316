"""Who sees what over /ws, and for how long (issue 14: points 4, 5 and 6, socket side).

- A responder on ``situation`` sees its own unit's tasks only, in the snapshot and live, as
  over HTTP; every other role sees every unit's. The seqs it is not sent are announced
  (``prev``), so neither the client nor the server's sender takes them for a gap.
- A connected user who is disabled, changes role or unit, or whose tokens are revoked, by
  any path (plain SQL here), is closed with 4001 within 5 s; their actions are refused.
- Integers beyond 64 bits, NUL characters and non-finite numbers are refused as
  ``invalid_message`` (with the message's key), never "unavailable; retry", and change
  nothing.

Real server in a thread, real PostgreSQL, real sockets (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
import websockets
from sqlalchemy import func, select, text

from command.app import create_app
from command.incidents.models import Incident
from command.tasks.models import ACTIVE_TASK_STATUSES, Task
from core.config import Settings
from core.outbox import Event
from realtime import store
from resources.models import UnitPosition
from tests.support.live import SECRET, LiveDb, Ws, dispatch, finish, head, incident
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.anyio

RECHECK_S = 1.0
ROLES = ("commander", "dispatcher", "responder", "planner", "auditor", "admin")


@pytest.fixture(scope="module")
def server(live_db: LiveDb) -> Iterator[tuple[str, Any]]:
    settings = Settings(
        env="test",
        database_url=live_db.url,
        secret_key=SECRET,
        ws_ack_timeout_s=1.0,
        bus_poll_interval_s=0.5,
        ws_heartbeat_s=30,
        ws_recheck_s=RECHECK_S,
    )
    app = create_app(settings)
    with serve_in_thread(app, name="access-server", start_s=60) as base:
        yield base, app


@pytest.fixture
def base(server: tuple[str, Any]) -> str:
    return server[0]


def flatten(message: dict[str, Any]) -> list[dict[str, Any]]:
    return list(message["messages"]) if message["type"] == "batch" else [message]


async def events_until(ws: Ws, last_seq: int, within: float = 15.0) -> list[dict[str, Any]]:
    """The situation events received until one at or past ``last_seq`` (batches opened)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while not got or got[-1]["seq"] < last_seq:
        message = await ws.recv_until(
            lambda m: m["type"] in ("event", "batch", "resync", "error"),
            within=deadline - time.monotonic(),
        )
        assert message["type"] in ("event", "batch"), message
        got.extend(m for m in flatten(message) if m["topic"] == "situation")
    return got


def table_events(db: LiveDb, after: int, upto: int) -> list[Event]:
    with db.sessions() as s:
        stmt = (
            select(Event)
            .where(Event.topic == "situation", Event.seq > after, Event.seq <= upto)
            .order_by(Event.seq)
        )
        return list(s.scalars(stmt))


def visible_to(role: str, own_unit: int, event: Event) -> bool:
    """What each role may see on `situation`: all of it, but a responder only its own
    unit's tasks (as over HTTP, where another unit's task is a 403)."""
    if role != "responder" or not event.type.startswith("task."):
        return True
    return bool(event.payload["unit_id"] == own_unit)


def assert_contiguous_or_announced(start: int, events: list[dict[str, Any]]) -> None:
    """Each event follows the last one applied, or says (``prev``) which one it follows."""
    last = start
    for e in events:
        assert e["seq"] == last + 1 or e.get("prev") == last, (last, e["seq"], e.get("prev"))
        assert "prev" not in e or e["prev"] < e["seq"] - 1  # only when seqs were left out
        last = e["seq"]


def token_for(db: LiveDb, role: str, unit: int) -> str:
    return db.token(db.responder(unit) if role == "responder" else role)


async def open_situation(
    base: str, token: str, *, batch: bool = False, resume: int | None = None
) -> tuple[Ws, dict[str, Any]]:
    ws = await Ws.open(base)
    hello: dict[str, Any] = {"type": "hello", "token": token, "subscribe": ["situation"]}
    if resume is not None:
        hello["resume"] = {"situation": resume}
    if batch:
        hello["batch"] = True
    await ws.send(hello)
    welcome = await ws.recv_until(lambda m: m["type"] in ("welcome", "error"))
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


# --- point 4: what each role sees of the situation -----------------------------------


@pytest.mark.parametrize(
    ("role", "batch"), [(r, False) for r in ROLES] + [("responder", True), ("dispatcher", True)]
)
async def test_each_role_sees_the_tasks_it_may_see_in_snapshot_live_and_replay(
    live_db: LiveDb, base: str, role: str, batch: bool, monkeypatch: pytest.MonkeyPatch
):
    own, other, third = live_db.add_units(3)
    other_task = dispatch(live_db, base, other)
    own_task = dispatch(live_db, base, own)
    # Reads of the event table by the connection's sender: one to catch up after the
    # snapshot, then none, not one per run of events left out (nor forever).
    reads: list[tuple[str, int]] = []
    real = store.events_range

    def counted(session: Any, topic: str, after: int, upto: int | None) -> list[store.Frame]:
        reads.append((topic, after))
        return real(session, topic, after, upto)

    monkeypatch.setattr(store, "events_range", counted)
    ws, _ = await open_situation(base, token_for(live_db, role, own), batch=batch)
    try:
        resync = await ws.recv_until(lambda m: m["type"] == "resync")
        start = resync["seq"]
        with live_db.sessions() as s:
            active = list(s.scalars(select(Task).where(Task.status.in_(ACTIVE_TASK_STATUSES))))
            open_incidents = s.scalar(
                select(func.count()).where(Incident.status.not_in(("closed", "cancelled")))
            )
        expected = {t.id for t in active if role != "responder" or t.unit_id == own}
        snapshot = resync["snapshot"]
        assert {t["id"] for t in snapshot["tasks"]} == expected
        assert own_task in expected and (other_task in expected) == (role != "responder")
        # The rest of the map is everyone's.
        assert len(snapshot["units"]) == len(live_db.unit_ids)
        assert len(snapshot["incidents"]) == open_incidents
        assert set(snapshot) >= {"incidents", "units", "shelters", "stock", "warning_zones"}

        # Live: another unit's task from start to done, one of the own unit's steps, and
        # an incident as the last event.
        third_task = dispatch(live_db, base, third)
        finish(live_db, base, other_task, other)
        r = httpx.post(
            f"{base}/api/tasks/{own_task}/status",
            json={"status": "accepted"},
            headers=live_db.headers(live_db.responder(own)),
        )
        assert r.status_code == 200, r.text
        incident(live_db, base, "The last one")
        end = head(live_db, "situation")
        live = await events_until(ws, end)
    finally:
        await ws.close()

    wanted = [e for e in table_events(live_db, start, end) if visible_to(role, own, e)]
    assert [(e["seq"], e["event"]) for e in live] == [(e.seq, e.type) for e in wanted]
    assert_contiguous_or_announced(start, live)
    task_units = {e["data"]["unit_id"] for e in live if e["event"].startswith("task.")}
    assert task_units == ({own} if role == "responder" else {own, other, third})
    if role != "responder":
        assert all("prev" not in e for e in live)  # nothing left out, nothing announced
    else:
        assert any("prev" in e for e in live)
        assert third_task not in {e["data"].get("id") for e in live if "task." in e["event"]}

    assert len(reads) == 1, reads

    # Replay (resume from the snapshot's seq): the same events, the same way, in one read.
    reads.clear()
    ws, welcome = await open_situation(
        base, token_for(live_db, role, own), batch=batch, resume=start
    )
    try:
        assert welcome["topics"]["situation"] == end
        replayed = await events_until(ws, end)
        with pytest.raises(TimeoutError):  # no resync, nothing more, nothing twice
            await ws.recv_until(lambda m: m["type"] != "pong", within=1.5)
    finally:
        await ws.close()
    assert [(e["seq"], e["event"], e.get("prev")) for e in replayed] == [
        (e["seq"], e["event"], e.get("prev")) for e in live
    ]
    assert len(reads) == 1, reads


async def test_a_responder_resuming_at_a_seq_it_was_not_sent_continues_cleanly(
    live_db: LiveDb, base: str
):
    """The snapshot's seq (or a too_slow resume point) may be another unit's task event:
    resuming from it neither loops nor resyncs."""
    own, other = live_db.add_units(2)
    dispatch(live_db, base, other)
    hidden = head(live_db, "situation")  # the other unit's task (or its unit's change)
    assert any(e.type.startswith("task.") for e in table_events(live_db, hidden - 3, hidden))
    incident(live_db, base, "After")
    end = head(live_db, "situation")
    ws, _ = await open_situation(base, live_db.token(live_db.responder(own)), resume=hidden - 1)
    try:
        got = await events_until(ws, end)
    finally:
        await ws.close()
    wanted = [e for e in table_events(live_db, hidden - 1, end) if visible_to("responder", own, e)]
    assert [e["seq"] for e in got] == [e.seq for e in wanted]
    assert_contiguous_or_announced(hidden - 1, got)


# --- point 5: access ends when the account changes, by any path -----------------------


def new_user(db: LiveDb, role: str) -> str:
    name = f"{role}_{secrets.token_hex(4)}"
    db.add_user(name, role)
    return name


async def until_closed(ws: Ws, within: float = 6.0) -> tuple[list[dict[str, Any]], int | None]:
    """What arrives (events and pings aside) until the server closes; and the close code."""
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    try:
        while True:
            message = await ws.recv(deadline - time.monotonic())
            if message["type"] not in ("event", "ping"):
                replies.append(message)
    except websockets.ConnectionClosed as closed:
        return replies, None if closed.rcvd is None else closed.rcvd.code


CHANGES = {
    "disabled": 'UPDATE "user" SET active = false WHERE username = :name',
    "role changed": "UPDATE \"user\" SET role = 'auditor' WHERE username = :name",
    "unit changed": 'UPDATE "user" SET unit_id = :other WHERE username = :name',
    "password changed": (
        'UPDATE "user" SET token_version = token_version + 1 WHERE username = :name'
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_change_to_the_account_by_sql_closes_the_socket_with_4001_within_5_s(
    live_db: LiveDb, base: str, change: str
):
    own, other = live_db.add_units(2)
    name = live_db.responder(own)
    phone = await Ws.open(base)
    bystander = await Ws.open(base)  # another user, unchanged: stays connected
    try:
        assert (await phone.hello(live_db.token(name), [f"unit:{own}", "situation"]))[
            "type"
        ] == "welcome"
        await bystander.hello(live_db.token("dispatcher"), ["situation"])
        with live_db.sessions() as s:
            s.execute(text(CHANGES[change]), {"name": name, "other": other})
            s.commit()
        changed_at = time.monotonic()
        farewell = await phone.recv_until(lambda m: m["type"] == "error", within=6)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await phone.recv_until(lambda m: False, within=6)
        took_s = time.monotonic() - changed_at
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert farewell["code"] == "revoked"
        assert took_s < 5.0
        await bystander.send({"type": "ping", "t": 7})
        assert (await bystander.recv_until(lambda m: m["type"] == "pong"))["t"] == 7
    finally:
        await phone.close()
        await bystander.close()


async def test_a_disabled_responders_actions_are_refused_at_once(live_db: LiveDb, base: str):
    (unit,) = live_db.add_units(1)
    topic = f"unit:{unit}"
    task_id = dispatch(live_db, base, unit)
    name = live_db.responder(unit)
    phone = await Ws.open(base)
    try:
        await phone.hello(live_db.token(name), [topic])
        assigned = await phone.recv_until(lambda m: m["type"] == "event")
        with live_db.sessions() as s:
            s.execute(text('UPDATE "user" SET active = false WHERE username = :n'), {"n": name})
            s.commit()
        # Sent at once, before the periodic re-check can have run.
        key = "pos-" + secrets.token_hex(6)
        await phone.send({"type": "position", "lon": 24.95, "lat": 60.17, "key": key})
        status_key = "st-" + secrets.token_hex(6)
        await phone.send(
            {"type": "status", "task_id": task_id, "status": "accepted", "key": status_key}
        )
        await phone.send({"type": "ack", "topic": topic, "seq": assigned["seq"]})
        replies, code = await until_closed(phone)
        assert code == 4001
    finally:
        await phone.close()
    assert all(r["type"] == "error" for r in replies), replies
    assert replies[-1]["code"] == "revoked"  # the farewell, then 4001
    with live_db.sessions() as s:
        assert s.scalar(select(func.count()).where(UnitPosition.unit_id == unit)) == 0
        task = s.get(Task, task_id)
        assert task is not None and task.status == "assigned" and task.acknowledged_at is None
        assert store.topic_state(s, topic).acked == 0


async def test_a_fresh_token_for_another_role_does_not_carry_the_old_subscriptions(
    live_db: LiveDb, base: str
):
    """A dispatcher watching unit:X, made a responder of unit Y, may not swap in a token
    of the new role on the same socket (its subscriptions were authorised for the old)."""
    from command.auth import service as auth
    from command.auth.models import User

    x, y = live_db.add_units(2)
    name = new_user(live_db, "dispatcher")
    ws = await Ws.open(base)
    try:
        assert (await ws.hello(live_db.token(name), [f"unit:{x}"]))["type"] == "welcome"
        with live_db.sessions() as s:
            s.execute(
                text("UPDATE \"user\" SET role = 'responder', unit_id = :y WHERE username = :n"),
                {"y": y, "n": name},
            )
            s.commit()
            user = s.scalars(select(User).where(User.username == name)).one()
            token = auth.issue_token(user, secret=SECRET, ttl_s=600)
        await ws.send({"type": "auth", "token": token})
        reply = await ws.recv_until(lambda m: m["type"] in ("authenticated", "error"))
        # Refused, or closed by the re-check if that came first: never taken.
        assert (reply["type"], reply.get("code")) in (("error", "forbidden"), ("error", "revoked"))
    finally:
        await ws.close()


async def test_connected_users_are_rechecked_with_one_query_per_period(
    live_db: LiveDb, base: str, server: tuple[str, Any]
):
    hub = server[1].state.hub
    units = live_db.add_units(6)
    sockets = [await Ws.open(base) for _ in range(12)]
    calls: list[int] = []
    real = hub.actions.accounts

    def counted(user_ids: Any) -> Any:
        calls.append(len(user_ids))
        return real(user_ids)

    hub.actions.accounts = counted
    try:
        for i, ws in enumerate(sockets):
            name = live_db.responder(units[i % 6]) if i % 2 else ROLES[i % 6]
            name = "dispatcher" if name == "responder" else name
            await ws.hello(live_db.token(name), ["situation"])
        calls.clear()
        await asyncio.sleep(RECHECK_S * 3.5)
    finally:
        hub.actions.accounts = real
        for ws in sockets:
            await ws.close()
    assert 2 <= len(calls) <= 5  # one per period, whatever the number of sockets
    assert max(calls) >= 6  # each a single query for every connected user


# --- point 6, socket side: hostile numbers and text ----------------------------------

BIG = 2**63
KEY = "hostile-key-0001"


@pytest.fixture(scope="module")
def target(live_db: LiveDb, server: tuple[str, Any]) -> tuple[int, int]:
    """A unit with an active task, for the messages to aim at."""
    (unit,) = live_db.add_units(1)
    return unit, dispatch(live_db, server[0], unit)


def hostile(unit: int, task_id: int) -> dict[str, tuple[str, str]]:
    """name -> (who sends it, the raw message); each must be refused as invalid_message."""
    pos = f'"type":"position","key":"{KEY}"'
    status = f'"type":"status","key":"{KEY}","task_id":{task_id}'
    return {
        "status task_id 2^63": (
            "responder",
            json.dumps({"type": "status", "task_id": BIG, "status": "accepted", "key": KEY}),
        ),
        "status task_id 10^20": (
            "dispatcher",
            json.dumps({"type": "status", "task_id": 10**20, "status": "accepted", "key": KEY}),
        ),
        "status task_id -2^63-1": (
            "dispatcher",
            json.dumps({"type": "status", "task_id": -BIG - 1, "status": "accepted", "key": KEY}),
        ),
        "position unit_id 10^20": (
            "dispatcher",
            json.dumps(
                {
                    "type": "position",
                    "unit_id": 99999999999999999999,
                    "lon": 24.9,
                    "lat": 60.1,
                    "key": KEY,
                }
            ),
        ),
        "ack seq 2^63": (
            "responder",
            json.dumps({"type": "ack", "topic": f"unit:{unit}", "seq": BIG, "key": KEY}),
        ),
        "subscribe unit 10^20": (
            "dispatcher",
            json.dumps({"type": "subscribe", "topics": ["unit:99999999999999999999"]}),
        ),
        "subscribe resume 2^63": (
            "dispatcher",
            json.dumps(
                {"type": "subscribe", "topics": ["situation"], "resume": {"situation": BIG}}
            ),
        ),
        "status note NUL": ("responder", "{" + status + r',"status":"accepted","note":"a\u0000b"}'),
        "status NUL": ("responder", "{" + status + r',"status":"accepted\u0000"}'),
        "position recorded_at NUL": (
            "responder",
            "{" + pos + r',"lon":24.9,"lat":60.1,"recorded_at":"2026\u0000"}',
        ),
        "position NaN": ("responder", "{" + pos + ',"lon":NaN,"lat":60.1}'),
        "position Infinity": ("responder", "{" + pos + ',"lon":24.9,"lat":Infinity}'),
        "position -Infinity heading": (
            "responder",
            "{" + pos + ',"lon":24.9,"lat":60.1,"heading_deg":-Infinity}',
        ),
        "position 1e400": ("responder", "{" + pos + ',"lon":24.9,"lat":60.1,"speed_mps":1e400}'),
        "position 10^400 as an integer": (
            "responder",
            "{" + pos + ',"lon":1' + "0" * 400 + ',"lat":60.1}',
        ),
        "ping t 1e400": ("responder", '{"type":"ping","t":1e400}'),
        "ping t NaN": ("responder", '{"type":"ping","t":NaN}'),
    }


def state_of(db: LiveDb, unit: int, task_id: int) -> tuple[Any, ...]:
    with db.sessions() as s:
        task = s.get(Task, task_id)
        assert task is not None
        return (
            task.status,
            task.acknowledged_at,
            s.scalar(select(func.count()).select_from(UnitPosition)),
            store.topic_state(s, f"unit:{unit}"),
            store.topic_head(s, "situation"),
            s.scalar(select(func.count()).select_from(Event)),
        )


@pytest.mark.parametrize("case", sorted(hostile(1, 1)))
async def test_hostile_numbers_and_text_are_refused_clearly_and_change_nothing(
    live_db: LiveDb, base: str, target: tuple[int, int], case: str
):
    unit, task_id = target
    who, raw = hostile(unit, task_id)[case]
    key = f"hostile-{secrets.token_hex(6)}"  # its own: a key reused is a conflict
    raw = raw.replace(KEY, key)
    token = live_db.token(live_db.responder(unit) if who == "responder" else who)
    before = state_of(live_db, unit, task_id)
    ws = await Ws.open(base)
    try:
        topic = f"unit:{unit}"
        await ws.send({"type": "hello", "token": token, "subscribe": [topic], "resume": {}})
        await ws.recv_until(lambda m: m["type"] == "welcome")
        if "ack" in case:  # the phone has the task event: an ack of a real seq would be fine
            await ws.recv_until(lambda m: m["type"] == "event")
        await ws.conn.send(raw)
        reply = await ws.recv_until(lambda m: m["type"] in ("error", "result", "pong", "welcome"))
        assert (reply["type"], reply.get("code")) == ("error", "invalid_message"), reply
        if key in raw:
            assert reply.get("key") == key  # the phone can drop it from its outbox
        await ws.send({"type": "ping", "t": 1})  # still connected and working
        assert (await ws.recv_until(lambda m: m["type"] == "pong"))["t"] == 1
    finally:
        await ws.close()
    await asyncio.sleep(0.3)
    assert state_of(live_db, unit, task_id) == before


@pytest.mark.parametrize(
    "resume", ['{"situation":9223372036854775808}', '{"situation":NaN}', '{"situation":1e400}']
)
async def test_a_hello_with_hostile_numbers_is_refused_as_a_bad_hello(
    live_db: LiveDb, base: str, resume: str
):
    ws = await Ws.open(base)
    token = live_db.token("dispatcher")
    await ws.conn.send(
        f'{{"type":"hello","token":"{token}","subscribe":["situation"],"resume":{resume}}}'
    )
    replies, code = await until_closed(ws)
    assert [(r["type"], r.get("code")) for r in replies] == [("error", "bad_hello")]
    assert code == 4400
