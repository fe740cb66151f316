"""Response plans, recommendations and the recorded dispatch decision, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.support.world import World, point

CENTRE = (24.9442949, 60.1716313)  # the demo city (Helsinki centre)
NEAR, MID, FAR = (24.9450, 60.1712), (24.9400, 60.1680), (24.9520, 60.1770)


@pytest.fixture
def fire(client, world: World):
    h = world.h("commander")
    plan = {
        "incident_type": "fire",
        "severity": "moderate",
        "needs": [{"capability": "fire_suppression", "count": 2},
                  {"capability": "medical_bls", "count": 1}],
    }  # fmt: skip
    assert client.post("/api/response-plans", json=plan, headers=h).status_code == 200

    def unit(callsign, caps, where, status="available"):
        body = {
            "type": "Feature",
            "geometry": point(*where),
            "properties": {"callsign": callsign, "name": callsign, "kind": "vehicle",
                           "type": "fire_engine", "capabilities": caps, "crew": 4,
                           "status": status},
        }  # fmt: skip
        r = client.post("/api/units", json=body, headers=h)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    ids = {
        "near": unit("F-NEAR", ["fire_suppression"], NEAR),
        "mid": unit("F-MID", ["fire_suppression"], MID),
        "far": unit("F-FAR", ["fire_suppression", "ladder"], FAR),
        "medic": unit("M-1", ["medical_bls"], MID),
        "oos": unit("F-OOS", ["fire_suppression"], NEAR, status="out_of_service"),
        "police": unit("P-1", ["police"], NEAR),
    }
    body = {"type": "Feature", "geometry": point(*CENTRE),
            "properties": {"title": "Kitchen fire", "type": "fire", "severity": "severe"}}  # fmt: skip
    incident = client.post("/api/incidents", json=body, headers=world.h("dispatcher")).json()
    return incident["id"], ids


def test_plan_fills_with_the_fastest_and_explains(client, world, fire, road_engine):
    incident, ids = fire
    r = client.get(f"/api/incidents/{incident}/recommendations?limit=5",
                   headers=world.h("dispatcher"))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    # No plan for "severe": the nearest lower severity's plan is used.
    assert body["response_plan"]["severity"] == "moderate"
    rec = [e for e in body["recommendations"] if e["recommended"]]
    fills = sorted((e["unit_id"], e["fills"]) for e in rec)
    # world's E1 (fire) and A1 (medical) sit close to the centre too: compare with the engine.
    snap = road_engine.snap(*CENTRE)
    etas = {}
    for e in body["recommendations"]:
        assert e["route"] is None or e["route"]["type"] == "LineString"
        etas[e["unit_id"]] = e["eta_s"]
    fire_rec = [e for e in rec if e["fills"] == "fire_suppression"]
    assert len(fire_rec) == 2 and len([e for e in rec if e["fills"] == "medical_bls"]) == 1
    assert all(e["route"] is not None for e in rec)
    # The two fire units recommended are the two fastest with the capability.
    fire_units = [world.unit_a.id, ids["near"], ids["mid"], ids["far"]]
    engine_eta = {}
    for uid in fire_units:
        row = client.get(f"/api/units/{uid}", headers=world.h("dispatcher")).json()
        lon, lat = row["geometry"]["coordinates"]
        m = road_engine.matrix([road_engine.snap(lon, lat)], [snap])
        engine_eta[uid] = float(m.durations_s[0, 0])
    fastest = sorted(fire_units, key=lambda u: engine_eta[u])[:2]
    assert sorted(e["unit_id"] for e in fire_rec) == sorted(fastest)
    for e in fire_rec:
        assert e["eta_s"] == pytest.approx(engine_eta[e["unit_id"]], abs=0.1)
        assert "fastest with fire_suppression" in e["why"]
    reasons = {e["unit_id"]: e["reason"] for e in body["excluded"]}
    assert reasons[ids["oos"]] == "out_of_service"
    # Units without a needed capability are counted, not listed one by one.
    assert ids["police"] not in reasons
    assert body["excluded_counts"]["lacks_capability"] >= 1
    assert body["excluded_counts"]["out_of_service"] >= 1
    assert body["unmet"] == []
    assert fills  # something was recommended


def test_stale_positions_are_flagged_not_used(client, world, fire, session):
    incident, ids = fire
    # The unit's last fix is two hours old (its device went quiet).
    session.execute(
        text("UPDATE unit SET position_at = :t WHERE id = :id"),
        {"t": datetime.now(UTC) - timedelta(hours=2), "id": ids["near"]},
    )
    session.commit()
    body = client.get(f"/api/incidents/{incident}/recommendations",
                      headers=world.h("dispatcher")).json()  # fmt: skip
    excluded = {e["unit_id"]: e for e in body["excluded"]}
    assert excluded[ids["near"]]["reason"] == "position_stale"
    assert "120 min" in excluded[ids["near"]]["why"]
    assert ids["near"] not in {e["unit_id"] for e in body["recommendations"]}


def test_closures_in_the_request_change_the_ranking(client, world, fire):
    incident, _ = fire
    h = world.h("dispatcher")
    base = client.get(f"/api/incidents/{incident}/recommendations", headers=h).json()
    # Close the roads right at the incident: every unit's drive can only get longer.
    route = client.get(
        f"/api/route?from={CENTRE[0]},{CENTRE[1]}&to={CENTRE[0]},{CENTRE[1]}", headers=h
    ).json()
    edges = route["properties"]["origin"]["edge_ids"]
    closed = ",".join(str(e) for e in edges)
    after = client.get(
        f"/api/incidents/{incident}/recommendations?closed_edges={closed}", headers=h
    ).json()
    before_eta = {e["unit_id"]: e["eta_s"] for e in base["recommendations"]}
    for e in after["recommendations"]:
        if e["unit_id"] in before_eta:
            assert e["eta_s"] >= before_eta[e["unit_id"]] - 1e-6


def test_dispatch_records_recommended_next_to_chosen(client, world, fire, session):
    incident, ids = fire
    h = world.h("dispatcher")
    body = client.get(f"/api/incidents/{incident}/recommendations", headers=h).json()
    proposed = [e["unit_id"] for e in body["recommendations"] if e["recommended"]]
    other = ids["far"] if ids["far"] not in proposed else ids["mid"]
    r = client.post(f"/api/incidents/{incident}/dispatch", json={"unit_ids": [other]}, headers=h)
    assert r.status_code == 201, r.text
    row = session.execute(
        text("SELECT recommended, chosen_unit_ids, followed, task_ids FROM dispatch_decision"
             " WHERE incident_id = :i"), {"i": incident},
    ).one()  # fmt: skip
    assert sorted(x["unit_id"] for x in row.recommended) == sorted(proposed)
    assert row.chosen_unit_ids == [other]
    assert row.followed is False
    assert row.task_ids == [r.json()[0]["id"]]


def test_response_plan_validation(client, world):
    h = world.h("planner")
    bad = [
        {"incident_type": "fire", "severity": "minor", "needs": []},
        {"incident_type": "fire", "severity": "huge", "needs": [{"capability": "x1", "count": 1}]},
        {"incident_type": "Fire!", "severity": "minor",
         "needs": [{"capability": "fire_suppression", "count": 1}]},
        {"incident_type": "fire", "severity": "minor",
         "needs": [{"capability": "fire_suppression", "count": 0}]},
        {"incident_type": "fire", "severity": "minor",
         "needs": [{"capability": "ladder", "count": 1}, {"capability": "ladder", "count": 2}]},
    ]  # fmt: skip
    for body in bad:
        r = client.post("/api/response-plans", json=body, headers=h)
        assert r.status_code == 422, body
    ok = {"incident_type": "fire", "severity": "minor",
          "needs": [{"capability": "fire_suppression", "count": 1}]}  # fmt: skip
    assert client.post("/api/response-plans", json=ok, headers=h).status_code == 200
    ok["needs"][0]["count"] = 2
    assert client.post("/api/response-plans", json=ok, headers=h).json()["needs"][0]["count"] == 2
    listed = client.get("/api/response-plans?incident_type=fire", headers=h).json()
    assert [(p["severity"], p["needs"][0]["count"]) for p in listed] == [("minor", 2)]
    assert client.get("/api/incidents/999999/recommendations", headers=h).status_code == 404


def test_units_already_sent_are_not_recommended_again(client, world, fire):
    """A second look (or a second call) recommends only what the first dispatch left out."""
    incident, _ids = fire
    h = world.h("dispatcher")
    url = f"/api/incidents/{incident}/recommendations?limit=10"
    first = client.get(url, headers=h).json()
    assert first["already_sent"] == 0
    fire_units = [
        e["unit_id"] for e in first["recommendations"] if e["fills"] == "fire_suppression"
    ]
    assert len(fire_units) == 2
    # One of the two engines goes: one engine and the medic are still wanted.
    r = client.post(
        f"/api/incidents/{incident}/dispatch", json={"unit_ids": fire_units[:1]}, headers=h
    )
    assert r.status_code == 201, r.text
    second = client.get(url, headers=h).json()
    assert second["already_sent"] == 1
    wanted = sorted(e["fills"] for e in second["recommendations"] if e["recommended"])
    assert wanted == ["fire_suppression", "medical_bls"]
    assert fire_units[0] not in [e["unit_id"] for e in second["recommendations"]]
    # Everything the plan asks for is on its way: nothing more is recommended, the rest
    # stand by, and dispatching "the recommended set" sends no one.
    rest = [e["unit_id"] for e in second["recommendations"] if e["recommended"]]
    r = client.post(f"/api/incidents/{incident}/dispatch", json={"unit_ids": rest}, headers=h)
    assert r.status_code == 201, r.text
    third = client.get(url, headers=h).json()
    assert third["already_sent"] == 3
    assert [e for e in third["recommendations"] if e["recommended"]] == []
    assert third["unmet"] == []
    assert any(not e["recommended"] for e in third["recommendations"])  # standby listed
