"""The caller's phone is personal data: staff see it, a responder only on its own task; it
is never on the shared topic nor in the audit chain, and it is forgotten after the
retention period."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session

from command.incidents import calls
from command.live.jobs import purge_caller_phones
from command.live.snapshots import situation_snapshot, unit_snapshot
from core.config import Settings
from core.security import SYSTEM
from core.types import utcnow
from tests.support.world import TEST_SECRET, World, point

PHONE_A, DIGITS_A = "040 555 0199", "5550199"
PHONE_B, DIGITS_B = "+358 50 444 8877", "4448877"
STAFF = ("commander", "dispatcher", "planner", "auditor", "admin")


def new_incident(client: TestClient, world: World, phone: str | None, **props: Any) -> int:
    body = {
        "type": "Feature",
        "geometry": point(24.95, 60.17),
        "properties": {"title": "House fire", "type": "fire", "caller_phone": phone} | props,
    }
    r = client.post("/api/incidents", json=body, headers=world.h("dispatcher"))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def dispatch(client: TestClient, world: World, incident_id: int, unit_id: int) -> int:
    r = client.post(
        f"/api/incidents/{incident_id}/dispatch",
        json={"unit_ids": [unit_id]},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 201, r.text
    (task,) = r.json()
    assert task["caller_phone"] is not None  # the dispatcher is staff
    return int(task["id"])


@pytest.fixture
def scene(client, world) -> dict[str, int]:
    """Incident a (unit_a on it, PHONE_A) and b (unit_b on it, PHONE_B), with a second
    call on a and tasks moved along, so every kind of event has been written."""
    a = new_incident(client, world, PHONE_A, people_affected=1)
    b = new_incident(client, world, PHONE_B)
    task_a = dispatch(client, world, a, world.unit_a.id)
    task_b = dispatch(client, world, b, world.unit_b.id)
    r = client.post(
        f"/api/incidents/{a}/calls",
        json={"caller_phone": PHONE_A, "people_affected": 4},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 201, r.text
    r = client.post(
        f"/api/tasks/{task_a}/status", json={"status": "en_route"}, headers=world.h("responder")
    )
    assert r.status_code == 200, r.text
    return {"a": a, "b": b, "task_a": task_a, "task_b": task_b}


def test_staff_see_the_phone_on_incidents_responders_do_not(client, world, scene):
    for role in STAFF:
        got = client.get(f"/api/incidents/{scene['a']}", headers=world.h(role)).json()
        assert got["properties"]["caller_phone"] == PHONE_A, role
        listed = client.get("/api/incidents", headers=world.h(role)).json()["features"]
        assert {f["id"]: f["properties"]["caller_phone"] for f in listed} == {
            scene["a"]: PHONE_A,
            scene["b"]: PHONE_B,
        }
    for role in ("responder", "responder_b"):
        # Even the unit on the incident: the incident is everyone's; the task is its own.
        got = client.get(f"/api/incidents/{scene['a']}", headers=world.h(role)).json()
        assert got["properties"]["caller_phone"] is None
        assert got["properties"]["calls"] == 2
        listed = client.get("/api/incidents", headers=world.h(role)).json()["features"]
        assert [f["properties"]["caller_phone"] for f in listed] == [None, None]


def test_a_responder_sees_the_phone_on_its_own_task_only(client, world, scene):
    own = client.get(f"/api/tasks/{scene['task_a']}", headers=world.h("responder"))
    assert own.status_code == 200
    assert own.json()["caller_phone"] == PHONE_A
    other = client.get(f"/api/tasks/{scene['task_b']}", headers=world.h("responder"))
    assert other.status_code == 403 and PHONE_B not in other.text
    listed = client.get("/api/tasks", headers=world.h("responder_b")).json()["items"]
    assert [(t["id"], t["caller_phone"]) for t in listed] == [(scene["task_b"], PHONE_B)]
    staff = client.get("/api/tasks", headers=world.h("planner")).json()["items"]
    assert {t["id"]: t["caller_phone"] for t in staff} == {
        scene["task_a"]: PHONE_A,
        scene["task_b"]: PHONE_B,
    }


def test_the_phone_is_in_no_event_and_no_audit_row(session: Session, world, scene):
    def rows(sql: str) -> list[str]:
        return [str(r) for r in session.scalars(text(sql))]

    events = rows("SELECT topic || ' ' || type || ' ' || payload::text FROM event")
    audit = rows("SELECT coalesce(before::text, '') || coalesce(after::text, '') FROM audit_event")
    pending = rows("SELECT payload::text FROM pending_change WHERE payload IS NOT NULL")
    assert any(e.startswith("situation task.assigned") for e in events)
    assert any(e.startswith(f"unit:{world.unit_a.id} task.en_route") for e in events)
    assert any(e.startswith("situation incident.updated") for e in events)
    for digits, phone in ((DIGITS_A, PHONE_A), (DIGITS_B, PHONE_B)):
        for text_ in events + audit + pending:
            assert phone not in text_
            assert digits not in text_.replace(" ", "")
    masks = rows(
        "SELECT after->>'caller_phone' FROM audit_event WHERE entity = 'incident_call' ORDER BY id"
    )
    assert masks == ["***0199", "***8877", "***0199"]


def test_the_unit_snapshot_carries_the_phone_the_situation_snapshot_does_not(
    session: Session, world, scene
):
    shared = situation_snapshot(session)
    assert [i["properties"]["caller_phone"] for i in shared["incidents"]] == [None, None]
    text_ = json.dumps(shared)
    assert PHONE_A not in text_ and PHONE_B not in text_
    mine = unit_snapshot(session, world.unit_a.id)
    assert [t["incident"]["properties"]["caller_phone"] for t in mine["tasks"]] == [PHONE_A]
    assert PHONE_B not in json.dumps(mine)


def test_phones_past_the_retention_period_are_blanked(client, world, session: Session):
    incident = new_incident(client, world, PHONE_A)
    for phone in ("040 000 0031", "040 000 0029"):
        r = client.post(
            f"/api/incidents/{incident}/calls",
            json={"caller_phone": phone},
            headers=world.h("dispatcher"),
        )
        assert r.status_code == 201
    session.execute(
        text(
            "UPDATE incident_call SET received_at = now() - CASE caller_phone "
            "WHEN '040 000 0031' THEN interval '31 days' "
            "WHEN '040 000 0029' THEN interval '29 days' "
            "ELSE interval '40 days' END WHERE incident_id = :id"
        ),
        {"id": incident},
    )
    now = utcnow()
    assert calls.purge_phones(session, retention_days=30, principal=SYSTEM, now=now) == 2
    session.commit()  # the audit row is staged and sealed at commit
    got = session.execute(
        text(
            "SELECT caller_phone, phone_purged_at IS NOT NULL FROM incident_call "
            "WHERE incident_id = :id ORDER BY received_at"
        ),
        {"id": incident},
    ).all()
    assert [tuple(r) for r in got] == [(None, True), (None, True), ("040 000 0029", False)]
    # The incident now shows the latest phone still kept; the call records keep the rest.
    shown = client.get(f"/api/incidents/{incident}", headers=world.h("dispatcher")).json()
    assert shown["properties"]["caller_phone"] == "040 000 0029"
    assert shown["properties"]["calls"] == 3
    # Nothing more to do until the next call ages; what was purged is audited, not who.
    assert calls.purge_phones(session, retention_days=30, principal=SYSTEM, now=now) == 0
    audit = session.execute(
        text("SELECT after FROM audit_event WHERE action = 'incident_call.phones_purged'")
    ).scalar_one()
    assert audit == {"purged": 2, "retention_days": 30}
    assert (
        calls.purge_phones(
            session, retention_days=1, principal=SYSTEM, now=now + timedelta(days=28, hours=1)
        )
        == 1
    )


def test_the_background_job_uses_the_configured_retention(
    session_factory, session: Session, client, world, database_url
):
    incident = new_incident(client, world, PHONE_B)
    session.execute(
        text(
            "UPDATE incident_call SET received_at = now() - interval '8 days' "
            "WHERE incident_id = :id"
        ),
        {"id": incident},
    )
    session.commit()
    settings = Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        caller_phone_retention_days=10,
    )
    assert purge_caller_phones(session_factory, settings) == 0
    short = settings.model_copy(update={"caller_phone_retention_days": 7})
    assert purge_caller_phones(session_factory, short) == 1
    phone = session.execute(
        text("SELECT caller_phone FROM incident_call WHERE incident_id = :id"), {"id": incident}
    ).scalar_one()
    assert phone is None


def test_the_retention_setting_is_read_from_the_environment_and_at_least_a_day(
    monkeypatch, database_url
):
    monkeypatch.setenv("EMERGENCY_CALLER_PHONE_RETENTION_DAYS", "7")
    base = {"env": "test", "database_url": database_url, "secret_key": TEST_SECRET}
    assert Settings(**base).caller_phone_retention_days == 7
    monkeypatch.delenv("EMERGENCY_CALLER_PHONE_RETENTION_DAYS")
    assert Settings(**base).caller_phone_retention_days == 30
    with pytest.raises(ValidationError, match="caller_phone_retention_days"):
        Settings(**base, caller_phone_retention_days=0)
