"""Positions over HTTP: a gateway's batch, OsmAnd / Traccar trackers and their devices,
out-of-order and impossible fixes, duplicates, and tracks for review (real PostGIS)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from command.auth import service as auth
from core.security import Principal
from gis.places import haversine_m
from resources.avl import live
from resources.avl.devices import add_device, revoke_device
from resources.avl.fixes import KNOT_MPS
from tests.support.world import World

ADMIN = Principal(kind="user", id=1, name="admin", role="admin")
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


def fixes(session: Session, unit_id: int) -> list[Any]:
    return session.execute(
        text(
            "SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat, recorded_at, speed_mps, heading_deg, "
            "accuracy_m, altitude_m, battery_pct, source, flag, device_id FROM unit_position "
            "WHERE unit_id = :u ORDER BY recorded_at"
        ),
        {"u": unit_id},
    ).all()


def where(session: Session, unit_id: int) -> tuple[float, float, datetime | None]:
    row = session.execute(
        text("SELECT ST_X(geom), ST_Y(geom), position_at FROM unit WHERE id = :u"), {"u": unit_id}
    ).one()
    return row[0], row[1], row[2]


def rows(session: Session, table: str) -> int:
    return int(session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


def fix(unit_id: int, lon: float, lat: float, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"unit_id": unit_id, "lon": lon, "lat": lat, "recorded_at": at.isoformat(), **extra}


# --- the batch ---------------------------------------------------------------------------
def test_batch_stores_each_fix_and_names_each_refusal(
    client: TestClient, world: World, session: Session
):
    a, b = world.unit_a.id, world.unit_b.id
    body = {
        "positions": [
            fix(a, 24.940, 60.170, T0, speed_mps=10.0, heading_deg=90.0, accuracy_m=4.0),
            fix(b, 24.950, 60.175, T0),
            fix(a, 24.941, 60.170, T0 + timedelta(seconds=5)),
            fix(a, 200.0, 60.17, T0),  # out of range
            fix(987_654, 24.94, 60.17, T0),  # no such unit
            {"unit_id": a, "lon": 24.94, "lat": 60.17},  # no time
            fix(a, 24.94, 60.17, T0 - timedelta(days=400)),  # older than the track keeps
            fix(a, 24.94, 60.17, datetime.now(UTC) + timedelta(hours=1)),  # the future
            fix(b, 24.950, 60.175, T0),  # the same unit and time again: a duplicate
            {**fix(a, 24.94, 60.17, T0 + timedelta(seconds=9)), "altitude": 3},  # unknown field
        ]
    }
    r = client.post("/api/positions", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 202, r.text
    got = r.json()
    assert (got["accepted"], got["duplicates"], got["flagged"]) == (4, 1, [])
    reasons = {x["index"]: x["reason"] for x in got["refused"]}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 9]
    assert "lon" in reasons[3]
    assert reasons[4] == "unit 987654 does not exist"
    assert "recorded_at" in reasons[5]
    assert "in the past" in reasons[6] and "in the future" in reasons[7]
    assert "altitude" in reasons[9]
    track_a = fixes(session, a)
    assert [(f.lon, f.lat, f.recorded_at) for f in track_a] == [
        (24.940, 60.170, T0),
        (24.941, 60.170, T0 + timedelta(seconds=5)),
    ]
    first = track_a[0]
    assert (first.speed_mps, first.heading_deg, first.accuracy_m, first.source) == (
        10.0,
        90.0,
        4.0,
        "batch",
    )
    assert len(fixes(session, b)) == 1
    # Each unit is where its newest fix says.
    assert where(session, a) == (24.941, 60.170, T0 + timedelta(seconds=5))
    assert where(session, b) == (24.950, 60.175, T0)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"positions": []}, 422),
        ({"positions": [fix(1, 24.9, 60.1, T0)] * 1001}, 422),
        ({"positions": "all of them"}, 422),
        ({}, 422),
        ([fix(1, 24.9, 60.1, T0)], 422),
    ],
)
def test_a_malformed_batch_is_refused_whole(
    client: TestClient, world: World, session: Session, body: Any, status: int
):
    before = rows(session, "unit_position")
    r = client.post("/api/positions", json=body, headers=world.h("admin"))
    assert r.status_code == status, r.text
    assert r.json()["error"]
    assert rows(session, "unit_position") == before


def test_only_dispatchers_admins_and_api_keys_post_batches(
    client: TestClient, world: World, session: Session, settings: Any
):
    body = {"positions": [fix(world.unit_a.id, 24.94, 60.17, T0)]}
    for role in ("responder", "commander", "planner", "auditor"):
        r = client.post("/api/positions", json=body, headers=world.h(role))
        assert r.status_code == 403, (role, r.text)
    assert rows(session, "unit_position") == 0
    r = client.post("/api/positions", json=body)
    assert r.status_code == 401
    # A gateway's API key (signed, as every machine client).
    key, secret = auth.add_api_key(session, name="avl-gateway", secret_key=settings.secret_key)
    session.commit()
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    headers = {
        "X-Api-Key": key.key_id,
        "X-Timestamp": stamp,
        "X-Signature": auth.sign(secret, stamp, raw),
        "Content-Type": "application/json",
    }
    r = client.post("/api/positions", content=raw, headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1
    assert rows(session, "unit_position") == 1


# --- out of order, jumps ------------------------------------------------------------------
def test_an_out_of_order_fix_is_kept_but_never_moves_the_unit_back(
    client: TestClient, world: World, session: Session
):
    uid = world.unit_a.id
    h = world.h("dispatcher")
    late = [fix(uid, 24.9400 + k * 0.0005, 60.17, T0 + timedelta(seconds=10 * k)) for k in range(5)]
    # Newest first: every later-arriving one is older.
    for body in reversed(late):
        assert (
            client.post("/api/positions", json={"positions": [body]}, headers=h).status_code == 202
        )
    assert where(session, uid) == (24.942, 60.17, T0 + timedelta(seconds=40))
    assert [f.recorded_at for f in fixes(session, uid)] == [
        T0 + timedelta(seconds=10 * k) for k in range(5)
    ]


def test_an_impossible_jump_is_stored_flagged_and_not_used(
    client: TestClient, world: World, session: Session
):
    uid = world.unit_a.id
    h = world.h("dispatcher")
    start = fix(uid, 24.94, 60.17, T0)
    # 30 s later, 55 km away (Helsinki to Porvoo): ~1,800 m/s.
    jump = fix(uid, 25.66, 60.39, T0 + timedelta(seconds=30))
    # 60 s after the start, 600 m on: 10 m/s, plausible.
    onward = fix(uid, 24.9508, 60.1712, T0 + timedelta(seconds=60))
    r = client.post("/api/positions", json={"positions": [start, jump, onward]}, headers=h)
    assert r.status_code == 202, r.text
    assert r.json()["flagged"] == [{"index": 1, "reason": "jump"}]
    assert r.json()["accepted"] == 3
    stored = fixes(session, uid)
    assert [f.flag for f in stored] == [None, "jump", None]
    assert where(session, uid) == (24.9508, 60.1712, T0 + timedelta(seconds=60))
    # A jump alone, sent singly: flagged, and the unit stays.
    r = client.post(
        f"/api/units/{uid}/position",
        json={"lon": 24.0, "lat": 61.0, "recorded_at": (T0 + timedelta(seconds=70)).isoformat()},
        headers=h,
    )
    assert r.status_code == 202 and r.json()["flag"] == "jump"
    assert where(session, uid)[:2] == (24.9508, 60.1712)
    # The track leaves flagged fixes out of the line, and counts them.
    track = client.get(
        f"/api/units/{uid}/track",
        params={"since": T0.isoformat(), "until": (T0 + timedelta(minutes=5)).isoformat()},
        headers=h,
    ).json()
    assert track["geometry"]["coordinates"] == [[24.94, 60.17], [24.9508, 60.1712]]
    assert track["properties"]["flagged"] == 2


def test_the_live_map_gets_one_update_per_unit_and_second_in_one_event(
    client: TestClient, world: World, session: Session
):
    a, b = world.unit_a.id, world.unit_b.id
    h = world.h("dispatcher")
    batch = [fix(a, 24.94 + k * 1e-4, 60.17, T0 + timedelta(seconds=k)) for k in range(5)]
    batch.append(fix(b, 24.95, 60.18, T0))
    assert client.post("/api/positions", json={"positions": batch}, headers=h).status_code == 202
    first_event = int(session.execute(text("SELECT coalesce(max(id), 0) FROM event")).scalar_one())
    assert live.publish_positions(session) == 2
    session.commit()
    # Within the second: nothing more for these units, however many fixes come.
    more = [fix(a, 24.9405, 60.17, T0 + timedelta(seconds=6))]
    assert client.post("/api/positions", json={"positions": more}, headers=h).status_code == 202
    assert live.publish_positions(session) == 0
    session.commit()
    events = session.execute(
        text("SELECT topic, type, payload FROM event WHERE id > :i ORDER BY id"), {"i": first_event}
    ).all()
    assert [(e.topic, e.type) for e in events] == [("situation", "unit.positions")]
    entries = {p["unit_id"]: p for p in events[0].payload["positions"]}
    assert set(entries) == {a, b}
    assert (entries[a]["lon"], entries[a]["lat"]) == (24.9404, 60.17)
    assert datetime.fromisoformat(entries[a]["recorded_at"]) == T0 + timedelta(seconds=4)
    assert entries[b]["callsign"] == world.unit_b.callsign
    # A second later the held-back fix goes out.
    session.execute(
        text("UPDATE unit SET position_sent_wall = position_sent_wall - interval '2 s'")
    )
    assert live.publish_positions(session) == 1


# --- OsmAnd / Traccar trackers ----------------------------------------------------------------
@pytest.fixture
def device(session: Session, world: World) -> str:
    _, device_id = add_device(session, unit_callsign=world.unit_a.callsign, principal=ADMIN)
    session.commit()
    return device_id


def test_osmand_query_takes_a_fix_with_speed_in_knots(
    client: TestClient, world: World, session: Session, device: str
):
    assert len(device) >= 24
    at = int(T0.timestamp())
    params = {
        "id": device,
        "lat": "60.1712",
        "lon": "24.9415",
        "timestamp": str(at),
        "speed": "20",
        "bearing": "270.5",
        "altitude": "12.5",
        "accuracy": "6",
        "batt": "87",
    }
    r = client.get("/api/avl/osmand", params=params)
    assert r.status_code == 200, r.text
    assert r.content == b""
    (stored,) = fixes(session, world.unit_a.id)
    assert (stored.lon, stored.lat, stored.recorded_at) == (24.9415, 60.1712, T0)
    assert stored.speed_mps == pytest.approx(20 * 0.514444, rel=1e-5)
    assert (stored.heading_deg, stored.altitude_m, stored.accuracy_m, stored.battery_pct) == (
        270.5,
        12.5,
        6.0,
        87.0,
    )
    assert stored.source == "osmand"
    assert where(session, world.unit_a.id) == (24.9415, 60.1712, T0)
    # POST with the parameters in a form body, the time in milliseconds.
    later = T0 + timedelta(seconds=10)
    form = {
        "id": device,
        "lat": "60.1713",
        "lon": "24.9418",
        "timestamp": str(int(later.timestamp() * 1000)),
    }
    r = client.post("/api/avl/osmand", data=form)
    assert r.status_code == 200, r.text
    # Traccar Client's JSON body (speed in m/s there, battery 0..1).
    latest = T0 + timedelta(seconds=20)
    body = {
        "device_id": device,
        "location": {
            "timestamp": latest.isoformat().replace("+00:00", "Z"),
            "coords": {"latitude": 60.1714, "longitude": 24.9421, "speed": 8.5, "heading": 90},
            "battery": {"level": 0.5, "is_charging": False},
        },
    }
    r = client.post("/api/avl/osmand", json=body)
    assert r.status_code == 200, r.text
    stored = fixes(session, world.unit_a.id)
    assert [f.recorded_at for f in stored] == [T0, later, latest]
    assert stored[2].speed_mps == pytest.approx(8.5, rel=1e-6)
    assert stored[2].battery_pct == 50.0
    assert where(session, world.unit_a.id) == (24.9421, 60.1714, latest)
    assert pytest.approx(0.514444, rel=1e-5) == KNOT_MPS


def test_an_unknown_or_revoked_device_is_refused_and_stores_nothing(
    client: TestClient, world: World, session: Session, device: str
):
    good = {"id": device, "lat": "60.17", "lon": "24.94", "timestamp": str(int(T0.timestamp()))}
    r = client.get("/api/avl/osmand", params={**good, "id": "not-a-registered-device-id-at-all"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert rows(session, "unit_position") == 0
    device_row = session.execute(text("SELECT id, last_seen_at FROM device")).one()
    assert device_row.last_seen_at is None
    assert client.get("/api/avl/osmand", params=good).status_code == 200
    assert session.execute(text("SELECT last_seen_at FROM device")).scalar_one() is not None
    revoke_device(session, device_row.id, principal=ADMIN)
    session.commit()
    later = {**good, "timestamp": str(int(T0.timestamp()) + 5)}
    r = client.get("/api/avl/osmand", params=later)
    assert r.status_code == 403, r.text
    assert rows(session, "unit_position") == 1
    # The id is stored only as its SHA-256.
    stored = session.execute(text("SELECT token_hash FROM device")).scalar_one()
    assert device not in stored and len(stored) == 64


@pytest.mark.parametrize(
    "params",
    [
        {"id": "", "lat": "60.17", "lon": "24.94"},  # no id
        {"lat": "60.17"},  # no lon
        {"lat": "91", "lon": "24.94"},
        {"lat": "60.17", "lon": "east"},
        {"lat": "nan", "lon": "24.94"},
        {"lat": "60.17", "lon": "24.94", "timestamp": "yesterday-ish"},
        {"lat": "60.17", "lon": "24.94", "timestamp": "99999999999999999999"},
        {"lat": "60.17", "lon": "24.94", "speed": "-3"},
        {"lat": "60.17", "lon": "24.94", "valid": "false"},
    ],
)
def test_a_bad_osmand_fix_is_400_and_stores_nothing(
    client: TestClient, session: Session, device: str, params: dict[str, str]
):
    r = client.get("/api/avl/osmand", params={"id": device, **params})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_input"
    assert rows(session, "unit_position") == 0


def test_a_hardware_id_is_taken_only_from_its_networks(
    client: TestClient, world: World, session: Session
):
    imei = "356938035643809"
    add_device(
        session,
        unit_callsign=world.unit_b.callsign,
        principal=ADMIN,
        hardware_id=imei,
        allow_from=["10.20.0.0/16"],
    )
    session.commit()
    params = {"id": imei, "lat": "60.17", "lon": "24.94", "timestamp": str(int(T0.timestamp()))}
    r = client.get("/api/avl/osmand", params=params)  # from 127.0.0.1
    assert r.status_code == 403 and "address" in r.json()["message"]
    assert rows(session, "unit_position") == 0
    with TestClient(client.app, client=("10.20.3.4", 40000)) as tracker:
        assert tracker.get("/api/avl/osmand", params=params).status_code == 200
    assert [(f.source, f.device_id is not None) for f in fixes(session, world.unit_b.id)] == [
        ("osmand", True)
    ]


# --- tracks ---------------------------------------------------------------------------------
def test_track_is_a_timed_linestring_and_long_ones_are_simplified(
    client: TestClient, world: World, session: Session
):
    uid = world.unit_a.id
    h = world.h("dispatcher")
    # A straight drive east with a dog-leg north: 3,000 fixes a second apart.
    points = []
    for k in range(3000):
        lon = 24.90 + min(k, 2000) * 2e-5
        lat = 60.16 + max(0, k - 2000) * 2e-5
        points.append(fix(uid, round(lon, 7), round(lat, 7), T0 - timedelta(seconds=3000 - k)))
    for start in range(0, 3000, 1000):
        r = client.post(
            "/api/positions", json={"positions": points[start : start + 1000]}, headers=h
        )
        assert r.status_code == 202 and r.json()["accepted"] == 1000, r.text
    since = (T0 - timedelta(seconds=3000)).isoformat()
    until = T0.isoformat()
    got = client.get(f"/api/units/{uid}/track", params={"since": since, "until": until}, headers=h)
    assert got.status_code == 200, got.text
    feature = got.json()
    props = feature["properties"]
    assert (props["fixes"], props["simplified"], props["flagged"]) == (3000, True, 0)
    line = feature["geometry"]["coordinates"]
    # Two straight legs: the ends and the corner are enough.
    assert line == [[24.9, 60.16], [24.94, 60.16], [24.94, 60.17998]]
    assert [datetime.fromisoformat(t) for t in props["times"]] == [
        T0 - timedelta(seconds=3000),
        T0 - timedelta(seconds=1000),
        T0 - timedelta(seconds=1),
    ]
    # A short window is not simplified; its times are the fixes' own.
    short = client.get(
        f"/api/units/{uid}/track",
        params={"since": (T0 - timedelta(seconds=10)).isoformat(), "until": until},
        headers=h,
    ).json()
    assert short["properties"]["simplified"] is False
    assert len(short["geometry"]["coordinates"]) == len(short["properties"]["times"]) == 10
    # Asked for a tolerance, no vertex of the original lies farther from the line than it.
    coarse = client.get(
        f"/api/units/{uid}/track",
        params={"since": since, "until": until, "tolerance_m": 5},
        headers=h,
    ).json()
    assert len(coarse["geometry"]["coordinates"]) == 3


def test_track_rights_and_bad_windows(client: TestClient, world: World, session: Session):
    a, b = world.unit_a.id, world.unit_b.id
    assert client.get(f"/api/units/{a}/track", headers=world.h("responder")).status_code == 200
    r = client.get(f"/api/units/{b}/track", headers=world.h("responder"))
    assert r.status_code == 403
    r = client.get("/api/units/987654/track", headers=world.h("dispatcher"))
    assert r.status_code == 404
    empty = client.get(f"/api/units/{a}/track", headers=world.h("commander")).json()
    assert empty["geometry"] is None and empty["properties"]["fixes"] == 0
    for params in (
        {"since": T0.isoformat(), "until": (T0 - timedelta(seconds=1)).isoformat()},
        {"since": (T0 - timedelta(days=40)).isoformat(), "until": T0.isoformat()},
        {"since": "2026-01-01T00:00:00"},  # no offset
        {"tolerance_m": "-1"},
    ):
        r = client.get(f"/api/units/{a}/track", params=params, headers=world.h("dispatcher"))
        assert r.status_code == 422, (params, r.text)


def test_haversine_of_the_jump_is_what_the_test_says():
    assert haversine_m(24.94, 60.17, 25.66, 60.39) > 40_000
