"""HTTP for routes, isochrones, drive-time matrices and snapping (WGS-84 out)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from shapely.geometry import mapping

from core.errors import InvalidInput, Unavailable
from core.security import require
from core.web import GeoJSONResponse, PrincipalDep
from gis.crs import Crs, to_wgs84
from gis.engine import Closures, Engine, Snap, SnapError
from gis.geojson import GeometryError, parse_geometry
from gis.schemas import (
    ClosuresIn,
    IsochroneFeature,
    IsochroneRequest,
    MatrixRead,
    MatrixRequest,
    RouteFeature,
    RouteRequest,
    SnapRead,
)

router = APIRouter(prefix="/api", tags=["routing"])
CrsParam = Annotated[Crs, Query(description="datum of the input coordinates")]
PointParam = Annotated[str, Query(description="LON,LAT", max_length=100)]
EdgesParam = Annotated[str | None, Query(description="edge ids to avoid, comma-separated")]
ZonesParam = Annotated[
    bool,
    Query(description="honour the roads closed by active warning zones (false: as if open)"),
]
# Set by the app: the standing closures (roads closed by active warning zones) right now.
StandingClosures = Callable[[], Closures]


class NetworkUnavailable(Unavailable):
    code = "network_unavailable"


def engine_of(request: Request) -> Engine:
    engine: Engine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise NetworkUnavailable("the road network is not loaded (run `emergency load-osm`)")
    return engine


def loaded_engine(request: Request) -> Engine | None:
    """The road engine, or None while none is loaded (for advice that may be skipped)."""
    engine: Engine | None = getattr(request.app.state, "engine", None)
    return engine


EngineDep = Annotated[Engine, Depends(engine_of)]
MaybeEngineDep = Annotated[Engine | None, Depends(loaded_engine)]


def parse_point(value: str, crs: Crs = "wgs84") -> tuple[float, float]:
    """``LON,LAT`` in ``crs`` to WGS-84, range-checked."""
    parts = value.split(",")
    try:
        lon, lat = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        lon = lat = math.nan
    return checked(lon, lat, crs)


def checked(lon: float, lat: float, crs: Crs) -> tuple[float, float]:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidInput("a point must be LON,LAT in degrees")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"point ({lon}, {lat}) is out of range (LON,LAT order)")
    return to_wgs84(lon, lat, crs)


def snap(engine: Engine, lon: float, lat: float) -> Snap:
    try:
        return engine.snap(lon, lat)
    except SnapError as exc:
        raise InvalidInput(str(exc)) from exc


def closures_of(body: ClosuresIn | None, edges: str | None, crs: Crs) -> Closures:
    ids: list[int] = []
    if edges:
        try:
            ids = [int(e) for e in edges.split(",") if e.strip()]
        except ValueError as exc:
            raise InvalidInput("closed_edges must be integers, comma-separated") from exc
    polygons = []
    if body is not None:
        ids += body.edge_ids
        for poly in body.polygons:
            try:
                polygons.append(parse_geometry(poly, allowed=("Polygon", "MultiPolygon"), crs=crs))
            except GeometryError as exc:
                raise InvalidInput(f"closure polygon: {exc}") from exc
    return Closures(tuple(ids), tuple(polygons))


def with_standing(request: Request, closures: Closures, zones: bool) -> Closures:
    """``closures`` plus the roads closed by active warning zones, unless ``zones`` is off."""
    source: StandingClosures | None = getattr(request.app.state, "standing_closures", None)
    if not zones or source is None:
        return closures
    extra = source()
    return Closures(closures.edge_ids + extra.edge_ids, closures.polygons + extra.polygons)


def snap_read(s: Snap) -> dict[str, Any]:
    return {
        "lon": round(s.lon, 7),
        "lat": round(s.lat, 7),
        "distance_m": round(s.distance_m, 2),
        "edge_ids": [e for e, _ in s.edges],
    }


def _finite(values: Any) -> list[list[float | None]]:
    return [[float(v) if math.isfinite(v) else None for v in row] for row in values.tolist()]


def _route(
    engine: Engine, a: tuple[float, float], b: tuple[float, float], closures: Closures
) -> dict[str, Any]:
    origin, dest = snap(engine, *a), snap(engine, *b)
    try:
        found = engine.route(origin, dest, closures=closures)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    props: dict[str, Any] = {
        "reachable": found is not None,
        "eta_s": None if found is None else round(found.eta_s, 3),
        "length_m": None if found is None else round(found.length_m, 2),
        "edge_ids": [] if found is None else list(found.edge_ids),
        "origin": snap_read(origin),
        "destination": snap_read(dest),
    }
    geometry = None
    if found is not None:
        coords = found.coords.round(7).tolist()
        if len(coords) == 1:
            coords = coords * 2
        geometry = {"type": "LineString", "coordinates": coords}
    return {"type": "Feature", "geometry": geometry, "properties": props}


@router.get("/route", response_model=RouteFeature, response_class=GeoJSONResponse)
def get_route(
    request: Request,
    principal: PrincipalDep,
    from_: Annotated[str, Query(alias="from", description="LON,LAT", max_length=100)],
    to: PointParam,
    crs: CrsParam = "wgs84",
    closed_edges: EdgesParam = None,
    zones: ZonesParam = True,
) -> dict[str, Any]:
    """The fastest drive between two points: LineString, `eta_s`, `length_m`."""
    require(principal, "read")
    engine = engine_of(request)
    closures = with_standing(request, closures_of(None, closed_edges, crs), zones)
    return _route(engine, parse_point(from_, crs), parse_point(to, crs), closures)


@router.post("/route", response_model=RouteFeature, response_class=GeoJSONResponse)
def post_route(
    request: Request, body: RouteRequest, principal: PrincipalDep, zones: ZonesParam = True
) -> dict[str, Any]:
    """As GET /api/route, with closures (edge ids and polygons) for this request."""
    require(principal, "read")
    engine = engine_of(request)
    closures = with_standing(request, closures_of(body.closures, None, body.crs), zones)
    a = checked(*body.from_, body.crs)
    b = checked(*body.to, body.crs)
    return _route(engine, a, b, closures)


def _isochrone(
    engine: Engine, at: tuple[float, float], seconds: float, closures: Closures
) -> dict[str, Any]:
    origin = snap(engine, *at)
    try:
        area = engine.isochrone(origin, seconds, closures=closures)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    geometry = dict(mapping(area))
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {"seconds": seconds, "origin": snap_read(origin)},
    }


@router.get("/isochrone", response_model=IsochroneFeature, response_class=GeoJSONResponse)
def get_isochrone(
    request: Request,
    principal: PrincipalDep,
    at: PointParam,
    seconds: Annotated[float, Query(gt=0, le=7200)],
    crs: CrsParam = "wgs84",
    closed_edges: EdgesParam = None,
    zones: ZonesParam = True,
) -> dict[str, Any]:
    """The area reachable within `seconds` of driving from `at` (Polygon/MultiPolygon)."""
    require(principal, "read")
    engine = engine_of(request)
    closures = with_standing(request, closures_of(None, closed_edges, crs), zones)
    return _isochrone(engine, parse_point(at, crs), seconds, closures)


@router.post("/isochrone", response_model=IsochroneFeature, response_class=GeoJSONResponse)
def post_isochrone(
    request: Request, body: IsochroneRequest, principal: PrincipalDep, zones: ZonesParam = True
) -> dict[str, Any]:
    require(principal, "read")
    engine = engine_of(request)
    closures = with_standing(request, closures_of(body.closures, None, body.crs), zones)
    return _isochrone(engine, checked(*body.at, body.crs), body.seconds, closures)


@router.post("/drive-times", response_model=MatrixRead)
def post_drive_times(
    request: Request, body: MatrixRequest, principal: PrincipalDep, zones: ZonesParam = True
) -> dict[str, Any]:
    """Drive times (s) and lengths (m) from every source to every target; null = unreachable."""
    require(principal, "read")
    engine = engine_of(request)
    closures = with_standing(request, closures_of(body.closures, None, body.crs), zones)
    sources = [snap(engine, *checked(*p, body.crs)) for p in body.sources]
    targets = [snap(engine, *checked(*p, body.crs)) for p in body.targets]
    try:
        result = engine.matrix(
            sources, targets, closures=closures, limit_s=body.limit_s or math.inf
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    return {
        "durations_s": _finite(result.durations_s.round(3)),
        "distances_m": _finite(result.distances_m.round(2)),
        "sources": [snap_read(s) for s in sources],
        "targets": [snap_read(t) for t in targets],
    }


@router.get("/snap", response_model=SnapRead)
def get_snap(
    request: Request, principal: PrincipalDep, at: PointParam, crs: CrsParam = "wgs84"
) -> dict[str, Any]:
    """The nearest point on the road network, with its distance in metres."""
    require(principal, "read")
    return snap_read(snap(engine_of(request), *parse_point(at, crs)))
