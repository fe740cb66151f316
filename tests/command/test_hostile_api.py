"""Hostile input over HTTP: every case is a clear 4xx with the JSON error body, and a refused
request writes nothing (issue 14, points 6 and 8)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from command.auth import service as auth
from tests.support.world import World, point

Count = Callable[[str], int]
BIG = 2**63  # one past PostgreSQL's bigint
HUGE = "9" * 23
SQUARE = [[[24.93, 60.16], [24.95, 60.16], [24.95, 60.18], [24.93, 60.18], [24.93, 60.16]]]
WRITTEN = ("incident", "event", "audit_event", "task", "unit_position", "warning_zone", "unit")


@contextmanager
def unchanged(count: Count) -> Iterator[None]:
    before = {t: count(t) for t in WRITTEN}
    yield
    assert {t: count(t) for t in WRITTEN} == before


def refused(r: Any, *statuses: int) -> dict[str, Any]:
    """A 4xx (one of ``statuses``, 422 by default) with the documented error body."""
    assert r.status_code in (statuses or (422,)), (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    return dict(body)


def send(client: TestClient, h: dict[str, str], method: str, path: str, body: Any) -> Any:
    """``body`` as given: a str is sent verbatim (JSON that json.dumps cannot write)."""
    if isinstance(body, str):
        headers = {**h, "Content-Type": "application/json"}
        return client.request(
            method, path, content=body.encode("utf-8", "surrogatepass"), headers=headers
        )
    return client.request(method, path, json=body, headers=h)


def incident(geometry: Any = None, **props: Any) -> dict[str, Any]:
    props = {"title": "Fire at the market", "type": "fire", **props}
    return {"type": "Feature", "geometry": geometry or point(24.95, 60.17), "properties": props}


def zone(geometry: Any = None, **props: Any) -> dict[str, Any]:
    props = {"name": "Flood", "kind": "flood", **props}
    geometry = geometry or {"type": "Polygon", "coordinates": SQUARE}
    return {"type": "Feature", "geometry": geometry, "properties": props}


def station(**props: Any) -> dict[str, Any]:
    props = {"name": "Station X", "kind": "fire", **props}
    return {"type": "Feature", "geometry": point(24.95, 60.17), "properties": props}


@pytest.fixture
def admin(world: World) -> dict[str, str]:
    return world.h("admin")


# --- ids past bigint: path, query, body -------------------------------------------------
BIG_PATHS = [
    ("GET", f"/api/incidents/{BIG}", None),
    ("PATCH", f"/api/incidents/{BIG}", {"properties": {"title": "x"}}),
    ("POST", f"/api/incidents/{BIG}/status", {"status": "verified"}),
    ("GET", f"/api/incidents/{BIG}/recommendations", None),
    ("POST", f"/api/incidents/{BIG}/dispatch", {"unit_ids": [1]}),
    ("GET", f"/api/tasks/{BIG}", None),
    ("POST", f"/api/tasks/{BIG}/status", {"status": "accepted"}),
    ("GET", f"/api/units/{BIG}", None),
    ("PATCH", f"/api/units/{BIG}", {"properties": {"name": "x"}}),
    ("POST", f"/api/units/{BIG}/status", {"status": "available"}),
    ("POST", f"/api/units/{BIG}/position", {"lon": 24.9, "lat": 60.2}),
    ("GET", f"/api/stations/{BIG}", None),
    ("PATCH", f"/api/stations/{BIG}", {"properties": {"name": "x"}}),
    ("GET", f"/api/shelters/{BIG}", None),
    ("PATCH", f"/api/shelters/{BIG}", {"properties": {"name": "x"}}),
    ("GET", f"/api/warehouses/{BIG}", None),
    ("PATCH", f"/api/warehouses/{BIG}", {"properties": {"name": "x"}}),
    ("PATCH", f"/api/stock/{BIG}", {"quantity": 1}),
    ("GET", f"/api/warning-zones/{BIG}", None),
    ("PATCH", f"/api/warning-zones/{BIG}", {"properties": {"name": "x"}}),
    ("GET", f"/api/warning-zones/{BIG}/suggestions", None),
    ("GET", f"/api/alerts/{BIG}", None),
    ("GET", f"/api/alerts/{BIG}/raw", None),
    ("GET", f"/api/incidents/{HUGE}", None),
    ("GET", "/api/incidents/-1", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), BIG_PATHS, ids=[f"{m} {p}" for m, p, _ in BIG_PATHS]
)
def test_id_past_bigint_in_a_path_is_refused(client, admin, count, method, path, body):
    with unchanged(count):
        refused(send(client, admin, method, path, body), 404, 422)


BIG_QUERIES = [
    f"/api/tasks?unit_id={BIG}",
    f"/api/tasks?incident_id={HUGE}",
    f"/api/units?station_id={BIG}",
    f"/api/stock?warehouse_id={BIG}",
    f"/api/route?from=24.94,60.17&to=24.95,60.17&closed_edges={BIG}",
]


@pytest.mark.parametrize("path", BIG_QUERIES)
def test_id_past_bigint_in_a_query_is_422(client, admin, path):
    refused(client.get(path, headers=admin))


def test_recommendations_refuse_unknown_edges_and_unreachable_incidents(client, world, admin):
    near = send(client, admin, "POST", "/api/incidents", incident()).json()["id"]
    for edges in (BIG, 99_999_999):
        err = refused(
            client.get(f"/api/incidents/{near}/recommendations?closed_edges={edges}", headers=admin)
        )
        assert f"unknown edge id {edges}" in err["message"]
    # Legal input far from any road: no advice (422), and dispatching still works without it.
    far = send(client, admin, "POST", "/api/incidents", incident(point(-0.0, -0.0))).json()["id"]
    err = refused(client.get(f"/api/incidents/{far}/recommendations", headers=admin))
    assert "not near the road network" in err["message"]
    r = send(
        client, admin, "POST", f"/api/incidents/{far}/dispatch", {"unit_ids": [world.unit_a.id]}
    )
    assert r.status_code == 201, r.text


def test_huge_page_size_is_clamped_not_an_error(client, admin):
    r = client.get(f"/api/incidents?limit={BIG}&offset=0", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["numberReturned"] == 0
    refused(client.get(f"/api/incidents?offset={BIG}", headers=admin))


def _big_bodies(world: World) -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/api/dispatch/plan", {"incident_ids": [BIG]}),
        (
            "POST",
            "/api/supplies/allocate",
            {"demands": [{"target": f"shelter:{HUGE}", "item": "water", "quantity": 1}]},
        ),
        (
            "POST",
            "/api/supplies/allocate",
            {"demands": [{"target": f"incident:{BIG}", "item": "water", "quantity": 1}]},
        ),
        (
            "POST",
            "/api/supplies/allocate",
            {
                "demands": [{"target": "shelter:1", "item": "water", "quantity": 1}],
                "fleet": [{"warehouse_id": BIG, "capacity": 10}],
            },
        ),
        (
            "POST",
            "/api/evacuation/plan",
            {"zones": [{"id": "z", "warning_zone_id": BIG, "population": 10}]},
        ),
        ("POST", "/api/stock", {"warehouse_id": BIG, "item": "water", "quantity": 1}),
        (
            "POST",
            "/api/units",
            {
                "type": "Feature",
                "geometry": None,
                "properties": {
                    "callsign": "Q1",
                    "name": "Q1",
                    "kind": "vehicle",
                    "type": "pumper",
                    "home_station_id": BIG,
                },
            },
        ),
        ("PATCH", f"/api/units/{world.unit_a.id}", {"properties": {"home_station_id": BIG}}),
        (
            "POST",
            "/api/route",
            {"from": [24.94, 60.17], "to": [24.95, 60.17], "closures": {"edge_ids": [BIG]}},
        ),
        ("POST", "/api/dispatch/plan", {"incident_ids": [1], "seed": BIG}),
    ]


def test_id_past_bigint_in_a_body_is_422(client, world, admin, count):
    iid = send(client, admin, "POST", "/api/incidents", incident()).json()["id"]
    cases = [*_big_bodies(world), ("POST", f"/api/incidents/{iid}/dispatch", {"unit_ids": [BIG]})]
    for method, path, body in cases:
        with unchanged(count):
            refused(send(client, admin, method, path, body))


# --- NUL, control and bidi characters ---------------------------------------------------
NUL_QUERIES = [
    "/api/incidents?type=a%00b",
    "/api/incidents?status=a%00b",
    "/api/units?type=a%00b",
    "/api/units?kind=a%00b",
    "/api/units?status=a%00b",
    "/api/units?capability=a%00b",
    "/api/stations?kind=a%00b",
    "/api/shelters?status=a%00b",
    "/api/stock?item=a%00b",
    "/api/response-plans?incident_type=a%00b",
    "/api/audit?entity=a%00b",
    "/api/audit?entity_id=a%00b",
    "/api/alerts?status=a%00b",
    "/api/incidents?type=a%E2%80%AEb",  # U+202E in a filter: no such value, refused early
]


@pytest.mark.parametrize("path", NUL_QUERIES)
def test_nul_in_a_filter_is_422(client, admin, path):
    refused(client.get(path, headers=admin))


def _text_bodies(world: World, iid: int, tid: int, bad: str) -> list[tuple[str, str, Any]]:
    """Every text field, ``bad`` inside it (at either end it would be stripped as space)."""
    uid, sid, t = world.unit_a.id, world.station.id, f"a{bad}b"
    one_line = [
        ("POST", "/api/incidents", incident(title=t)),
        ("POST", "/api/incidents", incident(address=t)),
        ("POST", "/api/incidents", incident(reported_by=t)),
        ("PATCH", f"/api/incidents/{iid}", {"properties": {"title": t}}),
        ("POST", "/api/warning-zones", zone(name=t)),
        ("POST", "/api/stations", station(name=t)),
        ("POST", "/api/stations", station(osm_id=t)),
        ("PATCH", f"/api/stations/{sid}", {"properties": {"address": t}}),
        ("PATCH", f"/api/units/{uid}", {"properties": {"name": t}}),
        ("POST", "/api/shelters", {**station(), "properties": {"name": t, "capacity": 5}}),
        ("POST", "/api/warehouses", {**station(), "properties": {"name": t}}),
        (
            "POST",
            "/api/stock",
            {"warehouse_id": 1, "item": "water", "quantity": 1, "unit_of_measure": t},
        ),
        (
            "POST",
            "/api/evacuation/plan",
            {"zones": [{"id": t, "geometry": point(24.94, 60.17), "population": 1}]},
        ),
        ("POST", "/api/auth/token", {"username": t, "password": "x"}),
    ]
    plan = {
        "incident_type": "fire",
        "severity": "minor",
        "needs": [{"capability": "water", "count": 1}],
    }
    multi_line = [
        ("POST", "/api/incidents", incident(description=t)),
        ("POST", f"/api/incidents/{iid}/status", {"status": "verified", "note": t}),
        ("POST", f"/api/incidents/{iid}/dispatch", {"unit_ids": [uid], "note": t}),
        ("POST", f"/api/tasks/{tid}/status", {"status": "accepted", "note": t}),
        ("POST", f"/api/units/{uid}/status", {"status": "available", "note": t}),
        ("POST", "/api/response-plans", {**plan, "note": t}),
        ("POST", "/api/stock", {"warehouse_id": 1, "item": "water", "quantity": 1, "note": t}),
    ]
    return one_line + ([] if bad in "\n\t" else multi_line)


@pytest.fixture
def task_id(client, world, admin) -> tuple[int, int]:
    iid = send(client, admin, "POST", "/api/incidents", incident()).json()["id"]
    r = send(
        client, admin, "POST", f"/api/incidents/{iid}/dispatch", {"unit_ids": [world.unit_b.id]}
    )
    assert r.status_code == 201, r.text
    return iid, int(r.json()[0]["id"])


@pytest.mark.parametrize(
    "bad",
    [
        "\u0000",
        "\u0007",
        "\n",
        "\u001b[31m",
        "\u0085",
        "\u202e",
        "\u2066",
        "\u200b",
        "\ufeff",
        "\u2028",
    ],
    ids=["NUL", "BEL", "LF", "ESC", "NEL", "RLO", "LRI", "ZWSP", "BOM", "LSEP"],
)
def test_control_and_bidi_characters_in_text_are_422(client, world, admin, count, task_id, bad):
    iid, tid = task_id
    for method, path, body in _text_bodies(world, iid, tid, bad):
        with unchanged(count):
            err = refused(send(client, admin, method, path, body))
            assert err["error"] == "validation_error", (path, err)


@pytest.mark.parametrize(
    ("bad", "where"),
    [("\u0000", "U+0000"), ("\u202e", "U+202E"), ("\r", "U+000D"), ("\u2029", "U+2029")],
)
def test_multi_line_text_allows_only_newline_and_tab(client, admin, count, bad, where):
    with unchanged(count):
        err = refused(
            send(client, admin, "POST", "/api/incidents", incident(description=f"smoke{bad}seen"))
        )
    assert where in err["message"]
    assert err["message"].startswith("body.properties.description")


def test_ordinary_text_is_kept_exactly(client, admin):
    description = "第一行\n\tsecond line: 👨\u200d🚒 arrived (ZWJ kept), שלום \u200f(RLM kept)"
    body = incident(
        title="火灾 — 3号楼 🔥 🏴\U000e0067\U000e0062\U000e007f", description=description
    )
    r = send(client, admin, "POST", "/api/incidents", body)
    assert r.status_code == 201, r.text
    got = r.json()["properties"]
    assert got["title"] == body["properties"]["title"]
    assert got["description"] == description


def test_lone_surrogates_are_422_in_values_and_keys(client, admin, count):
    bodies = [
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[24.9,60.1]},'
        '"properties":{"title":"a\\ud800b","type":"fire"}}',
        '{"type":"Feature","geometry":{"type":"Point","coordinates":[24.9,60.1]},'
        '"properties":{"title":"ok","type":"fire","\\udfff":1}}',
        '{"username":"admin","password":"\\ud800"}',
    ]
    for path, raw in zip(
        ["/api/incidents", "/api/incidents", "/api/auth/token"], bodies, strict=True
    ):
        with unchanged(count):
            err = refused(send(client, admin, "POST", path, raw))
        json.dumps(err, ensure_ascii=False).encode("utf-8")  # the answer itself is valid UTF-8


def test_nul_in_a_property_key_is_422(client, admin, count):
    with unchanged(count):
        r = send(client, admin, "POST", "/api/incidents", incident(**{"ti\u0000tle": "x"}))
        refused(r)


# --- geometry ---------------------------------------------------------------------------
BAD_GEOMETRIES = {
    "polygon given a position": '{"type":"Polygon","coordinates":[24.9,60.1]}',
    "polygon given positions": '{"type":"Polygon","coordinates":[[24.9,60.1],[24.9,60.2]]}',
    "multipolygon given rings": json.dumps({"type": "MultiPolygon", "coordinates": SQUARE}),
    "multipolygon given a position": '{"type":"MultiPolygon","coordinates":[24.9,60.1]}',
    "polygon nested too deep": json.dumps({"type": "Polygon", "coordinates": [SQUARE]}),
    "point nested": '{"type":"Point","coordinates":[[24.9,60.1]]}',
    "nested 900 deep": '{"type":"Polygon","coordinates":' + "[" * 900 + "]" * 900 + "}",
    "integer of 401 digits": '{"type":"Point","coordinates":[1' + "0" * 400 + ",60.1]}",
    "1e400": '{"type":"Point","coordinates":[1e400,60.1]}',
    "NaN literal": '{"type":"Point","coordinates":[NaN,60.1]}',
    "-Infinity literal": '{"type":"Point","coordinates":[-Infinity,60.1]}',
    "altitude 1e400": '{"type":"Point","coordinates":[24.9,60.1,1e400]}',
    "altitude of 401 digits": '{"type":"Point","coordinates":[24.9,60.1,1' + "0" * 400 + "]}",
    "boolean": '{"type":"Point","coordinates":[true,60.1]}',
    "string": '{"type":"Point","coordinates":["24.9",60.1]}',
    "null coordinate": '{"type":"Point","coordinates":[null,60.1]}',
    "object coordinates": '{"type":"Point","coordinates":{"lon":24.9,"lat":60.1}}',
    "empty ring": '{"type":"Polygon","coordinates":[[]]}',
    "no rings": '{"type":"Polygon","coordinates":[]}',
    "ring of three": '{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]}',
    "unclosed ring": '{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}',
    "ring of a number": '{"type":"Polygon","coordinates":[5]}',
    "type a list": '{"type":["Polygon"],"coordinates":[]}',
    "type missing": '{"coordinates":[24.9,60.1]}',
}


GEOMETRY = "@GEOMETRY@"


def _geometry_bodies(geometry: str) -> list[tuple[str, str]]:
    """Every endpoint that takes a geometry, the raw ``geometry`` text spliced in."""
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("/api/incidents", incident(GEOMETRY)),
        ("/api/warning-zones", zone(GEOMETRY)),
        ("/api/evacuation/plan", {"zones": [{"id": "z", "population": 5, "geometry": GEOMETRY}]}),
        (
            "/api/route",
            {"from": [24.94, 60.17], "to": [24.95, 60.17], "closures": {"polygons": [GEOMETRY]}},
        ),
        ("/api/stations", {**station(), "geometry": GEOMETRY}),
    ]
    return [(path, json.dumps(body).replace(f'"{GEOMETRY}"', geometry)) for path, body in bodies]


@pytest.mark.parametrize("geometry", list(BAD_GEOMETRIES.values()), ids=list(BAD_GEOMETRIES))
def test_bad_geometry_is_422_everywhere_and_writes_nothing(client, admin, count, geometry):
    for path, raw in _geometry_bodies(geometry):
        with unchanged(count):
            refused(send(client, admin, "POST", path, raw))


def test_signed_zero_is_legal_input(client, admin):
    r = send(
        client,
        admin,
        "POST",
        "/api/incidents",
        '{"type":"Feature","geometry":'
        '{"type":"Point","coordinates":[-0.0,60.17]},"properties":{"title":"t","type":"fire"}}',
    )
    assert r.status_code == 201, r.text
    assert r.json()["geometry"]["coordinates"][1] == 60.17


def test_altitude_is_dropped_not_stored(client, admin):
    r = send(
        client,
        admin,
        "POST",
        "/api/incidents",
        incident(point(24.95, 60.17) | {"coordinates": [24.95, 60.17, 12.5]}),
    )
    assert r.status_code == 201, r.text
    assert r.json()["geometry"]["coordinates"] == [24.95, 60.17]


# --- numbers in other float fields -----------------------------------------------------
NUMBER_BODIES = [
    ("/api/dispatch/plan", '{"time_limit_s": 1e400}'),
    ("/api/dispatch/plan", '{"time_limit_s": NaN}'),
    ("/api/dispatch/plan", '{"coverage": {"target_s": Infinity}}'),
    ("/api/isochrone", '{"at":[24.94,60.17],"seconds":1' + "0" * 400 + "}"),
    ("/api/route", '{"from":[1e400,60.17],"to":[24.95,60.17]}'),
    ("/api/route", '{"from":[NaN,60.17],"to":[24.95,60.17]}'),
    ("/api/drive-times", '{"sources":[[24.94,1' + "0" * 400 + ']],"targets":[[24.95,60.17]]}'),
    (
        "/api/evacuation/plan",
        '{"zones":[{"id":"z","population":5,"geometry":'
        '{"type":"Point","coordinates":[24.94,60.17]}}],"max_eta_s":NaN}',
    ),
]


@pytest.mark.parametrize(("path", "raw"), NUMBER_BODIES)
def test_non_finite_and_huge_numbers_are_422(client, admin, count, path, raw):
    with unchanged(count):
        refused(send(client, admin, "POST", path, raw))


@pytest.mark.parametrize(
    "raw",
    [
        '{"lon": 1' + "0" * 400 + ', "lat": 60.2}',
        '{"lon": 24.9, "lat": 60.2, "heading_deg": NaN}',
        '{"lon": 24.9, "lat": 60.2, "speed_mps": Infinity}',
        '{"lon": 24.9, "lat": 60.2, "accuracy_m": 1e400}',
    ],
)
def test_non_finite_numbers_in_a_position_are_422(client, world, count, raw):
    h = world.h("responder")
    with unchanged(count):
        refused(send(client, h, "POST", f"/api/units/{world.unit_a.id}/position", raw))


# --- client timestamps -------------------------------------------------------------------
def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.mark.parametrize(
    "recorded_at",
    [
        "0001-01-01T00:00:00+00:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1970-01-01T00:00:00Z",
        "OLD",
        "FUTURE",
    ],
)
def test_position_outside_the_time_window_is_422(client, world, session, count, recorded_at):
    recorded_at = {"OLD": _iso(timedelta(days=-8)), "FUTURE": _iso(timedelta(minutes=6))}.get(
        recorded_at, recorded_at
    )
    uid = world.unit_a.id
    body = {"lon": 24.9, "lat": 60.2, "recorded_at": recorded_at}
    with unchanged(count):
        err = refused(
            send(client, world.h("responder"), "POST", f"/api/units/{uid}/position", body)
        )
    assert "recorded_at" in err["message"]
    at = session.execute(text("SELECT position_at FROM unit WHERE id = :id"), {"id": uid})
    assert at.scalar_one() is None


def test_position_inside_the_window_is_stored(client, world, session):
    uid = world.unit_a.id
    for delta in (timedelta(days=-6), timedelta(minutes=4)):
        body = {"lon": 24.9, "lat": 60.2, "recorded_at": _iso(delta)}
        r = send(client, world.h("responder"), "POST", f"/api/units/{uid}/position", body)
        assert r.status_code == 202, r.text
    n = session.execute(text("SELECT count(*) FROM unit_position WHERE unit_id = :id"), {"id": uid})
    assert n.scalar_one() == 2


@pytest.mark.parametrize(
    "times",
    [
        {"starts_at": "0001-01-01T00:00:00+14:00"},
        {"starts_at": "0001-01-01T00:00:00+00:00"},
        {"ends_at": "9999-12-31T23:59:59-14:00"},
        {"starts_at": "1900-01-01T00:00:00+00:00"},
    ],
)
def test_zone_times_outside_sane_years_are_422(client, admin, count, times):
    with unchanged(count):
        refused(send(client, admin, "POST", "/api/warning-zones", zone(**times)))


def test_zone_may_be_scheduled_ahead(client, admin):
    times = {"starts_at": _iso(timedelta(days=30)), "ends_at": _iso(timedelta(days=400))}
    r = send(client, admin, "POST", "/api/warning-zones", zone(**times))
    assert r.status_code == 201, r.text


# --- a warning system's text (CAP) -----------------------------------------------------
@pytest.fixture
def post_alert(client, session, settings):
    key, secret = auth.add_api_key(session, name="warning-system", secret_key=settings.secret_key)
    session.commit()

    def _post(alert: dict[str, Any]) -> Any:
        raw = json.dumps(alert).encode()
        stamp = str(int(time.time()))
        headers = {
            "X-Api-Key": key.key_id,
            "X-Timestamp": stamp,
            "X-Signature": auth.sign(secret, stamp, raw),
            "Content-Type": "application/json",
        }
        return client.post("/api/alerts", content=raw, headers=headers)

    return _post


def _alert(identifier: str, headline: str) -> dict[str, Any]:
    ring = "60.16,24.93 60.16,24.95 60.18,24.95 60.18,24.93 60.16,24.93"
    return {
        "identifier": identifier,
        "sender": "ops@example.org",
        "sent": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "status": "Actual",
        "msgType": "Alert",
        "scope": "Public",
        "info": {
            "category": "Fire",
            "event": "Fire",
            "urgency": "Immediate",
            "severity": "Severe",
            "certainty": "Observed",
            "headline": headline,
            "area": {"areaDesc": f"Area {headline}", "polygon": ring},
        },
    }


@pytest.mark.parametrize("bad", ["\u0000", "\ud800"], ids=["NUL", "lone surrogate"])
def test_alert_text_that_cannot_be_stored_is_refused(post_alert, count, bad):
    with unchanged(count):
        err = refused(post_alert(_alert("X-1", f"fire{bad}here")))
    assert "cannot be stored" in err["message"]


def test_alert_text_with_bidi_overrides_is_shown_defused(post_alert, client, admin, session):
    r = post_alert(_alert("X-2", "fire\u202eereh\u0007 now\nnorth"))
    assert r.status_code == 201, r.text
    alert_id = r.json()["alert_id"]
    titles = client.get("/api/incidents?type=fire", headers=admin).json()["features"]
    assert [f["properties"]["title"] for f in titles] == ["fire\ufffdereh\ufffd now north"]
    raw = client.get(f"/api/alerts/{alert_id}/raw", headers=admin)
    assert "\u202e" in raw.json()["info"]["headline"]  # the alert itself is kept verbatim


@pytest.mark.parametrize("flag", [True, False])
def test_booleans_are_not_ids_or_seeds(client, world, count, flag):
    """JSON true/false are not 1 and 0 (schemathesis found `"seed": false` taken as 0)."""
    before = count("incident"), count("task")
    for path, body in (
        ("/api/dispatch/plan", {"seed": flag}),
        ("/api/dispatch/plan", {"incident_ids": [flag]}),
    ):
        answer = client.post(path, json=body, headers=world.h("dispatcher"))
        assert answer.status_code == 422, (path, body, answer.text)
    assert (count("incident"), count("task")) == before
