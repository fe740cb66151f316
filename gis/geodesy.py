"""Geodesy on the WGS-84 ellipsoid, with no database: circles as polygons (a CAP circle, a
pole inside it), and a point at a distance outside an area, measured in metres on a local
projection (degrees are not square)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyproj
import shapely
from pyproj import Geod
from shapely import MultiPolygon, Polygon, box
from shapely.affinity import translate
from shapely.ops import nearest_points

CIRCLE_VERTICES = 64
OUTSIDE_QUAD_SEGS = 16  # segments per quarter circle of the ring around an area's corners

WGS84 = Geod(ellps="WGS84")

# (xs, ys) -> (xs, ys), element-wise over arrays (shapely.transform, interleaved=False).
Transform = Callable[[Any, Any], tuple[Any, Any]]


def circle_polygon(lon: float, lat: float, radius_m: float) -> Polygon | MultiPolygon:
    """A geodesic circle as a polygon (WGS-84): split at the antimeridian if it crosses it;
    around a pole, the cap from its ring to the pole across every longitude."""
    n = CIRCLE_VERTICES
    azimuths = [360.0 * k / n for k in range(n)]
    lons, lats, _ = WGS84.fwd([lon] * n, [lat] * n, azimuths, [radius_m] * n)
    for pole in (90.0, -90.0):
        if WGS84.inv(lon, lat, lon, pole)[2] < radius_m:
            return _cap_to_pole(lons, lats, pole)
    # Unwrap around the centre so the ring is continuous, then fold back into [-180, 180].
    xs = [((float(x) - lon + 540.0) % 360.0) - 180.0 + lon for x in lons]
    ys = [max(-90.0, min(90.0, float(y))) for y in lats]
    poly = Polygon(list(zip(xs, ys, strict=True)))
    if min(xs) >= -180 and max(xs) <= 180:
        return poly
    parts: list[Polygon] = []
    for shift in (-360.0, 0.0, 360.0):
        piece = translate(poly, xoff=shift).intersection(box(-180, -90, 180, 90))
        parts.extend(p for p in getattr(piece, "geoms", [piece]) if p.geom_type == "Polygon")
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _cap_to_pole(ring_lons: Sequence[float], ring_lats: Sequence[float], pole: float) -> Polygon:
    """The polygon between a ring around ``pole`` (latitude 90 or -90) and the pole: the
    ring in longitude order, closed at the antimeridian and along the pole's edge."""
    ring = sorted(
        ((float(x) + 180.0) % 360.0 - 180.0, float(y))
        for x, y in zip(ring_lons, ring_lats, strict=True)
    )
    # Close the ring at the antimeridian, at the latitude between its two ends.
    (x0, y0), (x1, y1) = ring[0], ring[-1]
    span = (x0 + 180.0) + (180.0 - x1)
    seam = y1 if span == 0 else y1 + (y0 - y1) * (180.0 - x1) / span
    return Polygon([(-180.0, seam), *ring, (180.0, seam), (180.0, pole), (-180.0, pole)])


def local_metres(lon: float, lat: float) -> tuple[Transform, Transform]:
    """``(to_local, to_wgs84)``: WGS-84 degrees to metres on an azimuthal-equidistant
    projection centred on ``(lon, lat)``, and back (true distances from the centre, nearly
    true within a few tens of kilometres of it)."""
    local = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    to_local = pyproj.Transformer.from_crs(4326, local, always_xy=True).transform
    to_wgs84 = pyproj.Transformer.from_crs(local, 4326, always_xy=True).transform
    return to_local, to_wgs84


def point_outside(area: shapely.Geometry, distance_m: float) -> shapely.Point:
    """The point ``distance_m`` outside ``area``'s edge nearest its representative point
    (lon/lat, WGS-84), measured in metres on a local projection centred there."""
    centre = area.representative_point()
    to_local, to_wgs84 = local_metres(centre.x, centre.y)
    shape = shapely.transform(area, to_local, interleaved=False)
    ring = shape.buffer(distance_m, quad_segs=OUTSIDE_QUAD_SEGS).boundary
    point = nearest_points(ring, shape.representative_point())[0]
    return shapely.Point(*to_wgs84(point.x, point.y))
