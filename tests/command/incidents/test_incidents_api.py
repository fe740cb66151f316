"""Incidents over HTTP: GeoJSON in and out, filters, lifecycle, and refused input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.support.world import World, point

SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[24.93, 60.16], [24.95, 60.16], [24.95, 60.18], [24.93, 60.18], [24.93, 60.16]]
    ],
}


def feature(geometry=None, **props):
    props = {"title": "Fire at the market", "type": "fire", **props}
    return {"type": "Feature", "geometry": geometry or point(24.95, 60.17), "properties": props}


def create(client, world: World, **kw):
    r = client.post("/api/incidents", json=feature(**kw), headers=world.h("dispatcher"))
    assert r.status_code == 201, r.text
    return r.json()


def test_area_incident_keeps_its_polygon_and_gets_a_location_inside(client, world, session):
    got = create(client, world, geometry=SQUARE, type="flood")
    assert got["geometry"]["type"] == "Polygon"
    inside = session.execute(
        text("SELECT ST_Within(location, geom) FROM incident WHERE id = :id"), {"id": got["id"]}
    ).scalar_one()
    assert inside is True


def test_list_filters_by_bbox_status_and_type(client, world):
    near = create(client, world, geometry=point(24.95, 60.17))
    far = create(client, world, geometry=point(25.50, 60.40), type="flood")
    area = create(client, world, geometry=SQUARE)
    client.post(
        f"/api/incidents/{far['id']}/status",
        json={"status": "verified"},
        headers=world.h("dispatcher"),
    )
    h = world.h("commander")

    def ids(query: str) -> set[int]:
        r = client.get(f"/api/incidents?{query}", headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["type"] == "FeatureCollection"
        assert body["numberReturned"] == len(body["features"])
        return {f["id"] for f in body["features"]}

    assert ids("bbox=24.9,60.1,25.0,60.2") == {near["id"], area["id"]}
    # An area overlapping the box counts even when its corners are outside.
    assert area["id"] in ids("bbox=24.94,60.17,24.941,60.171")
    assert ids("status=verified") == {far["id"]}
    assert ids("status=reported,verified") == {near["id"], far["id"], area["id"]}
    assert ids("type=flood") == {far["id"]}
    assert ids("bbox=24.9,60.1,25.0,60.2&type=flood") == set()


def test_pagination_counts_all_matches(client, world):
    made = [create(client, world, title=f"n{i}")["id"] for i in range(5)]
    h = world.h("commander")
    first = client.get("/api/incidents?limit=2", headers=h).json()
    second = client.get("/api/incidents?limit=2&offset=2", headers=h).json()
    assert first["numberMatched"] == second["numberMatched"] == 5
    assert [f["id"] for f in first["features"] + second["features"]] == made[:4]
    assert client.get("/api/incidents?limit=0", headers=h).status_code == 422


def test_patch_changes_only_what_was_sent(client, world):
    got = create(client, world, severity="minor", description="smoke seen")
    r = client.patch(
        f"/api/incidents/{got['id']}",
        json={"properties": {"severity": "severe"}, "geometry": point(24.96, 60.18)},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    assert props["severity"] == "severe" and props["description"] == "smoke seen"
    assert r.json()["geometry"]["coordinates"] == [24.96, 60.18]


def test_lifecycle_stamps_each_step(client, world):
    iid = create(client, world)["id"]
    h = world.h("dispatcher")

    def step(status: str) -> dict:
        r = client.post(f"/api/incidents/{iid}/status", json={"status": status}, headers=h)
        assert r.status_code == 200, r.text
        return r.json()["properties"]

    assert step("verified")["verified_at"] is not None
    r = client.post(
        f"/api/incidents/{iid}/dispatch", json={"unit_ids": [world.unit_a.id]}, headers=h
    )
    assert r.status_code == 201
    assert step("on_scene")["on_scene_at"] is not None
    assert step("resolved")["resolved_at"] is not None
    props = step("closed")
    assert props["status"] == "closed"
    times = [
        props[f"{s}_at"]
        for s in ("reported", "verified", "dispatched", "on_scene", "resolved", "closed")
    ]
    assert times == sorted(times)
    # Closing ends the unit's task and frees it.
    assert (
        client.get(f"/api/units/{world.unit_a.id}", headers=h).json()["properties"]["status"]
        == "available"
    )


@pytest.mark.parametrize(
    ("path", "status"),
    [([], "resolved"), ([], "closed"), (["cancelled"], "verified"), (["verified"], "on_scene")],
)
def test_illegal_transitions_are_409_and_change_nothing(client, world, count, path, status):
    iid = create(client, world)["id"]
    h = world.h("dispatcher")
    for s in path:
        assert (
            client.post(f"/api/incidents/{iid}/status", json={"status": s}, headers=h).status_code
            == 200
        )
    before = count("audit_event")
    r = client.post(f"/api/incidents/{iid}/status", json={"status": status}, headers=h)
    assert r.status_code == 409
    assert r.json()["error"] == "invalid_transition"
    assert count("audit_event") == before


def test_dispatched_is_not_set_by_hand(client, world):
    iid = create(client, world)["id"]
    r = client.post(
        f"/api/incidents/{iid}/status", json={"status": "dispatched"}, headers=world.h("dispatcher")
    )
    assert r.status_code == 422


BAD_BODIES = [
    ("longitude out of range", feature(geometry=point(181, 60)), "longitude 181"),
    ("latitude out of range", feature(geometry=point(24.9, -90.5)), "latitude -90.5"),
    ("lat,lon swapped far north", feature(geometry=point(60.17, 124.9)), "latitude 124.9"),
    (
        "self-intersecting polygon",
        feature(
            geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
        ),
        "Self-intersection",
    ),
    (
        "line is not an incident",
        feature(geometry={"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
        "type",
    ),
    ("unknown property", feature(colour="red"), "colour"),
    ("unknown top-level member", {**feature(), "extra": 1}, "extra"),
    ("wrong type", feature(people_affected="many"), "people_affected"),
    ("bad severity", feature(severity="apocalyptic"), "severity"),
    ("empty title", feature(title=""), "title"),
    (
        "missing geometry",
        {"type": "Feature", "properties": {"title": "x", "type": "fire"}},
        "geometry",
    ),
    ("not a feature", {"type": "FeatureCollection", "features": []}, "type"),
    ("bad crs", {**feature(), "crs": "EPSG:3857"}, "crs"),
]


@pytest.mark.parametrize(("case", "body", "mentions"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_is_422_and_writes_nothing(client, world, count, case, body, mentions):
    before = (count("incident"), count("event"), count("audit_event"))
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error"] == "validation_error"
    assert mentions in json.dumps(err)
    assert (count("incident"), count("event"), count("audit_event")) == before


def test_malformed_json_is_422(client, world):
    r = client.post(
        "/api/incidents",
        content=b'{"type": "Feature", ',
        headers={**world.h("dispatcher"), "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


def test_oversized_body_is_413_and_writes_nothing(client, world, count, settings):
    before = count("incident")
    body = feature(description="x" * (settings.max_body_bytes + 10))
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"
    assert count("incident") == before


def test_oversized_chunked_body_is_413(client, world, settings):
    def chunks():
        yield b'{"type": "Feature", "properties": {"description": "'
        for _ in range(settings.max_body_bytes // 1000 + 2):
            yield b"x" * 1000
        yield b'"}}'

    r = client.post(
        "/api/incidents",
        content=chunks(),
        headers={**world.h("dispatcher"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_unknown_ids_are_404(client, world):
    h = world.h("dispatcher")
    assert client.get("/api/incidents/999999", headers=h).json()["error"] == "not_found"
    assert (
        client.patch(
            "/api/incidents/999999", json={"properties": {"title": "x"}}, headers=h
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/incidents/999999/status", json={"status": "verified"}, headers=h
        ).status_code
        == 404
    )
    # Not an id: no such path (ids are digits; /api/incidents/duplicates is a path of its own).
    assert client.get("/api/incidents/abc", headers=h).status_code == 404
    r = client.patch("/api/incidents/duplicates", json={}, headers=h)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET"


def test_bad_filters_are_422(client, world):
    h = world.h("commander")
    assert client.get("/api/incidents?bbox=1,2,3", headers=h).status_code == 422
    assert client.get("/api/incidents?bbox=10,10,5,5", headers=h).status_code == 422
    r = client.get("/api/incidents?status=burning", headers=h)
    assert r.status_code == 422 and "burning" in r.json()["message"]


def test_gcj02_input_is_stored_as_wgs84(client, world):
    body = {**feature(geometry=point(116.3974, 39.9087)), "crs": "gcj02"}
    got = client.post("/api/incidents", json=body, headers=world.h("dispatcher")).json()
    lon, lat = got["geometry"]["coordinates"]
    assert (lon, lat) != (116.3974, 39.9087)
    assert abs(lon - 116.3974) < 0.01 and abs(lat - 39.9087) < 0.01


def test_closed_incident_cannot_be_edited(client, world):
    iid = create(client, world)["id"]
    h = world.h("dispatcher")
    client.post(f"/api/incidents/{iid}/status", json={"status": "cancelled"}, headers=h)
    r = client.patch(f"/api/incidents/{iid}", json={"properties": {"title": "y"}}, headers=h)
    assert r.status_code == 409


def test_health_reports_postgis(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["postgis"].startswith("3.")


def test_openapi_documents_the_contract(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in (
        "/api/incidents",
        "/api/incidents/{incident_id}/dispatch",
        "/api/units",
        "/api/stations",
        "/api/shelters",
        "/api/warehouses",
        "/api/stock",
        "/api/units/{unit_id}/position",
        "/api/tasks/{task_id}/status",
        "/api/auth/token",
    ):
        assert p in paths


def test_a_unit_on_a_task_cannot_be_freed_by_hand(client, world):
    iid = create(client, world)["id"]
    h = world.h("dispatcher")
    assert (
        client.post(
            f"/api/incidents/{iid}/dispatch", json={"unit_ids": [world.unit_a.id]}, headers=h
        ).status_code
        == 201
    )
    for target in ("available", "out_of_service", "returning"):
        r = client.post(f"/api/units/{world.unit_a.id}/status", json={"status": target}, headers=h)
        assert r.status_code == 409, target
        assert "task" in r.json()["message"]
    unit = client.get(f"/api/units/{world.unit_a.id}", headers=h).json()
    assert unit["properties"]["status"] == "assigned"
