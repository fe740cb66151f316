"""Routes, isochrones, drive-time matrices and snapping over HTTP, on the demo city."""

from __future__ import annotations

import math

import pytest
import shapely
from shapely.geometry import Point, shape

from gis.crs import from_wgs84

A = (24.9442949, 60.1716313)  # Helsinki centre (the demo city)
B = (24.9400, 60.1680)
FAR = (25.5, 60.5)  # tens of km away: not on the demo network


def q(point: tuple[float, float]) -> str:
    return f"{point[0]},{point[1]}"


def test_route_is_a_linestring_between_the_snapped_points(client, world, road_engine):
    r = client.get(f"/api/route?from={q(A)}&to={q(B)}", headers=world.h("dispatcher"))
    assert r.status_code == 200, r.text
    feat = r.json()
    props = feat["properties"]
    assert props["reachable"] is True
    assert feat["geometry"]["type"] == "LineString"
    coords = feat["geometry"]["coordinates"]
    assert coords[0] == pytest.approx([props["origin"]["lon"], props["origin"]["lat"]], abs=1e-6)
    assert coords[-1] == pytest.approx(
        [props["destination"]["lon"], props["destination"]["lat"]], abs=1e-6
    )
    # The same answer as the engine, and a plausible city drive.
    direct = road_engine.route(road_engine.snap(*A), road_engine.snap(*B))
    assert props["eta_s"] == pytest.approx(direct.eta_s, abs=1e-3)
    assert props["length_m"] == pytest.approx(direct.length_m, abs=0.01)
    crow = shapely.distance(Point(A), Point(B)) * 111_000 * math.cos(math.radians(60.17))
    assert props["length_m"] > 0.5 * crow
    assert 10 < props["eta_s"] < 900


def test_closing_the_route_makes_it_longer_and_avoids_the_edges(client, world):
    h = world.h("dispatcher")
    first = client.get(f"/api/route?from={q(A)}&to={q(B)}", headers=h).json()["properties"]
    middle = first["edge_ids"][len(first["edge_ids"]) // 2]
    closed = ",".join(str(e) for e in first["edge_ids"][1:-1]) or str(middle)
    second = client.get(f"/api/route?from={q(A)}&to={q(B)}&closed_edges={closed}", headers=h).json()
    props = second["properties"]
    if props["reachable"]:
        assert props["eta_s"] >= first["eta_s"]
        assert not set(props["edge_ids"][1:-1]) & set(first["edge_ids"][1:-1])
    # Closures never leak into the next request.
    again = client.get(f"/api/route?from={q(A)}&to={q(B)}", headers=h).json()["properties"]
    assert again["eta_s"] == first["eta_s"]


def test_polygon_closure_in_post_route(client, world):
    h = world.h("dispatcher")
    base = client.post("/api/route", json={"from": list(A), "to": list(B)}, headers=h).json()
    line = shape(base["geometry"])
    mid = line.interpolate(0.5, normalized=True)
    flood = shapely.geometry.mapping(mid.buffer(0.0008))  # ~50-90 m around the midpoint
    r = client.post(
        "/api/route",
        json={"from": list(A), "to": list(B), "closures": {"polygons": [flood]}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    props = r.json()["properties"]
    if props["reachable"]:
        assert props["eta_s"] > base["properties"]["eta_s"]
        assert not shape(r.json()["geometry"]).intersects(shape(flood).buffer(-1e-5))


def test_isochrone_contains_its_origin_and_grows_with_time(client, world):
    h = world.h("dispatcher")
    small = client.get(f"/api/isochrone?at={q(A)}&seconds=60", headers=h)
    big = client.get(f"/api/isochrone?at={q(A)}&seconds=180", headers=h)
    assert small.status_code == big.status_code == 200
    s, b = shape(small.json()["geometry"]), shape(big.json()["geometry"])
    assert s.geom_type in ("Polygon", "MultiPolygon")
    assert s.buffer(1e-6).contains(Point(A)) or s.distance(Point(A)) < 0.001
    assert b.area > s.area
    assert b.buffer(1e-5).contains(s.representative_point())


def test_drive_times_matrix_with_unreachable_as_null(client, world, road_engine):
    h = world.h("dispatcher")
    body = {"sources": [list(A), list(B)], "targets": [list(B), list(A), list(A)]}
    r = client.post("/api/drive-times", json=body, headers=h)
    assert r.status_code == 200, r.text
    m = r.json()
    assert len(m["durations_s"]) == 2 and len(m["durations_s"][0]) == 3
    assert m["durations_s"][0][1] == pytest.approx(0.0, abs=1e-6)  # A to A
    route = road_engine.route(road_engine.snap(*A), road_engine.snap(*B))
    assert m["durations_s"][0][0] == pytest.approx(route.eta_s, abs=1e-3)
    # Close every road the second target's snap touches: it becomes unreachable (null).
    edges = m["targets"][0]["edge_ids"]
    closed = client.post(
        "/api/drive-times",
        json={**body, "closures": {"edge_ids": edges}},
        headers=h,
    ).json()
    assert closed["durations_s"][1][0] is None or closed["durations_s"][1][0] > 0
    assert "Infinity" not in r.text and "NaN" not in r.text


def test_gcj02_input_is_converted(client, world):
    # A point given in GCJ-02 outside China is unchanged; inside China it would shift.
    h = world.h("dispatcher")
    plain = client.get(f"/api/snap?at={q(A)}", headers=h).json()
    gcj = client.get(f"/api/snap?at={q(A)}&crs=gcj02", headers=h).json()
    assert plain == gcj
    assert from_wgs84(*A, "gcj02") == A


@pytest.mark.parametrize(
    ("query", "status", "mentions"),
    [
        (f"from={q(FAR)}&to={q(B)}", 422, "no road within"),
        ("from=200,60&to=24.94,60.17", 422, "out of range"),
        ("from=abc&to=24.94,60.17", 422, "LON,LAT"),
        (f"from={q(A)}&to={q(B)}&closed_edges=1,x", 422, "integers"),
        (f"from={q(A)}&to={q(B)}&closed_edges=99999999", 422, "unknown edge id"),
        (f"from={q(A)}&to={q(B)}&crs=epsg3857", 422, "crs"),
        (f"from={q(A)}", 422, "to"),
    ],
)
def test_bad_route_requests_are_clear_422s(client, world, query, status, mentions):
    r = client.get(f"/api/route?{query}", headers=world.h("dispatcher"))
    assert r.status_code == status, r.text
    assert mentions in r.text


def test_matrix_size_is_bounded(client, world):
    pts = [list(A)] * 600
    r = client.post(
        "/api/drive-times", json={"sources": pts, "targets": pts}, headers=world.h("dispatcher")
    )
    assert r.status_code == 422 and "250,000" in r.text


def test_routing_needs_a_login_and_a_loaded_network(client, world, app):
    assert client.get(f"/api/route?from={q(A)}&to={q(B)}").status_code == 401
    app.state.engine = None
    r = client.get(f"/api/route?from={q(A)}&to={q(B)}", headers=world.h("dispatcher"))
    assert r.status_code == 503 and r.json()["error"] == "network_unavailable"
