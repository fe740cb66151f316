"""/api/drills against the real database and the Helsinki roads: a run from POST to report
and replay, every refusal (403, 404, 409, 415, 422, 503) changing nothing, and DELETE
removing a drill's rows while its audit rows stay.

The per-test app shares one rolled-back connection, so here the runner runs each drill in
the submitting thread (``Inline``); a real worker thread on a committed database is
tested at the end of the module (``test_a_run_in_the_background_...``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from datetime import timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from command.app import create_app
from command.drills import service
from command.drills.models import Drill
from command.drills.schemas import DrillDetail, DrillSubmitted
from command.incidents.models import Incident, IncidentCall
from command.tasks.models import DispatchDecision, Task
from core.audit import AuditEvent
from core.changes import record_change
from core.config import Settings
from core.errors import Busy
from core.security import ROLES
from core.types import utcnow
from drills import runner as drill_runner
from gis.engine import Engine
from resources.models import Unit
from tests.support import live
from tests.support.db import drop_database
from tests.support.world import World

SCENARIO: dict[str, Any] = {
    "name": "Helsinki centre, two policies",
    "network": "loaded",
    "start": "2026-07-01T08:00:00+03:00",
    "duration_s": 4 * 3600,
    "seed": 7,
    "replications": 2,
    "policies": ["nearest", "move_up"],
    "targets": {"response_s": 480},
    "stations": [
        {"name": "Fire post 1", "lon": 24.9435452, "lat": 60.1722668},
        {"name": "Post 2", "lon": 24.9532279, "lat": 60.1645736},
    ],
    "units": [
        {"callsign": "A1", "type": "ambulance", "capabilities": ["medical_bls"], "station": "Fire post 1"},
        {"callsign": "A2", "type": "ambulance", "capabilities": ["medical_bls"], "station": "Post 2"},
        {"callsign": "A3", "type": "ambulance", "capabilities": ["medical_bls"], "station": "Post 2"},
    ],
    "response_plans": {"medical": {"moderate": [{"capability": "medical_bls", "count": 1}]}},
    "generators": [
        {"type": "medical", "severity": "moderate", "rate_per_h": 3,
         "points": [[24.94, 60.17], [24.95, 60.165], [24.945, 60.175]]}
    ],
    "service": {"on_scene_s": {"dist": "exponential", "mean": 1200}},
}  # fmt: skip
DRILL_TABLES = ("drill", "incident", "task", "unit", "event", "audit_event")


class Inline(Executor):
    """Runs each job at once in the submitting thread (one connection: no second thread)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@pytest.fixture
def runner(app: Any) -> service.DrillRunner:
    made = service.DrillRunner(app.state.sessionmaker, executor=Inline())
    app.state.drill_runner = made
    return made


@pytest.fixture
def snapshot(count: Callable[[str], int]) -> Callable[[], dict[str, int]]:
    return lambda: {t: count(t) for t in DRILL_TABLES}


def post(
    client: TestClient, world: World, body: Any = None, role: str = "planner", **kw: Any
) -> Any:
    if "content" not in kw:
        kw["json"] = SCENARIO if body is None else body
    return client.post("/api/drills", headers=world.h(role), **kw)


def submitted(r: Any) -> dict[str, Any]:
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


def add_drill(session: Session, status: str = "finished", **fields: Any) -> Drill:
    fields = {"mode": "run", "progress": 0.4, "scenario": {"policies": ["nearest"]}, **fields}
    drill = Drill(name="made here", status=status, created_by="user:planner", **fields)
    session.add(drill)
    session.commit()
    return drill


# --- a run -----------------------------------------------------------------------------------


def test_a_run_goes_from_queued_to_a_report_and_a_replay(client, world, runner, session):
    r = post(client, world)
    answer = submitted(r)
    DrillSubmitted.model_validate(answer)  # as the OpenAPI document says
    drill_id = answer["id"]
    assert r.headers["location"] == f"/api/drills/{drill_id}"
    assert answer["status"] == "queued"
    assert answer["progress"] == 0
    assert answer["mode"] == "run"
    assert answer["created_by"] == "user:planner"
    assert answer["fleet"] == {"stations": 2, "units": 3, "hospitals": 0, "notes": []}
    assert answer["policies"] == ["nearest", "move_up"]
    assert answer["links"]["report"] == f"/api/drills/{drill_id}/report"

    got = client.get(f"/api/drills/{drill_id}", headers=world.h("dispatcher")).json()
    assert got["status"] == "finished", got
    DrillDetail.model_validate(got)
    assert got["progress"] == 1
    assert got["error"] is None
    assert got["started_at"] <= got["finished_at"]
    assert got["scenario"]["name"] == SCENARIO["name"]

    # Every move is on the drill's own topic (and audited), never on the live situation.
    topic = f"drill:{drill_id}"
    types = session.scalars(
        text("SELECT type FROM event WHERE topic = :t ORDER BY seq"), {"t": topic}
    ).all()
    assert types == ["drill.created", "drill.started", "drill.finished"]
    assert (
        session.scalar(
            text("SELECT count(*) FROM event WHERE topic = 'situation' AND type LIKE 'drill.%'")
        )
        == 0
    )

    report = client.get(f"/api/drills/{drill_id}/report", headers=world.h("auditor")).json()
    assert report["scenario"] == SCENARIO["name"]
    assert report["seed"] == 7
    assert report["replications"] == 2
    assert set(report["policies"]) == {"nearest", "move_up"}
    for entry in report["policies"].values():
        kpis = entry["kpis"]
        assert 2 <= kpis["incidents"] <= 30  # 3/h for 4 h: 12 expected
        r50, r90, r95 = (kpis["response_s"][q] for q in ("p50", "p90", "p95"))
        assert 0 < r50 <= r90 <= r95 < 4 * 3600
        assert 0 <= kpis["within_target"] <= 1
        assert 0 <= kpis["queued_fraction"] <= 1
        assert 0 < kpis["utilisation"] <= 1
        low, high = entry["ci95"]["utilisation"]
        assert low <= kpis["utilisation"] <= high
    assert "/" not in json.dumps(report["spec"]).replace("http", "")  # no paths

    page = client.get(f"/api/drills/{drill_id}/report?format=html", headers=world.h("planner"))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert SCENARIO["name"] in page.text

    replay = client.get(f"/api/drills/{drill_id}/replay", headers=world.h("commander")).json()
    assert replay["policy"] == "nearest"  # the scenario's first
    assert replay["replication"] == 0
    assert [s["name"] for s in replay["stations"]] == ["Fire post 1", "Post 2"]
    assert [u["callsign"] for u in replay["units"]] == ["A1", "A2", "A3"]
    ts = [e["t"] for e in replay["events"]]
    assert ts == sorted(ts)
    assert {e["kind"] for e in replay["events"]} >= {"call", "assign", "arrive"}
    other = client.get(f"/api/drills/{drill_id}/replay?policy=move_up", headers=world.h("admin"))
    assert other.json()["policy"] == "move_up"
    unknown = client.get(f"/api/drills/{drill_id}/replay?policy=plan", headers=world.h("admin"))
    assert unknown.status_code == 404
    assert "['nearest', 'move_up']" in unknown.json()["message"]

    listed = client.get("/api/drills", headers=world.h("planner")).json()
    assert listed["total"] >= 1
    first = listed["drills"][0]
    assert first["id"] == drill_id  # newest first
    assert not {"report", "replay", "scenario"} & set(first)


def test_yaml_and_from_db_read_today_s_fleet(client, world, runner):
    body = {**SCENARIO, "stations": "from_db", "units": "from_db", "response_plans": "from_db",
            "replications": 1, "policies": ["nearest"]}  # fmt: skip
    r = client.post(
        "/api/drills",
        content=yaml.safe_dump(body, allow_unicode=True).encode(),
        headers={**world.h("admin"), "Content-Type": "application/yaml"},
    )
    answer = submitted(r)
    assert answer["fleet"]["stations"] == 1  # the world: one station, E1 and A1
    assert answer["fleet"]["units"] == 2
    report = client.get(f"/api/drills/{answer['id']}/report", headers=world.h("admin")).json()
    assert report["fleet"] == {"stations": 1, "units": 2, "hospitals": 0}


def test_a_run_that_raises_is_failed_with_its_message(client, world, runner, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        kwargs["progress"](0.25)
        raise RuntimeError("the travel matrix is empty")

    monkeypatch.setattr(drill_runner, "run", broken)
    drill_id = submitted(post(client, world))["id"]
    got = client.get(f"/api/drills/{drill_id}", headers=world.h("planner")).json()
    assert got["status"] == "failed"
    assert got["error"] == "RuntimeError: the travel matrix is empty"
    assert got["progress"] == 0.25
    for path in ("report", "replay"):
        r = client.get(f"/api/drills/{drill_id}/{path}", headers=world.h("planner"))
        assert r.status_code == 409
        assert "the travel matrix is empty" in r.json()["message"]


def test_progress_is_written_at_most_every_half_second(client, world, runner, session, monkeypatch):
    seen: list[float] = []

    def slow(*args: Any, progress: Any, **kwargs: Any) -> Any:
        for k in range(1, 6):
            progress(k / 10)
            seen.append(session.scalar(text("SELECT progress FROM drill ORDER BY id DESC LIMIT 1")))
        time.sleep(0.55)
        progress(0.7)
        seen.append(session.scalar(text("SELECT progress FROM drill ORDER BY id DESC LIMIT 1")))
        raise ValueError("stop here")

    monkeypatch.setattr(drill_runner, "run", slow)
    submitted(post(client, world))
    assert seen == [0.1, 0.1, 0.1, 0.1, 0.1, 0.7]


# --- refusals change nothing -------------------------------------------------------------


@pytest.mark.parametrize("role", [r for r in ROLES if r not in ("planner", "admin")])
def test_only_planners_and_admins_run_drills(client, world, runner, snapshot, role):
    before = snapshot()
    r = post(client, world, role=role)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
    assert snapshot() == before


def test_responders_see_no_drills_and_delete_none(client, world, session, snapshot):
    drill = add_drill(session)
    before = snapshot()
    for path in ("", "/report", "/replay"):
        r = client.get(f"/api/drills/{drill.id}{path}", headers=world.h("responder"))
        assert r.status_code == 403, path
    assert client.get("/api/drills", headers=world.h("responder")).status_code == 403
    for role in ("responder", "dispatcher", "commander", "auditor"):
        r = client.delete(f"/api/drills/{drill.id}", headers=world.h(role))
        assert r.status_code == 403, role
    assert snapshot() == before


def test_unknown_ids_are_404(client, world, snapshot):
    before = snapshot()
    for path in ("", "/report", "/replay"):
        r = client.get(f"/api/drills/987654321{path}", headers=world.h("planner"))
        assert r.status_code == 404, path
        assert r.json()["message"] == "drill 987654321 not found"
    assert client.delete("/api/drills/987654321", headers=world.h("admin")).status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"network": "/srv/osm/city.osm.pbf"}, "network",
         "a scenario posted over HTTP uses network: loaded; server paths are refused"),
        ({"generators": [{"type": "fire", "csv": "/etc/history.csv"}]}, "generators.0.csv",
         "CSV files are not taken over HTTP: use the CLI"),
        ({"alerts": [{"at_s": 0, "file": "/srv/alerts/a.xml"}]}, "alerts.0.file",
         "CAP files are not taken over HTTP: use the CLI"),
        ({"replications": 51}, "replications", "at most 50 over HTTP (the CLI has no limit)"),
        ({"replications": 40, "policies": ["nearest", "plan", "move_up"]}, "replications",
         "replications x policies at most 100 over HTTP"),
        ({"duration_s": 40 * 86400}, "duration_s", "at most 2678400 s (31 days) over HTTP"),
    ],
)  # fmt: skip
def test_what_http_may_not_do_is_422_naming_the_field(
    client, world, runner, snapshot, change, field, message
):
    before = snapshot()
    r = post(client, world, {**SCENARIO, **change})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_scenario"
    assert {"field": field, "message": message} in body["details"]
    assert snapshot() == before


def test_a_scenario_with_many_faults_lists_each(client, world, runner, snapshot):
    before = snapshot()
    bad = {**SCENARIO, "duration_s": -1, "seed": "seven", "policies": ["nearest", "fastest"]}
    r = post(client, world, bad)
    assert r.status_code == 422
    fields = [d["field"] for d in r.json()["details"]]
    assert {"duration_s", "seed", "policies.1"} <= set(fields)
    assert r.json()["message"].endswith(f"(and {len(fields) - 1} more)")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("content", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 422, "invalid_scenario"),
        (b"name: [unclosed", "application/yaml", 422, "invalid_scenario"),
        (b"- a list\n- not a mapping\n", "text/yaml", 422, "invalid_scenario"),
        (b"name: x", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_unreadable_bodies_are_refused(
    client, world, runner, snapshot, content, ctype, status, code
):
    before = snapshot()
    r = client.post("/api/drills", content=content,
                    headers={**world.h("planner"), "Content-Type": ctype})  # fmt: skip
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    assert snapshot() == before


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (json.dumps({**SCENARIO, "service": {"on_scene_s": {"dist": "exponential", "mean": float("inf")}}}),
         "application/json"),
        (yaml.safe_dump({**SCENARIO, "duration_s": float("nan")}), "application/yaml"),
    ],
)  # fmt: skip
def test_nan_and_infinity_are_refused_where_they_are(
    client, world, runner, snapshot, content, ctype
):
    before = snapshot()
    r = client.post("/api/drills", content=content.encode(),
                    headers={**world.h("planner"), "Content-Type": ctype})  # fmt: skip
    assert r.status_code == 422, r.text
    (problem,) = r.json()["details"]
    assert problem["field"] in ("service.on_scene_s.mean", "duration_s")
    assert problem["message"].endswith("is not a finite number")
    assert snapshot() == before


def test_deep_nesting_is_refused_not_a_crash(client, world, runner, snapshot):
    before = snapshot()
    r = client.post("/api/drills", content=b"[" * 30_000 + b"]" * 30_000,
                    headers={**world.h("planner"), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422, r.text
    assert snapshot() == before


def test_from_db_on_an_empty_database_is_422(client, world, runner, session, snapshot):
    session.execute(text("UPDATE unit SET drill_id = 1"))  # no real unit left
    session.commit()
    before = snapshot()
    r = post(client, world, {**SCENARIO, "stations": "from_db", "units": "from_db"})
    assert r.status_code == 422
    assert r.json()["details"] == [
        {"field": "units", "message": "from_db: the database holds no units that can be placed"}
    ]
    assert snapshot() == before


def test_no_road_network_is_503(client, app, world, runner, snapshot):
    app.state.engine = None
    before = snapshot()
    r = post(client, world)
    assert r.status_code == 503
    assert r.json()["error"] == "network_unavailable"
    assert snapshot() == before


def test_a_full_queue_is_503_busy(client, app, world, snapshot):
    app.state.drill_runner = service.DrillRunner(
        app.state.sessionmaker, executor=Inline(), max_waiting=0
    )
    before = snapshot()
    r = post(client, world)
    assert r.status_code == 503
    assert r.json()["error"] == "busy"
    assert r.headers["retry-after"] == "30"
    assert snapshot() == before


def test_reports_and_replays_of_unfinished_drills_are_409(client, world, session):
    queued, running = add_drill(session, "queued"), add_drill(session, "running")
    for drill in (queued, running):
        for path in ("report", "replay"):
            r = client.get(f"/api/drills/{drill.id}/{path}", headers=world.h("planner"))
            assert r.status_code == 409
            assert r.json()["message"] == (
                f"drill {drill.id} is {drill.status} (40% done): its {path} comes when it finishes"
            )


# --- delete ------------------------------------------------------------------------------


def drill_data(session: Session, world: World, drill: Drill) -> dict[str, int]:
    """A tabletop-like drill's rows: two incidents with a call, a decision and a task for a
    stand-in unit, an event on its topic and one on the stand-in's."""
    standin = Unit(callsign="D-A1", name="Stand-in A1", kind="vehicle", type="ambulance",
                   capabilities=["medical_bls"], drill_id=drill.id,
                   geom=from_shape(Point(24.94, 60.17), 4326))  # fmt: skip
    session.add(standin)
    session.flush()
    for k in range(2):
        incident = Incident(title=f"drill incident {k}", type="medical", drill=True,
                            drill_id=drill.id, geom=from_shape(Point(24.94, 60.17), 4326))  # fmt: skip
        session.add(incident)
        session.flush()
        session.add(IncidentCall(incident_id=incident.id, taken_by="user:dispatcher", drill=True))
        session.add(DispatchDecision(incident_id=incident.id, actor="user:dispatcher",
                                     chosen_unit_ids=[standin.id], task_ids=[]))  # fmt: skip
        if k == 0:
            session.add(
                Task(incident_id=incident.id, unit_id=standin.id, drill=True, status="done")
            )
    record_change(session, actor="user:dispatcher", action="incident.created", entity="incident",
                  entity_id=1, before=None, after={"drill_id": drill.id},
                  topics=(f"drill:{drill.id}", f"unit:{standin.id}"))  # fmt: skip
    session.commit()
    return {"unit": standin.id}


def test_delete_removes_the_drill_s_rows_and_keeps_its_audit_rows(client, world, session, count):
    drill = add_drill(session, "stopped", mode="tabletop")
    made = drill_data(session, world, drill)
    drill_id = drill.id
    live = Incident(title="a real fire", type="fire", geom=from_shape(Point(24.95, 60.17), 4326))
    session.add(live)
    session.commit()
    audit_before = count("audit_event")
    live_units = session.scalar(text("SELECT count(*) FROM unit WHERE drill_id IS NULL"))

    r = client.delete(f"/api/drills/{drill_id}", headers=world.h("planner"))
    assert r.status_code == 200, r.text
    assert r.json() == {"id": drill_id, "deleted": {
        "dispatch_decisions": 2, "tasks": 1, "calls": 2, "supply_requests": 0, "incidents": 2,
        "units": 1, "events": 2}}  # fmt: skip
    session.expire_all()
    assert session.get(Drill, drill_id) is None
    assert session.scalar(select(Incident.id).where(Incident.drill_id == drill_id)) is None
    assert session.get(Unit, made["unit"]) is None
    topics = (f"drill:{drill_id}", f"unit:{made['unit']}")
    for table in ("event", "topic_seq"):
        n = session.scalar(
            text(f"SELECT count(*) FROM {table} WHERE topic = ANY(:t)"), {"t": list(topics)}
        )
        assert n == 0, table
    assert session.get(Incident, live.id) is not None  # live data untouched
    assert session.scalar(text("SELECT count(*) FROM unit WHERE drill_id IS NULL")) == live_units
    assert count("audit_event") == audit_before + 1  # kept, and the deletion added
    last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (last.action, last.entity, last.entity_id, last.actor) == (
        "drill.deleted", "drill", str(drill_id), "user:planner")  # fmt: skip
    assert last.before is not None and last.before["deleted"]["incidents"] == 2
    named = session.scalar(
        select(text("count(*)"))
        .select_from(AuditEvent)
        .where(AuditEvent.after["drill_id"].astext == str(drill_id))
    )
    assert named == 1  # the drill's own audit rows are still there
    assert client.get(f"/api/drills/{drill_id}", headers=world.h("planner")).status_code == 404


def test_a_running_drill_is_not_deleted(client, world, session, snapshot):
    drill = add_drill(session, "running")
    drill_data(session, world, drill)
    before = snapshot()
    r = client.delete(f"/api/drills/{drill.id}", headers=world.h("admin"))
    assert r.status_code == 409
    assert r.json()["message"] == (
        f"drill {drill.id} is running (40% done): delete it when it has finished or failed"
    )
    assert snapshot() == before


def test_a_run_whose_server_went_away_may_be_deleted_a_tabletop_not(client, world, session):
    run, tabletop = add_drill(session, "running"), add_drill(session, "running", mode="tabletop")
    session.execute(
        text("UPDATE drill SET updated_at = :t"), {"t": utcnow() - timedelta(minutes=16)}
    )
    session.commit()
    assert client.delete(f"/api/drills/{run.id}", headers=world.h("admin")).status_code == 200
    r = client.delete(f"/api/drills/{tabletop.id}", headers=world.h("admin"))
    assert r.status_code == 409
    assert r.json()["message"] == (
        f"tabletop drill {tabletop.id} is running: stop it first "
        f"(POST /api/drills/{tabletop.id}/stop)"
    )


def test_a_queued_drill_deleted_is_never_run(client, world, session, app, monkeypatch):
    ran: list[Any] = []
    monkeypatch.setattr(drill_runner, "run", lambda *a, **k: ran.append(a))
    drill = add_drill(session, "queued")
    drill_id = drill.id
    assert client.delete(f"/api/drills/{drill_id}", headers=world.h("admin")).status_code == 200
    runner = service.DrillRunner(app.state.sessionmaker, executor=Inline(), max_waiting=1)
    runner.reserve()
    runner.start(service.Job(drill_id, None, None, None))  # type: ignore[arg-type]
    assert ran == []
    assert session.scalar(text("SELECT count(*) FROM drill WHERE id = :id"), {"id": drill_id}) == 0
    runner.reserve()  # its place in the queue was given back


# --- a real worker thread on a committed database ----------------------------------------


@pytest.fixture(scope="module")
def committed(database_url: str) -> Iterator[live.LiveDb]:
    del database_url  # asked for so a missing PostGIS skips (or fails in CI) the same way
    db = live.make_live_db("emergency_drills")
    try:
        yield db
    finally:
        db.engine.dispose()
        drop_database(db.url)


def test_a_run_in_the_background_reports_progress_until_finished(
    committed: live.LiveDb, road_engine: Engine
):
    settings = Settings(env="test", database_url=committed.url, secret_key=live.SECRET,
                        realtime=False)  # fmt: skip
    app = create_app(settings, session_factory=committed.sessions, graph=road_engine)
    headers = committed.headers("planner")
    body = {**SCENARIO, "duration_s": 12 * 3600, "replications": 3}
    with TestClient(app) as client:
        answer = submitted(client.post("/api/drills", json=body, headers=headers))
        seen = [(answer["status"], answer["progress"])]
        deadline = time.monotonic() + 300
        while seen[-1][0] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
            got = client.get(f"/api/drills/{answer['id']}", headers=headers).json()
            seen.append((got["status"], got["progress"]))
        # The DELETE of a finished drill works on a committed database too.
        statuses = [s for s, _ in seen]
        progress = [p for _, p in seen]
        assert statuses[-1] == "finished", seen
        assert progress[-1] == 1
        assert progress == sorted(progress)
        order = {"queued": 0, "running": 1, "finished": 2}
        assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
        r = client.get(f"/api/drills/{answer['id']}/report", headers=headers)
        assert r.json()["replications"] == 3
        assert client.delete(f"/api/drills/{answer['id']}", headers=headers).status_code == 200
    assert app.state.drill_runner is None  # stopped with the app


def test_stopping_the_runner_fails_the_running_drill_and_the_queued_one(
    committed: live.LiveDb, monkeypatch: pytest.MonkeyPatch
):
    started = threading.Event()

    def endless(*args: Any, progress: Any, **kwargs: Any) -> Any:
        started.set()
        while True:  # until the progress report says the server is stopping
            progress(0.5)
            time.sleep(0.01)

    monkeypatch.setattr(drill_runner, "run", endless)
    ids = []
    with committed.sessions() as s:
        for name in ("first", "second"):
            drill = Drill(name=name, mode="run", status="queued", progress=0.0,
                          scenario={"policies": ["nearest"]}, created_by="user:planner")  # fmt: skip
            s.add(drill)
            s.flush()
            ids.append(drill.id)
        s.commit()
    runner = service.DrillRunner(committed.sessions)
    for drill_id in ids:
        runner.reserve()
        runner.start(service.Job(drill_id, None, None, None))  # type: ignore[arg-type]
    assert started.wait(10)
    runner.shutdown()
    with committed.sessions() as s:
        rows = {d.name: d for d in s.scalars(select(Drill).where(Drill.id.in_(ids)))}
    assert (rows["first"].status, rows["first"].error) == (
        "failed", "the server stopped during the run")  # fmt: skip
    assert rows["first"].progress == 0.5
    assert (rows["second"].status, rows["second"].error) == (
        "failed", "the server stopped before the run")  # fmt: skip
    assert rows["second"].started_at is None
    with pytest.raises(Busy):
        runner.reserve()  # a stopped runner takes nothing more
