"""gis.geodesy by value: a circle's vertices are at its radius on the ellipsoid (at the
equator, near and around a pole, across the antimeridian), and a point asked for at a
distance outside an area is that far from its edge."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import MultiPolygon, Point, Polygon

from gis import geodesy
from gis.geodesy import CIRCLE_VERTICES, WGS84, circle_polygon, point_outside

TOLERANCE_M = 0.5


def polygons(shape: Polygon | MultiPolygon) -> list[Polygon]:
    return list(shape.geoms) if isinstance(shape, MultiPolygon) else [shape]


def vertices(shape: Polygon | MultiPolygon) -> list[tuple[float, float]]:
    """Every distinct vertex (a point on the antimeridian counted once, at -180)."""
    seen = {
        (-180.0 if lon == 180.0 else lon, lat)
        for poly in polygons(shape)
        for lon, lat in poly.exterior.coords
    }
    return sorted(seen)


def distances_m(lon: float, lat: float, points: list[tuple[float, float]]) -> np.ndarray:
    xs, ys = zip(*points, strict=True)
    n = len(points)
    return np.asarray(WGS84.inv([lon] * n, [lat] * n, list(xs), list(ys))[2])


def assert_on_circle(lon: float, lat: float, radius_m: float) -> Polygon | MultiPolygon:
    """Valid, within [-180, 180] x [-90, 90], with (at least) ``CIRCLE_VERTICES`` vertices
    at the radius; any other vertex is where the ring was cut or closed: on the antimeridian
    or a pole's edge."""
    shape = circle_polygon(lon, lat, radius_m)
    assert shape.is_valid
    west, south, east, north = shape.bounds
    assert west >= -180.0 and east <= 180.0 and south >= -90.0 and north <= 90.0
    points = vertices(shape)
    on_ring = np.abs(distances_m(lon, lat, points) - radius_m) < TOLERANCE_M
    assert on_ring.sum() >= CIRCLE_VERTICES
    assert all(
        abs(x) == 180.0 or abs(y) == 90.0
        for (x, y), on in zip(points, on_ring, strict=True)
        if not on
    )
    return shape


def assert_covers_the_disc(
    shape: Polygon | MultiPolygon, lon: float, lat: float, radius_m: float
) -> None:
    """Points 90 % of the radius from the centre are in the polygon; at 110 %, outside."""
    for azimuth in np.arange(0.0, 360.0, 7.5) + 1.0:
        inside = WGS84.fwd(lon, lat, azimuth, 0.9 * radius_m)[:2]
        outside = WGS84.fwd(lon, lat, azimuth, 1.1 * radius_m)[:2]
        assert shape.covers(Point(*inside)), (azimuth, inside)
        assert not shape.intersects(Point(*outside)), (azimuth, outside)


@pytest.mark.parametrize(
    ("lon", "lat", "radius_m"),
    [
        (0.0, 0.0, 1_000.0),
        (24.9442, 60.1716, 25_000.0),
        (147.0598, -35.3888, 25_000.0),
        (-70.0, -45.0, 500_000.0),
        (10.0, 88.0, 100_000.0),  # near the pole (222 km), not around it
        (-100.0, 60.0, 2_000_000.0),
    ],
)
def test_circle_vertices_are_at_the_radius(lon: float, lat: float, radius_m: float) -> None:
    shape = assert_on_circle(lon, lat, radius_m)
    assert isinstance(shape, Polygon)
    assert len(shape.exterior.coords) == CIRCLE_VERTICES + 1
    assert_covers_the_disc(shape, lon, lat, radius_m)


@pytest.mark.parametrize(
    ("lon", "lat", "radius_m", "pole"),
    [
        (0.0, 89.5, 100_000.0, 90.0),
        (120.0, -89.9, 50_000.0, -90.0),
        (-45.0, 85.0, 1_000_000.0, 90.0),
        (-150.0, 75.0, 2_000_000.0, 90.0),
        (179.0, -80.0, 1_500_000.0, -90.0),
    ],
)
def test_circle_around_a_pole_is_a_cap_to_the_pole(
    lon: float, lat: float, radius_m: float, pole: float
) -> None:
    shape = assert_on_circle(lon, lat, radius_m)
    assert isinstance(shape, Polygon)
    for x in range(-180, 181, 15):  # the pole, at every longitude
        assert shape.covers(Point(x, pole))
    assert_covers_the_disc(shape, lon, lat, radius_m)


@pytest.mark.parametrize(
    ("lon", "lat", "radius_m"),
    [(179.95, 0.0, 50_000.0), (-179.9, 65.0, 30_000.0), (180.0, -30.0, 10_000.0)],
)
def test_circle_across_the_antimeridian_is_split(lon: float, lat: float, radius_m: float) -> None:
    shape = assert_on_circle(lon, lat, radius_m)
    assert isinstance(shape, MultiPolygon) and len(shape.geoms) == 2
    west, east = sorted(shape.geoms, key=lambda p: p.bounds[0])
    assert west.bounds[0] == -180.0 and east.bounds[2] == 180.0
    for x in (-180.0, 180.0):  # both halves reach the cut at the centre's latitude
        assert shape.covers(Point(x, lat))
    assert_covers_the_disc(shape, lon, lat, radius_m)


@settings(max_examples=300, deadline=None)
@given(
    lon=st.floats(-180.0, 180.0),
    lat=st.floats(-89.9, 89.9),
    radius_m=st.floats(1.0, 5_000_000.0),
)
def test_any_circle_has_its_vertices_at_the_radius(lon: float, lat: float, radius_m: float) -> None:
    assert_on_circle(lon, lat, radius_m)


# --- a point outside an area ----------------------------------------------------------------
def geodesic_ring(area: Polygon, step_m: float = 1.0) -> list[tuple[float, float]]:
    """The area's boundary with points every ``step_m`` along geodesic edges."""
    coords = list(area.exterior.coords)
    out: list[tuple[float, float]] = []
    for (x0, y0), (x1, y1) in pairwise(coords):
        n = int(WGS84.inv(x0, y0, x1, y1)[2] / step_m)
        out.append((x0, y0))
        out.extend(WGS84.npts(x0, y0, x1, y1, n))
    return out


def distance_to_edge_m(point: Point, area: Polygon) -> float:
    return float(distances_m(point.x, point.y, geodesic_ring(area)).min())


def metres_box(lon: float, lat: float, width_m: float, height_m: float) -> Polygon:
    """A box about ``width_m`` by ``height_m`` with its south-west corner at (lon, lat)."""
    east = WGS84.fwd(lon, lat, 90.0, width_m)[0]
    north = WGS84.fwd(lon, lat, 0.0, height_m)[1]
    return shapely.box(lon, lat, east, north)


def test_point_outside_is_at_the_distance_beyond_the_nearest_edge() -> None:
    # 334 m wide and 667 m tall: the near edges are east and west.
    half = 0.0015
    area = shapely.box(24.94 - half, 60.17 - half, 24.94 + half, 60.17 + half * 2)
    point = point_outside(area, 300.0)
    west, south, east, north = area.bounds
    assert not area.intersects(point)
    assert point.x < west or point.x > east
    assert south < point.y < north
    assert distance_to_edge_m(point, area) == pytest.approx(300.0, abs=TOLERANCE_M)


@pytest.mark.parametrize(("lon", "lat"), [(179.997, 10.0), (-180.0, -20.0)])
def test_point_outside_an_area_at_the_antimeridian(lon: float, lat: float) -> None:
    area = metres_box(lon, lat, 300.0, 2_000.0)
    point = point_outside(area, 500.0)
    assert -180.0 <= point.x <= 180.0
    assert distance_to_edge_m(point, area) == pytest.approx(500.0, abs=TOLERANCE_M)


@pytest.mark.parametrize(("lat", "radius_m"), [(0.0, 1_000.0), (60.17, 5_000.0), (-78.0, 800.0)])
def test_point_outside_a_circle_is_radius_plus_distance_from_its_centre(
    lat: float, radius_m: float
) -> None:
    area = circle_polygon(24.94, lat, radius_m)
    assert isinstance(area, Polygon)
    point = point_outside(area, 300.0)
    from_centre = float(WGS84.inv(24.94, lat, point.x, point.y)[2])
    # The polygon's edges are chords of the circle: its edge is at most the sagitta inside.
    sagitta = radius_m * (1 - math.cos(math.pi / CIRCLE_VERTICES))
    assert radius_m + 300.0 - sagitta - TOLERANCE_M < from_centre < radius_m + 300.0 + TOLERANCE_M


@settings(max_examples=150, deadline=None)
@given(
    lon=st.floats(-180.0, 179.0),  # the box ends before the antimeridian
    lat=st.floats(-75.0, 75.0),
    width_m=st.floats(50.0, 5_000.0),
    height_m=st.floats(50.0, 5_000.0),
    distance_m=st.floats(10.0, 2_000.0),
)
def test_point_outside_any_box_is_at_the_distance(
    lon: float, lat: float, width_m: float, height_m: float, distance_m: float
) -> None:
    """At the distance from the edge; short of it by at most the sagitta of the ring's
    corner arcs (``OUTSIDE_QUAD_SEGS`` chords a quarter), where the point falls on one (the
    box small against the distance)."""
    area = metres_box(lon, lat, width_m, height_m)
    point = point_outside(area, distance_m)
    assert not area.intersects(point)
    shortest = distance_m * math.cos(math.pi / (4 * geodesy.OUTSIDE_QUAD_SEGS))
    assert shortest - TOLERANCE_M < distance_to_edge_m(point, area) < distance_m + TOLERANCE_M


def test_local_metres_round_trips_and_is_true_from_its_centre() -> None:
    to_local, to_wgs84 = geodesy.local_metres(24.94, 60.17)
    x, y = to_local(24.94, 60.17)
    assert (abs(x), abs(y)) < (1e-6, 1e-6)
    lon, lat = WGS84.fwd(24.94, 60.17, 37.0, 12_345.0)[:2]
    x, y = to_local(lon, lat)
    assert math.hypot(x, y) == pytest.approx(12_345.0, abs=1e-3)
    back = to_wgs84(x, y)
    assert back == pytest.approx((lon, lat), abs=1e-9)
