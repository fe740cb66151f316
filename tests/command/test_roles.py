"""Role x endpoint matrix: every write endpoint and a few reads, against core.security.

A role is refused (403 "forbidden") exactly when PERMISSIONS says so, and a refused or
unauthenticated request writes nothing: no audit row, no event row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from core.security import PERMISSIONS, ROLES
from tests.support.world import World, point


@dataclass(frozen=True)
class Ids:
    incident: int  # dispatched: has task_a (unit_a) and task_b (unit_b)
    incident2: int  # reported, nobody dispatched yet
    task_a: int
    task_b: int
    unit_a: int
    unit_b: int
    unit_c: int  # available, for dispatching
    station: int
    shelter: int
    warehouse: int
    stock: int


def _feature(props: dict[str, Any], lon: float = 24.945, lat: float = 60.172) -> dict[str, Any]:
    return {"type": "Feature", "geometry": point(lon, lat), "properties": props}


def _created(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def ids(client, world: World) -> Ids:
    admin, dispatcher = world.h("admin"), world.h("dispatcher")
    incident = _created(
        client.post(
            "/api/incidents",
            json=_feature({"title": "Warehouse fire", "type": "fire", "severity": "severe"}),
            headers=dispatcher,
        )
    )["id"]
    incident2 = _created(
        client.post(
            "/api/incidents",
            json=_feature({"title": "Car crash", "type": "traffic_accident"}, 24.94, 60.168),
            headers=dispatcher,
        )
    )["id"]
    tasks = client.post(
        f"/api/incidents/{incident}/dispatch",
        json={"unit_ids": [world.unit_a.id, world.unit_b.id]},
        headers=dispatcher,
    )
    assert tasks.status_code == 201, tasks.text
    by_unit = {t["unit_id"]: t["id"] for t in tasks.json()}
    unit_c = _created(
        client.post(
            "/api/units",
            json={
                "type": "Feature",
                "geometry": None,
                "properties": {
                    "callsign": "R9",
                    "name": "Rescue R9",
                    "kind": "team",
                    "type": "rescue_team",
                    "capabilities": ["rescue"],
                    "home_station_id": world.station.id,
                },
            },
            headers=admin,
        )
    )["id"]
    shelter = _created(
        client.post(
            "/api/shelters", json=_feature({"name": "School gym", "capacity": 200}), headers=admin
        )
    )["id"]
    warehouse = _created(
        client.post("/api/warehouses", json=_feature({"name": "Depot North"}), headers=admin)
    )["id"]
    stock = _created(
        client.post(
            "/api/stock",
            json={"warehouse_id": warehouse, "item": "water", "quantity": 100},
            headers=admin,
        )
    )["id"]
    return Ids(
        incident=incident,
        incident2=incident2,
        task_a=by_unit[world.unit_a.id],
        task_b=by_unit[world.unit_b.id],
        unit_a=world.unit_a.id,
        unit_b=world.unit_b.id,
        unit_c=unit_c,
        station=world.station.id,
        shelter=shelter,
        warehouse=warehouse,
        stock=stock,
    )


Body = Callable[[Ids], dict[str, Any] | None]


def _no_body(_: Ids) -> None:
    return None


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # formatted with the Ids fields
    action: str  # the PERMISSIONS key the endpoint checks
    ok: int  # the status an allowed role gets
    body: Body = field(default=_no_body)
    changes: bool | None = None  # None: every non-GET changes something (and is audited)
    # Telemetry (positions): stored in the track, neither audited nor published at once.
    telemetry: bool = False

    @property
    def writes(self) -> bool:
        return self.changes if self.changes is not None else self.method != "GET"

    def url(self, ids: Ids) -> str:
        return self.path.format(**ids.__dict__)


CASES = [
    # incidents and dispatch
    Case(
        "incident.create",
        "POST",
        "/api/incidents",
        "incident.write",
        201,
        lambda i: _feature({"title": "Gas leak", "type": "hazmat", "severity": "minor"}),
    ),
    Case(
        "incident.patch",
        "PATCH",
        "/api/incidents/{incident2}",
        "incident.write",
        200,
        lambda i: {"properties": {"title": "Car crash, two cars", "people_affected": 3}},
    ),
    Case(
        "incident.status",
        "POST",
        "/api/incidents/{incident2}/status",
        "incident.write",
        200,
        lambda i: {"status": "verified", "note": "confirmed by phone"},
    ),
    Case(
        "incident.dispatch",
        "POST",
        "/api/incidents/{incident2}/dispatch",
        "dispatch",
        201,
        lambda i: {"unit_ids": [i.unit_c]},
    ),
    Case(
        "task.status",
        "POST",
        "/api/tasks/{task_a}/status",
        "task.status",
        200,
        lambda i: {"status": "accepted"},
    ),
    # stations
    Case(
        "station.create",
        "POST",
        "/api/stations",
        "resource.write",
        201,
        lambda i: _feature({"name": "Station 2", "kind": "ambulance"}),
    ),
    Case(
        "station.patch",
        "PATCH",
        "/api/stations/{station}",
        "resource.write",
        200,
        lambda i: {"properties": {"address": "Main street 1"}},
    ),
    # units
    Case(
        "unit.create",
        "POST",
        "/api/units",
        "resource.write",
        201,
        lambda i: {
            "type": "Feature",
            "geometry": point(24.946, 60.171),
            "properties": {
                "callsign": "A9",
                "name": "Ambulance A9",
                "kind": "vehicle",
                "type": "ambulance",
                "capabilities": ["medical_bls"],
                "crew": 2,
            },
        },
    ),
    Case(
        "unit.patch",
        "PATCH",
        "/api/units/{unit_a}",
        "resource.write",
        200,
        lambda i: {"properties": {"crew": 5}},
    ),
    Case(
        "unit.status",
        "POST",
        "/api/units/{unit_c}/status",
        "unit.status",
        200,
        lambda i: {"status": "out_of_service", "note": "pump repair"},
    ),
    Case(
        "unit.position",
        "POST",
        "/api/units/{unit_a}/position",
        "unit.position",
        202,
        lambda i: {"lon": 24.947, "lat": 60.173, "speed_mps": 9.5},
        changes=False,
        telemetry=True,
    ),
    Case(
        "position.batch",
        "POST",
        "/api/positions",
        "position.batch",
        202,
        lambda i: {
            "positions": [
                {
                    "unit_id": i.unit_a,
                    "lon": 24.947,
                    "lat": 60.173,
                    "recorded_at": datetime.now(UTC).isoformat(),
                }
            ]
        },
        changes=False,
        telemetry=True,
    ),
    # shelters
    Case(
        "shelter.create",
        "POST",
        "/api/shelters",
        "resource.write",
        201,
        lambda i: _feature({"name": "Library hall", "capacity": 80, "accessible": True}),
    ),
    Case(
        "shelter.patch",
        "PATCH",
        "/api/shelters/{shelter}",
        "operations.write",
        200,
        lambda i: {"properties": {"occupancy": 37}},
    ),
    # warehouses and stock
    Case(
        "warehouse.create",
        "POST",
        "/api/warehouses",
        "resource.write",
        201,
        lambda i: _feature({"name": "Depot South"}),
    ),
    Case(
        "warehouse.patch",
        "PATCH",
        "/api/warehouses/{warehouse}",
        "resource.write",
        200,
        lambda i: {"properties": {"name": "Depot North (main)"}},
    ),
    Case(
        "stock.create",
        "POST",
        "/api/stock",
        "operations.write",
        201,
        lambda i: {"warehouse_id": i.warehouse, "item": "blankets", "quantity": 40},
    ),
    Case(
        "stock.patch",
        "PATCH",
        "/api/stock/{stock}",
        "operations.write",
        200,
        lambda i: {"delta": -10, "note": "sent to shelter"},
    ),
    # response plans (预案)
    Case(
        "response_plan.put",
        "POST",
        "/api/response-plans",
        "plan.write",
        200,
        lambda i: {
            "incident_type": "fire",
            "severity": "minor",
            "needs": [{"capability": "fire_suppression", "count": 1}],
        },
    ),
    Case("response_plan.list", "GET", "/api/response-plans", "read", 200),
    # a proposal: computed, not stored (applying it is a dispatch)
    Case("dispatch.plan", "POST", "/api/dispatch/plan", "plan.run", 200, lambda i: {}, False),
    Case(
        "incident.recommendations",
        "GET",
        "/api/incidents/{incident}/recommendations",
        "read",
        200,
    ),
    # drills: an allowed role gets 422 for the empty scenario, and nothing is written
    Case("drill.run", "POST", "/api/drills", "drill.run", 422, lambda i: {}, False),
    Case("drill.list", "GET", "/api/drills", "drill.watch", 200),
    # audit
    Case("audit.list", "GET", "/api/audit", "audit.read", 200),
    Case("audit.verify", "GET", "/api/audit/verify", "audit.read", 200),
    # reads everybody may do
    Case("incident.list", "GET", "/api/incidents", "read", 200),
    Case("incident.get", "GET", "/api/incidents/{incident}", "read", 200),
    Case("unit.list", "GET", "/api/units", "read", 200),
    Case("shelter.list", "GET", "/api/shelters", "read", 200),
    Case("stock.list", "GET", "/api/stock", "read", 200),
    Case("task.list", "GET", "/api/tasks", "read", 200),
    Case("task.get.own", "GET", "/api/tasks/{task_a}", "read", 200),
    Case("kpis.read", "GET", "/api/kpis", "kpis.read", 200),
    # GIS files for analysts (POST /api/import is multipart: its roles are tested with it)
    Case("export.incidents", "GET", "/api/export/incidents?format=geojson", "export", 200),
    Case("places.search", "GET", "/api/places?q=Mannerheimintie", "places.read", 200),
    Case("places.nearest", "GET", "/api/places?near=24.94,60.17", "places.read", 200),
    Case(
        "incident.duplicates",
        "GET",
        "/api/incidents/duplicates?type=fire&at=24.94,60.17",
        "personal.read",
        200,
    ),
    # incident2: no task of the responder's unit (on its own task's incident it may read them)
    Case("incident.calls", "GET", "/api/incidents/{incident2}/calls", "personal.read", 200),
    Case(
        "incident.call.attach",
        "POST",
        "/api/incidents/{incident}/calls",
        "incident.write",
        201,
        lambda i: {"caller_phone": "+358 40 123 4567", "description": "a second caller"},
    ),
]
WRITE_CASES = [c for c in CASES if c.writes]


def test_matrix_covers_every_write_action():
    """Every action a person can be granted appears in the matrix at least once."""
    covered = {c.action for c in CASES}
    # drill.watch guards a WebSocket subscription: its matrix is in tests/realtime;
    # user.manage (audited, never published) has its own in tests/command/auth/test_users.py.
    assert set(PERMISSIONS) - {"alert.post", "drill.watch", "user.manage"} <= covered


def _send(client, case: Case, ids: Ids, headers: dict[str, str]) -> Any:
    return client.request(case.method, case.url(ids), json=case.body(ids), headers=headers)


def _writes(count) -> tuple[int, int]:
    return count("audit_event"), count("event")


# The unit_c status case is about roles; the responder is bound to unit_a, so for it the
# unit check (tested below) would answer first. Responders get their own unit there, once
# a dispatcher has cancelled its task (a unit with an active task is not the person's to
# take out of service).
def _case_for(client, world: World, ids: Ids, case: Case, role: str) -> Case:
    if case.name == "unit.status" and role == "responder":
        cancel = client.post(
            f"/api/tasks/{ids.task_a}/status",
            json={"status": "cancelled"},
            headers=world.h("dispatcher"),
        )
        assert cancel.status_code == 200, cancel.text
        return Case(
            case.name,
            case.method,
            "/api/units/{unit_a}/status",
            case.action,
            200,
            case.body,
        )
    return case


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_role_matrix(client, world: World, ids: Ids, count, case: Case, role: str):
    case = _case_for(client, world, ids, case, role)
    before = _writes(count)
    track = count("unit_position")
    r = _send(client, case, ids, world.h(role))
    if role in PERMISSIONS[case.action]:
        assert r.status_code == case.ok, f"{role} {case.name}: {r.status_code} {r.text}"
        after = _writes(count)
        if case.telemetry:
            assert count("unit_position") == track + 1, "an allowed fix is in the track"
        if case.writes:
            assert after[0] > before[0], "an allowed write is audited"
            assert after[1] > before[1], "an allowed write is published"
        else:
            assert after == before
    else:
        assert r.status_code == 403, f"{role} {case.name}: {r.status_code} {r.text}"
        assert r.json()["error"] == "forbidden"
        assert count("unit_position") == track
        assert _writes(count) == before, "a refused request wrote something"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_credentials_is_401(client, world: World, ids: Ids, count, case: Case):
    before = _writes(count)
    r = _send(client, case, ids, {})
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthenticated"
    assert _writes(count) == before


@pytest.mark.parametrize("case", WRITE_CASES, ids=lambda c: c.name)
def test_refused_write_leaves_the_target_unchanged(
    client, world: World, ids: Ids, count, case: Case
):
    """The auditor may write nothing; what it tried to change reads back as before."""
    tables = (
        "incident",
        "task",
        "unit",
        "station",
        "shelter",
        "warehouse",
        "stock",
        "unit_position",
        "audit_event",
        "event",
    )
    before = {t: count(t) for t in tables}
    target = case.url(ids)
    readable = case.method == "PATCH" or target.endswith("/status")
    read_url = target.removesuffix("/status")
    snapshot = client.get(read_url, headers=world.h("admin")).json() if readable else None
    r = _send(client, case, ids, world.h("auditor"))
    assert r.status_code == 403, r.text
    assert {t: count(t) for t in tables} == before
    if readable:
        assert client.get(read_url, headers=world.h("admin")).json() == snapshot


# --- responders act only for their own unit -----------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/units/{unit_b}/position", {"lon": 24.95, "lat": 60.17}),
        # "assigned" is unit_b's status already: a no-op for its own responder.
        ("POST", "/api/units/{unit_b}/status", {"status": "assigned"}),
        ("POST", "/api/tasks/{task_b}/status", {"status": "accepted"}),
        ("GET", "/api/tasks/{task_b}", None),
        ("GET", "/api/tasks?unit_id={unit_b}", None),
    ],
    ids=["position", "unit-status", "task-status", "task-get", "task-list"],
)
def test_responder_may_not_touch_another_units_things(
    client, world: World, ids: Ids, count, method: str, path: str, body: Any
):
    before = (*_writes(count), count("unit_position"))
    url = path.format(**ids.__dict__)
    r = client.request(method, url, json=body, headers=world.h("responder"))
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"
    assert (*_writes(count), count("unit_position")) == before
    # The same request for the right responder goes through.
    other = client.request(method, url, json=body, headers=world.h("responder_b"))
    assert other.status_code in (200, 202), other.text


def test_responder_task_list_shows_only_its_unit(client, world: World, ids: Ids):
    for who, unit_id, task_id in (
        ("responder", ids.unit_a, ids.task_a),
        ("responder_b", ids.unit_b, ids.task_b),
    ):
        r = client.get("/api/tasks", headers=world.h(who))
        assert r.status_code == 200, r.text
        page = r.json()
        assert [t["id"] for t in page["items"]] == [task_id]
        assert {t["unit_id"] for t in page["items"]} == {unit_id}
        assert page["numberMatched"] == 1
        own = client.get(f"/api/tasks?unit_id={unit_id}", headers=world.h(who))
        assert [t["id"] for t in own.json()["items"]] == [task_id]
    everyone = client.get("/api/tasks", headers=world.h("dispatcher")).json()
    assert {t["id"] for t in everyone["items"]} == {ids.task_a, ids.task_b}


def test_responder_may_not_cancel_its_own_task(client, world: World, ids: Ids, count):
    before = _writes(count)
    r = client.post(
        f"/api/tasks/{ids.task_a}/status",
        json={"status": "cancelled"},
        headers=world.h("responder"),
    )
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden"
    assert _writes(count) == before
    task = client.get(f"/api/tasks/{ids.task_a}", headers=world.h("responder")).json()
    assert task["status"] == "assigned"
