"""Tabletop drills: stand-in units, drill data kept apart from live operations (dispatch,
recommendations, snapshots, lists, plans, KPIs, topics), the drill's own snapshot, CAP
Exercise alerts as injects, and the after-action report's recommended-versus-chosen."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from command.auth import service as auth
from command.auth.models import User
from command.drills import tabletop
from command.drills.models import Drill
from command.incidents.models import Incident
from command.intake import cap
from command.intake import service as intake
from command.live.actions import CommandActions
from command.live.snapshots import situation_snapshot
from command.tasks.models import Task
from core.config import Settings
from core.errors import Forbidden
from core.security import Principal
from drills import scenario as sc
from resources.models import Unit
from tests.support.cap import WARNING_SYSTEM, alert_xml, square
from tests.support.world import World, point

Count = Callable[[str], int]
FIRE_AT = (24.9450, 60.1712)
WRITES = ("task", "dispatch_decision", "event", "audit_event", "pending_change", "unit")


def scenario(**over: Any) -> sc.Scenario:
    data: dict[str, Any] = {
        "name": "桌面推演 test",
        "start": "2026-07-01T08:00:00+03:00",
        "duration_s": 7200,
        "seed": 7,
        "injects": [
            {"at_s": 0, "lon": FIRE_AT[0], "lat": FIRE_AT[1], "type": "fire",
             "severity": "severe", "title": "T0 fire"},
            {"at_s": 0, "lon": 24.9400, "lat": 60.1680, "type": "medical", "title": "T0 medical"},
            {"at_s": 3600, "lon": 24.9520, "lat": 60.1770, "type": "fire", "title": "T1h fire"},
        ],
    }  # fmt: skip
    return sc.parse(data | over)


@pytest.fixture
def drill(session: Session, world: World) -> Drill:
    """A running tabletop drill over the world's units, its first injects (t=0) made."""
    started = tabletop.start(session, scenario(), speed=60, principal=tabletop.RUNNER)
    tabletop.advance(session, started.id, now=started.started_at)
    session.commit()
    return started


def standins(session: Session, drill: Drill) -> list[Unit]:
    return list(session.scalars(select(Unit).where(Unit.drill_id == drill.id).order_by(Unit.id)))


def drill_incidents(session: Session, drill: Drill) -> list[Incident]:
    stmt = select(Incident).where(Incident.drill_id == drill.id).order_by(Incident.id)
    return list(session.scalars(stmt))


def last_event(session: Session) -> int:
    return int(session.scalar(text("SELECT coalesce(max(id), 0) FROM event")) or 0)


def topics_since(session: Session, mark: int) -> list[tuple[str, str]]:
    rows = session.execute(
        text("SELECT topic, type FROM event WHERE id > :m ORDER BY id"), {"m": mark}
    )
    return [(r.topic, r.type) for r in rows]


def dispatch(client: TestClient, world: World, incident: int, units: list[int]) -> Any:
    return client.post(f"/api/incidents/{incident}/dispatch", json={"unit_ids": units},
                       headers=world.h("dispatcher"))  # fmt: skip


def live_incident(client: TestClient, world: World) -> int:
    body = {"type": "Feature", "geometry": point(*FIRE_AT),
            "properties": {"title": "Real fire", "type": "fire", "severity": "severe"}}  # fmt: skip
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


# --- stand-ins ------------------------------------------------------------------------------
def test_standins_mirror_the_real_units(session: Session, world: World, drill: Drill):
    real = [world.unit_a, world.unit_b]
    mirrors = standins(session, drill)
    assert [u.callsign for u in mirrors] == [f"D{drill.id}-{u.callsign}" for u in real]
    for twin, unit in zip(mirrors, real, strict=True):
        assert (twin.type, twin.capabilities, twin.home_station_id, twin.kind) == (
            unit.type, unit.capabilities, unit.home_station_id, unit.kind)  # fmt: skip
        assert to_shape(twin.geom).equals(to_shape(unit.geom))
        assert twin.status == "available" and twin.drill_id == drill.id
    assert drill.mode == "tabletop" and drill.status == "running" and drill.speed == 60
    # The t=0 injects are drill incidents of this drill; the 1 h one waits for the clock.
    made = drill_incidents(session, drill)
    assert [i.title for i in made] == ["T0 fire", "T0 medical"]
    assert all(i.drill and i.source == "drill" for i in made)


# --- dispatch isolation ---------------------------------------------------------------------
def test_a_drill_never_creates_a_live_task(
    client: TestClient, session: Session, world: World, drill: Drill, count: Count
):
    fire = drill_incidents(session, drill)[0]
    before = {t: count(t) for t in WRITES}
    for real, units in (
        (world.unit_a, [world.unit_a.id]),
        (world.unit_b, [standins(session, drill)[0].id, world.unit_b.id]),
    ):
        r = dispatch(client, world, fire.id, units)
        assert r.status_code == 409, r.text
        assert "stand-in" in r.json()["message"] and real.callsign in r.json()["message"]
    assert {t: count(t) for t in WRITES} == before  # nothing written
    assert session.scalar(select(Unit.status).where(Unit.id == world.unit_a.id)) == "available"


def test_a_live_incident_never_gets_a_standin(
    client: TestClient, session: Session, world: World, drill: Drill, count: Count
):
    live = live_incident(client, world)
    twin = standins(session, drill)[0]
    before = {t: count(t) for t in WRITES}
    r = dispatch(client, world, live, [twin.id])
    assert r.status_code == 409 and twin.callsign in r.json()["message"]
    assert {t: count(t) for t in WRITES} == before


def test_drill_dispatch_reaches_only_the_standin_and_the_drill_topic(
    client: TestClient, session: Session, world: World, drill: Drill, settings: Settings,
    password_hash: str, session_factory: sessionmaker[Session],
):  # fmt: skip
    fire = drill_incidents(session, drill)[0]
    twin = standins(session, drill)[0]
    mark = last_event(session)
    r = dispatch(client, world, fire.id, [twin.id])
    assert r.status_code == 201, r.text
    (task,) = r.json()
    assert task["drill"] is True and task["unit_id"] == twin.id
    topics = {t for t, _ in topics_since(session, mark)}
    assert topics == {f"drill:{drill.id}", f"unit:{twin.id}"}  # never situation, never a real unit
    # A phone logged in as the stand-in sees the task; a real unit's phone cannot subscribe.
    phone = User(username="drill-phone", password_hash=password_hash, role="responder",
                 unit_id=twin.id)  # fmt: skip
    session.add(phone)
    session.commit()
    token = auth.issue_token(phone, secret=settings.secret_key, ttl_s=600)
    mine = client.get("/api/tasks", headers={"Authorization": f"Bearer {token}"}).json()
    assert [t["id"] for t in mine["items"]] == [task["id"]]
    real_phone = client.get("/api/tasks", headers=world.h("responder")).json()
    assert real_phone["items"] == []
    actions = CommandActions(session_factory, settings)
    real = Principal(kind="user", id=world.users["responder"].id, name="responder",
                     role="responder", unit_id=world.unit_a.id)  # fmt: skip
    with pytest.raises(Forbidden):
        actions.authorize(real, f"unit:{twin.id}")
    # The stand-in's phone moves its task: unit and incident events stay on the drill topic.
    mark = last_event(session)
    for step in ("accepted", "en_route", "on_scene"):
        r = client.post(f"/api/tasks/{task['id']}/status", json={"status": step},
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 200, r.text
    seen = topics_since(session, mark)
    assert {t for t, _ in seen} == {f"drill:{drill.id}", f"unit:{twin.id}"}
    assert (f"drill:{drill.id}", "incident.on_scene") in seen


# --- live views leave stand-ins out ---------------------------------------------------------
def test_live_views_leave_the_drill_out(
    client: TestClient, session: Session, world: World, drill: Drill
):
    twins = {u.id for u in standins(session, drill)}
    real = {world.unit_a.id, world.unit_b.id}
    snap = situation_snapshot(session)
    assert {u["id"] for u in snap["units"]} == real
    theirs_ids = {i.id for i in drill_incidents(session, drill)}
    assert not {i["id"] for i in snap["incidents"]} & theirs_ids
    h = world.h("dispatcher")
    listed = client.get("/api/units", headers=h).json()["features"]
    assert {u["id"] for u in listed} == real
    theirs = client.get(f"/api/units?drill={drill.id}", headers=h).json()["features"]
    assert {u["id"] for u in theirs} == twins
    assert all(u["properties"]["callsign"].startswith(f"D{drill.id}-") for u in theirs)
    kpis = client.get("/api/kpis", headers=h).json()
    assert kpis["units"]["total"] == len(real)
    live = live_incident(client, world)
    recs = client.get(f"/api/incidents/{live}/recommendations", headers=h).json()
    named = {e["unit_id"] for e in recs["recommendations"] + recs["excluded"]}
    assert named and named <= real
    fire = drill_incidents(session, drill)[0]
    recs = client.get(f"/api/incidents/{fire.id}/recommendations", headers=h).json()
    named = {e["unit_id"] for e in recs["recommendations"] + recs["excluded"]}
    assert named and named <= twins
    plan = client.post("/api/dispatch/plan", json={}, headers=h)
    assert plan.status_code == 200, plan.text
    assert plan.json()["units_considered"] == len(real)
    assert {a["unit_id"] for a in plan.json()["assignments"]} <= real


# --- the drill's own topic --------------------------------------------------------------------
def test_the_drill_snapshot_has_the_situation_shape(
    client: TestClient, session: Session, world: World, drill: Drill
):
    twin = standins(session, drill)[0]
    fire = drill_incidents(session, drill)[0]
    assert dispatch(client, world, fire.id, [twin.id]).status_code == 201
    snap = tabletop.drill_snapshot(session, drill.id)
    assert snap is not None
    assert set(situation_snapshot(session)) | {"drill"} == set(snap)
    assert [i["id"] for i in snap["incidents"]] == [i.id for i in drill_incidents(session, drill)]
    assert snap["incidents"][0]["properties"]["drill_id"] == drill.id
    assert {u["id"] for u in snap["units"]} == {u.id for u in standins(session, drill)}
    assert [t["unit_id"] for t in snap["tasks"]] == [twin.id]
    d = snap["drill"]
    assert (d["id"], d["mode"], d["status"], d["speed"]) == (drill.id, "tabletop", "running", 60)
    assert 0 <= d["clock_s"] <= 7200 and d["name"] == drill.name
    assert tabletop.drill_snapshot(session, drill.id + 1000) is None  # a CAP thread's topic


def test_state_endpoint_and_clock(client: TestClient, session: Session, world: World, drill: Drill):
    r = client.get(f"/api/drills/{drill.id}/tabletop", headers=world.h("dispatcher"))
    assert r.status_code == 200, r.text
    state = r.json()
    assert state["injects"] == {"total": 3, "done": 2, "pending": 1}
    assert [i["title"] for i in state["pending"]] == ["T1h fire"]
    assert all(i["incident_id"] for i in state["done"])
    assert client.get(f"/api/drills/{drill.id}/tabletop",
                      headers=world.h("responder")).status_code == 403  # fmt: skip
    gone = client.get("/api/drills/999999/tabletop", headers=world.h("dispatcher"))
    assert gone.status_code == 404
    # One simulated hour later (a minute at x60) the third inject is made, once.
    later = drill.started_at + timedelta(seconds=60)
    tick = tabletop.advance(session, drill.id, now=later)
    again = tabletop.advance(session, drill.id, now=later)
    session.commit()
    assert [i["title"] for i in tick.injected] == ["T1h fire"] and again.injected == []
    assert tick.clock_s == pytest.approx(3600)
    # Past the end: finished, with its report.
    tabletop.advance(session, drill.id, now=drill.started_at + timedelta(seconds=121))
    session.commit()
    session.refresh(drill)
    assert drill.status == "finished" and drill.report is not None
    assert drill.report["injects"] == {"total": 3, "done": 3, "pending": 0}


def test_bad_input_changes_nothing(client: TestClient, session: Session, world: World, count):
    before = count("drill"), count("unit")
    with pytest.raises(Exception, match="speed"):
        tabletop.start(session, scenario(), speed=0, principal=tabletop.RUNNER)
    session.rollback()
    assert (count("drill"), count("unit")) == before
    r = client.post("/api/drills/tabletop", content=b"name: [", headers={
        **world.h("planner"), "Content-Type": "application/yaml"})  # fmt: skip
    assert r.status_code == 422
    r = client.post("/api/drills/tabletop", json={}, headers=world.h("dispatcher"))
    assert r.status_code == 403
    assert client.post("/api/drills/424242/stop", headers=world.h("planner")).status_code == 404
    assert (count("drill"), count("unit")) == before


# --- CAP Exercise alerts ------------------------------------------------------------------
def _exercise(session: Session, identifier: str) -> dict[str, Any]:
    xml = alert_xml(identifier, status="Exercise", areas=[square(*FIRE_AT)])
    parsed = cap.parse(xml.encode(), "application/cap+xml")
    answer, _ = intake.intake(session, parsed, raw=xml.encode(), content_type="application/cap+xml",
                              principal=WARNING_SYSTEM)  # fmt: skip
    session.commit()
    return answer


def test_an_exercise_alert_becomes_an_inject_of_the_running_drill(
    client: TestClient, session: Session, world: World, drill: Drill
):
    mark = last_event(session)
    answer = _exercise(session, "EX-TT-1")
    incident = session.get_one(Incident, answer["incident_ids"][0])
    assert incident.drill and incident.drill_id == drill.id
    assert {t for t, _ in topics_since(session, mark)} == {f"drill:{drill.id}"}
    twin = standins(session, drill)[0]
    assert dispatch(client, world, incident.id, [twin.id]).status_code == 201
    assert dispatch(client, world, incident.id, [world.unit_b.id]).status_code == 409
    # With no tabletop running, an Exercise alert is drill data of its own thread, as before.
    stopped = client.post(f"/api/drills/{drill.id}/stop", headers=world.h("planner"))
    assert stopped.status_code == 200, stopped.text
    mark = last_event(session)
    answer = _exercise(session, "EX-TT-2")
    incident = session.get_one(Incident, answer["incident_ids"][0])
    assert incident.drill and incident.drill_id is None
    assert {t for t, _ in topics_since(session, mark)} == {f"drill:{answer['thread_id']}"}


# --- the report ---------------------------------------------------------------------------
def test_report_has_recommended_versus_chosen(
    client: TestClient, session: Session, world: World, count
):
    far = Unit(callsign="A9", name="Unit A9", kind="vehicle", type="ambulance",
               capabilities=["medical_bls"], crew=2, home_station_id=world.station.id,
               geom=from_shape(Point(24.96, 60.18), 4326))  # fmt: skip
    session.add(far)
    session.commit()
    started = tabletop.start(session, scenario(), speed=60, principal=tabletop.RUNNER)
    tabletop.advance(session, started.id, now=started.started_at)
    session.commit()
    fire, medical = drill_incidents(session, started)
    h = world.h("dispatcher")

    def recommended(incident: Incident) -> list[int]:
        body = client.get(f"/api/incidents/{incident.id}/recommendations", headers=h).json()
        return [e["unit_id"] for e in body["recommendations"] if e["recommended"]]

    first = recommended(fire)
    assert first and dispatch(client, world, fire.id, first).status_code == 201
    advice = recommended(medical)
    other = next(u.id for u in standins(session, started) if u.id not in first + advice)
    assert dispatch(client, world, medical.id, [other]).status_code == 201
    r = client.post(f"/api/drills/{started.id}/stop", headers=world.h("planner"))
    assert r.status_code == 200, r.text
    assert r.json()["drill"]["status"] == "stopped"
    again = client.post(f"/api/drills/{started.id}/stop", headers=world.h("planner"))
    assert again.status_code == 409  # stopped already
    # A stopped drill's incidents are not dispatched any more.
    assert dispatch(client, world, medical.id, advice).status_code == 409
    report = client.get(f"/api/drills/{started.id}/report", headers=h).json()
    callsign = {u.id: u.callsign for u in standins(session, started)}
    rvc = report["recommended_vs_chosen"]
    counted = (rvc["dispatches"], rvc["judged"], rvc["followed"], rvc["followed_share"])
    assert counted == (2, 2, 1, 0.5)
    assert [(i["incident"], i["chosen"], i["recommended"], i["followed"]) for i in rvc["items"]] == [
        (fire.id, [callsign[u] for u in first], [callsign[u] for u in first], True),
        (medical.id, [callsign[other]], [callsign[u] for u in advice], False),
    ]  # fmt: skip
    assert report["kpis"]["incidents"]["total"] == 2
    assert report["kpis"]["incidents"]["by_status"] == {"dispatched": 2}
    assert report["injects"] == {"total": 3, "done": 2, "pending": 1}
    assert report["mode"] == "tabletop" and report["status"] == "stopped"
    # The live KPIs never counted any of it.
    assert client.get("/api/kpis", headers=h).json()["incidents"]["total"] == 0
    assert session.scalar(select(Task.drill).where(Task.incident_id == fire.id)) is True
