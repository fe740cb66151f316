"""Calls about an incident: the first one with the incident, later ones attached (never
dispatched), refused input writing nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.support.world import World, point

Count = Callable[[str], int]
WRITE_TABLES = ("incident", "incident_call", "task", "event", "audit_event")
PHONE = "+358 40 555 0101"


def new_incident(client: TestClient, world: World, **props: Any) -> dict[str, Any]:
    body = {
        "type": "Feature",
        "geometry": point(24.95, 60.17),
        "properties": {"title": "House fire", "type": "fire"} | props,
    }
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 201, r.text
    return dict(r.json())


def counts(count: Count) -> dict[str, int]:
    return {t: count(t) for t in WRITE_TABLES}


def test_creating_an_incident_records_its_first_call(client, world, session: Session):
    got = new_incident(
        client, world, caller_phone=f"  {PHONE} ", description="smoke", people_affected=3
    )
    assert got["properties"]["calls"] == 1
    assert got["properties"]["caller_phone"] == PHONE  # trimmed; a dispatcher may see it
    row = session.execute(
        text(
            "SELECT caller_phone, description, people_affected, taken_by, drill, phone_purged_at"
            " FROM incident_call WHERE incident_id = :id"
        ),
        {"id": got["id"]},
    ).one()
    assert tuple(row) == (PHONE, "smoke", 3, "user:dispatcher", False, None)


def test_an_incident_without_a_phone_still_has_its_call(client, world, session):
    got = new_incident(client, world)
    assert got["properties"]["calls"] == 1
    assert got["properties"]["caller_phone"] is None
    phone = session.execute(
        text("SELECT caller_phone FROM incident_call WHERE incident_id = :id"), {"id": got["id"]}
    ).scalar_one()
    assert phone is None


@pytest.mark.parametrize(
    "phone",
    ["12", "phone me", "+", "++358 40 1", "0" * 33, "(040) 555", "040\n555", "+358 40 555 0101 x2"],
)
def test_a_bad_phone_is_422_and_creates_nothing(client, world, count, phone):
    before = counts(count)
    body = {
        "type": "Feature",
        "geometry": point(24.95, 60.17),
        "properties": {"title": "House fire", "type": "fire", "caller_phone": phone},
    }
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 422, r.text
    assert "caller_phone" in r.json()["message"]
    assert counts(count) == before


@pytest.mark.parametrize("phone", ["112", "+358405550101", "040-555 01 01", "+1 (555) 010-9999"])
def test_phones_people_write_are_accepted(client, world, phone):
    assert new_incident(client, world, caller_phone=phone)["properties"]["caller_phone"] == phone


def test_attaching_a_call_counts_it_and_dispatches_nothing(client, world, session, count):
    incident = new_incident(client, world, people_affected=2, caller_phone=PHONE)
    tasks_before, events_before = count("task"), count("event")
    r = client.post(
        f"/api/incidents/{incident['id']}/calls",
        json={"caller_phone": "040 777 1234", "description": "flames seen", "people_affected": 5},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 201, r.text
    call = r.json()
    assert set(call) == {
        "id",
        "incident_id",
        "caller_phone",
        "description",
        "people_affected",
        "received_at",
        "taken_by",
    }
    assert call["incident_id"] == incident["id"]
    assert call["caller_phone"] == "040 777 1234"
    assert call["people_affected"] == 5
    assert call["taken_by"] == "user:dispatcher"
    assert count("task") == tasks_before  # a second call sends no second set of engines
    got = client.get(f"/api/incidents/{incident['id']}", headers=world.h("commander")).json()
    assert got["properties"]["calls"] == 2
    assert got["properties"]["people_affected"] == 5  # raised to the caller's count
    assert got["properties"]["status"] == "reported"
    assert got["properties"]["caller_phone"] == "040 777 1234"  # the latest call's
    # One incident.updated event (on situation), with the count and without any phone.
    rows = session.execute(
        text("SELECT topic, type, payload::text FROM event ORDER BY id OFFSET :n"),
        {"n": events_before},
    ).all()
    assert [(r.topic, r.type) for r in rows] == [("situation", "incident.updated")]
    assert '"calls": 2' in rows[0][2] or '"calls":2' in rows[0][2]
    assert "777" not in rows[0][2]


def test_a_smaller_count_of_people_does_not_lower_the_incidents(client, world):
    incident = new_incident(client, world, people_affected=8)
    r = client.post(
        f"/api/incidents/{incident['id']}/calls",
        json={"people_affected": 2},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 201, r.text
    got = client.get(f"/api/incidents/{incident['id']}", headers=world.h("dispatcher")).json()
    assert (got["properties"]["people_affected"], got["properties"]["calls"]) == (8, 2)


def test_calls_are_listed_newest_first_for_staff(client, world, session):
    incident = new_incident(client, world, caller_phone="111 111")
    for phone in ("222 222", "333 333"):
        r = client.post(
            f"/api/incidents/{incident['id']}/calls",
            json={"caller_phone": phone},
            headers=world.h("dispatcher"),
        )
        assert r.status_code == 201
    # Transaction time is one instant in a test: spread the calls out.
    session.execute(
        text(
            "UPDATE incident_call SET received_at = received_at + (id - "
            "(SELECT min(id) FROM incident_call WHERE incident_id = :id)) * interval '1 minute'"
            " WHERE incident_id = :id"
        ),
        {"id": incident["id"]},
    )
    for role in ("commander", "dispatcher", "planner", "auditor", "admin"):
        r = client.get(f"/api/incidents/{incident['id']}/calls", headers=world.h(role))
        assert r.status_code == 200, (role, r.text)
        assert [c["caller_phone"] for c in r.json()["items"]] == ["333 333", "222 222", "111 111"]


def test_a_responder_reads_calls_only_of_its_units_incident(client, world):
    incident = new_incident(client, world, caller_phone=PHONE)
    url = f"/api/incidents/{incident['id']}/calls"
    assert client.get(url, headers=world.h("responder")).status_code == 403
    r = client.post(
        f"/api/incidents/{incident['id']}/dispatch",
        json={"unit_ids": [world.unit_a.id]},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 201, r.text
    r = client.get(url, headers=world.h("responder"))  # unit_a's responder
    assert r.status_code == 200
    assert [c["caller_phone"] for c in r.json()["items"]] == [PHONE]
    assert client.get(url, headers=world.h("responder_b")).status_code == 403


def test_calls_of_an_unknown_incident_are_404(client, world):
    assert client.get("/api/incidents/999999/calls", headers=world.h("admin")).status_code == 404


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("unknown", 404),
        ("closed", 409),
        ("cancelled", 409),
        ("responder", 403),
        ("planner", 403),
        ("bad_phone", 422),
        ("negative_people", 422),
        ("unknown_field", 422),
    ],
)
def test_refused_calls_change_nothing(client, world, count, case, status):
    incident = new_incident(client, world, caller_phone=PHONE)
    target, who = incident["id"], "dispatcher"
    body: dict[str, Any] = {"caller_phone": "040 123 4567", "people_affected": 4}
    if case == "unknown":
        target = 999_999
    elif case == "closed":
        _close(client, world, target)
    elif case == "cancelled":
        _end(client, world, target, ("cancelled",))
    elif case in ("responder", "planner"):
        who = case
    elif case == "bad_phone":
        body["caller_phone"] = "call me"
    elif case == "negative_people":
        body["people_affected"] = -1
    else:
        body["ward"] = "4"
    before = counts(count)
    calls_before = _calls(client, world, incident["id"])
    r = client.post(f"/api/incidents/{target}/calls", json=body, headers=world.h(who))
    assert r.status_code == status, r.text
    assert counts(count) == before
    assert _calls(client, world, incident["id"]) == calls_before


def _calls(client: TestClient, world: World, incident_id: int) -> tuple[int, Any]:
    got = client.get(f"/api/incidents/{incident_id}", headers=world.h("admin")).json()
    return got["properties"]["calls"], got["properties"]["people_affected"]


def _end(client: TestClient, world: World, incident_id: int, steps: tuple[str, ...]) -> None:
    for step in steps:
        r = client.post(
            f"/api/incidents/{incident_id}/status",
            json={"status": step},
            headers=world.h("dispatcher"),
        )
        assert r.status_code == 200, r.text


def _close(client: TestClient, world: World, incident_id: int) -> None:
    r = client.post(
        f"/api/incidents/{incident_id}/dispatch",
        json={"unit_ids": [world.unit_a.id]},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 201, r.text
    task_id = r.json()[0]["id"]
    for step in ("on_scene", "done"):
        r = client.post(
            f"/api/tasks/{task_id}/status", json={"status": step}, headers=world.h("responder")
        )
        assert r.status_code == 200, r.text
    _end(client, world, incident_id, ("resolved", "closed"))
