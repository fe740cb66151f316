"""Plans for many at once over HTTP: units to incidents, supplies, evacuation; commits that
reserve stock or shelter space, and never overdraw them even when two commit at once."""

from __future__ import annotations

import threading

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import text
from sqlalchemy.orm import Session

from command.incidents.models import SEVERITIES
from command.planning import service as planning
from core.db import AuditedSession
from core.errors import Conflict
from core.security import SYSTEM
from dispatch.supplies import Allocation, Shipment
from resources.models import Shelter, Stock, Warehouse
from tests.support.world import World, point

SPOTS = [(24.9442, 60.1716), (24.9400, 60.1680), (24.9500, 60.1750), (24.9380, 60.1740)]


def _incident(client, world, where, type_="fire", severity="severe"):
    body = {"type": "Feature", "geometry": point(*where),
            "properties": {"title": "t", "type": type_, "severity": severity}}  # fmt: skip
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 201
    return r.json()["id"]


def _unit(client, world, callsign, caps, where):
    body = {"type": "Feature", "geometry": point(*where),
            "properties": {"callsign": callsign, "name": callsign, "kind": "vehicle",
                           "type": "engine", "capabilities": caps, "crew": 3}}  # fmt: skip
    r = client.post("/api/units", json=body, headers=world.h("commander"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_dispatch_plan_is_never_worse_than_greedy(client, world: World):
    h = world.h("commander")
    for sev in SEVERITIES:
        client.post("/api/response-plans", headers=h, json={
            "incident_type": "fire", "severity": sev,
            "needs": [{"capability": "fire_suppression", "count": 1},
                      {"capability": "medical_bls", "count": 1}]})  # fmt: skip
    incidents = [_incident(client, world, p) for p in SPOTS[:3]]
    for k, p in enumerate(SPOTS):
        _unit(client, world, f"X{k}", ["fire_suppression"], p)
    r = client.post("/api/dispatch/plan", json={"incident_ids": incidents},
                    headers=world.h("dispatcher"))  # fmt: skip
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["cost"] <= plan["greedy_cost"] + 1e-6
    assert plan["better_than_greedy_by"] >= 0
    units = [a["unit_id"] for a in plan["assignments"]]
    assert len(units) == len(set(units))
    caps = {u: client.get(f"/api/units/{u}", headers=h).json()["properties"]["capabilities"]
            for u in units}  # fmt: skip
    assert all(a["capability"] in caps[a["unit_id"]] for a in plan["assignments"])
    # one medical unit (world's A1) for three incidents: two medical lines go unmet
    missing = sum(u["missing"] for u in plan["unmet"] if u["capability"] == "medical_bls")
    assert missing == 2
    # It is a proposal: nothing was dispatched.
    assert all(
        client.get(f"/api/incidents/{i}", headers=h).json()["properties"]["status"] == "reported"
        for i in incidents
    )
    assert client.post("/api/dispatch/plan", json={"incident_ids": [999999]},
                       headers=h).status_code == 404  # fmt: skip
    assert client.post("/api/dispatch/plan", json={},
                       headers=world.h("responder")).status_code == 403  # fmt: skip


@pytest.fixture
def depot(session: Session, world: World):
    house = Warehouse(name="Depot", geom=from_shape(Point(24.9420, 60.1700), 4326))
    shelter = Shelter(name="School", capacity=100, occupancy=10, accessible=True,
                      pets_allowed=False, geom=from_shape(Point(24.9460, 60.1730), 4326))  # fmt: skip
    session.add_all([house, shelter])
    session.flush()
    session.add(Stock(warehouse_id=house.id, item="drinking_water", unit_of_measure="litre",
                      quantity=1000))  # fmt: skip
    session.commit()
    return house, shelter


def test_supplies_allocate_routes_and_commit_reserves_stock(client, world, depot, session):
    house, shelter = depot
    h = world.h("dispatcher")
    body = {"demands": [{"target": f"shelter:{shelter.id}", "item": "drinking_water",
                         "quantity": 700}],
            "fleet": [{"warehouse_id": house.id, "capacity": 300, "count": 3}]}  # fmt: skip
    r = client.post("/api/supplies/allocate", json=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert sum(s["quantity"] for s in out["allocation"]["shipments"]) == 700
    assert out["routes"]["unserved"] == []
    assert sum(rt["load"] for rt in out["routes"]["routes"]) == 700
    assert all(rt["load"] <= 300 for rt in out["routes"]["routes"])
    # Two trucks of 300 cannot carry 700 in one trip each: a stop is reported unserved.
    short = {**body, "fleet": [{"warehouse_id": house.id, "capacity": 300, "count": 2}]}
    assert (
        len(
            client.post("/api/supplies/allocate", json=short, headers=h).json()["routes"][
                "unserved"
            ]
        )
        == 1
    )
    stock = lambda: session.execute(  # noqa: E731
        text("SELECT quantity FROM stock WHERE warehouse_id = :w"), {"w": house.id}
    ).scalar_one()
    assert stock() == 1000  # not committed: nothing reserved
    r = client.post("/api/supplies/allocate", json={**body, "commit": True}, headers=h)
    assert r.status_code == 200 and r.json()["committed"]["plan_id"] > 0
    assert stock() == 300
    # Only 300 left: the next 700 is partly short, reported, and only 300 reserved.
    again = client.post("/api/supplies/allocate", json={**body, "commit": True}, headers=h).json()
    assert again["allocation"]["shortfalls"][0]["missing"] == 400
    assert stock() == 0
    bad = {"demands": [{"target": "depot:1", "item": "water", "quantity": 1}]}
    assert client.post("/api/supplies/allocate", json=bad, headers=h).status_code == 422
    unknown = {"demands": [{"target": "shelter:999999", "item": "water", "quantity": 1}]}
    assert client.post("/api/supplies/allocate", json=unknown, headers=h).status_code == 404
    assert client.post("/api/supplies/allocate", json={**body, "commit": True},
                       headers=world.h("planner")).status_code == 403  # fmt: skip


def test_evacuation_plan_and_commit_hold_space(client, world, depot, session):
    _, shelter = depot
    h = world.h("dispatcher")
    zone = {"id": "block-7", "population": 120, "needs_accessible": 10, "with_pets": 5,
            "geometry": {"type": "Polygon", "coordinates": [[[24.943, 60.171], [24.945, 60.171],
                         [24.945, 60.172], [24.943, 60.172], [24.943, 60.171]]]}}  # fmt: skip
    r = client.post("/api/evacuation/plan", json={"zones": [zone], "commit": True}, headers=h)
    assert r.status_code == 200, r.text
    plan = r.json()["plan"]
    placed = sum(p["people"] for p in plan["placements"] if p["shelter_id"] == shelter.id)
    assert placed == 90  # 100 capacity - 10 occupied
    pets = [u for u in plan["unplaced"] if u["group"] == "pets"]
    assert pets and pets[0]["people"] == 5  # the only shelter takes no pets
    planned = session.execute(
        text("SELECT planned_arrivals FROM shelter WHERE id = :s"), {"s": shelter.id}
    ).scalar_one()
    assert planned == 90
    # The shelter is full now: a second plan places nobody there and commits nothing new.
    second = client.post("/api/evacuation/plan", json={"zones": [zone], "commit": True},
                         headers=h).json()  # fmt: skip
    assert all(p["shelter_id"] != shelter.id for p in second["plan"]["placements"])
    bad = {**zone, "needs_accessible": 200}
    assert client.post("/api/evacuation/plan", json={"zones": [bad]}, headers=h).status_code == 422
    selfx = {**zone, "geometry": {"type": "Polygon",
             "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}  # fmt: skip
    r = client.post("/api/evacuation/plan", json={"zones": [selfx]}, headers=h)
    assert r.status_code == 422 and "Self-intersection" in r.text


def test_concurrent_reservations_never_overdraw_stock(engine):
    """Two planners commit 60 of the same 100 at once: one wins, one gets 409, stock 40."""
    with AuditedSession(engine) as s:
        house = Warehouse(name="Race depot", geom=from_shape(Point(24.94, 60.17), 4326))
        s.add(house)
        s.flush()
        s.add(Stock(warehouse_id=house.id, item="tent", unit_of_measure="piece", quantity=100))
        s.commit()
        house_id = house.id
    allocation = Allocation(
        shipments=(Shipment(house_id, "0:shelter:1", "tent", 60, 10.0),),
        shortfalls=(), cost=600.0, seconds=0.0,
    )  # fmt: skip
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def commit() -> None:
        with AuditedSession(engine) as s:
            barrier.wait()
            try:
                planning._reserve(s, allocation, {"allocation": {}}, [], SYSTEM)
                s.commit()
                outcomes.append("ok")
            except Conflict:
                s.rollback()
                outcomes.append("conflict")

    threads = [threading.Thread(target=commit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with AuditedSession(engine) as s:
        left = s.execute(text("SELECT quantity FROM stock WHERE warehouse_id = :w"),
                         {"w": house_id}).scalar_one()  # fmt: skip
        s.execute(text("DELETE FROM plan_record WHERE kind = 'supplies' AND request = '{}'::jsonb"))
        s.execute(text("DELETE FROM stock WHERE warehouse_id = :w"), {"w": house_id})
        s.execute(text("DELETE FROM warehouse WHERE id = :w"), {"w": house_id})
        s.commit()
    assert sorted(outcomes) == ["conflict", "ok"]
    assert left == 40
