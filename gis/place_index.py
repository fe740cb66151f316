"""The place index in PostGIS: replaced whole from extracted records, searched with pg_trgm.

:func:`write_places` replaces the ``place`` table in the caller's transaction (TRUNCATE,
then binary COPY); :func:`search_places` ranks by trigram word similarity of the folded
query (the ``<%`` operator, so the GIN index finds the candidates), then by distance;
:func:`nearest_places` answers reverse lookups nearest first.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import Float, Select, case, cast, func, literal, null, or_, select, text
from sqlalchemy.orm import Session

from gis.models import Place
from gis.place_extract import PlaceRecord, fold
from gis.roads_db import raw_connection

SRID = 4326
_EWKB_POINT = struct.pack("<BII", 1, 0x20000001, SRID)
_COPY = "COPY place (id, name, kind, search, osm_type, osm_id, geom) FROM STDIN (FORMAT BINARY)"
# Reverse lookups take this many candidates nearest in degrees (what the GiST index
# orders by), then re-rank them in metres: a degree of longitude is shorter than one of
# latitude away from the equator, so the nearest in degrees is not always the nearest.
_KNN_CANDIDATES = 8


@dataclass(frozen=True)
class PlaceHit:
    """One answer: WGS-84 degrees; ``distance_m`` only when a reference point was given."""

    id: int
    name: str
    kind: str
    lon: float
    lat: float
    score: float
    distance_m: float | None


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds Chinese, Japanese or Korean script (ideographs, kana, hangul)."""
    return any(
        "\u2e80" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" or "\uf900" <= c <= "\ufaff"
        for c in text
    )


def write_places(conn: Session, records: Iterable[PlaceRecord]) -> int:
    """Replace the place index with ``records`` in the caller's transaction (never commits).

    Readers keep seeing the old index until the caller commits. Returns the rows written.
    """
    raw = raw_connection(conn)
    n = 0
    with raw.cursor() as cur:
        cur.execute("TRUNCATE place")
        with cur.copy(_COPY) as copy:
            copy.set_types(["int8", "text", "text", "text", "text", "int8", "bytea"])
            for n, r in enumerate(records, start=1):
                geom = _EWKB_POINT + struct.pack("<dd", r.lon, r.lat)
                copy.write_row((n, r.name, r.kind, r.search, r.osm_type, r.osm_id, geom))
        cur.execute("ANALYZE place")
    return n


def _point(lon: float, lat: float) -> Any:
    return func.ST_SetSRID(func.ST_MakePoint(lon, lat), SRID)


def _distance(near: tuple[float, float] | None) -> Any:
    if near is None:
        return cast(null(), Float)
    return func.ST_Distance(cast(Place.geom, Geography), cast(_point(*near), Geography))


def _hits(session: Session, query: Select[Any]) -> list[PlaceHit]:
    rows = session.execute(query).all()
    return [
        PlaceHit(
            r.id,
            r.name,
            r.kind,
            r.lon,
            r.lat,
            round(float(r.score), 4),
            None if r.distance_m is None else round(float(r.distance_m), 1),
        )
        for r in rows
    ]


def _columns(score: Any, distance: Any) -> Sequence[Any]:
    return (
        Place.id,
        Place.name,
        Place.kind,
        func.ST_X(Place.geom).label("lon"),
        func.ST_Y(Place.geom).label("lat"),
        score.label("score"),
        distance.label("distance_m"),
    )


def search_places(
    session: Session, *, q: str, near: tuple[float, float] | None, limit: int
) -> list[PlaceHit]:
    """Places whose names match ``q`` best, then nearest to ``near`` (WGS-84 lon, lat).

    Parameters
    ----------
    session
        Any session; only ``place`` is read.
    q
        The query as typed; folded as the index was (case, accents, width).
    near
        Optional reference point (WGS-84 degrees): ranks equal matches by distance and
        adds ``distance_m`` (metres on the spheroid).
    limit
        At most this many hits.

    Returns
    -------
    list of PlaceHit
        Ordered by ``score`` (pg_trgm ``word_similarity``: 1 when ``q`` is a whole word
        run of the name, less for misspellings), then distance, then similarity to the
        whole name. A query in CJK script also matches names containing it as a substring
        (short CJK words have too few trigrams to pass the similarity threshold).
    """
    needle = fold(q)
    similar = literal(needle).op("<%")(Place.search)
    score: Any = func.word_similarity(needle, Place.search)
    condition: Any = similar
    if has_cjk(needle):
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        contains = Place.search.like(pattern)
        condition = or_(similar, contains)
        score = func.greatest(score, case((contains, 1.0), else_=0.0))
    distance = _distance(near)
    order: list[Any] = [score.desc()]
    if near is not None:
        order.append(distance)
    # Ties: the closest whole name first (the street before its addresses); the search text
    # would not do, it holds the other names too.
    order += [func.similarity(needle, func.lower(Place.name)).desc(), Place.id]
    query = select(*_columns(score, distance)).where(condition).order_by(*order).limit(limit)
    # The planner prices a scan of a city's few thousand rows below the GIN index, but
    # word_similarity on every row is what costs (Helsinki: 13 ms scanning, 3 ms through
    # the index). Only for this transaction: a GET's session ends with it.
    session.execute(text("SET LOCAL enable_seqscan = off"))
    return _hits(session, query)


def nearest_places(session: Session, *, near: tuple[float, float], limit: int) -> list[PlaceHit]:
    """The addresses and places nearest to ``near`` (WGS-84 lon, lat), nearest first.

    Streets are left out: their point is only somewhere along them. ``score`` is 1.
    """
    point = _point(*near)
    candidates = (
        select(Place.id)
        .where(Place.kind != "street")
        .order_by(Place.geom.op("<->")(point))
        .limit(limit * _KNN_CANDIDATES)
        .scalar_subquery()
    )
    distance = _distance(near)
    query = (
        select(*_columns(literal(1.0, type_=Float), distance))
        .where(Place.id.in_(candidates))
        .order_by(distance, Place.id)
        .limit(limit)
    )
    return _hits(session, query)


def place_count(session: Session) -> int:
    """Rows in the place index."""
    return int(session.scalar(select(func.count()).select_from(Place)) or 0)
