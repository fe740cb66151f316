"""Road tables in PostGIS (write_roads) and road vector tiles (GET /tiles/roads/z/x/y.mvt)."""

from __future__ import annotations

import math
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pytest
from geoalchemy2.shape import to_shape
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from gis.graph import RoadGraph
from gis.models import RoadEdge, RoadNetwork, RoadNode
from gis.network import load_network
from gis.roads_db import (
    OVERVIEW_MAX_ZOOM,
    classes_at_zoom,
    read_roads_meta,
    reverse_edges,
    road_tile,
    write_network,
    write_roads,
)
from gis.tiles import MVT_MEDIA_TYPE, TileCache, etag_matches, tile_cache

EXTRACT = (
    Path(__file__).parents[2].parent / "shared" / "data" / "osm" / "osmnx_aguascalientes.osm.bz2"
)
ATTRIBUTES = {"id", "highway", "speed_kph", "travel_time_s", "length_m"}
MINOR = {"residential", "service", "living_street", "unclassified", "road"}


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> RoadGraph:
    if not EXTRACT.is_file():
        pytest.fail(f"shared OSM extract missing: {EXTRACT}")
    return load_network(EXTRACT, cache_dir=tmp_path_factory.mktemp("roads-db")).graph


@pytest.fixture
def loaded(session: Session, graph: RoadGraph) -> RoadGraph:
    write_roads(
        session,
        graph,
        source=EXTRACT.name,
        sha256=graph.meta["sha256"],
        profile_key=graph.meta["profile_key"],
    )
    return graph


def tile_xy(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile holding a WGS-84 point."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def centre(graph: RoadGraph) -> tuple[float, float]:
    """The node nearest the middle of the graph's bbox (surely among roads)."""
    west, south, east, north = graph.bbox()
    d = np.hypot(graph.node_lon - (west + east) / 2, graph.node_lat - (south + north) / 2)
    i = int(np.argmin(d))
    return float(graph.node_lon[i]), float(graph.node_lat[i])


# --- tables ------------------------------------------------------------------------------


def test_write_roads_counts_and_meta(session: Session, graph: RoadGraph) -> None:
    session.execute(text("TRUNCATE road_network"))
    assert read_roads_meta(session) is None
    counts = write_roads(session, graph, source=EXTRACT.name, sha256="ab" * 32, profile_key="p1")
    assert counts == (graph.n_nodes, graph.n_edges)
    assert session.scalar(select(func.count()).select_from(RoadNode)) == graph.n_nodes
    assert session.scalar(select(func.count()).select_from(RoadEdge)) == graph.n_edges
    meta = read_roads_meta(session)
    assert meta is not None
    assert (meta.source, meta.sha256, meta.profile_key) == (EXTRACT.name, "ab" * 32, "p1")
    assert (meta.node_count, meta.edge_count) == (graph.n_nodes, graph.n_edges)
    # Writing again replaces, never appends.
    write_roads(session, graph, source="again", sha256="cd" * 32, profile_key="p2")
    assert session.scalar(select(func.count()).select_from(RoadEdge)) == graph.n_edges
    assert session.scalar(select(func.count()).select_from(RoadNetwork)) == 1
    meta = read_roads_meta(session)
    assert meta is not None and meta.source == "again"


def test_write_network_records_where_the_graph_came_from(session: Session, graph: RoadGraph):
    counts = write_network(session, graph, path="/data/city.osm.bz2")
    assert counts == (graph.n_nodes, graph.n_edges)
    meta = read_roads_meta(session)
    assert meta is not None
    assert (meta.source, meta.sha256, meta.profile_key, meta.path) == (
        EXTRACT.name,
        graph.meta["sha256"],
        graph.meta["profile_key"],
        "/data/city.osm.bz2",
    )


def test_write_roads_on_a_connection(connection: Connection, graph: RoadGraph) -> None:
    nodes, edges = write_roads(connection, graph, source="c", sha256="00" * 32, profile_key="k")
    assert connection.scalar(select(func.count()).select_from(RoadEdge)) == edges
    assert connection.scalar(select(RoadNetwork.node_count)) == nodes == graph.n_nodes


def test_edge_values_equal_the_graph(session: Session, loaded: RoadGraph) -> None:
    graph = loaded
    rows = session.execute(
        select(
            RoadEdge.id,
            RoadEdge.source,
            RoadEdge.target,
            RoadEdge.osm_way,
            RoadEdge.highway,
            RoadEdge.length_m,
            RoadEdge.travel_time_s,
            RoadEdge.speed_kph,
            func.ST_NPoints(RoadEdge.geom),
        ).order_by(RoadEdge.id)
    ).all()
    assert len(rows) == graph.n_edges
    for e in (0, graph.n_edges // 2, graph.n_edges - 1):
        eid, u, v, way, highway, length_m, time_s, speed, npoints = rows[e]
        assert (eid, u, v, way) == (
            e,
            graph.edge_u[e],
            graph.edge_v[e],
            graph.edge_osm_way[e],
        )
        assert highway == graph.classes[graph.edge_class[e]]
        assert length_m == graph.edge_length_m[e]  # float8 in binary COPY: exact
        assert time_s == graph.edge_time_s[e]
        assert speed == graph.edge_speed_kph[e]
        assert npoints == len(graph.edge_coords(e))
    assert np.array_equal([r.length_m for r in rows], graph.edge_length_m)
    assert np.array_equal([r.travel_time_s for r in rows], graph.edge_time_s)


def test_geometry_endpoints_are_the_nodes(session: Session, loaded: RoadGraph) -> None:
    start = RoadNode.__table__.alias("start_node")
    end = RoadNode.__table__.alias("end_node")
    mismatched = session.scalar(
        select(func.count())
        .select_from(RoadEdge)
        .join(start, start.c.id == RoadEdge.source)
        .join(end, end.c.id == RoadEdge.target)
        .where(
            ~func.ST_Equals(func.ST_StartPoint(RoadEdge.geom), start.c.geom)
            | ~func.ST_Equals(func.ST_EndPoint(RoadEdge.geom), end.c.geom)
        )
    )
    assert mismatched == 0
    node = session.execute(
        select(RoadNode.osm_id, func.ST_X(RoadNode.geom), func.ST_Y(RoadNode.geom)).where(
            RoadNode.id == 7
        )
    ).one()
    assert tuple(node) == (loaded.node_osm_id[7], loaded.node_lon[7], loaded.node_lat[7])
    for e in (0, 11, loaded.n_edges - 1):  # the whole polyline, bit for bit
        geom, srid_3857 = session.execute(
            select(RoadEdge.geom, func.ST_SRID(RoadEdge.geom_3857)).where(RoadEdge.id == e)
        ).one()
        assert srid_3857 == 3857
        assert np.array_equal(np.asarray(to_shape(geom).coords), loaded.edge_coords(e))


def test_reverse_edges_pair_two_way_roads(session: Session, loaded: RoadGraph) -> None:
    graph = loaded
    twin = reverse_edges(graph)
    paired = np.flatnonzero(twin >= 0)
    assert paired.size > graph.n_edges // 2  # most city streets are two-way
    assert np.array_equal(twin[twin[paired]], paired)
    assert np.array_equal(graph.edge_u[paired], graph.edge_v[twin[paired]])
    for e in paired[:50]:
        assert np.array_equal(graph.edge_coords(e), graph.edge_coords(twin[e])[::-1])
    stored = session.scalars(select(RoadEdge.reverse_id).order_by(RoadEdge.id)).all()
    assert [-1 if r is None else r for r in stored] == twin.tolist()


# --- tiles -------------------------------------------------------------------------------


def decode(content: bytes) -> list[dict]:
    layers = mapbox_vector_tile.decode(content)
    assert set(layers) == {"roads"}
    assert layers["roads"]["extent"] == 4096
    return layers["roads"]["features"]


def test_tile_z14_has_roads_with_attributes(client, session: Session, loaded: RoadGraph):
    x, y = tile_xy(*centre(loaded), 14)
    response = client.get(f"/tiles/roads/14/{x}/{y}.mvt")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MVT_MEDIA_TYPE
    assert response.headers["cache-control"].startswith("public, max-age=")
    features = decode(response.content)
    assert len(features) > 10
    for feature in features:
        assert set(feature["properties"]) >= ATTRIBUTES
        assert feature["geometry"]["type"] in ("LineString", "MultiLineString")
    some = features[0]["properties"]
    e = some["id"]
    assert some["highway"] == loaded.classes[loaded.edge_class[e]]
    assert some["length_m"] == pytest.approx(loaded.edge_length_m[e])
    assert some["travel_time_s"] == pytest.approx(loaded.edge_time_s[e])
    assert some["speed_kph"] == pytest.approx(loaded.edge_speed_kph[e])
    # Each two-way road once: never both edges of a twin pair.
    ids = {f["properties"]["id"] for f in features}
    twins = {f["properties"].get("reverse_id") for f in features} - {None}
    assert not ids & twins
    assert any(loaded.classes[loaded.edge_class[i]] in MINOR for i in ids)


def test_tile_far_away_is_empty(client, loaded: RoadGraph) -> None:
    response = client.get("/tiles/roads/14/0/0.mvt")
    assert response.status_code == 204
    assert response.content == b""
    assert "etag" in response.headers


def test_tile_with_no_network_loaded_is_empty(client, session: Session, graph: RoadGraph):
    session.execute(text("TRUNCATE road_edge, road_node, road_network"))
    x, y = tile_xy(*centre(graph), 14)
    assert client.get(f"/tiles/roads/14/{x}/{y}.mvt").status_code == 204


@pytest.mark.parametrize(
    ("z", "x", "y"),
    [(23, 0, 0), (-1, 0, 0), (14, 16384, 0), (14, 0, 16384), (3, -1, 2), (0, 1, 0)],
)
def test_tile_out_of_range_is_422(client, z: int, x: int, y: int) -> None:
    response = client.get(f"/tiles/roads/{z}/{x}/{y}.mvt")
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


def test_tile_not_a_number_is_422(client) -> None:
    response = client.get("/tiles/roads/14/abc/1.mvt")
    assert response.status_code == 422
    assert "error" in response.json()


def test_etag_and_if_none_match(client, loaded: RoadGraph) -> None:
    x, y = tile_xy(*centre(loaded), 15)
    url = f"/tiles/roads/15/{x}/{y}.mvt"
    first = client.get(url)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    hits = tile_cache.hits
    again = client.get(url)  # served from the in-process cache, same bytes
    assert again.content == first.content and again.headers["etag"] == etag
    assert tile_cache.hits == hits + 1
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        not_modified = client.get(url, headers={"If-None-Match": header})
        assert not_modified.status_code == 304, header
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    # Another tile, or the same tile of another network, has another tag.
    assert client.get(f"/tiles/roads/15/{x + 1}/{y}.mvt").headers["etag"] != etag


def test_etag_changes_with_the_network(client, session: Session, loaded: RoadGraph) -> None:
    x, y = tile_xy(*centre(loaded), 15)
    url = f"/tiles/roads/15/{x}/{y}.mvt"
    before = client.get(url).headers["etag"]
    write_roads(session, loaded, source=EXTRACT.name, sha256="ef" * 32, profile_key="other")
    assert client.get(url).headers["etag"] != before


def test_tile_cache_is_bounded_by_bytes() -> None:
    cache = TileCache(max_bytes=10)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.get("a") == b"1234"  # now the most recent
    cache.put("c", b"90ab")  # over 10 bytes: the least recent ("b") goes
    assert cache.get("b") is None and cache.get("a") == b"1234" and cache.get("c") == b"90ab"
    cache.put("huge", b"x" * 11)  # larger than the whole cache: not kept
    assert cache.get("huge") is None and len(cache) == 2
    cache.clear()
    assert len(cache) == 0


def test_etag_matches() -> None:
    assert etag_matches('"a"', '"a"')
    assert etag_matches('W/"a", "b"', '"a"')
    assert not etag_matches(None, '"a"')
    assert not etag_matches('"ab"', '"a"')


def test_z12_has_no_residential_roads(client, session: Session, loaded: RoadGraph) -> None:
    x, y = tile_xy(*centre(loaded), 12)
    response = client.get(f"/tiles/roads/12/{x}/{y}.mvt")
    assert response.status_code == 200
    features = decode(response.content)
    highways = {f["properties"]["highway"] for f in features}
    assert highways and not highways & MINOR
    assert highways <= set(classes_at_zoom(12) or ())
    assert "tertiary" not in highways
    # The same place at z14 does show residential streets.
    x14, y14 = tile_xy(*centre(loaded), 14)
    z14 = decode(client.get(f"/tiles/roads/14/{x14}/{y14}.mvt").content)
    assert "residential" in {f["properties"]["highway"] for f in z14}


def test_overview_zoom_keeps_only_class_attributes(session: Session, loaded: RoadGraph):
    z = OVERVIEW_MAX_ZOOM
    x, y = tile_xy(*centre(loaded), z)
    features = decode(road_tile(session, z=z, x=x, y=y))
    assert features
    assert all(set(f["properties"]) == {"highway", "speed_kph"} for f in features)
    assert {f["properties"]["highway"] for f in features} <= set(classes_at_zoom(z) or ())


def test_zoom_rule() -> None:
    assert classes_at_zoom(14) is None and classes_at_zoom(22) is None
    assert "tertiary" in (classes_at_zoom(13) or ())
    assert "secondary" in (classes_at_zoom(12) or ()) and "tertiary" not in (
        classes_at_zoom(12) or ()
    )
    assert "primary" not in (classes_at_zoom(9) or ()) and "motorway" in (classes_at_zoom(0) or ())
