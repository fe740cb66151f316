"""GCJ-02 and BD-09 (Chinese map apps) to and from WGS-84, at known points.

The forward transforms are checked against the published algorithm (re-implemented here
from its public description) and its widely quoted test vector; the inverse must bring a
point back to where it started to well under 1 m.
"""

from __future__ import annotations

import math

import numpy as np
import prcoords
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gis.crs import CRS_NAMES, from_wgs84, to_wgs84, to_wgs84_array, wgs84_to_gcj02

# WGS-84 (lon, lat) of well-known places across China, from the east coast to Xinjiang.
CHINA = {
    "beijing-tiananmen": (116.3975, 39.9087),
    "shanghai-peoples-square": (121.4737, 31.2304),
    "guangzhou": (113.2644, 23.1291),
    "shenzhen": (114.0579, 22.5431),
    "chengdu-tianfu-square": (104.0657, 30.6574),
    "urumqi": (87.6168, 43.8256),
    "kashgar": (75.9898, 39.4704),
    "harbin": (126.6424, 45.7567),
    "lhasa-potala": (91.1175, 29.6578),
    "sanya": (109.5119, 18.2528),
}
OUTSIDE = {
    "helsinki": (24.9443, 60.1716),
    "porto": (-8.6291, 41.1579),
    "sao-paulo": (-46.6333, -23.5505),
    "paris": (2.3522, 48.8566),
    "new-york": (-74.0060, 40.7128),
    "tokyo": (139.6917, 35.6895),
    "sydney": (151.2093, -33.8688),
    "moscow": (37.6173, 55.7558),
}


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


# --- an independent reference: the published GCJ-02 and BD-09 formulas ---------------------
_A = 6378245.0  # Krasovsky 1940
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0


def _dlat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _dlon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def reference_gcj(lon: float, lat: float) -> tuple[float, float]:
    dlat = _dlat(lon - 105.0, lat - 35.0)
    dlon = _dlon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lon + dlon, lat + dlat


def reference_bd(lon: float, lat: float) -> tuple[float, float]:
    """WGS-84 to BD-09: GCJ-02, then Baidu's rotation and shift."""
    x, y = reference_gcj(lon, lat)
    z = math.sqrt(x * x + y * y) + 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) + 0.000003 * math.cos(x * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def test_reference_matches_the_published_vector() -> None:
    """wandergis/coordtransform's README: wgs84togcj02(116.404, 39.915) and wgs84_to_bd09."""
    assert reference_gcj(116.404, 39.915) == pytest.approx(
        (116.41024449916938, 39.91640428150164), abs=1e-12
    )
    assert reference_bd(116.404, 39.915) == pytest.approx(
        (116.41662724378733, 39.922699552216216), abs=1e-12
    )


def test_published_vector() -> None:
    assert from_wgs84(116.404, 39.915, "gcj02") == pytest.approx(
        (116.41024449916938, 39.91640428150164), abs=1e-9
    )
    assert from_wgs84(116.404, 39.915, "bd09") == pytest.approx(
        (116.41662724378733, 39.922699552216216), abs=1e-9
    )


# --- known points in China --------------------------------------------------------------
@pytest.mark.parametrize("place", CHINA)
def test_gcj02_at_known_points(place: str) -> None:
    wgs = CHINA[place]
    gcj = from_wgs84(*wgs, "gcj02")
    assert gcj == pytest.approx(reference_gcj(*wgs), abs=1e-9)
    offset = haversine_m(wgs, gcj)
    assert 20 < offset < 1_000, offset  # the datum shift is real, and of its usual size
    back = to_wgs84(*gcj, "gcj02")
    assert haversine_m(back, wgs) < 1.0
    assert haversine_m(back, wgs) < 0.01  # the iterative inverse is far better than 1 m
    # and the other way round: the place read as GCJ-02 coordinates from a map app
    as_gcj = to_wgs84(*wgs, "gcj02")
    assert haversine_m(from_wgs84(*as_gcj, "gcj02"), wgs) < 1.0


@pytest.mark.parametrize("place", CHINA)
def test_bd09_at_known_points(place: str) -> None:
    wgs = CHINA[place]
    bd = from_wgs84(*wgs, "bd09")
    assert bd == pytest.approx(reference_bd(*wgs), abs=1e-9)
    offset = haversine_m(wgs, bd)
    assert 200 < offset < 2_000, offset
    back = to_wgs84(*bd, "bd09")
    assert haversine_m(back, wgs) < 1.0
    assert haversine_m(back, wgs) < 0.01
    as_bd = to_wgs84(*wgs, "bd09")
    assert haversine_m(from_wgs84(*as_bd, "bd09"), wgs) < 1.0


@pytest.mark.parametrize("place", CHINA)
def test_wgs84_is_unchanged(place: str) -> None:
    wgs = CHINA[place]
    assert from_wgs84(*wgs, "wgs84") == wgs
    assert to_wgs84(*wgs, "wgs84") == wgs


@pytest.mark.parametrize("place", OUTSIDE)
@pytest.mark.parametrize("crs", CRS_NAMES)
def test_points_outside_china_are_unchanged(place: str, crs: str) -> None:
    point = OUTSIDE[place]
    assert to_wgs84(*point, crs) == point  # type: ignore[arg-type]
    assert from_wgs84(*point, crs) == point  # type: ignore[arg-type]


def test_returns_plain_floats() -> None:
    lon, lat = to_wgs84(116.404, 39.915, "bd09")
    assert type(lon) is float
    assert type(lat) is float


# --- arrays and scalars: one implementation; prcoords as an independent reference -------
CHINA_LON = st.floats(min_value=73.7, max_value=134.9, allow_nan=False)
CHINA_LAT = st.floats(min_value=18.2, max_value=53.5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(lon=CHINA_LON, lat=CHINA_LAT)
def test_gcj02_forward_is_prcoords_exactly(lon: float, lat: float) -> None:
    x, y = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    ref = prcoords.wgs_gcj((lat, lon), False)
    assert abs(x[0] - ref.lon) < 1e-12
    assert abs(y[0] - ref.lat) < 1e-12
    assert from_wgs84(lon, lat, "gcj02") == pytest.approx((x[0], y[0]), abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(lon=CHINA_LON, lat=CHINA_LAT, offset=st.sampled_from(["gcj02", "bd09"]))
def test_the_inverse_undoes_the_offset_to_1e9_degrees(lon: float, lat: float, offset: str) -> None:
    shifted = from_wgs84(lon, lat, offset)  # type: ignore[arg-type]
    x, y = to_wgs84_array(np.array([shifted[0]]), np.array([shifted[1]]), offset)
    assert abs(x[0] - lon) < 1e-9
    assert abs(y[0] - lat) < 1e-9
    # the scalar conversion the API uses is the same formula, on floats
    one = to_wgs84(shifted[0], shifted[1], offset)  # type: ignore[arg-type]
    assert abs(x[0] - one[0]) < 1e-12
    assert abs(y[0] - one[1]) < 1e-12
    # and agrees with prcoords' inverse (which stops iterating near 1e-7 degrees)
    bored = prcoords.gcj_wgs_bored if offset == "gcj02" else prcoords.bd_wgs_bored
    ref = bored((shifted[1], shifted[0]))
    assert abs(one[0] - ref.lon) < 1e-6
    assert abs(one[1] - ref.lat) < 1e-6


def test_outside_china_positions_are_kept() -> None:
    lon, lat = np.array([24.94, -83.0, 114.3]), np.array([60.17, 39.99, 30.6])
    x, y = to_wgs84_array(lon, lat, "gcj02")
    assert list(x[:2]) == [24.94, -83.0]
    assert list(y[:2]) == [60.17, 39.99]
    assert abs(x[2] - 114.3) > 1e-4  # Wuhan is moved
