"""GeoJSON geometry in and out: validation, datum conversion and WKB for PostGIS.

Every geometry that reaches the database passes through :func:`parse_geometry`, so
out-of-range coordinates, non-finite numbers, unclosed rings and self-intersections are
refused with a clear message before anything is written.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
from shapely import Geometry
from shapely.errors import ShapelyError
from shapely.geometry import mapping, shape
from shapely.validation import explain_validity

from gis.crs import CRS_NAMES, Crs, to_wgs84_array

MAX_VERTICES = 100_000

# How deep each type's coordinates nest above a position (0: the position itself), and
# that shape in words for the message when they nest otherwise. Walking to exactly this
# depth bounds the work whatever the client sends (900 nested arrays used to exhaust
# Python's recursion and answer 500).
DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
SHAPES = {
    "Point": "[lon, lat]",
    "MultiPoint": "[[lon, lat], ...]",
    "LineString": "[[lon, lat], ...]",
    "MultiLineString": "[[[lon, lat], ...], ...] (lines)",
    "Polygon": "[[[lon, lat], ...], ...] (rings)",
    "MultiPolygon": "[[[[lon, lat], ...], ...], ...] (polygons of rings)",
}
# The fewest positions in a line, and in a linear ring (RFC 7946 3.1.6).
MIN_LINE, MIN_RING = 2, 4


class GeometryError(ValueError):
    """A geometry that cannot be stored, with a message fit for the API user."""


class _Walk:
    """Coordinates checked and copied as plain ``[lon, lat]`` floats, counting positions."""

    def __init__(self, gtype: str) -> None:
        self.gtype = gtype
        self.count = 0

    def nested_wrongly(self) -> GeometryError:
        return GeometryError(
            f"coordinates must be nested arrays of numbers: a {self.gtype} has {SHAPES[self.gtype]}"
        )

    def array(self, coords: Any, depth: int) -> list[Any]:
        if depth == 0:
            return self.position(coords)
        if not isinstance(coords, list | tuple):
            raise self.nested_wrongly()
        return [self.array(part, depth - 1) for part in coords]

    def position(self, pos: Any) -> list[float]:
        self.count += 1
        if self.count > MAX_VERTICES:
            raise GeometryError(f"geometry has more than {MAX_VERTICES} vertices")
        if not isinstance(pos, list | tuple) or any(isinstance(v, list | tuple) for v in pos):
            raise self.nested_wrongly()
        if len(pos) < 2 or len(pos) > 3:
            raise GeometryError("a position must be [longitude, latitude]")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in pos):
            raise GeometryError("coordinates must be numbers")
        try:
            values = [float(v) for v in pos]
        except OverflowError:  # an integer literal of 400 digits is no float
            raise GeometryError("coordinates must be finite numbers") from None
        if not all(math.isfinite(v) for v in values):
            raise GeometryError("coordinates must be finite numbers")
        lon, lat = values[0], values[1]
        if not -180.0 <= lon <= 180.0:
            raise GeometryError(f"longitude {lon} is out of range [-180, 180]")
        if not -90.0 <= lat <= 90.0:
            raise GeometryError(f"latitude {lat} is out of range [-90, 90] (GeoJSON is lon,lat)")
        # An altitude is checked but not kept: every geometry column is 2-D.
        return [lon, lat]


def _coordinates(geometry: dict[str, Any], gtype: str) -> Any:
    """The geometry's coordinates, checked and as 2-D floats, rings and lines counted."""
    if "coordinates" not in geometry:
        raise GeometryError(f"coordinates must be nested arrays of numbers ({SHAPES[gtype]})")
    coords = _Walk(gtype).array(geometry["coordinates"], DEPTH[gtype])
    if gtype == "LineString":
        _check_line(coords)
    elif gtype == "MultiLineString":
        for line in coords:
            _check_line(line)
    elif gtype in ("Polygon", "MultiPolygon"):
        _check_rings([coords] if gtype == "Polygon" else coords)
    return coords


def _check_line(line: list[list[float]]) -> None:
    if len(line) < MIN_LINE:
        raise GeometryError(f"a line needs at least {MIN_LINE} positions")


def _check_rings(polygons: list[list[list[list[float]]]]) -> None:
    """RFC 7946: linear rings are closed and have at least four positions."""
    for rings in polygons:
        if not rings:
            raise GeometryError("a polygon needs at least one ring")
        for ring in rings:
            if len(ring) < MIN_RING:
                raise GeometryError("a polygon ring needs at least four positions")
            if ring[0] != ring[-1]:
                raise GeometryError("a polygon ring must be closed (first position = last)")


def parse_geometry(
    geometry: Any, *, allowed: tuple[str, ...], crs: str | None = "wgs84"
) -> Geometry:
    """Validate a GeoJSON geometry object and return it as 2-D WGS-84 shapely geometry.

    Parameters
    ----------
    geometry : dict
        A GeoJSON geometry object (RFC 7946), coordinates as ``[lon, lat]`` or
        ``[lon, lat, altitude]`` (the altitude is checked, then dropped).
    allowed : tuple of str
        GeoJSON types accepted here, e.g. ``("Point",)``.
    crs : {"wgs84", "gcj02", "bd09"}, optional
        Datum of the input coordinates; converted to WGS-84.

    Raises
    ------
    GeometryError
        With a user-facing message, for anything that must not be stored.
    """
    if not isinstance(geometry, dict):
        raise GeometryError("geometry must be a GeoJSON geometry object")
    gtype = geometry.get("type")
    if not isinstance(gtype, str) or gtype not in allowed or gtype not in DEPTH:
        raise GeometryError(f"geometry type must be one of {', '.join(allowed)}, not {gtype!r}")
    crs_name = crs or "wgs84"
    if crs_name not in CRS_NAMES:
        raise GeometryError(f"crs must be one of {', '.join(CRS_NAMES)}")
    coords = _coordinates(geometry, gtype)
    try:
        geom = shape({"type": gtype, "coordinates": coords})
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, ShapelyError) as exc:
        raise GeometryError(f"malformed {gtype}: {exc}") from exc
    if geom.is_empty:
        raise GeometryError("geometry is empty")
    if crs_name != "wgs84":
        geom = transform_to_wgs84(geom, crs_name)  # type: ignore[arg-type]
    if not geom.is_valid:
        raise GeometryError(f"invalid geometry: {explain_validity(geom)}")
    return geom


def transform_to_wgs84(geom: Geometry, crs: Crs) -> Geometry:
    """Apply :func:`gis.crs.to_wgs84_array` to every vertex of ``geom``."""

    def _fn(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(to_wgs84_array(coords[:, 0], coords[:, 1], crs))

    return shapely.transform(geom, _fn)


def to_geojson(geom: Geometry, *, precision: int = 7) -> dict[str, Any]:
    """GeoJSON geometry dict of ``geom`` with coordinates rounded to ``precision`` decimals."""
    rounded = shapely.set_precision(geom, 10.0**-precision) if precision else geom
    return dict(mapping(rounded))
