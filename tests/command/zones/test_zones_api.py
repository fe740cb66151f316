"""Warning zones: drawn, listed, ended; active road-blocking zones close roads to plans."""

from __future__ import annotations

import shapely
from shapely.geometry import Point, mapping

from tests.support.world import World, point

CENTRE = (24.9442949, 60.1716313)
UNIT_AT = (24.9400, 60.1680)


def _zone(center, radius_deg=0.0008, **props):
    area = mapping(shapely.Point(*center).buffer(radius_deg))
    base = {"name": "Flooded underpass", "kind": "flood", "blocks_roads": True}
    return {"type": "Feature", "geometry": area, "properties": {**base, **props}}


def test_zone_lifecycle_and_bad_input(client, world: World, count):
    h = world.h("dispatcher")
    r = client.post("/api/warning-zones", json=_zone(CENTRE), headers=h)
    assert r.status_code == 201, r.text
    zid = r.json()["id"]
    assert r.json()["properties"]["status"] == "active"
    active = client.get("/api/warning-zones?active=true", headers=h).json()
    assert zid in [f["id"] for f in active["features"]]
    ended = client.patch(f"/api/warning-zones/{zid}", json={"properties": {"status": "ended"}},
                         headers=h)  # fmt: skip
    assert ended.status_code == 200
    active = client.get("/api/warning-zones?active=true", headers=h).json()
    assert zid not in [f["id"] for f in active["features"]]
    before = count("warning_zone")
    bad = [
        {**_zone(CENTRE), "geometry": point(*CENTRE)},
        {**_zone(CENTRE), "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0],
                                                                            [0, 1], [0, 0]]]}},
        _zone(CENTRE, starts_at="2026-11-22T10:00:00"),
        _zone(CENTRE, starts_at="2026-11-22T10:00:00+00:00", ends_at="2026-11-22T09:00:00+00:00"),
        _zone(CENTRE, colour="blue"),
    ]  # fmt: skip
    for body in bad:
        assert client.post("/api/warning-zones", json=body, headers=h).status_code == 422
    assert count("warning_zone") == before
    assert client.post("/api/warning-zones", json=_zone(CENTRE),
                       headers=world.h("responder")).status_code == 403  # fmt: skip


def _unit(client, world):
    body = {"type": "Feature", "geometry": point(*UNIT_AT),
            "properties": {"callsign": "Z-1", "name": "Z-1", "kind": "vehicle",
                           "type": "engine", "capabilities": ["fire_suppression"], "crew": 3}}  # fmt: skip
    return client.post("/api/units", json=body, headers=world.h("commander")).json()["id"]


def _incident(client, world):
    body = {"type": "Feature", "geometry": point(*CENTRE),
            "properties": {"title": "Fire", "type": "fire", "severity": "minor"}}  # fmt: skip
    return client.post("/api/incidents", json=body, headers=world.h("dispatcher")).json()["id"]


def test_recommendations_avoid_active_road_blocking_zones(client, world):
    h = world.h("dispatcher")
    unit, incident = _unit(client, world), _incident(client, world)

    def status_of() -> str:
        body = client.get(f"/api/incidents/{incident}/recommendations?limit=50", headers=h).json()
        if unit in {e["unit_id"] for e in body["recommendations"]}:
            return "ranked"
        return next(e["reason"] for e in body["excluded"] if e["unit_id"] == unit)

    assert status_of() == "ranked"
    drill = client.post("/api/warning-zones", json=_zone(UNIT_AT, drill=True), headers=h).json()
    assert status_of() == "ranked"  # a drill never closes real roads
    zone = client.post("/api/warning-zones", json=_zone(UNIT_AT), headers=h).json()
    assert status_of() == "unreachable"  # its own street is under water
    client.patch(f"/api/warning-zones/{zone['id']}", json={"properties": {"status": "ended"}},
                 headers=h)  # fmt: skip
    assert status_of() == "ranked"
    assert drill["properties"]["drill"] is True


def test_evacuate_everyone_in_a_warning_zone(client, world, session):
    from geoalchemy2.shape import from_shape

    from resources.models import Shelter

    session.add(Shelter(name="Hall", capacity=500, occupancy=0, accessible=True,
                        pets_allowed=True, geom=from_shape(Point(24.9500, 60.1750), 4326)))  # fmt: skip
    session.commit()
    h = world.h("dispatcher")
    zone = client.post("/api/warning-zones", json=_zone(CENTRE, blocks_roads=False), headers=h)
    body = {"zones": [{"id": "z", "warning_zone_id": zone.json()["id"], "population": 40}]}
    r = client.post("/api/evacuation/plan", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert sum(p["people"] for p in r.json()["plan"]["placements"]) == 40
    both = {"zones": [{"id": "z", "warning_zone_id": 1, "population": 1,
                       "geometry": point(*CENTRE)}]}  # fmt: skip
    assert client.post("/api/evacuation/plan", json=both, headers=h).status_code == 422
    missing = {"zones": [{"id": "z", "warning_zone_id": 999999, "population": 1}]}
    assert client.post("/api/evacuation/plan", json=missing, headers=h).status_code == 404
