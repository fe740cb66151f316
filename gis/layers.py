"""Read a city's own GIS files into WGS-84: GeoJSON, GeoPackage, Shapefile, CSV.

One reader for resource imports and road layers. Files are read with geopandas through
pyogrio (GDAL); every geometry comes back in EPSG:4326, two-dimensional, with the file's
columns kept and the frame's index the file's 1-based row number (a CSV's first data row,
after the header, is row 1), so errors can name the row a person sees.

Coordinate systems: the file's own (a Shapefile's ``.prj``, a GeoPackage's SRS), or the one
given by ``crs``, which wins. That can be any code pyproj knows (``EPSG:4490`` CGCS2000,
``EPSG:4547`` its 3-degree Gauss-Kruger zone at 114E, ...) or ``gcj02`` / ``bd09``, the
offsets of Chinese map apps, which are not coordinate systems pyproj knows: they are
undone by :func:`gis.crs.to_wgs84_array`. GeoJSON and CSV without a CRS are WGS-84 (RFC 7946);
a Shapefile or GeoPackage without one is refused rather than guessed.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from numpy.typing import NDArray
from pyogrio.errors import DataLayerError, DataSourceError

from gis.crs import CHINA_OFFSETS, FloatArray, to_wgs84_array

SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip", ".csv")
# Columns a CSV's longitude and latitude are found in when the mapping names none.
LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")


class LayerError(ValueError):
    """A file that cannot be read as a layer; the message says why."""


def read_layer(
    path: Path | str,
    *,
    crs: str | None = None,
    lon: str | None = None,
    lat: str | None = None,
    layer: str | None = None,
    points: bool | None = True,
) -> gpd.GeoDataFrame:
    """The features of ``path`` in EPSG:4326.

    Parameters
    ----------
    path
        ``.geojson``/``.json``, ``.gpkg``, ``.shp`` (with its sidecars), ``.zip`` (a zipped
        Shapefile) or ``.csv`` (points from two columns).
    crs
        The coordinate system the coordinates are in, when the file does not say or says
        wrong: ``EPSG:nnnn`` (or anything pyproj reads), ``wgs84``, ``gcj02``, ``bd09``.
    lon, lat
        A CSV's coordinate columns (default: the first of :data:`LON_NAMES` /
        :data:`LAT_NAMES` present, case-insensitive).
    layer
        A GeoPackage's layer (default: its first).
    points
        False for a CSV table without places (stock): no coordinate columns needed, no
        geometry; None: points where the CSV has coordinate columns (units may have none).

    Returns
    -------
    geopandas.GeoDataFrame
        Index: the 1-based row number. Geometry: WGS-84, 2-D; missing where the row had
        none (a CSV row without numbers). Other columns as the file has them.

    Raises
    ------
    LayerError
        Unknown format, missing file, unreadable content, unknown ``crs``, no CRS where one
        is needed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LayerError(f"{path.name}: not a layer this reads (one of {', '.join(SUFFIXES)})")
    if not path.is_file():
        raise LayerError(f"no such file: {path}")
    offset, target = _parse_crs(crs)
    frame = _read_csv(path, lon, lat, points) if suffix == ".csv" else _read_gdal(path, layer)
    if len(frame):
        frame.index = pd.RangeIndex(1, len(frame) + 1)
    source = target if target is not None else frame.crs
    if source is None and offset is None:
        if suffix not in (".geojson", ".json", ".csv"):
            raise LayerError(
                f"{path.name} does not say its coordinate system (no .prj or SRS): "
                "give crs: in the mapping (e.g. EPSG:4490 or EPSG:4547)"
            )
        source = pyproj.CRS.from_epsg(4326)
    geoms = shapely.force_2d(np.asarray(frame.geometry.array, dtype=object))
    if offset is not None:
        geoms = shapely.transform(geoms, lambda xy: _undo_offset(xy, offset))
        return frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=4326))
    out = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=source))
    if not out.crs.equals(pyproj.CRS.from_epsg(4326)):
        try:
            out = out.to_crs(4326)
        except pyproj.exceptions.ProjError as exc:
            raise LayerError(f"cannot reproject from {out.crs.to_string()}: {exc}") from exc
    return out


def _parse_crs(crs: str | None) -> tuple[str | None, pyproj.CRS | None]:
    """(a Chinese offset or None, a pyproj CRS or None) for a mapping's ``crs``."""
    if crs is None:
        return None, None
    name = str(crs).strip()
    low = name.lower().replace("-", "")
    if low in CHINA_OFFSETS:
        return low, None
    if low == "wgs84":
        return None, pyproj.CRS.from_epsg(4326)
    try:
        return None, pyproj.CRS.from_user_input(name)
    except pyproj.exceptions.CRSError as exc:
        raise LayerError(
            f"unknown crs {name!r}: give EPSG:nnnn, wgs84, gcj02 or bd09 ({exc})"
        ) from exc


def _read_gdal(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    try:
        frame = gpd.read_file(path, engine="pyogrio", layer=layer)
    except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
        raise LayerError(f"cannot read {path.name}: {_first_line(exc)}") from exc
    if not isinstance(frame, gpd.GeoDataFrame) or frame.geometry.name not in frame:
        raise LayerError(f"{path.name} has no geometry column")
    return frame


def _read_csv(
    path: Path, lon: str | None, lat: str | None, points: bool | None
) -> gpd.GeoDataFrame:
    frame: pd.DataFrame | None = None
    # Chinese offices often save CSV as GBK from Excel: try UTF-8 first, then GB18030.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise LayerError(f"cannot read {path.name}: {_first_line(exc)}") from exc
    if frame is None:
        raise LayerError(f"{path.name} is neither UTF-8 nor GB18030 text")
    if points is None and lon is None and lat is None:
        lowered = {str(c).strip().lower() for c in frame.columns}
        points = bool(lowered & set(LON_NAMES)) or bool(lowered & set(LAT_NAMES))
    if not points:
        empty = gpd.GeoSeries([None] * len(frame), index=frame.index)
        return gpd.GeoDataFrame(frame, geometry=empty)
    lon_col = _column(frame, lon, LON_NAMES, "lon", path)
    lat_col = _column(frame, lat, LAT_NAMES, "lat", path)
    x = pd.to_numeric(frame[lon_col].str.strip(), errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(frame[lat_col].str.strip(), errors="coerce").to_numpy(dtype=float)
    shapes: NDArray[np.object_] = np.asarray(shapely.points(x, y), dtype=object)
    shapes[~(np.isfinite(x) & np.isfinite(y))] = None
    rest = frame.drop(columns=[lon_col, lat_col])
    return gpd.GeoDataFrame(rest, geometry=gpd.GeoSeries(shapes, index=frame.index))


def _column(
    frame: pd.DataFrame, given: str | None, names: tuple[str, ...], what: str, path: Path
) -> str:
    if given is not None:
        if given not in frame.columns:
            raise LayerError(f"{path.name} has no column {given!r} (the mapping's {what})")
        return given
    by_lower = {str(c).strip().lower(): str(c) for c in frame.columns}
    for name in names:
        if name in by_lower:
            return by_lower[name]
    raise LayerError(
        f"{path.name}: no {what} column (looked for {', '.join(names)}); "
        f"name it with {what}: in the mapping"
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _undo_offset(xy: FloatArray, crs: str) -> FloatArray:
    lon, lat = to_wgs84_array(xy[:, 0], xy[:, 1], crs)
    return np.column_stack((lon, lat))
