"""GET /api/kpis against the real database: incidents and tasks with known times, the
figures checked against numpy and the target rules computed here."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from command.incidents.models import Incident
from command.kpis import service
from command.tasks.models import Task
from core.security import ROLES
from dispatch.targets import TargetTable, outcome
from resources.models import Shelter, Stock, Unit, Warehouse
from tests.support.world import World

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = NOW - timedelta(hours=6)  # the fixed incidents are reported after this
WINDOW = {"since": (BASE - timedelta(hours=1)).isoformat(), "until": NOW.isoformat()}
TARGET_S = {"fire": 360, "medical": 540, "flood": 540}


def add_incident(
    session: Session,
    world: World,
    *,
    type: str = "medical",
    reported_at: datetime,
    dispatch_s: float | None = None,
    travel_s: float | None = None,
    drill: bool = False,
    status: str = "reported",
    later_tasks: int = 0,
) -> Incident:
    """An incident reported at ``reported_at``; a first task assigned ``dispatch_s`` later
    and on scene ``travel_s`` after that; ``later_tasks`` more, assigned and on scene later
    still (the first ones must win)."""
    incident = Incident(
        title=f"{type} at {reported_at:%H:%M:%S}",
        type=type,
        status=status,
        drill=drill,
        reported_at=reported_at,
    )
    session.add(incident)
    session.flush()
    if dispatch_s is not None:
        assigned = reported_at + timedelta(seconds=dispatch_s)
        for k in range(1 + later_tasks):
            on_scene = None if travel_s is None else assigned + timedelta(seconds=travel_s + k)
            session.add(
                Task(
                    incident_id=incident.id,
                    unit_id=world.unit_a.id,
                    status="done" if on_scene else "cancelled",
                    drill=drill,
                    assigned_at=assigned + timedelta(seconds=k),
                    on_scene_at=on_scene,
                )
            )
    session.flush()
    return incident


def get_kpis(client: TestClient, world: World, role: str = "commander", **params: Any) -> Any:
    return client.get("/api/kpis", params=params, headers=world.h(role))


def kpis(client: TestClient, world: World, **params: Any) -> dict[str, Any]:
    r = get_kpis(client, world, **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50_s": None, "p90_s": None, "p95_s": None}
    p50, p90, p95 = np.percentile(values, [50, 90, 95])  # linear: percentile_cont's rule
    return {"n": len(values), "p50_s": p50, "p90_s": p90, "p95_s": p95}


def assert_stats(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["n"] == want["n"]
    for key in ("p50_s", "p90_s", "p95_s"):
        if want[key] is None:
            assert got[key] is None
        else:
            assert got[key] == pytest.approx(want[key], abs=1e-6), key


def test_times_counts_and_within_target(client, session: Session, world: World):
    rng = random.Random(16)
    dispatch, travel, response = [], [], []
    outcomes: dict[str, list[str]] = {t: [] for t in TARGET_S}
    statuses: dict[str, int] = {}
    for i in range(40):
        type_ = ("fire", "medical", "flood")[i % 3]
        reported = BASE + timedelta(seconds=37 * i + rng.random())
        d = round(rng.uniform(5, 150), 3) if i % 7 else None  # some never dispatched
        t = round(rng.uniform(120, 700), 3) if d is not None and i % 5 else None
        status = "on_scene" if t is not None else ("dispatched" if d is not None else "reported")
        add_incident(
            session,
            world,
            type=type_,
            reported_at=reported,
            dispatch_s=d,
            travel_s=t,
            status=status,
            later_tasks=i % 2,
        )
        statuses[status] = statuses.get(status, 0) + 1
        on_scene = None
        if d is not None:
            dispatch.append(d)
        if d is not None and t is not None:
            travel.append(t)
            response.append(d + t)
            on_scene = reported + timedelta(seconds=d + t)
        outcomes[type_].append(
            outcome(
                reported_at=reported,
                on_scene_at=on_scene,
                response_s=TARGET_S[type_],
                as_of=NOW,
            )
        )
    session.commit()

    body = kpis(client, world, **WINDOW)
    assert body["incidents"]["total"] == 40
    assert body["incidents"]["by_status"] == dict(sorted(statuses.items()))
    assert_stats(body["times"]["reported_to_dispatched"], percentiles(dispatch))
    assert_stats(body["times"]["dispatched_to_on_scene"], percentiles(travel))
    assert_stats(body["times"]["reported_to_on_scene"], percentiles(response))

    everything = [o for os_ in outcomes.values() for o in os_]
    within, missed = everything.count("within"), everything.count("missed")
    assert body["within_target"] == {
        "within": within,
        "missed": missed,
        "pending": 0,
        "share": within / (within + missed),
    }
    by_type = {t["type"]: t for t in body["incidents"]["by_type"]}
    assert sorted(by_type) == ["fire", "flood", "medical"]
    for type_, os_ in outcomes.items():
        row = by_type[type_]
        assert row["count"] == len(os_)
        assert row["target"]["response_s"] == TARGET_S[type_]
        w, m = os_.count("within"), os_.count("missed")
        assert row["within_target"] == {
            "within": w,
            "missed": m,
            "pending": 0,
            "share": w / (w + m),
        }
    assert body["targets"] == {
        "default": {"dispatch_s": 60, "travel_s": 480, "response_s": 540},
        "by_type": {"fire": {"dispatch_s": 60, "travel_s": 300, "response_s": 360}},
    }


def test_fire_300_s_rule_and_exact_edges(client, session: Session, world: World):
    """Same 400 s response: a miss for a fire (360 s), within for medical (540 s); an arrival
    exactly on the target is within."""
    add_incident(session, world, type="fire", reported_at=BASE, dispatch_s=60, travel_s=340)
    add_incident(session, world, type="fire", reported_at=BASE, dispatch_s=60, travel_s=300)
    add_incident(session, world, type="medical", reported_at=BASE, dispatch_s=60, travel_s=340)
    add_incident(session, world, type="medical", reported_at=BASE, dispatch_s=100, travel_s=441)
    session.commit()
    by_type = {t["type"]: t for t in kpis(client, world, **WINDOW)["incidents"]["by_type"]}
    assert by_type["fire"]["within_target"] == {
        "within": 1,
        "missed": 1,
        "pending": 0,
        "share": 0.5,
    }
    assert by_type["medical"]["within_target"]["within"] == 1
    assert by_type["medical"]["within_target"]["missed"] == 1


def test_never_on_scene_is_pending_until_its_target_passes(client, session, world: World):
    now = datetime.now(UTC)
    add_incident(session, world, type="fire", reported_at=now - timedelta(seconds=30))
    add_incident(session, world, type="fire", reported_at=now - timedelta(seconds=20), dispatch_s=5)
    add_incident(session, world, type="fire", reported_at=now - timedelta(seconds=400))
    add_incident(session, world, type="medical", reported_at=now - timedelta(seconds=400))
    session.commit()
    body = kpis(client, world)  # the default window: the last 24 h
    assert body["within_target"] == {"within": 0, "missed": 1, "pending": 3, "share": 0.0}
    assert body["times"]["reported_to_dispatched"]["n"] == 1
    assert body["times"]["dispatched_to_on_scene"]["n"] == 0
    assert body["times"]["dispatched_to_on_scene"]["p50_s"] is None


def test_drill_incidents_are_kept_apart(client, session: Session, world: World):
    add_incident(session, world, reported_at=BASE, dispatch_s=10, travel_s=100)
    add_incident(session, world, reported_at=BASE, dispatch_s=20, travel_s=200, drill=True)
    add_incident(session, world, reported_at=BASE, dispatch_s=40, travel_s=200, drill=True)
    session.commit()
    real = kpis(client, world, **WINDOW)
    drill = kpis(client, world, **WINDOW, drill="true")
    assert real["drill"] is False and drill["drill"] is True
    assert real["incidents"]["total"] == 1
    assert real["times"]["reported_to_dispatched"]["p50_s"] == 10
    assert drill["incidents"]["total"] == 2
    assert drill["times"]["reported_to_dispatched"]["p50_s"] == 30


def test_window_is_half_open(client, session: Session, world: World):
    since, until = BASE, BASE + timedelta(hours=1)
    for at in (since - timedelta(microseconds=1), since, until - timedelta(seconds=1), until):
        add_incident(session, world, reported_at=at)
    session.commit()
    # an offset other than UTC names the same instants
    tz = datetime.now().astimezone().tzinfo
    body = kpis(
        client,
        world,
        since=since.astimezone(tz).isoformat(),
        until=until.astimezone(tz).isoformat(),
    )
    assert body["incidents"]["total"] == 2
    assert datetime.fromisoformat(body["since"]) == since
    assert datetime.fromisoformat(body["until"]) == until


def test_default_window_is_the_last_24_hours(client, session: Session, world: World):
    now = datetime.now(UTC)
    add_incident(session, world, reported_at=now - timedelta(hours=1))
    add_incident(session, world, reported_at=now - timedelta(hours=25))
    session.commit()
    body = kpis(client, world)
    assert body["incidents"]["total"] == 1
    until = datetime.fromisoformat(body["until"])
    assert until - datetime.fromisoformat(body["since"]) == timedelta(hours=24)
    assert abs(until - now) < timedelta(minutes=1)


def test_an_empty_window(client, world: World):
    body = kpis(client, world, since="2001-01-01T00:00:00Z", until="2001-01-02T00:00:00Z")
    assert body["incidents"] == {"total": 0, "by_status": {}, "by_type": []}
    assert body["within_target"] == {"within": 0, "missed": 0, "pending": 0, "share": None}
    assert body["times"]["reported_to_on_scene"] == {
        "n": 0,
        "p50_s": None,
        "p90_s": None,
        "p95_s": None,
    }


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-03-02T00:00:00+08:00", "until": "2026-03-01T00:00:00+08:00"},
        {"since": "2026-03-01T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
        {"since": "2025-01-01T00:00:00Z", "until": "2026-01-03T00:00:00Z"},  # 367 days
        {"since": "2026-03-01T00:00:00", "until": "2026-03-02T00:00:00Z"},  # no offset
        {"until": "2026-03-02T00:00:00"},
        {"since": "yesterday"},
        {"drill": "maybe"},
        {"until": "0001-01-01T00:00:00Z"},  # the default since would fall before year 1
    ],
)
def test_bad_windows_are_422(client, world: World, params):
    r = get_kpis(client, world, **params)
    assert r.status_code == 422, r.text


def test_366_days_is_allowed(client, world: World):
    r = get_kpis(client, world, since="2024-01-01T00:00:00Z", until="2025-01-01T00:00:00Z")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("role", ROLES)
def test_every_staff_role_reads_responders_do_not(client, world: World, role):
    r = get_kpis(client, world, role)
    if role == "responder":
        assert r.status_code == 403
        assert r.json()["error"] == "forbidden"
    else:
        assert r.status_code == 200, r.text


def test_no_credentials_is_401(client, world: World):
    assert client.get("/api/kpis").status_code == 401


def _point() -> Any:
    return from_shape(Point(24.94, 60.17), 4326)


def test_units_shelters_and_low_stock(client, session: Session, world: World):
    for i, status in enumerate(("assigned", "on_scene", "out_of_service", "available")):
        session.add(
            Unit(callsign=f"K{i}", name=f"K{i}", kind="team", type="rescue_team", status=status)
        )
    session.add_all(
        [
            Shelter(name="Gym", capacity=200, occupancy=50, planned_arrivals=30, geom=_point()),
            Shelter(name="Hall", capacity=100, occupancy=70, geom=_point()),
            Shelter(name="Shut", capacity=500, occupancy=0, status="closed", geom=_point()),
        ]
    )
    depot = Warehouse(name="Depot", geom=_point())
    session.add(depot)
    session.flush()
    session.add_all(
        [
            Stock(warehouse_id=depot.id, item="water", quantity=5, low_water=100),
            Stock(warehouse_id=depot.id, item="tents", quantity=10, low_water=20),
            Stock(warehouse_id=depot.id, item="rice", quantity=20, low_water=20),  # not below
            Stock(warehouse_id=depot.id, item="cots", quantity=0),  # no mark
        ]
    )
    session.commit()
    body = kpis(client, world)
    # the world's two units are available
    assert body["units"] == {
        "total": 6,
        "by_status": {"assigned": 1, "available": 3, "on_scene": 1, "out_of_service": 1},
        "available": 3,
        "available_share": 0.5,
    }
    assert body["shelters"] == {
        "open": 2,
        "capacity": 300,
        "occupancy": 120,
        "planned_arrivals": 30,
        "occupancy_share": 0.4,
        "committed_share": 0.5,
    }
    assert [(s["item"], s["quantity"], s["low_water"]) for s in body["low_stock"]] == [
        ("water", 5, 100),
        ("tents", 10, 20),
    ]
    assert body["low_stock"][0]["warehouse"] == "Depot"


def test_low_water_through_the_stock_api(client, session: Session, world: World):
    admin = world.h("admin")
    depot = Warehouse(name="Depot", geom=_point())
    session.add(depot)
    session.commit()
    r = client.post(
        "/api/stock",
        json={"warehouse_id": depot.id, "item": "water", "quantity": 50, "low_water": 40},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    stock = r.json()
    assert stock["low_water"] == 40
    assert kpis(client, world)["low_stock"] == []
    r = client.patch(f"/api/stock/{stock['id']}", json={"delta": -20}, headers=admin)
    assert r.status_code == 200 and r.json()["low_water"] == 40  # absent: kept
    assert [s["quantity"] for s in kpis(client, world)["low_stock"]] == [30]
    r = client.patch(f"/api/stock/{stock['id']}", json={"low_water": None}, headers=admin)
    assert r.status_code == 200 and r.json()["low_water"] is None  # null: cleared
    assert kpis(client, world)["low_stock"] == []
    old = client.post(
        "/api/stock", json={"warehouse_id": depot.id, "item": "rice", "quantity": 1}, headers=admin
    )
    assert old.status_code == 201 and old.json()["low_water"] is None  # as before


def test_configured_targets(session: Session, world: World):
    """The service takes its targets from the table it is given (the app: from settings)."""
    add_incident(session, world, type="medical", reported_at=BASE, dispatch_s=30, travel_s=400)
    add_incident(session, world, type="fire", reported_at=BASE, dispatch_s=30, travel_s=400)
    session.flush()
    table = TargetTable(dispatch_s=60, travel_s=300, by_type={"fire": {"response_s": 500}})
    body = service.kpis(
        session, since=BASE, until=NOW, drill=False, table=table, now=datetime.now(UTC)
    )
    by_type = {t["type"]: t for t in body["incidents"]["by_type"]}
    assert by_type["medical"]["within_target"]["share"] == 0.0  # 430 > 360
    assert by_type["fire"]["within_target"]["share"] == 1.0  # 430 <= 500
    assert body["targets"]["by_type"] == {
        "fire": {"dispatch_s": 60, "travel_s": 300, "response_s": 500}
    }


def test_response_histogram_bins(client, session: Session, world: World):
    """Reported -> first on scene in 60 s bins to 20 min plus overflow: the edges go up."""
    responses = [0, 59.9, 60, 61, 119.999, 300, 540, 1199.5, 1200, 5000]
    for r in responses:
        add_incident(session, world, reported_at=BASE, dispatch_s=0, travel_s=r, later_tasks=1)
    add_incident(session, world, reported_at=BASE, dispatch_s=30)  # never on scene: left out
    add_incident(session, world, reported_at=BASE)  # never dispatched: left out
    add_incident(session, world, reported_at=BASE, dispatch_s=10, travel_s=30, drill=True)
    session.commit()
    body = kpis(client, world, **WINDOW)
    histogram = body["response_histogram"]
    want = [0] * 21
    for i in (0, 0, 1, 1, 1, 5, 9, 19, 20, 20):
        want[i] += 1
    assert histogram == {"bin_s": 60, "max_s": 1200, "counts": want, "target_s": 540}
    assert sum(histogram["counts"]) == body["times"]["reported_to_on_scene"]["n"] == 10


def test_an_empty_histogram(client, world: World):
    body = kpis(client, world, since="2001-01-01T00:00:00Z", until="2001-01-02T00:00:00Z")
    assert body["response_histogram"]["counts"] == [0] * 21


@pytest.mark.parametrize("role", ROLES)
def test_targets_for_every_role(client, world: World, role):
    """The console's timers read the targets alone (no figures; a responder may too)."""
    r = client.get("/api/kpis/targets", headers=world.h(role))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "default": {"dispatch_s": 60, "travel_s": 480, "response_s": 540},
        "by_type": {"fire": {"dispatch_s": 60, "travel_s": 300, "response_s": 360}},
    }
    assert client.get("/api/kpis/targets").status_code == 401
