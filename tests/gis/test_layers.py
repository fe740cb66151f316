"""gis.layers: reading GIS files into WGS-84, and the vectorised GCJ-02/BD-09 inverse."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import prcoords
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from gis.crs import from_wgs84, to_wgs84
from gis.layers import LayerError, read_layer, to_wgs84_array, wgs84_to_gcj02

CHINA_LON = st.floats(min_value=73.7, max_value=134.9, allow_nan=False)
CHINA_LAT = st.floats(min_value=18.2, max_value=53.5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(lon=CHINA_LON, lat=CHINA_LAT)
def test_gcj02_forward_is_prcoords_exactly(lon: float, lat: float) -> None:
    x, y = wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    ref = prcoords.wgs_gcj((lat, lon), False)
    assert abs(x[0] - ref.lon) < 1e-12
    assert abs(y[0] - ref.lat) < 1e-12


@settings(max_examples=300, deadline=None)
@given(lon=CHINA_LON, lat=CHINA_LAT, offset=st.sampled_from(["gcj02", "bd09"]))
def test_the_inverse_undoes_the_offset_to_1e9_degrees(lon: float, lat: float, offset: str) -> None:
    shifted = from_wgs84(lon, lat, offset)  # type: ignore[arg-type]
    x, y = to_wgs84_array(np.array([shifted[0]]), np.array([shifted[1]]), offset)
    assert abs(x[0] - lon) < 1e-9
    assert abs(y[0] - lat) < 1e-9
    # and agrees with the scalar conversion the API uses (prcoords stops iterating near
    # 1e-7 degrees, a centimetre: this one goes on to 1e-9)
    ref = to_wgs84(shifted[0], shifted[1], offset)  # type: ignore[arg-type]
    assert abs(x[0] - ref[0]) < 1e-6
    assert abs(y[0] - ref[1]) < 1e-6


def test_outside_china_positions_are_kept() -> None:
    lon, lat = np.array([24.94, -83.0, 114.3]), np.array([60.17, 39.99, 30.6])
    x, y = to_wgs84_array(lon, lat, "gcj02")
    assert list(x[:2]) == [24.94, -83.0]
    assert list(y[:2]) == [60.17, 39.99]
    assert abs(x[2] - 114.3) > 1e-4  # Wuhan is moved


def test_read_layer_drops_heights_and_numbers_rows(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"名称": ["甲", "乙"]},
        geometry=[shapely.Point(114.3, 30.6, 25.0), shapely.Point(114.31, 30.61, 30.0)],
        crs=4326,
    )
    path = tmp_path / "z.gpkg"
    frame.to_file(path, engine="pyogrio")
    out = read_layer(path)
    assert list(out.index) == [1, 2]
    assert not out.geometry.has_z.any()
    assert out.geometry.iloc[0].equals(shapely.Point(114.3, 30.6))


def test_csv_columns_found_by_chinese_names_and_bad_numbers_left_empty(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("名称,经度,纬度\n甲,114.3,30.6\n乙,,30.6\n丙,东经114,30.6\n", encoding="utf-8")
    out = read_layer(path)
    assert out.geometry.iloc[0].equals(shapely.Point(114.3, 30.6))
    assert out.geometry.iloc[1] is None
    assert out.geometry.iloc[2] is None
    assert list(out.columns) == ["名称", "geometry"]


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("a.kml", "x", {}, "not a layer this reads"),
        ("a.csv", "name,x1,y1\na,1,2\n", {}, "no lon column"),
        ("a.csv", "name,lon,lat\na,1,2\n", {"lon": "LNG"}, "no column 'LNG'"),
        ("a.geojson", "{not json", {}, "cannot read a.geojson"),
        ("a.geojson", '{"type":"FeatureCollection","features":[]}', {"crs": "EPSG:0"},
         "unknown crs"),
    ],
)  # fmt: skip
def test_unreadable_layers_say_why(
    tmp_path: Path, name: str, content: str, kwargs: dict[str, str], message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LayerError, match=message):
        read_layer(path, **kwargs)  # type: ignore[arg-type]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="no such file"):
        read_layer(tmp_path / "gone.gpkg")
