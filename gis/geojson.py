"""GeoJSON geometry in and out: validation, datum conversion and WKB for PostGIS.

Every geometry that reaches the database passes through :func:`parse_geometry`, so
out-of-range coordinates, non-finite numbers, unclosed rings and self-intersections are
refused with a clear message before anything is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely
from shapely import Geometry
from shapely.geometry import mapping, shape
from shapely.validation import explain_validity

from gis.crs import CRS_NAMES, Crs, to_wgs84

MAX_VERTICES = 100_000


class GeometryError(ValueError):
    """A geometry that cannot be stored, with a message fit for the API user."""


def _positions(coords: Any) -> Iterable[Any]:
    """Yield every position (innermost list of numbers) of a GeoJSON coordinates array."""
    if isinstance(coords, list | tuple) and coords and isinstance(coords[0], int | float):
        yield coords
        return
    if not isinstance(coords, list | tuple):
        raise GeometryError("coordinates must be nested arrays of numbers")
    for part in coords:
        yield from _positions(part)


def _check_positions(geometry: dict[str, Any]) -> None:
    for count, pos in enumerate(_positions(geometry.get("coordinates")), start=1):
        if count > MAX_VERTICES:
            raise GeometryError(f"geometry has more than {MAX_VERTICES} vertices")
        if len(pos) < 2 or len(pos) > 3:
            raise GeometryError("a position must be [longitude, latitude]")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in pos):
            raise GeometryError("coordinates must be numbers")
        lon, lat = float(pos[0]), float(pos[1])
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise GeometryError("coordinates must be finite numbers")
        if not -180.0 <= lon <= 180.0:
            raise GeometryError(f"longitude {lon} is out of range [-180, 180]")
        if not -90.0 <= lat <= 90.0:
            raise GeometryError(f"latitude {lat} is out of range [-90, 90] (GeoJSON is lon,lat)")


def parse_geometry(
    geometry: Any, *, allowed: tuple[str, ...], crs: str | None = "wgs84"
) -> Geometry:
    """Validate a GeoJSON geometry object and return it as WGS-84 shapely geometry.

    Parameters
    ----------
    geometry : dict
        A GeoJSON geometry object (RFC 7946), coordinates as ``[lon, lat]``.
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
    if gtype not in allowed:
        raise GeometryError(f"geometry type must be one of {', '.join(allowed)}, not {gtype!r}")
    crs_name = crs or "wgs84"
    if crs_name not in CRS_NAMES:
        raise GeometryError(f"crs must be one of {', '.join(CRS_NAMES)}")
    _check_positions(geometry)
    _check_rings(geometry)
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise GeometryError(f"malformed {gtype}: {exc}") from exc
    if geom.is_empty:
        raise GeometryError("geometry is empty")
    if crs_name != "wgs84":
        geom = transform_to_wgs84(geom, crs_name)  # type: ignore[arg-type]
    if not geom.is_valid:
        raise GeometryError(f"invalid geometry: {explain_validity(geom)}")
    return geom


def transform_to_wgs84(geom: Geometry, crs: Crs) -> Geometry:
    """Apply :func:`gis.crs.to_wgs84` to every vertex of ``geom``."""

    def _fn(coords: np.ndarray) -> np.ndarray:
        return np.array([to_wgs84(float(x), float(y), crs) for x, y in coords], dtype=float)

    return shapely.transform(geom, _fn)


def _check_rings(geometry: dict[str, Any]) -> None:
    """RFC 7946: linear rings are closed and have at least four positions."""
    gtype = geometry["type"]
    polygons = [geometry["coordinates"]] if gtype == "Polygon" else geometry["coordinates"]
    for rings in polygons if gtype in ("Polygon", "MultiPolygon") else []:
        if not rings:
            raise GeometryError("a polygon needs at least one ring")
        for ring in rings:
            if len(ring) < 4:
                raise GeometryError("a polygon ring needs at least four positions")
            if list(ring[0]) != list(ring[-1]):
                raise GeometryError("a polygon ring must be closed (first position = last)")


def to_geojson(geom: Geometry, *, precision: int = 7) -> dict[str, Any]:
    """GeoJSON geometry dict of ``geom`` with coordinates rounded to ``precision`` decimals."""
    rounded = shapely.set_precision(geom, 10.0**-precision) if precision else geom
    return dict(mapping(rounded))
