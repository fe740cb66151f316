"""HTTP API for stations, units, shelters, warehouses and stock (GeoJSON in and out).

Every successful write must leave exactly one audit row and one ``situation`` event; every
refused write must leave the tables, the outbox and the audit log exactly as they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from command.app import create_app
from core.config import Settings
from gis.crs import from_wgs84
from resources.avl import live
from tests.support.world import World, point

Count = Callable[[str], int]


# --- helpers ------------------------------------------------------------------------
def feature(geometry: dict[str, Any] | None, **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def station_body(lon: float = 24.95, lat: float = 60.17, **props: Any) -> dict[str, Any]:
    return feature(point(lon, lat), **({"name": "Station X", "kind": "fire"} | props))


def unit_body(
    callsign: str, geometry: dict[str, Any] | None = None, **props: Any
) -> dict[str, Any]:
    base = {"callsign": callsign, "name": f"Unit {callsign}", "kind": "vehicle", "type": "pumper"}
    return feature(geometry, **(base | props))


def shelter_body(lon: float = 24.93, lat: float = 60.16, **props: Any) -> dict[str, Any]:
    return feature(point(lon, lat), **({"name": "School gym", "capacity": 200} | props))


def warehouse_body(lon: float = 24.90, lat: float = 60.20, **props: Any) -> dict[str, Any]:
    return feature(point(lon, lat), **({"name": "Depot"} | props))


@dataclass(frozen=True)
class Mark:
    event_id: int
    audit_id: int


def mark(session: Session) -> Mark:
    return Mark(
        int(session.scalar(text("SELECT coalesce(max(id), 0) FROM event")) or 0),
        int(session.scalar(text("SELECT coalesce(max(id), 0) FROM audit_event")) or 0),
    )


def assert_recorded(session: Session, since: Mark, action: str, entity_id: int) -> dict[str, Any]:
    """Exactly one audit row and one ``situation`` event of type ``action``; its payload."""
    events = session.execute(
        text("SELECT topic, seq, type, payload FROM event WHERE id > :id ORDER BY id"),
        {"id": since.event_id},
    ).all()
    audits = session.execute(
        text("SELECT action, entity_id FROM audit_event WHERE id > :id ORDER BY id"),
        {"id": since.audit_id},
    ).all()
    assert [(e.topic, e.type) for e in events] == [("situation", action)]
    assert [(a.action, a.entity_id) for a in audits] == [(action, str(entity_id))]
    return dict(events[0].payload)


def assert_nothing_recorded(session: Session, since: Mark) -> None:
    assert mark(session) == since


@contextmanager
def unchanged(count: Count, *tables: str) -> Iterator[None]:
    """The block must not change the row count of ``tables``, the outbox or the audit log."""
    names = (*tables, "event", "audit_event")
    before = {t: count(t) for t in names}
    yield
    assert {t: count(t) for t in names} == before


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "message"}
    assert isinstance(body["message"], str)
    assert body["message"]
    if code is not None:
        assert body["error"] == code
    return dict(body)


def ids(collection: dict[str, Any]) -> list[int]:
    return [f["id"] for f in collection["features"]]


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance between two (lon, lat) points in metres."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


# --- stations -----------------------------------------------------------------------
def test_create_station_returns_feature_and_records_change(
    client: TestClient, world: World, session: Session
):
    since = mark(session)
    body = station_body(24.95, 60.18, name="Kallio fire station", address="Porvoonkatu 1")
    r = client.post("/api/stations", json=body, headers=world.h("admin"))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["type"] == "Feature"
    assert isinstance(got["id"], int)
    assert got["geometry"] == {"type": "Point", "coordinates": [24.95, 60.18]}
    props = got["properties"]
    assert props["name"] == "Kallio fire station"
    assert props["kind"] == "fire"
    assert props["address"] == "Porvoonkatu 1"
    assert props["external_id"] is None
    payload = assert_recorded(session, since, "station.created", got["id"])
    assert payload["id"] == got["id"]
    assert payload["geometry"] == got["geometry"]

    again = client.get(f"/api/stations/{got['id']}", headers=world.h("responder"))
    assert again.status_code == 200
    assert again.json() == got


def test_patch_station_changes_only_sent_properties_and_geometry(
    client: TestClient, world: World, session: Session
):
    created = client.post(
        "/api/stations",
        json=station_body(24.95, 60.18, name="Old", kind="rescue", address="Street 1"),
        headers=world.h("admin"),
    ).json()
    sid = created["id"]

    since = mark(session)
    r = client.patch(
        f"/api/stations/{sid}", json={"properties": {"name": "New"}}, headers=world.h("commander")
    )
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    assert (props["name"], props["kind"], props["address"]) == ("New", "rescue", "Street 1")
    assert r.json()["geometry"] == created["geometry"]
    payload = assert_recorded(session, since, "station.updated", sid)
    assert payload["properties"]["name"] == "New"

    since = mark(session)
    r = client.patch(
        f"/api/stations/{sid}", json={"geometry": point(25.0, 60.2)}, headers=world.h("admin")
    )
    assert r.status_code == 200, r.text
    assert r.json()["geometry"] == {"type": "Point", "coordinates": [25.0, 60.2]}
    assert r.json()["properties"]["name"] == "New"
    assert_recorded(session, since, "station.updated", sid)

    # An explicit null clears an optional field.
    r = client.patch(
        f"/api/stations/{sid}", json={"properties": {"address": None}}, headers=world.h("admin")
    )
    assert r.status_code == 200
    assert r.json()["properties"]["address"] is None
    stored = client.get(f"/api/stations/{sid}", headers=world.h("auditor")).json()
    assert stored["geometry"]["coordinates"] == [25.0, 60.2]
    assert (stored["properties"]["name"], stored["properties"]["address"]) == ("New", None)


def test_patch_that_changes_nothing_records_nothing(
    client: TestClient, world: World, session: Session
):
    sid = client.post("/api/stations", json=station_body(), headers=world.h("admin")).json()["id"]
    since = mark(session)
    r = client.patch(
        f"/api/stations/{sid}", json={"properties": {"kind": "fire"}}, headers=world.h("admin")
    )
    assert r.status_code == 200
    assert_nothing_recorded(session, since)


def test_station_filters_by_kind_and_bbox(client: TestClient, world: World):
    h = world.h("admin")
    near = client.post("/api/stations", json=station_body(24.96, 60.19, kind="police"), headers=h)
    far = client.post("/api/stations", json=station_body(121.47, 31.23, kind="police"), headers=h)
    hosp = client.post("/api/stations", json=station_body(24.97, 60.19, kind="hospital"), headers=h)
    near_id, far_id, hosp_id = near.json()["id"], far.json()["id"], hosp.json()["id"]

    police = client.get("/api/stations", params={"kind": "police"}, headers=h).json()
    assert ids(police) == [near_id, far_id]
    assert police["numberMatched"] == 2

    box = client.get("/api/stations", params={"bbox": "24.9,60.1,25.0,60.2"}, headers=h).json()
    assert ids(box) == [world.station.id, near_id, hosp_id]
    assert far_id not in ids(box)

    both = client.get(
        "/api/stations", params={"bbox": "24.9,60.1,25.0,60.2", "kind": "police"}, headers=h
    ).json()
    assert ids(both) == [near_id]

    shanghai = client.get("/api/stations", params={"bbox": "121,31,122,32"}, headers=h).json()
    assert ids(shanghai) == [far_id]
    assert shanghai["type"] == "FeatureCollection"
    assert shanghai["numberReturned"] == 1


@pytest.mark.parametrize(
    "bbox", ["1,2,3", "a,b,c,d", "25,60,24,61", "-181,0,0,10", "0,-95,10,10", "nan,0,1,1"]
)
def test_bad_bbox_is_422(client: TestClient, world: World, bbox: str):
    r = client.get("/api/stations", params={"bbox": bbox}, headers=world.h("admin"))
    assert_error(r, 422, "invalid_input")


def test_unknown_ids_are_404(client: TestClient, world: World):
    h = world.h("admin")
    for path in ("stations", "units", "shelters", "warehouses"):
        r = client.get(f"/api/{path}/987654321", headers=h)
        assert_error(r, 404, "not_found")
        r = client.patch(f"/api/{path}/987654321", json={"properties": {}}, headers=h)
        assert_error(r, 404, "not_found")
    r = client.patch("/api/stock/987654321", json={"delta": 1}, headers=h)
    assert_error(r, 404, "not_found")


def test_writes_need_the_right_role(client: TestClient, world: World, count: Count):
    with unchanged(count, "station", "shelter"):
        r = client.post("/api/stations", json=station_body(), headers=world.h("dispatcher"))
        assert_error(r, 403, "forbidden")
        r = client.post("/api/shelters", json=shelter_body(), headers=world.h("responder"))
        assert_error(r, 403, "forbidden")
        r = client.post("/api/stations", json=station_body())
        assert_error(r, 401, "unauthenticated")


# --- refused input: 422 and nothing written -----------------------------------------
BAD_STATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "longitude 200": (station_body(200, 60), "longitude"),
    "latitude -91": (station_body(24.9, -91), "latitude"),
    "unknown property": (station_body(colour="red"), "colour"),
    "unknown kind": (station_body(kind="spaceport"), "kind"),
    "empty name": (station_body(name=""), "name"),
    "polygon": (
        feature(
            {"type": "Polygon", "coordinates": [[[24, 60], [25, 60], [25, 61], [24, 60]]]},
            name="S",
            kind="fire",
        ),
        "Point",
    ),
    "string coordinate": (feature(point("NaN", 60), name="S", kind="fire"), "number"),  # type: ignore[arg-type]
    "three-element garbage": (
        feature({"type": "Point", "coordinates": [1, 2, 3, 4]}, name="S", kind="fire"),
        "position",
    ),
    "missing geometry": (feature(None, name="S", kind="fire"), "geometry"),
    "not a feature": ({"type": "Point", "coordinates": [24.9, 60.1]}, ""),
    "unknown crs": ({**station_body(), "crs": "epsg:3857"}, "crs"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATIONS))
def test_bad_station_is_422_and_nothing_written(
    client: TestClient, world: World, count: Count, case: str
):
    body, word = BAD_STATIONS[case]
    with unchanged(count, "station"):
        r = client.post("/api/stations", json=body, headers=world.h("admin"))
        err = assert_error(r, 422, "validation_error")
    assert word in err["message"] or word in str(err.get("details"))


def test_bad_station_patch_is_422_and_nothing_changes(
    client: TestClient, world: World, count: Count
):
    h = world.h("admin")
    created = client.post("/api/stations", json=station_body(), headers=h).json()
    sid = created["id"]
    bad = [
        {"geometry": point(24.9, 91)},
        {"geometry": point(-180.5, 0)},
        {"properties": {"colour": "red"}},
        {"properties": {"kind": "spaceport"}},
        {"properties": {"name": ""}},
        {"geometry": {"type": "LineString", "coordinates": [[24, 60], [25, 60]]}},
    ]
    with unchanged(count, "station"):
        for body in bad:
            assert_error(client.patch(f"/api/stations/{sid}", json=body, headers=h), 422)
    assert client.get(f"/api/stations/{sid}", headers=h).json() == created


def test_station_from_gcj02_input_is_stored_in_wgs84(client: TestClient, world: World):
    body = {**station_body(116.397, 39.909), "crs": "gcj02"}
    r = client.post("/api/stations", json=body, headers=world.h("admin"))
    assert r.status_code == 201, r.text
    lon, lat = r.json()["geometry"]["coordinates"]
    assert 100 < distance_m((lon, lat), (116.397, 39.909)) < 700
    back = from_wgs84(lon, lat, "gcj02")
    assert back == pytest.approx((116.397, 39.909), abs=1e-6)


# --- units --------------------------------------------------------------------------
def test_create_unit_returns_feature_and_records_change(
    client: TestClient, world: World, session: Session
):
    since = mark(session)
    body = unit_body(
        "L7",
        point(24.93, 60.165),
        kind="team",
        type="ladder",
        capabilities=["rescue_height", "fire_suppression"],
        crew=6,
        home_station_id=world.station.id,
    )
    r = client.post("/api/units", json=body, headers=world.h("admin"))
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["geometry"] == {"type": "Point", "coordinates": [24.93, 60.165]}
    props = got["properties"]
    assert props["callsign"] == "L7"
    assert props["kind"] == "team"
    assert props["type"] == "ladder"
    assert props["capabilities"] == ["rescue_height", "fire_suppression"]
    assert props["crew"] == 6
    assert props["home_station_id"] == world.station.id
    assert props["status"] == "available"
    assert props["position_at"] is not None
    assert_recorded(session, since, "unit.created", got["id"])
    assert client.get(f"/api/units/{got['id']}", headers=world.h("planner")).json() == got


def test_unit_without_geometry_is_placed_at_its_home_station(client: TestClient, world: World):
    h = world.h("admin")
    station = client.post("/api/stations", json=station_body(24.99, 60.21), headers=h).json()
    r = client.post(
        "/api/units", json=unit_body("M3", None, home_station_id=station["id"]), headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["geometry"] == {"type": "Point", "coordinates": [24.99, 60.21]}
    # Placed at its station, not reported: no position time (recommendations say so).
    assert r.json()["properties"]["position_at"] is None

    # Neither a position nor a home station: the unit has no place yet.
    r = client.post("/api/units", json=unit_body("M4", None), headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["geometry"] is None
    assert r.json()["properties"]["position_at"] is None


def test_duplicate_callsign_is_409_and_nothing_written(
    client: TestClient, world: World, count: Count
):
    with unchanged(count, "unit"):
        r = client.post(
            "/api/units", json=unit_body("E1", point(24.9, 60.1)), headers=world.h("admin")
        )
        err = assert_error(r, 409, "conflict")
    assert "callsign" in err["message"]


def test_unknown_home_station_is_422_on_create_and_on_patch(
    client: TestClient, world: World, count: Count
):
    h = world.h("admin")
    with unchanged(count, "unit"):
        for geometry in (None, point(24.9, 60.1)):
            r = client.post(
                "/api/units", json=unit_body("Z9", geometry, home_station_id=987654), headers=h
            )
            err = assert_error(r, 422, "invalid_input")
            assert "987654" in err["message"]
            assert "station" in err["message"]
        r = client.patch(
            f"/api/units/{world.unit_a.id}",
            json={"properties": {"home_station_id": 987654}},
            headers=h,
        )
        err = assert_error(r, 422, "invalid_input")
        assert "station 987654" in err["message"]
    got = client.get(f"/api/units/{world.unit_a.id}", headers=h).json()
    assert got["properties"]["home_station_id"] == world.station.id


BAD_UNITS: dict[str, dict[str, Any]] = {
    "unknown property": unit_body("Q1", point(24.9, 60.1), colour="red"),
    "crew negative": unit_body("Q1", point(24.9, 60.1), crew=-1),
    "crew as text": unit_body("Q1", point(24.9, 60.1), crew="many"),
    "bad kind": unit_body("Q1", point(24.9, 60.1), kind="robot"),
    "task-driven status": unit_body("Q1", point(24.9, 60.1), status="en_route"),
    "bad capability word": unit_body("Q1", point(24.9, 60.1), capabilities=["Fire Suppression"]),
    "callsign with spaces": unit_body("Q 1", point(24.9, 60.1)),
    "longitude 200": unit_body("Q1", point(200, 60.1)),
    "latitude -91": unit_body("Q1", point(24.9, -91)),
}


@pytest.mark.parametrize("case", sorted(BAD_UNITS))
def test_bad_unit_is_422_and_nothing_written(
    client: TestClient, world: World, count: Count, case: str
):
    with unchanged(count, "unit"):
        r = client.post("/api/units", json=BAD_UNITS[case], headers=world.h("admin"))
        assert_error(r, 422, "validation_error")


def test_patch_unit_changes_only_sent_properties(
    client: TestClient, world: World, session: Session
):
    h = world.h("admin")
    uid = world.unit_a.id
    before = client.get(f"/api/units/{uid}", headers=h).json()
    since = mark(session)
    r = client.patch(
        f"/api/units/{uid}",
        json={"properties": {"crew": 5, "capabilities": ["fire_suppression", "hazmat"]}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["properties"]["crew"] == 5
    assert after["properties"]["capabilities"] == ["fire_suppression", "hazmat"]
    for name in ("callsign", "name", "kind", "type", "home_station_id", "status"):
        assert after["properties"][name] == before["properties"][name]
    assert after["geometry"] == before["geometry"]
    assert_recorded(session, since, "unit.updated", uid)

    since = mark(session)
    r = client.patch(f"/api/units/{uid}", json={"geometry": point(24.5, 60.5)}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["geometry"]["coordinates"] == [24.5, 60.5]
    assert r.json()["properties"]["crew"] == 5
    assert_recorded(session, since, "unit.updated", uid)


def test_patch_unit_cannot_set_status_or_null_a_required_field(
    client: TestClient, world: World, count: Count
):
    h = world.h("admin")
    uid = world.unit_a.id
    before = client.get(f"/api/units/{uid}", headers=h).json()
    with unchanged(count, "unit"):
        r = client.patch(
            f"/api/units/{uid}", json={"properties": {"status": "on_scene"}}, headers=h
        )
        assert_error(r, 422, "validation_error")
        r = client.patch(f"/api/units/{uid}", json={"properties": {"name": None}}, headers=h)
        assert_error(r, 422)
    assert client.get(f"/api/units/{uid}", headers=h).json() == before


def test_unit_filters(client: TestClient, world: World):
    h = world.h("admin")
    station2 = client.post("/api/stations", json=station_body(25.1, 60.3), headers=h).json()["id"]
    team = client.post(
        "/api/units",
        json=unit_body(
            "T1",
            point(25.1, 60.3),
            kind="team",
            type="usar",
            capabilities=["rescue_collapse", "medical_bls"],
            home_station_id=station2,
            status="out_of_service",
        ),
        headers=h,
    ).json()["id"]
    a, b = world.unit_a.id, world.unit_b.id

    def listed(**params: Any) -> list[int]:
        r = client.get("/api/units", params=params, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["numberMatched"] == body["numberReturned"] == len(body["features"])
        return ids(body)

    assert listed() == [a, b, team]
    assert listed(status="available") == [a, b]
    assert listed(status="out_of_service") == [team]
    assert listed(type="ambulance") == [b]
    assert listed(type="fire_engine") == [a]
    assert listed(kind="team") == [team]
    assert listed(kind="vehicle") == [a, b]
    assert listed(station_id=world.station.id) == [a, b]
    assert listed(station_id=station2) == [team]
    assert listed(capability="medical_bls") == [b, team]
    assert listed(capability="fire_suppression") == [a]
    assert listed(capability="hazmat") == []
    assert listed(capability="medical_bls", kind="vehicle") == [b]
    assert listed(bbox="25.0,60.25,25.2,60.35") == [team]
    assert listed(bbox="24.9,60.1,25.0,60.2", capability="medical_bls") == [b]


# --- unit status --------------------------------------------------------------------
def post_status(client: TestClient, world: World, unit_id: int, status: str) -> Any:
    return client.post(
        f"/api/units/{unit_id}/status", json={"status": status}, headers=world.h("dispatcher")
    )


def test_unit_goes_out_of_service_and_back(client: TestClient, world: World, session: Session):
    uid = world.unit_a.id
    since = mark(session)
    r = post_status(client, world, uid, "out_of_service")
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["status"] == "out_of_service"
    payload = assert_recorded(session, since, "unit.status_changed", uid)
    assert payload["properties"]["status"] == "out_of_service"

    since = mark(session)
    r = client.post(
        f"/api/units/{uid}/status",
        json={"status": "available", "note": "pump repaired"},
        headers=world.h("responder"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["status"] == "available"
    payload = assert_recorded(session, since, "unit.status_changed", uid)
    assert payload["properties"]["note"] == "pump repaired"

    # The same status again is a no-op.
    since = mark(session)
    assert post_status(client, world, uid, "available").status_code == 200
    assert_nothing_recorded(session, since)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("available", "en_route"),
        ("available", "assigned"),
        ("available", "on_scene"),
        ("available", "returning"),
        ("out_of_service", "assigned"),
        ("out_of_service", "on_scene"),
    ],
)
def test_task_driven_or_illegal_unit_status_is_409(
    client: TestClient, world: World, count: Count, start: str, target: str
):
    uid = world.unit_a.id
    if start != "available":
        assert post_status(client, world, uid, start).status_code == 200
    with unchanged(count, "unit"):
        assert_error(post_status(client, world, uid, target), 409, "invalid_transition")
    got = client.get(f"/api/units/{uid}", headers=world.h("dispatcher")).json()
    assert got["properties"]["status"] == start


def test_unit_status_rules_for_callers(client: TestClient, world: World, count: Count):
    with unchanged(count, "unit"):
        # A responder acts only for their own unit; a planner not at all.
        r = client.post(
            f"/api/units/{world.unit_b.id}/status",
            json={"status": "out_of_service"},
            headers=world.h("responder"),
        )
        assert_error(r, 403, "forbidden")
        r = client.post(
            f"/api/units/{world.unit_a.id}/status",
            json={"status": "out_of_service"},
            headers=world.h("planner"),
        )
        assert_error(r, 403, "forbidden")
        assert_error(post_status(client, world, 987654, "out_of_service"), 404, "not_found")
        assert_error(post_status(client, world, world.unit_a.id, "broken"), 422)


# --- position reports ---------------------------------------------------------------
def unit_point(session: Session, unit_id: int) -> tuple[float, float, datetime | None]:
    row = session.execute(
        text("SELECT ST_X(geom) AS x, ST_Y(geom) AS y, position_at FROM unit WHERE id = :id"),
        {"id": unit_id},
    ).one()
    return row.x, row.y, row.position_at


def published_positions(session: Session, since: Mark) -> list[dict[str, Any]]:
    """Run the live map's publisher once: the positions it sent (and no audit rows)."""
    live.publish_positions(session)
    session.commit()
    events = session.execute(
        text("SELECT type, payload FROM event WHERE id > :id ORDER BY id"), {"id": since.event_id}
    ).all()
    audits = session.execute(
        text("SELECT count(*) FROM audit_event WHERE id > :id"), {"id": since.audit_id}
    ).scalar_one()
    assert audits == 0
    assert {e.type for e in events} <= {"unit.positions"}
    return [p for e in events for p in e.payload["positions"]]


def track(session: Session, unit_id: int) -> list[tuple[float, float, datetime]]:
    rows = session.execute(
        text(
            "SELECT ST_X(geom) AS x, ST_Y(geom) AS y, recorded_at FROM unit_position "
            "WHERE unit_id = :id ORDER BY id"
        ),
        {"id": unit_id},
    ).all()
    return [(r.x, r.y, r.recorded_at) for r in rows]


def test_position_report_moves_the_unit_and_appends_to_its_track(
    client: TestClient, world: World, session: Session
):
    uid = world.unit_a.id
    t1 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    since = mark(session)
    r = client.post(
        f"/api/units/{uid}/position",
        json={"lon": 24.95, "lat": 60.175, "recorded_at": t1.isoformat(), "speed_mps": 12.5},
        headers=world.h("responder"),
    )
    assert r.status_code == 202, r.text
    assert r.json()["unit_id"] == uid
    assert isinstance(r.json()["position_id"], int)
    assert (r.json()["duplicate"], r.json()["flag"]) == (False, None)
    assert datetime.fromisoformat(r.json()["recorded_at"]) == t1
    assert unit_point(session, uid) == (24.95, 60.175, t1)
    assert track(session, uid) == [(24.95, 60.175, t1)]
    # Telemetry: no audit row; the live map gets it in the next coalesced batch.
    (entry,) = published_positions(session, since)
    assert (entry["unit_id"], entry["lon"], entry["lat"]) == (uid, 24.95, 60.175)
    assert entry["speed_mps"] == 12.5
    assert datetime.fromisoformat(entry["recorded_at"]) == t1

    # An older fix arrives late: kept in the track, but the unit stays where it is
    # and the live map is not told (it only ever shows a unit's newest fix).
    t0 = t1 - timedelta(minutes=5)
    since = mark(session)
    r = client.post(
        f"/api/units/{uid}/position",
        json={"lon": 24.90, "lat": 60.16, "recorded_at": t0.isoformat()},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 202, r.text
    assert unit_point(session, uid) == (24.95, 60.175, t1)
    assert track(session, uid) == [(24.95, 60.175, t1), (24.90, 60.16, t0)]
    assert published_positions(session, since) == []

    # A newer fix moves it again; the API shows the new place.
    t2 = t1 + timedelta(seconds=30)
    r = client.post(
        f"/api/units/{uid}/position",
        json={"lon": 24.96, "lat": 60.18, "recorded_at": t2.isoformat()},
        headers=world.h("responder"),
    )
    assert r.status_code == 202
    got = client.get(f"/api/units/{uid}", headers=world.h("commander")).json()
    assert got["geometry"]["coordinates"] == [24.96, 60.18]
    assert datetime.fromisoformat(got["properties"]["position_at"]) == t2
    assert len(track(session, uid)) == 3


def test_position_in_gcj02_is_converted_to_wgs84(
    client: TestClient, world: World, session: Session
):
    uid = world.unit_b.id
    r = client.post(
        f"/api/units/{uid}/position",
        json={
            "lon": 116.397,
            "lat": 39.909,
            "crs": "gcj02",
            "recorded_at": datetime.now(UTC).isoformat(),
        },
        headers=world.h("responder_b"),
    )
    assert r.status_code == 202, r.text
    lon, lat, _ = unit_point(session, uid)
    shift = distance_m((lon, lat), (116.397, 39.909))
    assert 100 < shift < 700
    assert from_wgs84(lon, lat, "gcj02") == pytest.approx((116.397, 39.909), abs=1e-6)
    assert track(session, uid)[0][:2] == (lon, lat)


def test_position_without_time_uses_now(client: TestClient, world: World, session: Session):
    uid = world.unit_a.id
    start = datetime.now(UTC)
    r = client.post(
        f"/api/units/{uid}/position", json={"lon": 24.9, "lat": 60.2}, headers=world.h("responder")
    )
    assert r.status_code == 202, r.text
    _, _, at = unit_point(session, uid)
    assert at is not None
    assert start - timedelta(seconds=5) <= at <= datetime.now(UTC) + timedelta(seconds=5)


@pytest.mark.parametrize(
    "body",
    [
        {"lon": 24.9, "lat": 60.2, "recorded_at": "2024-05-01T12:00:00"},  # naive
        {"lon": 200, "lat": 60.2},
        {"lon": 24.9, "lat": -91},
        {"lon": "east", "lat": 60.2},
        {"lon": 24.9, "lat": 60.2, "crs": "epsg:3857"},
        {"lon": 24.9, "lat": 60.2, "heading_deg": 360},
        {"lon": 24.9, "lat": 60.2, "speed_mps": -1},
        {"lon": 24.9, "lat": 60.2, "altitude": 10},
        {"lon": 24.9, "lat": 60.2, "recorded_at": "2999-01-01T00:00:00+00:00"},
    ],
)
def test_bad_position_is_422_and_nothing_written(
    client: TestClient, world: World, session: Session, count: Count, body: dict[str, Any]
):
    uid = world.unit_a.id
    before = unit_point(session, uid)
    with unchanged(count, "unit_position"):
        r = client.post(f"/api/units/{uid}/position", json=body, headers=world.h("responder"))
        assert_error(r, 422)
    assert unit_point(session, uid) == before


def test_position_for_another_unit_is_forbidden(client: TestClient, world: World, count: Count):
    with unchanged(count, "unit_position"):
        r = client.post(
            f"/api/units/{world.unit_b.id}/position",
            json={"lon": 24.9, "lat": 60.2},
            headers=world.h("responder"),
        )
        assert_error(r, 403, "forbidden")
        r = client.post(
            "/api/units/987654/position", json={"lon": 24.9, "lat": 60.2}, headers=world.h("admin")
        )
        assert_error(r, 404, "not_found")


# --- shelters -----------------------------------------------------------------------
def test_shelter_create_get_patch(client: TestClient, world: World, session: Session):
    since = mark(session)
    body = shelter_body(24.93, 60.16, capacity=300, occupancy=20, accessible=True)
    r = client.post("/api/shelters", json=body, headers=world.h("admin"))
    assert r.status_code == 201, r.text
    got = r.json()
    sid = got["id"]
    assert got["geometry"] == {"type": "Point", "coordinates": [24.93, 60.16]}
    props = got["properties"]
    assert (props["name"], props["capacity"], props["occupancy"]) == ("School gym", 300, 20)
    assert (props["accessible"], props["pets_allowed"], props["status"]) == (True, False, "open")
    assert_recorded(session, since, "shelter.created", sid)
    assert client.get(f"/api/shelters/{sid}", headers=world.h("responder")).json() == got

    # Dispatchers keep occupancy current during an evacuation.
    since = mark(session)
    r = client.patch(
        f"/api/shelters/{sid}",
        json={"properties": {"occupancy": 250}},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    assert (props["occupancy"], props["capacity"], props["accessible"]) == (250, 300, True)
    payload = assert_recorded(session, since, "shelter.updated", sid)
    assert payload["properties"]["occupancy"] == 250


def test_shelter_occupancy_over_capacity_is_refused(client: TestClient, world: World, count: Count):
    h = world.h("admin")
    created = client.post("/api/shelters", json=shelter_body(capacity=100), headers=h).json()
    sid = created["id"]
    with unchanged(count, "shelter"):
        r = client.post("/api/shelters", json=shelter_body(capacity=10, occupancy=11), headers=h)
        err = assert_error(r, 422, "validation_error")
        assert "occupancy" in err["message"]
        for props in ({"occupancy": 101}, {"capacity": 5, "occupancy": 6}):
            r = client.patch(f"/api/shelters/{sid}", json={"properties": props}, headers=h)
            err = assert_error(r, 422, "invalid_input")
            assert "occupancy" in err["message"]
        r = client.patch(f"/api/shelters/{sid}", json={"properties": {"capacity": -1}}, headers=h)
        assert_error(r, 422, "validation_error")
    assert client.get(f"/api/shelters/{sid}", headers=h).json() == created


@pytest.mark.parametrize(
    ("props", "word"),
    [
        ({"capacity": "lots"}, "capacity"),
        ({"capacity": -1}, "capacity"),
        ({"occupancy": -1}, "occupancy"),
        ({"status": "full"}, "status"),
        ({"accessible": "sometimes"}, "accessible"),
        ({"beds": 10}, "beds"),
    ],
)
def test_bad_shelter_is_422_and_nothing_written(
    client: TestClient, world: World, count: Count, props: dict[str, Any], word: str
):
    with unchanged(count, "shelter"):
        r = client.post("/api/shelters", json=shelter_body(**props), headers=world.h("admin"))
        err = assert_error(r, 422, "validation_error")
    assert word in err["message"]


def test_shelter_filters(client: TestClient, world: World):
    h = world.h("admin")

    def make(**props: Any) -> int:
        r = client.post("/api/shelters", json=shelter_body(**props), headers=h)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    plain = make()
    access = make(accessible=True)
    pets = make(pets_allowed=True, status="closed")
    both = make(accessible=True, pets_allowed=True)

    def listed(**params: Any) -> list[int]:
        return ids(client.get("/api/shelters", params=params, headers=h).json())

    assert listed() == [plain, access, pets, both]
    assert listed(status="open") == [plain, access, both]
    assert listed(status="closed") == [pets]
    assert listed(accessible="true") == [access, both]
    assert listed(accessible="false") == [plain, pets]
    assert listed(pets_allowed="true") == [pets, both]
    assert listed(accessible="true", pets_allowed="true", status="open") == [both]
    assert_error(client.get("/api/shelters", params={"accessible": "maybe"}, headers=h), 422)


# --- warehouses, pagination ---------------------------------------------------------
def test_warehouse_create_get_patch(client: TestClient, world: World, session: Session):
    since = mark(session)
    r = client.post(
        "/api/warehouses",
        json=warehouse_body(24.9, 60.2, name="North depot", external_id="wh-north"),
        headers=world.h("admin"),
    )
    assert r.status_code == 201, r.text
    got = r.json()
    wid = got["id"]
    assert got["geometry"] == {"type": "Point", "coordinates": [24.9, 60.2]}
    assert got["properties"]["name"] == "North depot"
    assert got["properties"]["external_id"] == "wh-north"
    assert_recorded(session, since, "warehouse.created", wid)

    since = mark(session)
    r = client.patch(
        f"/api/warehouses/{wid}",
        json={"geometry": point(24.91, 60.21), "properties": {"address": "Dock 4"}},
        headers=world.h("admin"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["geometry"]["coordinates"] == [24.91, 60.21]
    props = r.json()["properties"]
    assert (props["name"], props["address"], props["external_id"]) == (
        "North depot",
        "Dock 4",
        "wh-north",
    )
    assert_recorded(session, since, "warehouse.updated", wid)


def test_duplicate_external_id_is_409(client: TestClient, world: World, count: Count):
    h = world.h("admin")
    assert (
        client.post("/api/warehouses", json=warehouse_body(external_id="w1"), headers=h).status_code
        == 201
    )
    with unchanged(count, "warehouse"):
        r = client.post("/api/warehouses", json=warehouse_body(external_id="w1"), headers=h)
        assert_error(r, 409, "conflict")


def test_pagination(client: TestClient, world: World):
    h = world.h("admin")
    made = [
        client.post("/api/warehouses", json=warehouse_body(24.9 + i / 100), headers=h).json()["id"]
        for i in range(5)
    ]

    def page(**params: Any) -> dict[str, Any]:
        r = client.get("/api/warehouses", params=params, headers=h)
        assert r.status_code == 200, r.text
        return dict(r.json())

    first = page(limit=2)
    assert (ids(first), first["numberMatched"], first["numberReturned"]) == (made[:2], 5, 2)
    second = page(limit=2, offset=2)
    assert (ids(second), second["numberMatched"], second["numberReturned"]) == (made[2:4], 5, 2)
    last = page(limit=2, offset=4)
    assert (ids(last), last["numberMatched"], last["numberReturned"]) == (made[4:], 5, 1)
    beyond = page(limit=2, offset=10)
    assert (ids(beyond), beyond["numberMatched"], beyond["numberReturned"]) == ([], 5, 0)
    boxed = page(limit=1, bbox="24.915,60,24.935,61")
    assert (ids(boxed), boxed["numberMatched"]) == (made[2:3], 2)
    assert ids(page()) == made

    for bad in ({"limit": 0}, {"limit": -1}, {"offset": -1}, {"limit": "ten"}):
        assert_error(client.get("/api/warehouses", params=bad, headers=h), 422)


def test_limit_is_capped_by_page_limit_max(settings: Settings, session_factory: Any, world: World):
    capped = create_app(
        settings.model_copy(update={"page_limit_max": 3, "page_limit_default": 2}),
        session_factory=session_factory,
    )
    with TestClient(capped) as c:
        h = world.h("admin")
        made = [
            c.post("/api/shelters", json=shelter_body(24.9 + i / 100), headers=h).json()["id"]
            for i in range(5)
        ]
        big = c.get("/api/shelters", params={"limit": 500}, headers=h).json()
        assert (ids(big), big["numberMatched"], big["numberReturned"]) == (made[:3], 5, 3)
        default = c.get("/api/shelters", headers=h).json()
        assert (ids(default), default["numberReturned"]) == (made[:2], 2)
        stock = c.get("/api/stock", params={"limit": 500}, headers=h)
        assert stock.status_code == 200


# --- stock --------------------------------------------------------------------------
@pytest.fixture
def warehouse(client: TestClient, world: World) -> int:
    r = client.post("/api/warehouses", json=warehouse_body(), headers=world.h("admin"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def make_stock(client: TestClient, world: World, warehouse_id: int, item: str, qty: int) -> Any:
    return client.post(
        "/api/stock",
        json={
            "warehouse_id": warehouse_id,
            "item": item,
            "quantity": qty,
            "unit_of_measure": "box",
        },
        headers=world.h("dispatcher"),
    )


def test_stock_create_and_list_by_warehouse(
    client: TestClient, world: World, session: Session, warehouse: int
):
    other = client.post(
        "/api/warehouses", json=warehouse_body(25.0, 60.25), headers=world.h("admin")
    ).json()["id"]
    since = mark(session)
    r = make_stock(client, world, warehouse, "water_bottle", 500)
    assert r.status_code == 201, r.text
    water = r.json()
    assert (water["warehouse_id"], water["item"], water["quantity"]) == (
        warehouse,
        "water_bottle",
        500,
    )
    assert water["unit_of_measure"] == "box"
    payload = assert_recorded(session, since, "stock.created", water["id"])
    assert payload["quantity"] == 500
    blankets = make_stock(client, world, warehouse, "blanket", 80).json()["id"]
    elsewhere = make_stock(client, world, other, "water_bottle", 7).json()["id"]

    def listed(**params: Any) -> tuple[list[int], int]:
        body = client.get("/api/stock", params=params, headers=world.h("planner")).json()
        assert body["numberReturned"] == len(body["items"])
        return [s["id"] for s in body["items"]], body["numberMatched"]

    assert listed(warehouse_id=warehouse) == ([water["id"], blankets], 2)
    assert listed(warehouse_id=other) == ([elsewhere], 1)
    assert listed(item="water_bottle") == ([water["id"], elsewhere], 2)
    assert listed(limit=1, offset=1) == ([blankets], 3)


def test_stock_patch_with_delta_and_quantity(
    client: TestClient, world: World, session: Session, warehouse: int
):
    sid = make_stock(client, world, warehouse, "blanket", 100).json()["id"]
    h = world.h("dispatcher")

    since = mark(session)
    r = client.patch(f"/api/stock/{sid}", json={"delta": 25}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["quantity"] == 125
    payload = assert_recorded(session, since, "stock.updated", sid)
    assert payload["quantity"] == 125

    r = client.patch(f"/api/stock/{sid}", json={"delta": -125, "note": "all out"}, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["quantity"], r.json()["note"]) == (0, "all out")

    since = mark(session)
    r = client.patch(f"/api/stock/{sid}", json={"quantity": 40}, headers=h)
    assert r.status_code == 200
    assert r.json()["quantity"] == 40
    assert_recorded(session, since, "stock.updated", sid)
    stored = session.execute(text("SELECT quantity FROM stock WHERE id = :id"), {"id": sid})
    assert stored.scalar_one() == 40


def test_stock_refusals_write_nothing(
    client: TestClient, world: World, session: Session, count: Count, warehouse: int
):
    h = world.h("dispatcher")
    sid = make_stock(client, world, warehouse, "tent", 10).json()["id"]
    since = mark(session)
    with unchanged(count, "stock"):
        err = assert_error(
            client.patch(f"/api/stock/{sid}", json={"delta": -11}, headers=h), 422, "invalid_input"
        )
        assert "10" in err["message"]
        assert_error(
            client.patch(f"/api/stock/{sid}", json={"quantity": 5, "delta": 1}, headers=h),
            422,
            "validation_error",
        )
        assert_error(client.patch(f"/api/stock/{sid}", json={"quantity": -1}, headers=h), 422)
        assert_error(client.patch(f"/api/stock/{sid}", json={"count": 3}, headers=h), 422)
        err = assert_error(make_stock(client, world, warehouse, "tent", 3), 409, "conflict")
        assert "item" in err["message"]
        assert_error(make_stock(client, world, warehouse, "Bad Item", 3), 422)
        assert_error(make_stock(client, world, warehouse, "rope", -3), 422)
        r = make_stock(client, world, 987654, "rope", 3)
        assert r.status_code in (404, 422)
        assert "warehouse 987654" in r.json()["message"]
        r = client.post(
            "/api/stock",
            json={"warehouse_id": warehouse, "item": "rope", "quantity": 1},
            headers=world.h("planner"),
        )
        assert_error(r, 403, "forbidden")
    assert_nothing_recorded(session, since)
    stored = session.execute(text("SELECT quantity FROM stock WHERE id = :id"), {"id": sid})
    assert stored.scalar_one() == 10


def test_a_retried_position_upload_is_stored_once(
    client: TestClient, world: World, session: Session
):
    """One unit and one recorded_at is one fix: a retry is answered as a duplicate, and a
    different place at the same time does not replace the first (the first one wins)."""
    uid = world.unit_a.id
    headers = world.h("responder")
    body = {"lon": 24.951, "lat": 60.176, "recorded_at": datetime.now(UTC).isoformat()}
    first = client.post(f"/api/units/{uid}/position", json=body, headers=headers)
    again = client.post(f"/api/units/{uid}/position", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["duplicate"] is False and isinstance(first.json()["position_id"], int)
    assert again.json()["duplicate"] is True and again.json()["position_id"] is None
    assert len(track(session, uid)) == 1
    other = client.post(f"/api/units/{uid}/position", json={**body, "lon": 24.952}, headers=headers)
    assert other.status_code == 202 and other.json()["duplicate"] is True
    assert [p[:2] for p in track(session, uid)] == [(24.951, 60.176)]
