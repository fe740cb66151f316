"""Road vector tiles over HTTP: ``GET /tiles/roads/{z}/{x}/{y}.mvt``.

Tiles are public map data (no authentication). Each response carries an ``ETag`` made from
the loaded network (file SHA-256, profile key, load time), the tile format version and
z/x/y, and ``Cache-Control: public``; ``If-None-Match`` with that tag answers 304. A tile
with no road answers 204 No Content (MapLibre draws it as an empty tile). Recent tiles are
kept in process, keyed by their ETag, so a reload of the network never serves an old tile.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Header, Response
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.web import SessionDep
from gis.roads_db import MAX_ZOOM, read_roads_meta, road_tile, tile_range_ok

MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
# Bump when the tile content changes for the same data (layers, attributes, zoom rules).
TILE_FORMAT_VERSION = 1
# Roads change only when an operator reloads them; the ETag revalidates after that.
TILE_MAX_AGE_S = 3600
CACHE_CONTROL = f"public, max-age={TILE_MAX_AGE_S}"

router = APIRouter(prefix="/tiles", tags=["tiles"])


class TileCache:
    """A thread-safe LRU of encoded tiles by ETag, bounded by total bytes."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._tiles: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            tile = self._tiles.get(key)
            if tile is None:
                self.misses += 1
                return None
            self._tiles.move_to_end(key)
            self.hits += 1
            return tile

    def put(self, key: str, tile: bytes) -> None:
        if len(tile) > self.max_bytes:
            return
        with self._lock:
            old = self._tiles.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._tiles[key] = tile
            self._bytes += len(tile)
            while self._bytes > self.max_bytes:
                _, dropped = self._tiles.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._tiles)


tile_cache = TileCache()


def tile_etag(session: Session, layer: str, z: int, x: int, y: int) -> str:
    """A strong ETag for tile z/x/y of ``layer`` as the tables hold it now."""
    meta = read_roads_meta(session)
    network = (
        "none" if meta is None else f"{meta.sha256}:{meta.profile_key}:{meta.loaded_at.isoformat()}"
    )
    blob = f"{TILE_FORMAT_VERSION}:{network}:{layer}:{z}/{x}/{y}".encode()
    return '"' + hashlib.sha256(blob).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, or ``*``)."""
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


def check_tile(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidInput(f"zoom z must be between 0 and {MAX_ZOOM}")
    if not tile_range_ok(z, x, y):
        raise InvalidInput(f"at zoom {z}, x and y must be between 0 and {2**z - 1}")


@router.get(
    "/roads/{z}/{x}/{y}.mvt",
    response_class=Response,
    responses={
        200: {"content": {MVT_MEDIA_TYPE: {}}, "description": "the tile (layer `roads`)"},
        204: {"description": "no road in this tile"},
        304: {"description": "unchanged since the ETag sent in If-None-Match"},
        422: {"description": "z/x/y out of range"},
    },
)
def roads_tile(
    z: int,
    x: int,
    y: int,
    session: SessionDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The road network as a Mapbox vector tile (Web Mercator XYZ scheme).

    Layer ``roads``: one line per road piece between junctions (each two-way road once),
    with ``highway`` and ``speed_kph``; from zoom 12 on also ``id`` (the road edge id),
    ``reverse_id`` (the opposite direction, absent on one-way pieces), ``travel_time_s``
    and ``length_m``. Minor classes appear as zoom grows: motorway and trunk up to z9,
    primary from z10, secondary from z12, tertiary from z13, every class from z14.
    """
    check_tile(z, x, y)
    etag = tile_etag(session, "roads", z, x, y)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    tile = tile_cache.get(etag)
    if tile is None:
        tile = road_tile(session, z=z, x=x, y=y)
        tile_cache.put(etag, tile)
    if not tile:
        return Response(status_code=204, headers=headers)
    return Response(tile, media_type=MVT_MEDIA_TYPE, headers=headers)
