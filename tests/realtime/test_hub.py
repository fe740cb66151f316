"""The realtime protocol end to end, against a real server on a committed database.

The server runs in a thread of this process (so tests can reach its hub), with a short
ack timeout and poll interval; clients are real WebSocket connections.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
import websockets
from sqlalchemy import func, select, text

from command.app import create_app
from command.tasks.models import Task
from core.config import Settings
from core.outbox import Event
from realtime import store
from resources.models import UnitPosition
from tests.support.live import SECRET, LiveDb, Ws, dispatch, finish, head, incident, ws_url
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.anyio

ACK_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(live_db: LiveDb) -> Iterator[tuple[str, Any]]:
    """The app under uvicorn in a thread; yields (base URL, app)."""
    settings = Settings(
        env="test",
        database_url=live_db.url,
        secret_key=SECRET,
        ws_ack_timeout_s=ACK_TIMEOUT_S,
        bus_poll_interval_s=0.5,
        ws_heartbeat_s=30,
    )
    app = create_app(settings)
    with serve_in_thread(app, name="hub-server", start_s=60) as base:
        yield base, app


@pytest.fixture
def base(server: tuple[str, Any]) -> str:
    return server[0]


def events(db: LiveDb, topic: str, type_: str | None = None) -> list[Event]:
    with db.sessions() as s:
        stmt = select(Event).where(Event.topic == topic).order_by(Event.seq)
        if type_:
            stmt = stmt.where(Event.type == type_)
        return list(s.scalars(stmt))


# --- hello, snapshot, replay, resync -----------------------------------------------


async def test_hello_without_resume_gets_a_consistent_snapshot(live_db: LiveDb, base: str):
    live_db.add_units(2)
    ws = await Ws.open(base)
    try:
        welcome = await ws.hello(live_db.token("dispatcher"), ["situation"])
        assert welcome["type"] == "welcome"
        now = head(live_db, "situation")
        assert welcome["topics"] == {"situation": now}
        resync = await ws.recv_until(lambda m: m["type"] == "resync")
        assert resync["topic"] == "situation" and resync["seq"] == now
        callsigns = {f["properties"]["callsign"] for f in resync["snapshot"]["units"]}
        assert len(callsigns) == len(live_db.unit_ids)
        assert set(resync["snapshot"]) >= {"incidents", "units", "tasks", "shelters", "stock"}
        # Then live: the next change arrives as seq + 1.
        incident(live_db, base, "After the snapshot")
        event = await ws.recv_until(lambda m: m["type"] == "event")
        assert (event["seq"], event["event"]) == (now + 1, "incident.created")
        assert event["data"]["properties"]["title"] == "After the snapshot"
    finally:
        await ws.close()


async def test_resume_replays_every_later_event_in_order_once(live_db: LiveDb, base: str):
    start = head(live_db, "situation")
    for i in range(5):
        incident(live_db, base, f"Missed {i}")
    ws = await Ws.open(base)
    try:
        welcome = await ws.hello(live_db.token("dispatcher"), ["situation"], {"situation": start})
        assert welcome["topics"]["situation"] == start + 5
        got = [await ws.recv_until(lambda m: m["type"] == "event") for _ in range(5)]
        assert [m["seq"] for m in got] == list(range(start + 1, start + 6))
        assert [m["data"]["properties"]["title"] for m in got] == [f"Missed {i}" for i in range(5)]
        incident(live_db, base, "Live")
        live = await ws.recv_until(lambda m: m["type"] == "event")
        assert live["seq"] == start + 6
        with pytest.raises(TimeoutError):  # nothing twice
            await ws.recv_until(lambda m: m["type"] == "event", within=1.0)
    finally:
        await ws.close()


async def test_resume_from_before_what_is_kept_gets_a_resync(live_db: LiveDb, base: str):
    incident(live_db, base, "Soon pruned")
    with live_db.sessions() as s:
        store.prune_events(s, older_than_s=0)
        s.commit()
    now = head(live_db, "situation")
    for resume in (1, now + 50):  # pruned history; a seq the server never had
        ws = await Ws.open(base)
        try:
            await ws.hello(live_db.token("dispatcher"), ["situation"], {"situation": resume})
            resync = await ws.recv_until(lambda m: m["type"] in ("resync", "event"))
            assert resync["type"] == "resync" and resync["seq"] == now
        finally:
            await ws.close()


# --- who may subscribe to what -------------------------------------------------------

SUBSCRIBE = {  # role -> topic -> allowed (own unit for the responder is "unit:own")
    "dispatcher": {"situation": True, "unit:other": True, "drill:1": True},
    "commander": {"situation": True, "unit:other": True, "drill:1": True},
    "planner": {"situation": True, "unit:other": True, "drill:1": True},
    "auditor": {"situation": True, "unit:other": True, "drill:1": True},
    "admin": {"situation": True, "unit:other": True, "drill:1": True},
    "responder": {"situation": True, "unit:own": True, "unit:other": False, "drill:1": False},
}


@pytest.mark.parametrize("role", sorted(SUBSCRIBE))
async def test_subscribe_checks_the_role(live_db: LiveDb, base: str, role: str):
    own, other = live_db.add_units(2)
    token = live_db.token(live_db.responder(own) if role == "responder" else role)
    topics = {"unit:own": f"unit:{own}", "unit:other": f"unit:{other}"}
    ws = await Ws.open(base)
    try:
        for name, allowed in SUBSCRIBE[role].items():
            topic = topics.get(name, name)
            await ws.send(
                {"type": "hello", "token": token, "subscribe": [topic], "resume": {topic: 0}}
                if name == next(iter(SUBSCRIBE[role]))
                else {"type": "subscribe", "topics": [topic], "resume": {topic: 0}}
            )
            reply = await ws.recv_until(lambda m: m["type"] in ("welcome", "error"))
            if allowed:
                assert reply["type"] == "welcome" and topic in reply["topics"], (name, reply)
            else:
                assert reply["type"] == "error" and reply["code"] == "forbidden", (name, reply)
                assert reply["topic"] == topic
                # The socket stays open and keeps working.
                await ws.send({"type": "ping", "t": 1})
                assert (await ws.recv_until(lambda m: m["type"] == "pong"))["t"] == 1
    finally:
        await ws.close()


async def test_unknown_unit_topic_is_not_found(live_db: LiveDb, base: str):
    ws = await Ws.open(base)
    try:
        reply = await ws.hello(live_db.token("dispatcher"), ["unit:999999"])
        assert (reply["type"], reply["code"]) == ("error", "not_found")
    finally:
        await ws.close()


# --- authentication and origin --------------------------------------------------------


async def test_a_bad_token_is_refused_with_4001(live_db: LiveDb, base: str):
    ws = await Ws.open(base)
    reply = await ws.hello("not-a-token", ["situation"])
    assert reply["code"] == "unauthenticated"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv(5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_the_token_goes_in_the_first_message_only(live_db: LiveDb, base: str):
    ws = await Ws.open(base)
    await ws.send({"type": "subscribe", "topics": ["situation"]})
    reply = await ws.recv()
    assert reply["code"] == "bad_hello"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv(5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_an_expired_token_closes_the_socket(live_db: LiveDb, base: str):
    from command.auth import service as auth
    from command.auth.models import User

    with live_db.sessions() as s:
        user = s.scalars(select(User).where(User.username == "dispatcher")).one()
        token = auth.issue_token(user, secret=SECRET, ttl_s=2)
    ws = await Ws.open(base)
    assert (await ws.hello(token, ["situation"], {"situation": 0}))["type"] == "welcome"
    expired = await ws.recv_until(lambda m: m["type"] == "error", within=10)
    assert expired["code"] == "token_expired"
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await ws.recv(10)  # the error was the last message: then the close
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_a_wrong_origin_is_refused_before_the_socket_opens(live_db: LiveDb, base: str):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_url(base), origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    own = base.replace("ws://", "http://")
    ok = await Ws.open(base, origin=own)  # the page's own origin is fine
    try:
        assert (await ok.hello(live_db.token("dispatcher"), ["situation"], {"situation": 0}))[
            "type"
        ] == "welcome"
    finally:
        await ok.close()


# --- tasks to phones: at least once, acknowledged once --------------------------------


async def test_a_task_is_resent_until_acknowledged_and_not_after(live_db: LiveDb, base: str):
    (unit,) = live_db.add_units(1)
    topic = f"unit:{unit}"
    token = live_db.token(live_db.responder(unit))
    phone = await Ws.open(base)
    try:
        assert (await phone.hello(token, [topic]))["topics"] == {topic: 0}
        task_id = dispatch(live_db, base, unit)
        first = await phone.recv_until(lambda m: m["type"] == "event")
        assert (first["seq"], first["event"], first["data"]["id"]) == (1, "task.assigned", task_id)
        again = await phone.recv_until(lambda m: m["type"] == "event", within=ACK_TIMEOUT_S * 5)
        assert again["seq"] == 1  # not acknowledged: sent again
        await phone.send({"type": "ack", "topic": topic, "seq": 1})
        acked = await phone.recv_until(lambda m: m["type"] == "acked")
        assert acked["acknowledged_tasks"] == [task_id]
        # No re-send after the ack (a re-send already queued may still arrive once).
        await asyncio.sleep(ACK_TIMEOUT_S * 1.5)
        with pytest.raises(TimeoutError):
            await phone.recv_until(lambda m: m["type"] == "event", within=ACK_TIMEOUT_S * 2.5)
        await phone.send({"type": "ack", "topic": topic, "seq": 1})  # acking twice: no effect
        assert (await phone.recv_until(lambda m: m["type"] == "acked"))["acknowledged_tasks"] == []
    finally:
        await phone.close()
    # A new connection starts after the acknowledgement: nothing is re-sent.
    phone = await Ws.open(base)
    try:
        await phone.hello(token, [topic])
        with pytest.raises(TimeoutError):
            await phone.recv_until(lambda m: m["type"] in ("event", "resync"), within=2)
    finally:
        await phone.close()
    with live_db.sessions() as s:
        assert s.get(Task, task_id).acknowledged_at is not None  # type: ignore[union-attr]
    acks = [
        e for e in events(live_db, "situation", "task.acknowledged") if e.payload["id"] == task_id
    ]
    assert len(acks) == 1


async def test_an_unacknowledged_task_comes_again_on_the_next_connection(
    live_db: LiveDb, base: str
):
    (unit,) = live_db.add_units(1)
    topic = f"unit:{unit}"
    token = live_db.token(live_db.responder(unit))
    task_id = dispatch(live_db, base, unit)  # sent while the phone is away
    for _ in range(2):  # received twice, acknowledged never: it keeps coming
        phone = await Ws.open(base)
        try:
            await phone.hello(token, [topic], {topic: 1})  # even if it says it has seq 1
            event = await phone.recv_until(lambda m: m["type"] == "event")
            assert (event["seq"], event["data"]["id"]) == (1, task_id)
        finally:
            await phone.close()
    with live_db.sessions() as s:
        assert s.get(Task, task_id).acknowledged_at is None  # type: ignore[union-attr]


async def test_only_the_units_own_phone_acknowledges(live_db: LiveDb, base: str):
    (unit,) = live_db.add_units(1)
    dispatch(live_db, base, unit)
    ws = await Ws.open(base)
    try:
        await ws.hello(live_db.token("dispatcher"), [f"unit:{unit}"], {f"unit:{unit}": 0})
        await ws.recv_until(lambda m: m["type"] == "event")
        await ws.send({"type": "ack", "topic": f"unit:{unit}", "seq": 1})
        reply = await ws.recv_until(lambda m: m["type"] == "error")
        assert reply["code"] == "forbidden"
    finally:
        await ws.close()
    with live_db.sessions() as s:
        assert store.topic_state(s, f"unit:{unit}").acked == 0


async def test_a_burst_of_acks_is_stored_without_busy(live_db: LiveDb, base: str):
    """A phone catching up acks each event as the protocol asks: more acks than actions
    may be in flight. They are cumulative, so they are merged, never refused as busy."""
    (unit,) = live_db.add_units(1)
    topic = f"unit:{unit}"
    task_ids = []
    for _ in range(3):  # 3 tasks x 5 events: 15 events while the phone is away
        task_ids.append(dispatch(live_db, base, unit))
        finish(live_db, base, task_ids[-1], unit)
    phone = await Ws.open(base)
    try:
        await phone.hello(live_db.token(live_db.responder(unit)), [topic])
        seqs = []
        while len(seqs) < 15:
            seqs.append((await phone.recv_until(lambda m: m["type"] == "event"))["seq"])
        assert seqs == list(range(1, 16))
        for seq in seqs:  # back to back: more than max_inflight (8) at once
            await phone.send({"type": "ack", "topic": topic, "seq": seq})
        replies: list[dict] = []
        while not replies or replies[-1].get("seq") not in (15, None):  # errors have no seq
            replies.append(await phone.recv_until(lambda m: m["type"] in ("acked", "error")))
        assert [r for r in replies if r["type"] == "error"] == []
        acked = [r["seq"] for r in replies]
        assert acked == sorted(acked) and len(acked) < 15  # merged, in order
        assert sorted(t for r in replies for t in r["acknowledged_tasks"]) == sorted(task_ids)
    finally:
        await phone.close()
    with live_db.sessions() as s:
        assert store.topic_state(s, topic).acked == 15


# --- responders' actions: idempotent -------------------------------------------------


async def test_a_retried_status_has_no_second_effect(live_db: LiveDb, base: str):
    (unit,) = live_db.add_units(1)
    topic = f"unit:{unit}"
    task_id = dispatch(live_db, base, unit)
    phone = await Ws.open(base)
    try:
        await phone.hello(live_db.token(live_db.responder(unit)), [topic])
        key = "status-" + secrets.token_hex(8)
        message = {"type": "status", "task_id": task_id, "status": "accepted", "key": key}
        results = []
        for _ in range(3):
            await phone.send(message)
            results.append(await phone.recv_until(lambda m: m.get("key") == key))
        assert all(r["type"] == "result" and r["data"]["status"] == "accepted" for r in results)
        assert len({r["data"]["accepted_at"] for r in results}) == 1
        await phone.send({**message, "status": "en_route"})  # same key, other request
        reused = await phone.recv_until(lambda m: m.get("key") == key)
        assert (reused["type"], reused["code"]) == ("error", "conflict")
        await phone.send({**message, "status": "flying", "key": "status-" + secrets.token_hex(8)})
        bad = await phone.recv_until(lambda m: m["type"] == "error")
        assert bad["code"] == "invalid_input" and "status" in bad["message"]
    finally:
        await phone.close()
    accepted = [
        e for e in events(live_db, "situation", "task.accepted") if e.payload["id"] == task_id
    ]
    assert len(accepted) == 1


def test_rest_idempotency_key_returns_the_first_answer(live_db: LiveDb, base: str):
    (unit,) = live_db.add_units(1)
    task_id = dispatch(live_db, base, unit)
    headers = {**live_db.headers(live_db.responder(unit)), "Idempotency-Key": "rest-key-0001"}
    url = f"{base}/api/tasks/{task_id}/status"
    first = httpx.post(url, json={"status": "accepted"}, headers=headers)
    assert first.status_code == 200
    httpx.post(  # the task moves on (another key)
        url,
        json={"status": "en_route"},
        headers={**headers, "Idempotency-Key": "rest-key-0002"},
    ).raise_for_status()
    retry = httpx.post(url, json={"status": "accepted"}, headers=headers)
    assert retry.status_code == 200 and retry.json() == first.json()  # not a 409
    other = httpx.post(url, json={"status": "on_scene"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"] == "conflict"
    bad = httpx.post(url, json={"status": "on_scene"}, headers={**headers, "Idempotency-Key": "x"})
    assert bad.status_code == 422
    with live_db.sessions() as s:
        assert s.get(Task, task_id).status == "en_route"  # type: ignore[union-attr]
    assert (
        len(
            [e for e in events(live_db, "situation", "task.accepted") if e.payload["id"] == task_id]
        )
        == 1
    )


# --- positions -------------------------------------------------------------------------


async def test_positions_are_tracked_in_full_and_coalesced_for_screens(live_db: LiveDb, base: str):
    (unit,) = live_db.add_units(1)
    start = head(live_db, "situation")
    phone = await Ws.open(base)
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    try:
        await phone.hello(live_db.token(live_db.responder(unit)), [f"unit:{unit}"])
        fixes = [(24.940 + i * 0.0005, 60.170 + i * 0.0002) for i in range(10)]
        for i, (lon, lat) in enumerate(fixes):
            key = f"pos-{unit}-{i:04d}"
            at = (t0 + timedelta(seconds=i)).isoformat()
            await phone.send(
                {"type": "position", "lon": lon, "lat": lat, "recorded_at": at, "key": key}
            )
            answer = await phone.recv_until(lambda m, k=key: m.get("key") == k)
            assert answer["ok"] is True and answer["data"]["duplicate"] is False
        retry_key = f"pos-{unit}-0009"  # the last upload retried: stored once
        await phone.send(
            {
                "type": "position",
                "lon": fixes[-1][0],
                "lat": fixes[-1][1],
                "recorded_at": (t0 + timedelta(seconds=9)).isoformat(),
                "key": retry_key,
            }
        )
        await phone.recv_until(lambda m: m.get("key") == retry_key)
    finally:
        await phone.close()
    await asyncio.sleep(2.5)  # the held-back newest fix is published within ~1 s
    with live_db.sessions() as s:
        track = s.scalar(select(func.count()).where(UnitPosition.unit_id == unit))
        source = s.scalar(select(UnitPosition.source).where(UnitPosition.unit_id == unit).limit(1))
    assert (track, source) == (10, "ws")
    published = [
        (e.created_at, entry)
        for e in events(live_db, "situation", "unit.positions")
        if e.seq > start
        for entry in e.payload["positions"]
        if entry["unit_id"] == unit
    ]
    times = [at for at, _ in published]
    assert 1 <= len(published) <= 2 + (times[-1] - times[0]).total_seconds()
    assert all((b - a).total_seconds() >= 0.9 for a, b in itertools.pairwise(times))
    last = published[-1][1]
    assert (last["lon"], last["lat"]) == pytest.approx(fixes[-1])


# --- health and metrics --------------------------------------------------------------


def test_health_and_metrics_report_the_hub(live_db: LiveDb, base: str):
    health = httpx.get(f"{base}/healthz").json()
    assert health["status"] == "ok"
    assert health["realtime"]["bus"]["listening"] is True
    metrics = httpx.get(f"{base}/metrics").text
    for name in (
        "emergency_ws_connections",
        "emergency_ws_events_sent_total",
        "emergency_ws_event_lag_seconds_bucket",
        "emergency_bus_listening 1.0",
        "emergency_tasks_unacknowledged",
        "emergency_tasks_unacknowledged_oldest_seconds",
    ):
        assert name in metrics, name
    lag_count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("emergency_ws_event_lag_seconds_count")
    )
    assert lag_count > 0


def test_unacknowledged_tasks_are_counted(live_db: LiveDb, base: str):
    (unit,) = live_db.add_units(1)
    with live_db.sessions() as s:
        before = store.unacknowledged(s).count
    dispatch(live_db, base, unit)
    with live_db.sessions() as s:
        after = store.unacknowledged(s)
        s.execute(text("SELECT 1"))
    assert after.count == before + 1
    assert after.oldest_age_s >= 0
