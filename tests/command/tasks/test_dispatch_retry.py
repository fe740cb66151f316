"""A dispatcher's retry after a lost answer: the same Idempotency-Key on POST
/api/incidents, POST /api/incidents/{id}/dispatch, /status and /calls returns the first
answer and has no second effect (the failover test, tests/realtime/test_failover.py, relies on it when the
server dies with the request in flight)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.support.world import World, point

Count = Callable[[str], int]
TABLES = (
    "incident",
    "incident_call",
    "task",
    "unit",
    "event",
    "audit_event",
    "dispatch_decision",
)


def counts(count: Count) -> dict[str, int]:
    return {t: count(t) for t in TABLES}


def incident_body(title: str = "House fire") -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": point(24.95, 60.17),
        "properties": {"title": title, "type": "fire", "severity": "severe"},
    }


def post_incident(client: TestClient, world: World, key: str | None, **kw: Any) -> Any:
    headers = world.h("dispatcher") | ({"Idempotency-Key": key} if key else {})
    return client.post("/api/incidents", json=incident_body(**kw), headers=headers)


def post_dispatch(
    client: TestClient, world: World, incident_id: int, unit_ids: list[int], key: str | None
) -> Any:
    headers = world.h("dispatcher") | ({"Idempotency-Key": key} if key else {})
    return client.post(
        f"/api/incidents/{incident_id}/dispatch", json={"unit_ids": unit_ids}, headers=headers
    )


def test_a_retried_dispatch_returns_the_first_tasks_and_creates_none(
    client: TestClient, world: World, count: Count
):
    inc = post_incident(client, world, None).json()["id"]
    first = post_dispatch(client, world, inc, [world.unit_a.id], "dispatch-key-0001")
    assert first.status_code == 201, first.text
    after_first = counts(count)
    retry = post_dispatch(client, world, inc, [world.unit_a.id], "dispatch-key-0001")
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()  # the same task, not a 409 "unit not available"
    assert len(first.json()) == 1 and first.json()[0]["unit_id"] == world.unit_a.id
    assert counts(count) == after_first  # no task, event, audit row or decision more
    # Without a key the retry is refused as a busy unit (the old behaviour, kept).
    again = post_dispatch(client, world, inc, [world.unit_a.id], None)
    assert again.status_code == 409 and "E1" in again.json()["message"]
    assert counts(count) == after_first


def test_a_dispatch_key_reused_for_other_units_is_409_and_writes_nothing(
    client: TestClient, world: World, count: Count
):
    inc = post_incident(client, world, None).json()["id"]
    assert post_dispatch(client, world, inc, [world.unit_a.id], "dispatch-key-0002").status_code
    before = counts(count)
    other = post_dispatch(client, world, inc, [world.unit_b.id], "dispatch-key-0002")
    assert other.status_code == 409, other.text
    assert other.json()["error"] == "conflict"
    assert "idempotency key" in other.json()["message"]
    assert counts(count) == before
    free = client.get(f"/api/units/{world.unit_b.id}", headers=world.h("dispatcher")).json()
    assert free["properties"]["status"] == "available"


def test_a_refused_dispatch_keeps_no_key_so_its_retry_runs_again(
    client: TestClient, world: World, count: Count
):
    busy = post_incident(client, world, None).json()["id"]
    first_task = post_dispatch(client, world, busy, [world.unit_a.id], None).json()[0]
    inc = post_incident(client, world, None).json()["id"]
    before = counts(count)
    refused = post_dispatch(client, world, inc, [world.unit_a.id], "dispatch-key-0003")
    assert refused.status_code == 409 and counts(count) == before
    for step in ("on_scene", "done"):  # the unit comes free
        r = client.post(
            f"/api/tasks/{first_task['id']}/status",
            json={"status": step},
            headers=world.h("responder"),
        )
        assert r.status_code == 200, r.text
    retry = post_dispatch(client, world, inc, [world.unit_a.id], "dispatch-key-0003")
    assert retry.status_code == 201, retry.text
    assert retry.json()[0]["incident_id"] == inc


def test_a_malformed_dispatch_key_is_422_and_writes_nothing(
    client: TestClient, world: World, count: Count
):
    inc = post_incident(client, world, None).json()["id"]
    before = counts(count)
    for key in ("short", "has space in it", "x" * 101):
        r = post_dispatch(client, world, inc, [world.unit_a.id], key)
        assert r.status_code == 422, (key, r.text)
    assert counts(count) == before


def test_a_retried_incident_report_returns_the_first_incident(
    client: TestClient, world: World, count: Count
):
    first = post_incident(client, world, "incident-key-0001")
    assert first.status_code == 201, first.text
    after_first = counts(count)
    retry = post_incident(client, world, "incident-key-0001")
    assert retry.status_code == 201 and retry.json() == first.json()
    assert counts(count) == after_first
    other = post_incident(client, world, "incident-key-0001", title="Another fire")
    assert other.status_code == 409 and other.json()["error"] == "conflict"
    assert counts(count) == after_first
    # Keys belong to their actor: the same key from another user is that user's request.
    headers = world.h("commander") | {"Idempotency-Key": "incident-key-0001"}
    theirs = client.post("/api/incidents", json=incident_body(), headers=headers)
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    assert count("incident") == after_first["incident"] + 1


def test_a_retried_call_is_counted_once(client: TestClient, world: World, count: Count):
    inc = post_incident(client, world, None).json()["id"]
    body = {"caller_phone": "+358401234567", "description": "smoke from the roof"}
    headers = world.h("dispatcher") | {"Idempotency-Key": "call-key-00001"}
    first = client.post(f"/api/incidents/{inc}/calls", json=body, headers=headers)
    assert first.status_code == 201, first.text
    after_first = counts(count)
    retry = client.post(f"/api/incidents/{inc}/calls", json=body, headers=headers)
    assert retry.status_code == 201 and retry.json() == first.json()
    assert counts(count) == after_first
    calls = client.get(f"/api/incidents/{inc}", headers=world.h("dispatcher")).json()
    assert calls["properties"]["calls"] == 2  # the report's own call and this one, once
    other = client.post(
        f"/api/incidents/{inc}/calls", json={"description": "another caller"}, headers=headers
    )
    assert other.status_code == 409 and counts(count) == after_first


def test_a_retried_status_step_returns_the_first_answer_not_a_409(
    client: TestClient, world: World, count: Count
):
    """The answer to "verified" was lost, and meanwhile another dispatcher cancelled the
    incident: the retry gets its own first answer back, not a 409 about a cancelled
    incident, and changes nothing."""
    inc = post_incident(client, world, None).json()["id"]
    url = f"/api/incidents/{inc}/status"
    headers = world.h("dispatcher") | {"Idempotency-Key": "status-key-0001"}
    first = client.post(url, json={"status": "verified"}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["properties"]["status"] == "verified"
    other = client.post(url, json={"status": "cancelled"}, headers=world.h("commander"))
    assert other.status_code == 200, other.text
    after = counts(count)
    retry = client.post(url, json={"status": "verified"}, headers=headers)
    assert retry.status_code == 200 and retry.json() == first.json()
    assert counts(count) == after
    # Without the key the same step is judged anew: a cancelled incident cannot be verified.
    again = client.post(url, json={"status": "verified"}, headers=world.h("dispatcher"))
    assert again.status_code == 409 and counts(count) == after
