"""gis.layers: reading GIS files into WGS-84 (the GCJ-02/BD-09 conversion: test_crs.py)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from gis.layers import LayerError, read_layer


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
