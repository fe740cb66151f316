"""A tabletop drill on a live server (committed database, realtime hub, the clock in the
server's background): the console's `drill:<id>` topic gets the drill's snapshot and its
injects, a dispatch to a stand-in reaches only the phone logged in as that stand-in, the
live `situation` and the real units' phones hear nothing, and stop stores the report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from command.app import create_app
from command.auth import service as auth
from command.auth.models import User
from core.config import Settings
from tests.support.db import drop_database
from tests.support.live import PASSWORD_HASH, SECRET, LiveDb, Ws, make_live_db
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.anyio

SCENARIO = {
    "name": "live tabletop",
    "start": "2026-07-01T08:00:00+03:00",
    "duration_s": 7200,
    "injects": [
        {"at_s": 0, "lon": 24.945, "lat": 60.1712, "type": "fire", "title": "first fire"},
        {"at_s": 30, "lon": 24.940, "lat": 60.1680, "type": "medical", "title": "second"},
    ],
}


@pytest.fixture(scope="module")
def live_db(database_url: str) -> Iterator[LiveDb]:
    del database_url  # a missing PostGIS skips (or fails in CI) as every db test does
    db = make_live_db("emergency_tabletop_live")
    try:
        yield db
    finally:
        db.engine.dispose()
        drop_database(db.url)


@pytest.fixture(scope="module")
def base(live_db: LiveDb) -> Iterator[str]:
    settings = Settings(env="test", database_url=live_db.url, secret_key=SECRET,
                        bus_poll_interval_s=0.5, ws_heartbeat_s=30)  # fmt: skip
    with serve_in_thread(create_app(settings), name="tabletop-server", start_s=60) as url:
        yield url


def api(db: LiveDb, base: str, method: str, path: str, who: str, **kw: Any) -> Any:
    r = httpx.request(method, base + path, headers=db.headers(who), timeout=30, **kw)
    return r


async def quiet(ws: Ws, within: float) -> None:
    with pytest.raises(TimeoutError):
        await ws.recv_until(lambda m: m["type"] in ("event", "batch"), within=within)


def events(message: dict[str, Any]) -> list[dict[str, Any]]:
    return list(message["messages"]) if message["type"] == "batch" else [message]


async def test_a_tabletop_on_a_live_server(live_db: LiveDb, base: str):
    real = live_db.add_units(2)
    situation = await Ws.open(base)
    await situation.hello(live_db.token("dispatcher"), ["situation"])
    await situation.recv_until(lambda m: m["type"] == "resync")
    real_phone = await Ws.open(base)
    await real_phone.hello(live_db.token(live_db.responder(real[0])), [f"unit:{real[0]}"])
    r = api(live_db, base, "POST", "/api/drills/tabletop?speed=60", "planner", json=SCENARIO)
    assert r.status_code == 201, r.text
    drill_id = r.json()["drill"]["id"]
    console = await Ws.open(base)
    try:
        await console.hello(live_db.token("dispatcher"), [f"drill:{drill_id}"])
        snap = (await console.recv_until(lambda m: m["type"] == "resync"))["snapshot"]
        assert snap["drill"]["id"] == drill_id and snap["drill"]["mode"] == "tabletop"
        twins = {u["id"]: u["properties"]["callsign"] for u in snap["units"]}
        assert len(twins) == 2 and all(c.startswith(f"D{drill_id}-") for c in twins.values())
        # The server's clock makes both injects (the second at 30 simulated s, 0.5 s here).
        deadline = time.monotonic() + 20
        while True:
            state = api(live_db, base, "GET", f"/api/drills/{drill_id}/tabletop", "dispatcher")
            if state.json()["injects"]["done"] == 2:
                break
            assert time.monotonic() < deadline, state.text
            await asyncio.sleep(0.2)
        fire = state.json()["done"][0]["incident_id"]
        made: set[str] = set()
        while "incident.created" not in made:
            message = await console.recv_until(lambda m: m["type"] in ("event", "batch"))
            made |= {e["event"] for e in events(message) if e["topic"] == f"drill:{drill_id}"}
        # A phone logged in as a stand-in gets the drill task; nobody else does.
        twin = min(twins)
        with live_db.sessions() as s:
            user = User(username="drill-phone", password_hash=PASSWORD_HASH, role="responder",
                        unit_id=twin)  # fmt: skip
            s.add(user)
            s.commit()
            token = auth.issue_token(user, secret=SECRET, ttl_s=600)
        phone = await Ws.open(base)
        try:
            await phone.hello(token, [f"unit:{twin}"])
            r = api(live_db, base, "POST", f"/api/incidents/{fire}/dispatch", "dispatcher",
                    json={"unit_ids": [twin]})  # fmt: skip
            assert r.status_code == 201, r.text
            task = await phone.recv_until(lambda m: m["type"] == "event")
            assert task["event"] == "task.assigned" and task["data"]["drill"] is True
            got = await console.recv_until(
                lambda m: any(e.get("event") == "task.assigned" for e in events(m))
            )
            assert got
            r = api(live_db, base, "POST", f"/api/incidents/{fire}/dispatch", "dispatcher",
                    json={"unit_ids": [real[1]]})  # fmt: skip
            assert r.status_code == 409
        finally:
            await phone.close()
        await quiet(situation, 1.5)  # the live map heard nothing of the drill
        await quiet(real_phone, 0.5)
        r = api(live_db, base, "POST", f"/api/drills/{drill_id}/stop", "planner")
        assert r.status_code == 200, r.text
        report = api(live_db, base, "GET", f"/api/drills/{drill_id}/report", "dispatcher").json()
        rvc = report["recommended_vs_chosen"]
        assert rvc["dispatches"] == 1 and rvc["items"][0]["chosen"] == [twins[twin]]
        assert report["kpis"]["incidents"]["total"] == 2
    finally:
        for ws in (console, situation, real_phone):
            await ws.close()
