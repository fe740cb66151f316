"""Write a compiled road graph into PostGIS and read it back as metadata and map tiles.

:func:`write_roads` replaces ``road_node``, ``road_edge`` and ``road_network`` with one
graph in the caller's transaction (TRUNCATE, then binary COPY: Porto's 63k nodes and 147k
edges load in seconds); the caller commits. :func:`road_tile` builds a Mapbox vector tile of
the roads with ``ST_AsMVTGeom -> cte -> ST_AsMVT``, z/x/y as bound parameters.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from sqlalchemy import Connection, Integer, and_, bindparam, func, literal, or_, select
from sqlalchemy.orm import Session

from gis.graph import RoadGraph, reverse_edges
from gis.models import WEB_MERCATOR, RoadEdge, RoadNetwork

SRID = 4326
# EWKB (little endian): type with the SRID flag, then the SRID.
_EWKB_POINT = struct.pack("<BII", 1, 0x20000001, SRID)
_EWKB_LINE = struct.Struct("<BIII")  # byte order, type | SRID flag, SRID, point count
_LINE_TYPE = 0x20000002
_COPY_EDGES = (
    "COPY road_edge (id, source, target, reverse_id, osm_way, highway, length_m, "
    "travel_time_s, speed_kph, geom) FROM STDIN (FORMAT BINARY)"
)

# --- tiles -------------------------------------------------------------------------------
TILE_EXTENT = 4096  # MVT coordinate units per tile side
TILE_BUFFER = 64  # units drawn past the tile edge, so lines join across tiles
MAX_ZOOM = 22
TILE_LAYER = "roads"
# Which road classes a tile shows, by zoom (the rest would be sub-pixel clutter that makes a
# city-wide tile slow and large): z <= 9 motorways and trunk roads, z 10-11 adds primary
# roads, z 12 secondary roads, z 13 tertiary roads, z >= 14 every class the graph holds.
_MOTORWAY = ("motorway", "motorway_link", "trunk", "trunk_link")
_PRIMARY = ("primary", "primary_link")
_SECONDARY = ("secondary", "secondary_link")
_TERTIARY = ("tertiary", "tertiary_link")
ZOOM_CLASSES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (9, _MOTORWAY),
    (11, _MOTORWAY + _PRIMARY),
    (12, _MOTORWAY + _PRIMARY + _SECONDARY),
    (13, _MOTORWAY + _PRIMARY + _SECONDARY + _TERTIARY),
)
# Up to this zoom tiles are overviews: features carry only ``highway`` and ``speed_kph``.
# Per-edge values (id, times, lengths) are unique per feature and made 60 % of a city-wide
# tile, for roads too thin to pick at that scale.
OVERVIEW_MAX_ZOOM = 11
_MERCATOR_HALF = 20037508.342789244


def raw_connection(conn: Session | Connection) -> Any:
    """The psycopg connection under a session or connection, inside its transaction."""
    sa_conn = conn.connection() if isinstance(conn, Session) else conn  # a session autobegins
    if not sa_conn.in_transaction():
        sa_conn.begin()  # so the caller's commit() or rollback() covers what we write
    return sa_conn.connection.driver_connection


def _node_rows(graph: RoadGraph) -> list[tuple[int, int, bytes]]:
    xy = np.column_stack((graph.node_lon, graph.node_lat)).astype("<f8")
    ids = range(graph.n_nodes)
    osm = graph.node_osm_id.tolist()
    return [(i, osm[i], _EWKB_POINT + xy[i].tobytes()) for i in ids]


def _edge_rows(graph: RoadGraph) -> list[tuple[Any, ...]]:
    xy = np.column_stack((graph.geom_lon, graph.geom_lat)).astype("<f8").tobytes()
    off = graph.geom_offset.tolist()
    twin = reverse_edges(graph).tolist()
    cls = [graph.classes[c] for c in graph.edge_class.tolist()]
    u, v, way = graph.edge_u.tolist(), graph.edge_v.tolist(), graph.edge_osm_way.tolist()
    length, time_s = graph.edge_length_m.tolist(), graph.edge_time_s.tolist()
    speed = graph.edge_speed_kph.tolist()
    pack = _EWKB_LINE.pack
    rows = []
    for e in range(graph.n_edges):
        a, b = off[e], off[e + 1]
        geom = pack(1, _LINE_TYPE, SRID, b - a) + xy[16 * a : 16 * b]
        reverse = twin[e] if twin[e] >= 0 else None
        rows.append((e, u[e], v[e], reverse, way[e], cls[e], length[e], time_s[e], speed[e], geom))
    return rows


def write_network(
    conn: Session | Connection, graph: RoadGraph, *, path: str | None = None
) -> tuple[int, int]:
    """:func:`write_roads` with the graph's own record of where it came from, as
    ``load_network`` and ``load_gis_network`` leave it in ``graph.meta`` (the file name,
    its SHA-256, the profile key, the kind and a GIS layer's mapping); ``path`` is the
    file's absolute path, when the server should route on it."""
    meta = graph.meta
    mapping = meta.get("mapping")
    return write_roads(
        conn,
        graph,
        source=str(meta.get("source", "")),
        sha256=str(meta.get("sha256", "")),
        profile_key=str(meta.get("profile_key", "")),
        path=path,
        kind=str(meta.get("kind", "osm")),
        mapping=mapping if isinstance(mapping, dict) else None,
    )


def write_roads(
    conn: Session | Connection,
    graph: RoadGraph,
    *,
    source: str,
    sha256: str,
    profile_key: str,
    path: str | None = None,
    kind: str = "osm",
    mapping: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Replace the road tables with ``graph``, in the caller's transaction (never commits).

    Parameters
    ----------
    conn
        A session or connection; its open transaction holds the TRUNCATE, so readers see
        the old network until the caller commits (and wait on the lock meanwhile).
    graph
        The compiled graph; node and edge ids in the tables are its indices.
    source, sha256, profile_key, path
        The file name, its SHA-256, the profile key and the file's absolute path, kept
        in ``road_network`` (the server routes on that file unless configured otherwise).
    kind, mapping
        ``osm`` (an OSM extract) or ``gis`` (a line layer, rebuilt with ``mapping``, the
        :class:`~gis.road_mapping.RoadMapping` as a dict).

    Returns
    -------
    tuple of int
        Nodes and edges written.
    """
    if kind not in ("osm", "gis"):
        raise ValueError(f"road network kind {kind!r} is not osm or gis")
    raw = raw_connection(conn)
    with raw.cursor() as cur:
        cur.execute("TRUNCATE road_edge, road_node, road_network")
        with cur.copy("COPY road_node (id, osm_id, geom) FROM STDIN (FORMAT BINARY)") as copy:
            # geometry's binary input is EWKB, so the bytes go over as they are.
            copy.set_types(["int8", "int8", "bytea"])
            for row in _node_rows(graph):
                copy.write_row(row)
        with cur.copy(_COPY_EDGES) as copy:
            copy.set_types(
                ["int8", "int8", "int8", "int8", "int8", "text"] + ["float8"] * 3 + ["bytea"]
            )
            for row in _edge_rows(graph):
                copy.write_row(row)
        cur.execute(
            "INSERT INTO road_network (id, source, path, sha256, profile_key, kind, mapping,"
            " node_count, edge_count) VALUES (1, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
            (
                source,
                path,
                sha256,
                profile_key,
                kind,
                None if mapping is None else json.dumps(mapping, ensure_ascii=False),
                graph.n_nodes,
                graph.n_edges,
            ),
        )
        # Fresh statistics, so the planner uses the spatial indexes from the first tile on.
        cur.execute("ANALYZE road_node")
        cur.execute("ANALYZE road_edge")
    return graph.n_nodes, graph.n_edges


def read_roads_meta(session: Session) -> RoadNetwork | None:
    """Which graph the road tables hold, or None when nothing was loaded."""
    return session.get(RoadNetwork, 1, populate_existing=True)


def classes_at_zoom(z: int) -> tuple[str, ...] | None:
    """The road classes a tile at zoom ``z`` shows; None means every class."""
    for max_zoom, classes in ZOOM_CLASSES:
        if z <= max_zoom:
            return classes
    return None


def tile_range_ok(z: int, x: int, y: int) -> bool:
    """Whether z/x/y names a tile of the Web Mercator (XYZ) scheme, zoom 0..MAX_ZOOM."""
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z


def road_tile(session: Session, *, z: int, x: int, y: int) -> bytes:
    """The ``roads`` layer of tile z/x/y as a Mapbox vector tile (empty bytes if no road).

    Parameters
    ----------
    session
        Any session; the query only reads ``road_edge``.
    z, x, y
        The tile in the XYZ scheme of Web Mercator (EPSG:3857), checked by the caller with
        :func:`tile_range_ok`; they go to PostGIS as bound parameters.

    Returns
    -------
    bytes
        The encoded tile. Lines are clipped to the tile plus ``TILE_BUFFER`` units and
        quantised to ``TILE_EXTENT`` units per side; each two-way road is drawn once (the
        lower id of a twin pair). Features carry ``highway`` and ``speed_kph``, and from
        zoom ``OVERVIEW_MAX_ZOOM + 1`` on also ``id``, ``reverse_id`` (absent on one-way
        pieces), ``travel_time_s`` and ``length_m``. Road classes by zoom: ``ZOOM_CLASSES``.
    """
    bounds = func.ST_MakeEnvelope(
        -_MERCATOR_HALF, -_MERCATOR_HALF, _MERCATOR_HALF, _MERCATOR_HALF, WEB_MERCATOR
    )
    params = (
        bindparam("z", z, type_=Integer),
        bindparam("x", x, type_=Integer),
        bindparam("y", y, type_=Integer),
    )
    envelope = func.ST_TileEnvelope(*params)
    margin = func.ST_TileEnvelope(*params, bounds, literal(TILE_BUFFER / TILE_EXTENT))
    conditions = [
        RoadEdge.geom_3857.intersects(margin),
        or_(RoadEdge.reverse_id.is_(None), RoadEdge.id < RoadEdge.reverse_id),
    ]
    classes = classes_at_zoom(z)
    if classes is not None:
        conditions.append(RoadEdge.highway.in_(classes))
    columns: list[Any] = [RoadEdge.highway, RoadEdge.speed_kph]
    if z > OVERVIEW_MAX_ZOOM:
        columns = [
            RoadEdge.id,
            RoadEdge.reverse_id,
            *columns,
            RoadEdge.travel_time_s,
            RoadEdge.length_m,
        ]
    geom = func.ST_AsMVTGeom(RoadEdge.geom_3857, envelope, TILE_EXTENT, TILE_BUFFER, True)
    mvtgeom = select(*columns, geom.label("geom")).where(and_(*conditions)).cte("mvtgeom")
    query = (
        select(func.ST_AsMVT(mvtgeom.table_valued(), TILE_LAYER, TILE_EXTENT, "geom"))
        .select_from(mvtgeom)
        .where(mvtgeom.c.geom.is_not(None))  # lines that touch only the margin box
    )
    tile = session.execute(query).scalar()
    return bytes(tile) if tile else b""
