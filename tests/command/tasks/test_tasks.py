"""Dispatch and tasks: task, unit and incident states moving together, all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from command.incidents.models import Incident
from command.tasks.models import Task
from core.db import integrity_error
from core.errors import Conflict
from tests.support.world import World, point

Count = Callable[[str], int]
WRITE_TABLES = ("task", "unit", "incident", "event", "audit_event")


# --- helpers ------------------------------------------------------------------------
def new_incident(client: TestClient, world: World, **props: Any) -> int:
    body = {
        "type": "Feature",
        "geometry": point(24.95, 60.17),
        "properties": {"title": "House fire", "type": "fire", "severity": "severe"} | props,
    }
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def dispatch(client: TestClient, world: World, incident_id: int, unit_ids: list[int]) -> Any:
    return client.post(
        f"/api/incidents/{incident_id}/dispatch",
        json={"unit_ids": unit_ids},
        headers=world.h("dispatcher"),
    )


def dispatched(client: TestClient, world: World, incident_id: int, unit_ids: list[int]) -> list:
    r = dispatch(client, world, incident_id, unit_ids)
    assert r.status_code == 201, r.text
    return list(r.json())


def task_step(
    client: TestClient, world: World, task_id: int, status: str, who: str = "responder"
) -> Any:
    return client.post(
        f"/api/tasks/{task_id}/status", json={"status": status}, headers=world.h(who)
    )


def incident_step(client: TestClient, world: World, incident_id: int, status: str) -> Any:
    return client.post(
        f"/api/incidents/{incident_id}/status",
        json={"status": status},
        headers=world.h("commander"),
    )


def incident_props(client: TestClient, world: World, incident_id: int) -> dict[str, Any]:
    r = client.get(f"/api/incidents/{incident_id}", headers=world.h("commander"))
    assert r.status_code == 200
    return dict(r.json()["properties"])


def unit_status(client: TestClient, world: World, unit_id: int) -> str:
    r = client.get(f"/api/units/{unit_id}", headers=world.h("commander"))
    return str(r.json()["properties"]["status"])


def task(client: TestClient, world: World, task_id: int) -> dict[str, Any]:
    r = client.get(f"/api/tasks/{task_id}", headers=world.h("dispatcher"))
    assert r.status_code == 200
    return dict(r.json())


def counts(count: Count) -> dict[str, int]:
    return {t: count(t) for t in WRITE_TABLES}


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["message"]
    if code is not None:
        assert body["error"] == code
    return dict(body)


def events_since(session: Session, event_id: int) -> list[Any]:
    return list(
        session.execute(
            text("SELECT id, topic, seq, type, payload FROM event WHERE id > :id ORDER BY id"),
            {"id": event_id},
        ).all()
    )


def last_event_id(session: Session) -> int:
    return int(session.scalar(text("SELECT coalesce(max(id), 0) FROM event")) or 0)


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


# --- dispatch -----------------------------------------------------------------------
def test_dispatch_creates_tasks_assigns_units_and_dispatches_incident(
    client: TestClient, world: World, session: Session
):
    inc = new_incident(client, world)
    mark = last_event_id(session)
    tasks = dispatched(client, world, inc, [world.unit_b.id, world.unit_a.id])

    assert len(tasks) == 2
    assert sorted(t["unit_id"] for t in tasks) == sorted([world.unit_a.id, world.unit_b.id])
    for t in tasks:
        assert t["incident_id"] == inc
        assert t["status"] == "assigned"
        assert t["created_by"] == "user:dispatcher"
        assert t["drill"] is False
        assert t["assigned_at"] is not None
        for name in ("accepted_at", "en_route_at", "on_scene_at", "done_at", "cancelled_at"):
            assert t[name] is None
        assert task(client, world, t["id"]) == t
    assert unit_status(client, world, world.unit_a.id) == "assigned"
    assert unit_status(client, world, world.unit_b.id) == "assigned"
    props = incident_props(client, world, inc)
    assert props["status"] == "dispatched"
    assert props["dispatched_at"] is not None
    assert props["verified_at"] is None

    situation = [e.type for e in events_since(session, mark) if e.topic == "situation"]
    assert sorted(situation) == sorted(
        [
            "unit.status_changed",
            "unit.status_changed",
            "incident.dispatched",
            "task.assigned",
            "task.assigned",
        ]
    )
    audits = session.execute(
        text("SELECT action FROM audit_event ORDER BY id DESC LIMIT 5")
    ).scalars()
    assert sorted(audits) == sorted(situation)


def test_dispatch_to_an_already_dispatched_incident_adds_a_task(client: TestClient, world: World):
    inc = new_incident(client, world)
    first = dispatched(client, world, inc, [world.unit_a.id])
    before = incident_props(client, world, inc)
    second = dispatched(client, world, inc, [world.unit_b.id])
    assert second[0]["id"] != first[0]["id"]
    after = incident_props(client, world, inc)
    assert after["status"] == "dispatched"
    assert after["dispatched_at"] == before["dispatched_at"]
    listed = client.get(
        "/api/tasks", params={"incident_id": inc}, headers=world.h("commander")
    ).json()
    assert [t["id"] for t in listed["items"]] == [first[0]["id"], second[0]["id"]]


def test_dispatching_a_busy_unit_is_409_and_writes_nothing(
    client: TestClient, world: World, count: Count
):
    first = new_incident(client, world)
    dispatched(client, world, first, [world.unit_a.id])
    second = new_incident(client, world)

    before = counts(count)
    err = assert_error(dispatch(client, world, second, [world.unit_b.id, world.unit_a.id]), 409)
    assert "E1" in err["message"]
    assert counts(count) == before
    # All or nothing: the free unit was not taken either, the incident did not move.
    assert unit_status(client, world, world.unit_b.id) == "available"
    assert incident_props(client, world, second)["status"] == "reported"
    assert incident_props(client, world, second)["dispatched_at"] is None


def test_an_out_of_service_unit_cannot_be_dispatched(
    client: TestClient, world: World, count: Count
):
    r = client.post(
        f"/api/units/{world.unit_b.id}/status",
        json={"status": "out_of_service"},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 200
    inc = new_incident(client, world)
    before = counts(count)
    assert_error(dispatch(client, world, inc, [world.unit_b.id]), 409, "conflict")
    assert counts(count) == before


def test_dispatch_unknown_or_duplicate_units(client: TestClient, world: World, count: Count):
    inc = new_incident(client, world)
    before = counts(count)
    err = assert_error(dispatch(client, world, inc, [world.unit_a.id, 987654]), 404, "not_found")
    assert "987654" in err["message"]
    assert_error(dispatch(client, world, inc, [world.unit_a.id, world.unit_a.id]), 409, "conflict")
    assert_error(dispatch(client, world, 987654, [world.unit_a.id]), 404, "not_found")
    assert_error(dispatch(client, world, inc, []), 422, "validation_error")
    assert_error(dispatch(client, world, inc, [0]), 422, "validation_error")
    r = client.post(
        f"/api/incidents/{inc}/dispatch",
        json={"unit_ids": [world.unit_a.id]},
        headers=world.h("planner"),
    )
    assert_error(r, 403, "forbidden")
    r = client.post(
        f"/api/incidents/{inc}/dispatch",
        json={"unit_ids": [world.unit_a.id]},
        headers=world.h("responder"),
    )
    assert_error(r, 403, "forbidden")
    assert counts(count) == before
    assert unit_status(client, world, world.unit_a.id) == "available"
    assert incident_props(client, world, inc)["status"] == "reported"


@pytest.mark.parametrize("end", ["resolved", "closed", "cancelled"])
def test_dispatch_to_an_ended_incident_is_409(
    client: TestClient, world: World, count: Count, end: str
):
    inc = new_incident(client, world)
    if end == "cancelled":
        assert incident_step(client, world, inc, "cancelled").status_code == 200
    else:
        dispatched(client, world, inc, [world.unit_b.id])
        for step in ("on_scene", "resolved", "closed")[: 2 if end == "resolved" else 3]:
            assert incident_step(client, world, inc, step).status_code == 200, step
    assert incident_props(client, world, inc)["status"] == end
    before = counts(count)
    err = assert_error(dispatch(client, world, inc, [world.unit_a.id]), 409, "invalid_transition")
    assert end in err["message"]
    assert counts(count) == before
    assert unit_status(client, world, world.unit_a.id) == "available"


def test_drill_incident_never_pages_real_units(client: TestClient, world: World, count: Count):
    inc = new_incident(client, world, drill=True)
    before = counts(count)
    err = assert_error(dispatch(client, world, inc, [world.unit_a.id]), 409, "conflict")
    assert "drill" in err["message"]
    assert counts(count) == before
    assert unit_status(client, world, world.unit_a.id) == "available"


def test_a_returning_unit_can_be_dispatched_again(client: TestClient, world: World):
    first = new_incident(client, world)
    (t,) = dispatched(client, world, first, [world.unit_a.id])
    for step in ("on_scene", "done"):
        assert task_step(client, world, t["id"], step).status_code == 200
    assert unit_status(client, world, world.unit_a.id) == "returning"
    second = new_incident(client, world)
    (t2,) = dispatched(client, world, second, [world.unit_a.id])
    assert t2["status"] == "assigned"
    assert unit_status(client, world, world.unit_a.id) == "assigned"


# --- task flow ----------------------------------------------------------------------
def test_task_flow_moves_unit_and_incident(client: TestClient, world: World):
    inc = new_incident(client, world)
    (t,) = dispatched(client, world, inc, [world.unit_a.id])
    tid = t["id"]
    expected_unit = {
        "accepted": "assigned",
        "en_route": "en_route",
        "on_scene": "on_scene",
        "done": "returning",
    }
    stamps = [at(t["assigned_at"])]
    for step, unit_state in expected_unit.items():
        r = task_step(client, world, tid, step)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["status"] == step
        stamps.append(at(got[f"{step}_at"]))
        assert unit_status(client, world, world.unit_a.id) == unit_state
        if step == "on_scene":
            props = incident_props(client, world, inc)
            assert props["status"] == "on_scene"
            assert at(props["on_scene_at"]) >= at(props["dispatched_at"])
    assert stamps == sorted(stamps)
    final = task(client, world, tid)
    assert final["cancelled_at"] is None
    assert [at(final[f"{s}_at"]) for s in expected_unit] == stamps[1:]
    # The incident stays on scene until a person resolves it.
    assert incident_props(client, world, inc)["status"] == "on_scene"


def test_a_second_unit_on_scene_does_not_move_the_incident_again(client: TestClient, world: World):
    inc = new_incident(client, world)
    ta, tb = dispatched(client, world, inc, [world.unit_a.id, world.unit_b.id])
    assert task_step(client, world, ta["id"], "on_scene").status_code == 200
    first = incident_props(client, world, inc)
    r = task_step(client, world, tb["id"], "on_scene", who="responder_b")
    assert r.status_code == 200
    assert incident_props(client, world, inc) == first


def test_repeating_a_step_is_harmless(client: TestClient, world: World, count: Count):
    inc = new_incident(client, world)
    (t,) = dispatched(client, world, inc, [world.unit_a.id])
    for step in ("accepted", "en_route", "on_scene", "done"):
        first = task_step(client, world, t["id"], step)
        assert first.status_code == 200
        before = counts(count)
        again = task_step(client, world, t["id"], step)
        assert again.status_code == 200
        assert again.json() == first.json()
        assert counts(count) == before


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ((), "done"),
        (("accepted",), "done"),
        (("en_route",), "accepted"),
        (("on_scene",), "en_route"),
        (("on_scene", "done"), "en_route"),
        (("on_scene", "done"), "on_scene"),
    ],
)
def test_illegal_task_steps_are_409(
    client: TestClient, world: World, count: Count, path: tuple[str, ...], illegal: str
):
    inc = new_incident(client, world)
    (t,) = dispatched(client, world, inc, [world.unit_a.id])
    for step in path:
        assert task_step(client, world, t["id"], step).status_code == 200
    unit_before = unit_status(client, world, world.unit_a.id)
    task_before = task(client, world, t["id"])
    before = counts(count)
    assert_error(task_step(client, world, t["id"], illegal), 409, "invalid_transition")
    assert counts(count) == before
    assert task(client, world, t["id"]) == task_before
    assert unit_status(client, world, world.unit_a.id) == unit_before


def test_who_may_move_a_task(client: TestClient, world: World, count: Count):
    inc = new_incident(client, world)
    (t,) = dispatched(client, world, inc, [world.unit_a.id])
    before = counts(count)
    # Another unit's responder can neither see nor move this task.
    assert_error(task_step(client, world, t["id"], "accepted", who="responder_b"), 403)
    r = client.get(f"/api/tasks/{t['id']}", headers=world.h("responder_b"))
    assert_error(r, 403, "forbidden")
    # Only a dispatcher cancels; planners and auditors only read.
    assert_error(task_step(client, world, t["id"], "cancelled"), 403, "forbidden")
    assert_error(task_step(client, world, t["id"], "accepted", who="planner"), 403)
    assert_error(task_step(client, world, t["id"], "paused", who="dispatcher"), 422)
    assert_error(task_step(client, world, 987654, "accepted", who="dispatcher"), 404)
    assert counts(count) == before
    own = client.get("/api/tasks", headers=world.h("responder_b")).json()
    assert own["items"] == []
    mine = client.get("/api/tasks", headers=world.h("responder")).json()
    assert [x["id"] for x in mine["items"]] == [t["id"]]


def test_dispatcher_cancels_one_task_and_frees_its_unit(client: TestClient, world: World):
    inc = new_incident(client, world)
    ta, tb = dispatched(client, world, inc, [world.unit_a.id, world.unit_b.id])
    assert task_step(client, world, tb["id"], "on_scene", who="responder_b").status_code == 200
    r = task_step(client, world, ta["id"], "cancelled", who="dispatcher")
    assert r.status_code == 200, r.text
    assert r.json()["cancelled_at"] is not None
    assert unit_status(client, world, world.unit_a.id) == "available"
    r = task_step(client, world, tb["id"], "cancelled", who="dispatcher")
    assert r.status_code == 200
    assert unit_status(client, world, world.unit_b.id) == "returning"
    assert_error(task_step(client, world, ta["id"], "accepted"), 409, "invalid_transition")


def test_cancelling_the_incident_cancels_its_tasks_and_frees_units(
    client: TestClient, world: World
):
    inc = new_incident(client, world)
    ta, tb = dispatched(client, world, inc, [world.unit_a.id, world.unit_b.id])
    assert task_step(client, world, tb["id"], "en_route", who="responder_b").status_code == 200
    assert task_step(client, world, tb["id"], "on_scene", who="responder_b").status_code == 200
    assert unit_status(client, world, world.unit_b.id) == "on_scene"

    r = incident_step(client, world, inc, "cancelled")
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["status"] == "cancelled"
    assert r.json()["properties"]["cancelled_at"] is not None
    for t in (ta, tb):
        got = task(client, world, t["id"])
        assert got["status"] == "cancelled"
        assert got["cancelled_at"] is not None
        assert got["note"] == "incident cancelled"
    assert unit_status(client, world, world.unit_a.id) == "available"
    assert unit_status(client, world, world.unit_b.id) == "returning"
    active = client.get(
        "/api/tasks",
        params={"incident_id": inc, "status": "assigned,accepted,en_route,on_scene"},
        headers=world.h("commander"),
    ).json()
    assert active["numberMatched"] == 0


def test_closing_the_incident_ends_tasks_but_keeps_done_ones(client: TestClient, world: World):
    inc = new_incident(client, world)
    ta, tb = dispatched(client, world, inc, [world.unit_a.id, world.unit_b.id])
    for step in ("on_scene", "done"):
        assert task_step(client, world, ta["id"], step).status_code == 200
    assert task_step(client, world, tb["id"], "on_scene", who="responder_b").status_code == 200
    for step in ("resolved", "closed"):
        assert incident_step(client, world, inc, step).status_code == 200
    assert task(client, world, ta["id"])["status"] == "done"
    assert task(client, world, ta["id"])["cancelled_at"] is None
    assert task(client, world, tb["id"])["status"] == "cancelled"
    assert unit_status(client, world, world.unit_a.id) == "returning"
    assert unit_status(client, world, world.unit_b.id) == "returning"


# --- incident lifecycle -------------------------------------------------------------
def test_incident_lifecycle_stamps_each_step(client: TestClient, world: World, session: Session):
    inc = new_incident(client, world)
    mark = last_event_id(session)
    r = incident_step(client, world, inc, "verified")
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["verified_at"] is not None
    dispatched(client, world, inc, [world.unit_a.id])
    for step in ("on_scene", "resolved", "closed"):
        r = incident_step(client, world, inc, step)
        assert r.status_code == 200, r.text
        assert r.json()["properties"]["status"] == step
    props = incident_props(client, world, inc)
    order = ["reported_at", "verified_at", "dispatched_at", "on_scene_at", "resolved_at"]
    stamps = [at(props[name]) for name in [*order, "closed_at"]]
    assert stamps == sorted(stamps)
    assert props["cancelled_at"] is None
    incident_events = [
        e.type
        for e in events_since(session, mark)
        if e.topic == "situation" and e.type.startswith("incident.")
    ]
    assert incident_events == [
        "incident.verified",
        "incident.dispatched",
        "incident.on_scene",
        "incident.resolved",
        "incident.closed",
    ]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ((), "resolved"),
        ((), "closed"),
        ((), "on_scene"),
        (("verified",), "resolved"),
        (("cancelled",), "verified"),
        (("cancelled",), "on_scene"),
        (("dispatch", "on_scene", "resolved", "closed"), "verified"),
        (("dispatch", "on_scene", "resolved", "closed"), "on_scene"),
        (("dispatch", "on_scene", "resolved", "closed"), "resolved"),
        (("dispatch", "on_scene", "resolved", "closed"), "cancelled"),
        (("dispatch", "on_scene", "resolved"), "cancelled"),
    ],
)
def test_illegal_incident_steps_are_409(
    client: TestClient, world: World, count: Count, path: tuple[str, ...], illegal: str
):
    inc = new_incident(client, world)
    for step in path:
        if step == "dispatch":
            dispatched(client, world, inc, [world.unit_a.id])
        else:
            assert incident_step(client, world, inc, step).status_code == 200, step
    props = incident_props(client, world, inc)
    before = counts(count)
    err = assert_error(incident_step(client, world, inc, illegal), 409, "invalid_transition")
    assert illegal in err["message"]
    assert counts(count) == before
    assert incident_props(client, world, inc) == props


def test_incident_status_endpoint_refuses_dispatched_and_unknown(
    client: TestClient, world: World, count: Count
):
    inc = new_incident(client, world)
    before = counts(count)
    for status in ("dispatched", "reported", "exploded"):
        assert_error(incident_step(client, world, inc, status), 422, "validation_error")
    assert_error(incident_step(client, world, 987654, "verified"), 404, "not_found")
    assert counts(count) == before


def test_repeating_an_incident_step_is_harmless(client: TestClient, world: World, count: Count):
    inc = new_incident(client, world)
    first = incident_step(client, world, inc, "verified")
    before = counts(count)
    again = incident_step(client, world, inc, "verified")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert counts(count) == before


# --- events -------------------------------------------------------------------------
def test_task_events_go_to_situation_and_unit_topics_with_gapless_seq(
    client: TestClient, world: World, session: Session
):
    situation_before = int(
        session.scalar(
            text("SELECT coalesce(max(last_seq), 0) FROM topic_seq WHERE topic = 'situation'")
        )
        or 0
    )
    mark = last_event_id(session)
    inc = new_incident(client, world)
    (ta,) = dispatched(client, world, inc, [world.unit_a.id])
    for step in ("accepted", "en_route", "on_scene", "done"):
        assert task_step(client, world, ta["id"], step).status_code == 200
    (tb,) = dispatched(client, world, inc, [world.unit_b.id])
    assert incident_step(client, world, inc, "cancelled").status_code == 200

    events = events_since(session, mark)
    topic_a, topic_b = f"unit:{world.unit_a.id}", f"unit:{world.unit_b.id}"
    on_a = [e for e in events if e.topic == topic_a]
    assert [e.type for e in on_a] == [
        "task.assigned",
        "task.accepted",
        "task.en_route",
        "task.on_scene",
        "task.done",
    ]
    assert [e.seq for e in on_a] == [1, 2, 3, 4, 5]
    assert all(e.payload["id"] == ta["id"] for e in on_a)
    assert all(e.payload["incident"]["id"] == inc for e in on_a)
    assert [e.payload["status"] for e in on_a] == [e.type.split(".")[1] for e in on_a]
    on_b = [e for e in events if e.topic == topic_b]
    assert [(e.seq, e.type) for e in on_b] == [(1, "task.assigned"), (2, "task.cancelled")]
    assert all(e.payload["id"] == tb["id"] for e in on_b)
    assert {e.topic for e in events} == {"situation", topic_a, topic_b}

    # Each task event is on the situation topic too, with the same payload.
    situation = [e for e in events if e.topic == "situation"]
    task_events = [(e.type, e.payload) for e in situation if e.type.startswith("task.")]
    assert task_events == [(e.type, e.payload) for e in on_a + on_b]
    # Sequence numbers per topic: consecutive, no gaps, in commit order.
    assert [e.seq for e in situation] == list(
        range(situation_before + 1, situation_before + 1 + len(situation))
    )
    all_seqs = session.execute(
        text("SELECT seq FROM event WHERE topic = 'situation' ORDER BY seq")
    ).scalars()
    seqs = list(all_seqs)
    assert seqs == list(range(1, len(seqs) + 1))


# --- the database guarantees one active task per unit --------------------------------
def insert_task(session: Session, incident_id: int, unit_id: int, status: str) -> Task:
    with session.begin_nested():
        row = Task(incident_id=incident_id, unit_id=unit_id, status=status)
        session.add(row)
        session.flush()
    return row


def test_partial_unique_index_allows_one_active_task_per_unit(session: Session, world: World):
    incident = Incident(
        title="Direct insert", type="fire", geom=from_shape(Point(24.95, 60.17), srid=4326)
    )
    other = Incident(title="Another", type="flood", geom=from_shape(Point(24.96, 60.18), srid=4326))
    session.add_all([incident, other])
    session.flush()
    unit = world.unit_a.id

    first = insert_task(session, incident.id, unit, "assigned")
    for status in ("assigned", "accepted", "en_route", "on_scene"):
        with pytest.raises(IntegrityError) as exc:
            insert_task(session, other.id, unit, status)
        assert exc.value.orig is not None
        assert exc.value.orig.diag.constraint_name == "uq_task_unit_active"  # type: ignore[attr-defined]
        translated = integrity_error(exc.value)
        assert isinstance(translated, Conflict)
        assert translated.message == "the unit already has an active task"

    # Another unit is not affected; ended tasks do not count.
    insert_task(session, other.id, world.unit_b.id, "en_route")
    first.status = "done"
    session.flush()
    insert_task(session, other.id, unit, "on_scene")
    insert_task(session, incident.id, unit, "cancelled")
    insert_task(session, incident.id, unit, "done")
    active = session.execute(
        text(
            "SELECT count(*) FROM task WHERE unit_id = :u "
            "AND status IN ('assigned', 'accepted', 'en_route', 'on_scene')"
        ),
        {"u": unit},
    ).scalar_one()
    assert active == 1
    total = session.execute(
        text("SELECT count(*) FROM task WHERE unit_id = :u"), {"u": unit}
    ).scalar_one()
    assert total == 4
