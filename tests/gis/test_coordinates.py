"""Coordinates pasted into a search box (pure: no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gis.coordinates import (
    CoordinateError,
    format_decimal,
    format_dms,
    format_hemisphere,
    parse_coordinates,
)

lons = st.floats(min_value=-180, max_value=180, allow_nan=False)
lats = st.floats(min_value=-90, max_value=90, allow_nan=False)


@pytest.mark.parametrize(
    ("text", "lon", "lat"),
    [
        ("24.94,60.17", 24.94, 60.17),
        ("24.94, 60.17", 24.94, 60.17),
        ("24.94 60.17", 24.94, 60.17),
        ("-58.38;-34.6", -58.38, -34.6),
        ("60.17N 24.94E", 24.94, 60.17),
        ("60.17 N, 24.94 E", 24.94, 60.17),
        ("24.94E 60.17N", 24.94, 60.17),
        ("N60.17 E24.94", 24.94, 60.17),
        ("n60.17, e24.94", 24.94, 60.17),
        ("60.17°N 24.94°E", 24.94, 60.17),
        ("34.6S 58.38W", -58.38, -34.6),
        ("60°10'12\"N 24°56'24\"E", 24.94, 60.17),
        ("60°10′12″N, 24°56′24″E", 24.94, 60.17),
        ("60°10'N 24°56.4'E", 24.94, 60 + 10 / 60),
        ("S34°36' W58°22'48\"", -(58 + 22 / 60 + 48 / 3600), -34.6),
    ],
)
def test_formats(text: str, lon: float, lat: float) -> None:
    got = parse_coordinates(text)
    assert got is not None, text
    assert got == pytest.approx((lon, lat), abs=1e-9)


@pytest.mark.parametrize(
    "text", ["Mannerheimintie 5", "5", "", "赫尔辛基", "1e5,3", "24.94", "24.94,60.17,3", "N E"]
)
def test_not_coordinates(text: str) -> None:
    assert parse_coordinates(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "200,10",  # longitude past 180
        "24.94,95",  # latitude past 90
        "-33.87,151.21",  # lat,lon without letters is read lon,lat: 151 is no latitude
        "60N 24N",  # two latitudes
        "24E 60W",  # two longitudes
        "60°61'N 24°E",  # 61 minutes
        "60°10'75\"N 24°E",  # 75 seconds
        "95N 24E",
        "60.5°10'N 24E",  # fractional degrees with minutes
    ],
)
def test_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(CoordinateError):
        parse_coordinates(text)


@given(lons, lats)
def test_decimal_round_trip(lon: float, lat: float) -> None:
    got = parse_coordinates(format_decimal(lon, lat, 7))
    assert got == pytest.approx((lon, lat), abs=1e-7)


@given(lons, lats, st.booleans())
def test_hemisphere_round_trip(lon: float, lat: float, prefix: bool) -> None:
    got = parse_coordinates(format_hemisphere(lon, lat, 7, prefix=prefix))
    assert got == pytest.approx((lon, lat), abs=1e-7)


@given(lons, lats)
def test_dms_round_trip(lon: float, lat: float) -> None:
    text = format_dms(lon, lat, 3)
    got = parse_coordinates(text)
    assert got == pytest.approx((lon, lat), abs=0.001 / 3600 + 1e-12), text


@given(lons, lats)
def test_letters_decide_the_order(lon: float, lat: float) -> None:
    a, b = format_hemisphere(lon, lat, 7).split(" ")
    assert parse_coordinates(f"{b}, {a}") == parse_coordinates(f"{a} {b}")
