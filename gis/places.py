"""HTTP for offline place search (call-taking): names, addresses, pasted coordinates."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from core.errors import InvalidInput
from core.security import require
from core.web import GeoJSONResponse, PrincipalDep, SessionDep
from gis.coordinates import CoordinateError, format_hemisphere, parse_coordinates
from gis.crs import to_wgs84
from gis.place_index import PlaceHit, nearest_places, search_places
from gis.router import CrsParam, parse_point

router = APIRouter(prefix="/api", tags=["places"])
MAX_QUERY = 200
MAX_LIMIT = 50
SEARCH_LIMIT = 10  # default hits for a search
NEAREST_LIMIT = 5  # default hits for a reverse lookup


EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS-84 positions."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(a, 1.0)))


class PlaceProperties(BaseModel):
    name: str
    kind: str
    score: float
    distance_m: float | None = None


class PlaceFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    id: int | None = None
    geometry: dict[str, Any]
    properties: PlaceProperties


class PlaceCollection(BaseModel):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[PlaceFeature]


def _feature(hit: PlaceHit) -> dict[str, Any]:
    props: dict[str, Any] = {"name": hit.name, "kind": hit.kind, "score": hit.score}
    if hit.distance_m is not None:
        props["distance_m"] = hit.distance_m
    return {
        "type": "Feature",
        "id": hit.id,
        "geometry": {"type": "Point", "coordinates": [round(hit.lon, 7), round(hit.lat, 7)]},
        "properties": props,
    }


def _coordinates_hit(q: str, near: tuple[float, float] | None, crs: Any) -> dict[str, Any] | None:
    try:
        pasted = parse_coordinates(q)
    except CoordinateError as exc:
        raise InvalidInput(f"q looks like coordinates but {exc}") from exc
    if pasted is None:
        return None
    lon, lat = to_wgs84(*pasted, crs)
    distance = None if near is None else round(haversine_m(lon, lat, *near), 1)
    hit = PlaceHit(0, format_hemisphere(lon, lat), "coordinates", lon, lat, 1.0, distance)
    feature = _feature(hit)
    del feature["id"]
    return feature


@router.get("/places", response_model=PlaceCollection, response_class=GeoJSONResponse)
def get_places(
    session: SessionDep,
    principal: PrincipalDep,
    q: Annotated[
        str | None,
        Query(description="a name, an address or pasted coordinates", max_length=MAX_QUERY),
    ] = None,
    near: Annotated[
        str | None, Query(description="LON,LAT: rank by distance from here", max_length=100)
    ] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_LIMIT, description="hits (default 10 for q, 5 nearest)"),
    ] = None,
    crs: CrsParam = "wgs84",
) -> GeoJSONResponse:
    """Offline place search: addresses, streets and named places from the loaded OSM file.

    With `q`: best trigram matches (typos and accents forgiven), then nearest to `near`;
    coordinates pasted into `q` (`lon,lat`, `60.17N 24.94E`, `60°10'12"N 24°56'24"E`) come
    back as one feature of kind `coordinates`. Without `q`: the addresses and places
    nearest to `near`. `crs` is the datum of `near` and of pasted coordinates."""
    require(principal, "places.read")
    text = (q or "").strip()
    where = None if near is None else parse_point(near, crs)
    if not text and where is None:
        raise InvalidInput("give q (what to search for) or near (LON,LAT), or both")
    features: list[dict[str, Any]]
    if not text:
        assert where is not None
        hits = nearest_places(session, near=where, limit=limit or NEAREST_LIMIT)
        features = [_feature(h) for h in hits]
    else:
        pasted = _coordinates_hit(text, where, crs)
        if pasted is not None:
            features = [pasted]
        else:
            hits = search_places(session, q=text, near=where, limit=limit or SEARCH_LIMIT)
            features = [_feature(h) for h in hits]
    return GeoJSONResponse({"type": "FeatureCollection", "features": features})
