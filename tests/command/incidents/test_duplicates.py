"""Possible duplicates of a call being taken: open incidents of the same type, near and
recent, nearest first."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.support.world import World, point

LON, LAT = 24.95, 60.17
M_PER_DEG_LAT = 111_400  # near 60° N; distances are checked against PostGIS, not this


def north(metres: float) -> tuple[float, float]:
    return LON, LAT + metres / M_PER_DEG_LAT


def new_incident(client: TestClient, world: World, at: tuple[float, float], **props: Any) -> int:
    body = {
        "type": "Feature",
        "geometry": point(*at),
        "properties": {"title": "Fire", "type": "fire"} | props,
    }
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def duplicates(client: TestClient, world: World, query: str = "", role: str = "dispatcher"):
    return client.get(
        f"/api/incidents/duplicates?type=fire&at={LON},{LAT}{query}", headers=world.h(role)
    )


@pytest.fixture
def scene(client, world, session: Session) -> dict[str, int]:
    ids = {
        "near": new_incident(client, world, north(300), caller_phone="040 555 0300"),
        "nearer": new_incident(client, world, north(100)),
        "far": new_incident(client, world, north(700)),
        "old": new_incident(client, world, north(300)),
        "cancelled": new_incident(client, world, north(300)),
        "flood": new_incident(client, world, north(300), type="flood"),
        "drill": new_incident(client, world, north(300), drill=True),
    }
    session.execute(
        text("UPDATE incident SET reported_at = now() - interval '31 minutes' WHERE id = :id"),
        {"id": ids["old"]},
    )
    r = client.post(
        f"/api/incidents/{ids['cancelled']}/status",
        json={"status": "cancelled"},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 200, r.text
    r = client.post(
        f"/api/incidents/{ids['nearer']}/status",
        json={"status": "verified"},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 200, r.text
    return ids


def test_lists_open_same_type_incidents_near_and_recent_nearest_first(client, world, scene):
    r = duplicates(client, world)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "FeatureCollection"
    assert [f["id"] for f in body["features"]] == [scene["nearer"], scene["near"]]
    near = body["features"][1]["properties"]
    assert 295 <= near["distance_m"] <= 305
    assert isinstance(near["distance_m"], int)
    assert near["caller_phone"] == "040 555 0300"  # staff compare the callers
    assert near["calls"] == 1
    assert near["type"] == "fire" and near["status"] == "reported"
    assert body["features"][0]["properties"]["status"] == "verified"
    assert body["numberReturned"] == 2


def test_radius_window_and_drill_widen_or_switch_the_search(client, world, scene):
    def ids(query: str) -> list[int]:
        r = duplicates(client, world, query)
        assert r.status_code == 200, r.text
        return [f["id"] for f in r.json()["features"]]

    assert ids("&radius_m=1000") == [scene["nearer"], scene["near"], scene["far"]]
    assert sorted(ids("&window_s=3600")) == sorted([scene["nearer"], scene["near"], scene["old"]])
    assert ids("&radius_m=150") == [scene["nearer"]]
    assert ids("&drill=true") == [scene["drill"]]
    assert ids("&crs=gcj02") == [scene["nearer"], scene["near"]]  # outside China: as WGS-84


def test_a_dispatched_incident_is_still_a_duplicate(client, world, scene):
    r = client.post(
        f"/api/incidents/{scene['near']}/dispatch",
        json={"unit_ids": [world.unit_a.id]},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 201, r.text
    got = duplicates(client, world).json()["features"]
    assert [(f["id"], f["properties"]["status"]) for f in got] == [
        (scene["nearer"], "verified"),
        (scene["near"], "dispatched"),
    ]


@pytest.mark.parametrize(
    ("query", "word"),
    [
        ("type=fire&at=abc", "at: a point must be LON,LAT"),
        ("type=fire&at=24.95", "at: a point must be LON,LAT"),
        ("type=fire&at=200,60", "at: point (200.0, 60.0) is out of range"),
        ("type=Fire!&at=24.95,60.17", "query.type"),
        ("at=24.95,60.17", "query.type"),
        ("type=fire", "query.at"),
        ("type=fire&at=24.95,60.17&radius_m=5001", "query.radius_m"),
        ("type=fire&at=24.95,60.17&radius_m=0", "query.radius_m"),
        ("type=fire&at=24.95,60.17&window_s=0", "query.window_s"),
        ("type=fire&at=24.95,60.17&crs=utm", "query.crs"),
    ],
)
def test_bad_queries_are_422_with_a_reason(client, world, query, word):
    r = client.get(f"/api/incidents/duplicates?{query}", headers=world.h("dispatcher"))
    assert r.status_code == 422, r.text
    assert word in r.json()["message"]


@pytest.mark.parametrize("role", ["responder", "responder_b"])
def test_responders_may_not_search_duplicates(client, world, scene, role):
    assert duplicates(client, world, role=role).status_code == 403


@pytest.mark.parametrize("role", ["commander", "dispatcher", "planner", "auditor", "admin"])
def test_staff_may(client, world, role):
    assert duplicates(client, world, role=role).status_code == 200
