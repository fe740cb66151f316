"""Geometry validation and datum conversion (pure: no database)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.web import parse_bbox
from gis.crs import from_wgs84, to_wgs84
from gis.geojson import GeometryError, parse_geometry

POINT_OR_AREA = ("Point", "Polygon", "MultiPolygon")


def test_point_is_parsed_as_lon_lat():
    geom = parse_geometry({"type": "Point", "coordinates": [24.94, 60.17]}, allowed=("Point",))
    assert (geom.x, geom.y) == (24.94, 60.17)


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ({"type": "Point", "coordinates": [200, 10]}, "longitude 200.0 is out of range"),
        ({"type": "Point", "coordinates": [10, -91]}, "latitude -91.0 is out of range"),
        ({"type": "Point", "coordinates": ["10", 20]}, "numbers"),
        ({"type": "Point", "coordinates": [True, 20]}, "coordinates must be numbers"),
        ({"type": "Point", "coordinates": [10]}, "a position must be [longitude, latitude]"),
        ({"type": "Point", "coordinates": [float("inf"), 1]}, "finite"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "geometry type must be one of"),
        ({"type": "Point"}, "nested arrays"),
        ("POINT(1 2)", "must be a GeoJSON geometry object"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
            "Self-intersection",
        ),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0]]]}, "four positions"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 0.5]]]},
            "must be closed",
        ),
        ({"type": "Polygon", "coordinates": []}, "at least one ring"),
    ],
)
def test_bad_geometry_is_refused_with_a_clear_message(geometry, message):
    with pytest.raises(GeometryError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_geometry(geometry, allowed=POINT_OR_AREA)


def test_too_many_vertices_is_refused():
    ring = [[math.cos(i / 1000), math.sin(i / 1000)] for i in range(100_001)]
    with pytest.raises(GeometryError, match="more than 100000 vertices"):
        parse_geometry({"type": "Polygon", "coordinates": [ring]}, allowed=POINT_OR_AREA)


def test_gcj02_point_is_converted_to_wgs84():
    # Tiananmen as read off a GCJ-02 map; WGS-84 lies a few hundred metres to the NW.
    geom = parse_geometry(
        {"type": "Point", "coordinates": [116.3974, 39.9087]}, allowed=("Point",), crs="gcj02"
    )
    assert 116.39 < geom.x < 116.3974 and 39.90 < geom.y < 39.9087
    assert from_wgs84(geom.x, geom.y, "gcj02") == pytest.approx((116.3974, 39.9087), abs=1e-7)


def test_outside_china_gcj02_equals_wgs84():
    assert to_wgs84(24.94, 60.17, "gcj02") == (24.94, 60.17)
    assert to_wgs84(24.94, 60.17, "bd09") == (24.94, 60.17)


china = st.tuples(st.floats(75.0, 134.0), st.floats(18.0, 53.0))


@given(china, st.sampled_from(["gcj02", "bd09"]))
def test_datum_round_trip_is_exact_to_a_decimetre(lonlat, crs):
    lon, lat = lonlat
    shifted = from_wgs84(lon, lat, crs)
    back = to_wgs84(*shifted, crs)
    # 1e-6 degrees is about 10 cm (BD-09's inverse converges to ~1.5 cm, GCJ-02's closer).
    assert back == pytest.approx((lon, lat), abs=1e-6)
    # ... and the shift itself is real: GCJ-02 moves points by tens to hundreds of metres.
    assert max(abs(shifted[0] - lon), abs(shifted[1] - lat)) > 1e-4


@given(st.floats(-180, 180), st.floats(-90, 90), st.floats(0, 10), st.floats(0, 10))
def test_bbox_accepts_every_ordered_box_in_range(west, south, dx, dy):
    east, north = min(west + dx, 180.0), min(south + dy, 90.0)
    assert parse_bbox(f"{west!r},{south!r},{east!r},{north!r}") == (west, south, east, north)


@pytest.mark.parametrize(
    "value", ["1,2,3", "a,b,c,d", "10,10,5,20", "0,0,181,1", "0,-91,1,1", "nan,0,1,1"]
)
def test_bad_bbox_is_refused(value):
    with pytest.raises(InvalidInput):
        parse_bbox(value)
