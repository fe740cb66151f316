"""The OpenAPI document tells the truth: each operation's error statuses with the error
body the API really sends, GeoJSON as application/geo+json, geometry as required as it
is, and a 405 that names the methods a path takes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from command.planning.schemas import (
    DispatchPlanRead,
    EvacuationPlanRead,
    RecommendationsRead,
    SuppliesPlanRead,
)
from resources.models import Shelter, Stock, Warehouse
from tests.support.world import World, point

ERROR_REF = "#/components/schemas/ErrorBody"
WRITES = {"post", "patch", "put", "delete"}
# Operations open without credentials: login, health, map tiles, trackers.
PUBLIC = {
    ("post", "/api/auth/token"),
    ("get", "/healthz"),
    ("get", "/tiles/roads/{z}/{x}/{y}.mvt"),
    # Trackers: the device id in the request is the credential (docs/avl.md).
    ("get", "/api/avl/osmand"),
    ("post", "/api/avl/osmand"),
}
# What each route can answer 409 for (its domain, not its shape): all must say so.
CONFLICTS = {
    ("patch", "/api/incidents/{incident_id}"),
    ("post", "/api/incidents/{incident_id}/status"),
    ("post", "/api/incidents/{incident_id}/dispatch"),
    ("post", "/api/tasks/{task_id}/status"),
    ("post", "/api/supplies/allocate"),
    ("post", "/api/evacuation/plan"),
    ("post", "/api/units"),
    ("patch", "/api/units/{unit_id}"),
    ("post", "/api/units/{unit_id}/status"),
    ("post", "/api/stock"),
    ("post", "/api/stations"),
    ("patch", "/api/stations/{obj_id}"),
    ("post", "/api/shelters"),
    ("patch", "/api/shelters/{obj_id}"),
    ("post", "/api/warehouses"),
    ("patch", "/api/warehouses/{obj_id}"),
    ("patch", "/api/users/{user_id}"),
}
GEOJSON = {
    ("get", "/api/incidents"),
    ("post", "/api/incidents"),
    ("get", "/api/incidents/{incident_id}"),
    ("patch", "/api/incidents/{incident_id}"),
    ("post", "/api/incidents/{incident_id}/status"),
    ("get", "/api/warning-zones"),
    ("post", "/api/warning-zones"),
    ("get", "/api/warning-zones/{zone_id}"),
    ("patch", "/api/warning-zones/{zone_id}"),
    ("get", "/api/stations"),
    ("post", "/api/stations"),
    ("get", "/api/stations/{obj_id}"),
    ("patch", "/api/stations/{obj_id}"),
    ("get", "/api/units"),
    ("post", "/api/units"),
    ("get", "/api/units/{unit_id}"),
    ("patch", "/api/units/{unit_id}"),
    ("post", "/api/units/{unit_id}/status"),
    ("get", "/api/shelters"),
    ("post", "/api/shelters"),
    ("get", "/api/shelters/{obj_id}"),
    ("patch", "/api/shelters/{obj_id}"),
    ("get", "/api/warehouses"),
    ("post", "/api/warehouses"),
    ("get", "/api/warehouses/{obj_id}"),
    ("patch", "/api/warehouses/{obj_id}"),
    ("get", "/api/route"),
    ("post", "/api/route"),
    ("get", "/api/isochrone"),
    ("post", "/api/isochrone"),
}

# Plans and recommendations: a typed answer, documented as a component (a list of them for
# a dispatch).
PLANS = {
    ("get", "/api/incidents/{incident_id}/recommendations"): ("200", "RecommendationsRead"),
    ("post", "/api/dispatch/plan"): ("200", "DispatchPlanRead"),
    ("post", "/api/supplies/allocate"): ("200", "SuppliesPlanRead"),
    ("post", "/api/evacuation/plan"): ("200", "EvacuationPlanRead"),
    ("post", "/api/incidents/{incident_id}/dispatch"): ("201", "TaskRead"),
}


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "patch", "put", "delete"}
    ]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_operation_lists_the_errors_it_can_return(spec: dict[str, Any]) -> None:
    ops = operations(spec)
    assert len(ops) >= 57
    for method, path, op in ops:
        statuses = {int(s) for s in op["responses"]}
        where = f"{method.upper()} {path}"
        assert 500 in statuses, where
        if (method, path) not in PUBLIC:
            assert {401, 403} <= statuses, where
            assert op["security"], where
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"], where
        if re.search(r"\{\w*id\}", path):
            assert 404 in statuses, where
        if "requestBody" in op:
            assert {413, 422} <= statuses, where
        if (method, path) in CONFLICTS:
            assert 409 in statuses, where
        for status in statuses - {200, 201, 202, 204, 304}:
            content = op["responses"][str(status)]["content"]
            if (method, path) == ("get", "/healthz"):
                continue
            assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, where


def test_the_error_body_is_the_one_sent(spec: dict[str, Any], client: TestClient) -> None:
    body = spec["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error", "message"]
    assert set(body["properties"]) == {"error", "message", "details"}
    # FastAPI's own 422 body ({"detail": [...]}) is never sent: it is not documented.
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    refused = client.get("/api/incidents/not-a-number", headers={"Authorization": "Bearer x"})
    assert set(refused.json()) <= {"error", "message", "details"}


def test_documented_statuses_are_the_ones_answered(
    spec: dict[str, Any], client: TestClient, world: World
) -> None:
    """Without credentials and as a role that may not, every operation answers a status
    its own entry lists (401 and 403 were missing from 56 of 57)."""
    machine_only = ("post", "/api/alerts")
    checked = 0
    for method, path, op in operations(spec):
        if (method, path) in PUBLIC:
            continue
        url = re.sub(r"\{\w+\}", "1", path)
        documented = {int(s) for s in op["responses"]}
        anonymous = client.request(method.upper(), url, json={})
        assert anonymous.status_code == 401 or (method, path) == machine_only, (path, anonymous)
        assert anonymous.status_code in documented, (method, path, anonymous.status_code)
        if method in WRITES:
            denied = client.request(method.upper(), url, json={}, headers=world.h("auditor"))
            assert denied.status_code in documented, (method, path, denied.status_code)
        checked += 1
    assert checked >= 50


def test_geojson_is_declared_and_sent_as_geo_json(
    spec: dict[str, Any], client: TestClient, world: World
) -> None:
    for method, path in GEOJSON:
        responses = spec["paths"][path][method]["responses"]
        success = next(responses[s] for s in ("200", "201") if s in responses)
        assert list(success["content"]) == ["application/geo+json"], (method, path)
    h = world.h("dispatcher")
    created = client.post(
        "/api/incidents",
        json={
            "type": "Feature",
            "geometry": point(24.95, 60.17),
            "properties": {"title": "Kitchen fire", "type": "fire", "severity": "severe"},
        },
        headers=h,
    )
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/geo+json"
    one = client.get(f"/api/incidents/{created.json()['id']}", headers=h)
    assert one.headers["content-type"] == "application/geo+json"
    listed = client.get("/api/incidents", headers=h)
    assert listed.headers["content-type"] == "application/geo+json"
    unit = client.get(f"/api/units/{world.unit_a.id}", headers=h)
    assert unit.headers["content-type"] == "application/geo+json"
    # Not GeoJSON: stays application/json, and says so.
    tasks = client.get("/api/tasks", headers=h)
    assert tasks.headers["content-type"] == "application/json"
    assert "application/json" in spec["paths"]["/api/tasks"]["get"]["responses"]["200"]["content"]


def test_geometry_is_required_where_it_is(
    spec: dict[str, Any], client: TestClient, world: World
) -> None:
    schemas = spec["components"]["schemas"]
    incident = resolve(spec, schemas["IncidentCreate"])
    geometry = incident["properties"]["geometry"]
    assert "geometry" in incident["required"]
    assert "anyOf" not in geometry  # not nullable
    kinds = [v["properties"]["type"]["enum"] for v in geometry["oneOf"]]
    assert kinds == [["Point"], ["Polygon"], ["MultiPolygon"]]
    ring = geometry["oneOf"][1]["properties"]["coordinates"]["items"]
    assert ring["minItems"] == 4  # a closed ring: RFC 7946
    assert ring["items"]["maxItems"] == 3  # [lon, lat] or [lon, lat, altitude]
    props = {"title": "x", "type": "fire", "severity": "severe"}
    refused = client.post(
        "/api/incidents",
        json={"type": "Feature", "geometry": None, "properties": props},
        headers=world.h("dispatcher"),
    )
    assert refused.status_code == 422  # as documented: null is not a geometry here
    # A unit may be created with no place yet: there null is documented, and accepted.
    unit = resolve(spec, schemas["UnitCreate"])
    assert {"type": "null"} in unit["properties"]["geometry"]["anyOf"]
    # Read back: an incident always has a geometry, a unit may not.
    incident_out = resolve(spec, schemas["FeatureOut_IncidentRead_"])
    assert "anyOf" not in incident_out["properties"]["geometry"]
    unit_out = resolve(spec, schemas["FeatureOut_UnitRead_"])
    assert {"type": "null"} in unit_out["properties"]["geometry"]["anyOf"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/incidents", "GET, POST"),
        ("PUT", "/api/incidents/1", "GET, PATCH"),
        ("DELETE", "/api/stations/1", "GET, PATCH"),
        ("GET", "/api/incidents/1/status", "POST"),
        ("POST", "/healthz", "GET"),
        ("POST", "/static/app.js", "GET, HEAD"),
    ],
)
def test_405_names_every_method_of_the_path(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"] == "method_not_allowed"


def test_plans_document_their_answers_and_send_them(
    spec: dict[str, Any], client: TestClient, world: World, session: Session
) -> None:
    for (method, path), (status, name) in PLANS.items():
        content = spec["paths"][path][method]["responses"][status]["content"]
        schema = content["application/json"]["schema"]
        schema = schema.get("items", schema) if schema.get("type") == "array" else schema
        assert schema == {"$ref": f"#/components/schemas/{name}"}, (method, path)
        assert resolve(spec, schema)["properties"], (method, path)
    needs = [{"capability": "fire_suppression", "count": 1}]
    card = {"incident_type": "fire", "severity": "severe", "needs": needs}
    assert client.post("/api/response-plans", json=card, headers=world.h("commander")).is_success
    house = Warehouse(name="Depot", geom=from_shape(Point(24.9420, 60.1700), 4326))
    shelter = Shelter(name="School", capacity=100, occupancy=10, accessible=True,
                      pets_allowed=False, geom=from_shape(Point(24.9460, 60.1730), 4326))  # fmt: skip
    session.add_all([house, shelter])
    session.flush()
    session.add(Stock(warehouse_id=house.id, item="drinking_water", unit_of_measure="litre",
                      quantity=100))  # fmt: skip
    session.commit()
    h = world.h("dispatcher")
    incident = client.post(
        "/api/incidents",
        json={"type": "Feature", "geometry": point(24.9442, 60.1716),
              "properties": {"title": "Fire", "type": "fire", "severity": "severe"}},
        headers=h,
    ).json()["id"]  # fmt: skip
    ring = [[24.943, 60.171], [24.945, 60.171], [24.945, 60.172], [24.943, 60.172]]
    zone = {"id": "z", "population": 120, "with_pets": 5,
            "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}}  # fmt: skip
    demand = {"target": f"shelter:{shelter.id}", "item": "drinking_water", "quantity": 150}
    answers = {
        RecommendationsRead: client.get(f"/api/incidents/{incident}/recommendations", headers=h),
        DispatchPlanRead: client.post(
            "/api/dispatch/plan", json={"coverage": {"target_s": 300}}, headers=h
        ),
        SuppliesPlanRead: client.post(
            "/api/supplies/allocate",
            json={"demands": [demand], "fleet": [{"warehouse_id": house.id, "capacity": 60}]},
            headers=h,
        ),
        EvacuationPlanRead: client.post("/api/evacuation/plan", json={"zones": [zone]}, headers=h),
    }
    for model, response in answers.items():
        assert response.status_code == 200, response.text
        body = response.json()
        # Every field the service sends is declared: the model keeps the answer whole.
        out = model.model_validate(body).model_dump(mode="json", exclude={"computed_at"})
        assert out == {k: v for k, v in body.items() if k != "computed_at"}, model.__name__
    recs = answers[RecommendationsRead].json()
    assert recs["response_plan"] and any(e["route"] for e in recs["recommendations"])
    assert answers[SuppliesPlanRead].json()["allocation"]["shortfalls"]
    assert answers[SuppliesPlanRead].json()["routes"]["unserved"]
    assert answers[EvacuationPlanRead].json()["plan"]["unplaced"]
