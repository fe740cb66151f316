"""The drive-time engine against networkx on every shared OSM extract.

networkx's Dijkstra on the exported GraphML is the reference: the engine must give the same
times (to 1e-6 s) for node-to-node searches and matrices, its routes must add up, snapping
must find the nearest road edge, closures must only ever lengthen times and never leak,
and unreachable targets must come back as ``inf`` / ``None``.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import shapely
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point

from gis.engine import Closures, Engine, Snap, SnapError
from gis.graph import RoadGraph
from gis.network import LoadedNetwork, load_network
from gis.profile import DEFAULT_PROFILE, load_profile
from tests.support.osm import SMALL, extract_path

N_SOURCES = 10
N_TARGETS = 100
TOL_S = 1e-6
M_PER_DEG = math.pi * 6_371_008.8 / 180.0
PROPERTY = settings(max_examples=40, deadline=None, database=None, derandomize=True)


def rng_for(graph: RoadGraph, salt: str = "") -> np.random.Generator:
    """A reproducible generator per extract (and per test, through ``salt``)."""
    return np.random.default_rng(zlib.crc32(f"{graph.meta['source']}:{salt}".encode()))


@dataclass
class Reference:
    """networkx's answers on the GraphML export for a sample of sources."""

    nxg: nx.MultiDiGraph
    sources: list[int]
    targets: list[int]
    times: dict[int, np.ndarray]  # source -> seconds to every node (inf if unreachable)


def nx_times(nxg: nx.MultiDiGraph, source: int, n: int) -> np.ndarray:
    lengths = nx.single_source_dijkstra_path_length(nxg, str(source), weight="travel_time_s")
    out = np.full(n, np.inf)
    for node, t in lengths.items():
        out[int(node)] = t
    return out


@pytest.fixture(scope="module")
def reference(network: LoadedNetwork, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    graph = network.graph
    path = tmp_path_factory.mktemp("graphml") / "graph.graphml"
    graph.export_graphml(path)
    nxg = nx.read_graphml(path)  # node ids come back as strings
    for _, _, data in nxg.edges(data=True):
        data["travel_time_s"] = float(data["travel_time_s"])
        data["length_m"] = float(data["length_m"])
    rng = rng_for(graph)
    sources = [int(s) for s in rng.choice(graph.n_nodes, N_SOURCES, replace=False)]
    targets = [int(t) for t in rng.choice(graph.n_nodes, N_TARGETS, replace=False)]
    times = {s: nx_times(nxg, s, graph.n_nodes) for s in sources}
    return Reference(nxg, sources, targets, times)


# --- helpers --------------------------------------------------------------------------
def local_xy(lon: np.ndarray, lat: np.ndarray, lat0: float) -> np.ndarray:
    """Equirectangular metres around latitude ``lat0`` (independent of the engine's)."""
    return np.column_stack((lon * M_PER_DEG * math.cos(math.radians(lat0)), lat * M_PER_DEG))


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def check_route_chain(graph: RoadGraph, edge_ids: tuple[int, ...]) -> None:
    for a, b in itertools.pairwise(edge_ids):
        assert graph.edge_v[a] == graph.edge_u[b], f"edges {a} and {b} are not consecutive"


def edge_lines_deg(graph: RoadGraph) -> np.ndarray:
    index = np.repeat(np.arange(graph.n_edges), np.diff(graph.geom_offset))
    return shapely.linestrings(np.column_stack((graph.geom_lon, graph.geom_lat)), indices=index)


def ellipse_around(lon: float, lat: float, radius_m: float) -> shapely.Geometry:
    """A WGS-84 polygon approximating a circle of ``radius_m`` around a point."""
    kx = M_PER_DEG * math.cos(math.radians(lat))
    ring = [
        (lon + radius_m * math.cos(a) / kx, lat + radius_m * math.sin(a) / M_PER_DEG)
        for a in np.linspace(0, 2 * math.pi, 33)[:-1]
    ]
    return shapely.Polygon(ring)


# --- the GraphML contract and networkx equality -----------------------------------------
def test_graphml_carries_the_contract(network: LoadedNetwork, reference: Reference) -> None:
    graph, nxg = network.graph, reference.nxg
    assert nxg.number_of_nodes() == graph.n_nodes
    assert nxg.number_of_edges() == graph.n_edges
    rng = rng_for(graph, "contract")
    for i in rng.choice(graph.n_nodes, 50, replace=False):
        node = nxg.nodes[str(int(i))]
        assert float(node["x"]) == graph.node_lon[i]
        assert float(node["y"]) == graph.node_lat[i]
    by_id = {int(d["edge_id"]): (u, v, d) for u, v, d in nxg.edges(data=True)}
    assert sorted(by_id) == list(range(graph.n_edges))
    for e in rng.choice(graph.n_edges, 200, replace=False):
        u, v, d = by_id[int(e)]
        assert (int(u), int(v)) == (graph.edge_u[e], graph.edge_v[e])
        assert d["travel_time_s"] == graph.edge_time_s[e]
        assert d["length_m"] == graph.edge_length_m[e]
    # zero only where OSM has two nodes at one spot (or a way repeats a node): length 0 too
    assert np.all(graph.edge_time_s >= 0)
    np.testing.assert_array_equal(graph.edge_time_s == 0, graph.edge_length_m == 0)
    assert np.all(np.isfinite(graph.edge_time_s))


def test_every_node_is_reachable_from_the_sources(
    network: LoadedNetwork, drive_engine: Engine, reference: Reference
) -> None:
    """The graph is the largest strongly connected part: everything reaches everything."""
    assert nx.is_strongly_connected(reference.nxg)
    for s in reference.sources[:3]:
        times, lengths = drive_engine.node_times(s)
        assert np.isfinite(times).all()
        assert np.isfinite(lengths).all()
        assert np.isfinite(reference.times[s]).all()
        back, _ = drive_engine.node_times(s, reverse=True)
        assert np.isfinite(back).all()


def test_node_times_equal_networkx(
    network: LoadedNetwork, drive_engine: Engine, reference: Reference
) -> None:
    for s in reference.sources:
        times, _ = drive_engine.node_times(s)
        expected = reference.times[s]
        assert times[s] == 0.0
        np.testing.assert_allclose(times, expected, rtol=0, atol=TOL_S)
        # and, explicitly, the 1,000 sampled pairs
        np.testing.assert_allclose(
            times[reference.targets], expected[reference.targets], rtol=0, atol=TOL_S
        )


def test_reverse_node_times_equal_networkx_on_the_reversed_graph(
    network: LoadedNetwork, drive_engine: Engine, reference: Reference
) -> None:
    reversed_view = reference.nxg.reverse(copy=False)
    for s in reference.sources[:2]:
        times, _ = drive_engine.node_times(s, reverse=True)
        expected = nx_times(reversed_view, s, network.graph.n_nodes)
        np.testing.assert_allclose(times, expected, rtol=0, atol=TOL_S)


def test_matrix_equals_networkx(drive_engine: Engine, reference: Reference) -> None:
    """10 x 100 (forward searches) and its transpose 100 x 10 (searches on the reversed
    graph) both equal networkx on the 1,000 pairs."""
    sources = [drive_engine.snap_node(s) for s in reference.sources]
    targets = [drive_engine.snap_node(t) for t in reference.targets]
    expected = np.array([reference.times[s][reference.targets] for s in reference.sources])
    forward = drive_engine.matrix(sources, targets)
    assert forward.durations_s.shape == (N_SOURCES, N_TARGETS)
    np.testing.assert_allclose(forward.durations_s, expected, rtol=0, atol=TOL_S)
    assert np.isfinite(forward.distances_m).all()
    backward = drive_engine.matrix(targets, sources)  # more sources than targets
    assert backward.durations_s.shape == (N_TARGETS, N_SOURCES)
    # times from targets to sources: networkx from each source on the reversed graph
    reversed_view = reference.nxg.reverse(copy=False)
    n = drive_engine.graph.n_nodes
    expected_back = np.column_stack(
        [nx_times(reversed_view, s, n)[reference.targets] for s in reference.sources[:3]]
    )
    np.testing.assert_allclose(backward.durations_s[:, :3], expected_back, rtol=0, atol=TOL_S)


def test_matrix_limit_reports_unreached_as_inf(drive_engine: Engine, reference: Reference) -> None:
    s = reference.sources[0]
    targets = [drive_engine.snap_node(t) for t in reference.targets]
    expected = reference.times[s][reference.targets]
    limit = float(np.median(expected))
    got = drive_engine.matrix([drive_engine.snap_node(s)], targets, limit_s=limit).durations_s[0]
    inside = expected <= limit
    np.testing.assert_allclose(got[inside], expected[inside], rtol=0, atol=TOL_S)
    assert np.isinf(got[~inside]).all()


def test_points_on_one_edge_and_the_limit(small_engine: Engine) -> None:
    """Two points on the same edge are joined along it, and ``limit_s`` holds for them too."""
    graph = small_engine.graph
    e = int(np.argmax(graph.edge_time_s))
    u, v, w = int(graph.edge_u[e]), int(graph.edge_v[e]), float(graph.edge_time_s[e])
    a = Snap(0.0, 0.0, 0.0, ((e, 0.2),))
    b = Snap(0.0, 0.0, 0.0, ((e, 0.8),))
    got = small_engine.matrix([a], [b]).durations_s[0, 0]
    assert got == pytest.approx(0.6 * w, abs=TOL_S)
    route = small_engine.route(a, b)
    assert route is not None
    assert route.edge_ids == (e,)
    assert route.eta_s == pytest.approx(0.6 * w, abs=TOL_S)
    assert route.length_m == pytest.approx(0.6 * graph.edge_length_m[e])
    # junction to junction along that edge, with a limit below its time: unreached
    nodes = small_engine.matrix([small_engine.snap_node(u)], [small_engine.snap_node(v)])
    assert nodes.durations_s[0, 0] == pytest.approx(small_engine.node_times(u)[0][v])
    d = float(small_engine.node_times(u)[0][v])  # <= w (the edge itself is one way there)
    for limit in (0.5 * d, 0.99 * d):
        limited = small_engine.matrix(
            [small_engine.snap_node(u)], [small_engine.snap_node(v)], limit_s=limit
        )
        assert np.isinf(limited.durations_s[0, 0])
        assert np.isinf(small_engine.matrix([a], [b], limit_s=0.5 * w).durations_s[0, 0])


# --- routes -----------------------------------------------------------------------------
def test_routes_between_junctions_add_up(
    network: LoadedNetwork, drive_engine: Engine, reference: Reference
) -> None:
    graph = network.graph
    for s in reference.sources[:5]:
        for t in reference.targets[:6]:
            route = drive_engine.route(drive_engine.snap_node(s), drive_engine.snap_node(t))
            assert route is not None
            assert route.eta_s == pytest.approx(reference.times[s][t], abs=TOL_S)
            ids = list(route.edge_ids)
            assert float(graph.edge_time_s[ids].sum()) == pytest.approx(route.eta_s, abs=TOL_S)
            assert float(graph.edge_length_m[ids].sum()) == pytest.approx(
                route.length_m, rel=1e-9, abs=1e-6
            )
            if s != t:
                assert graph.edge_u[ids[0]] == s
                assert graph.edge_v[ids[-1]] == t
            check_route_chain(graph, route.edge_ids)
            assert route.coords[0] == pytest.approx(
                [graph.node_lon[s], graph.node_lat[s]], abs=1e-9
            )
            assert route.coords[-1] == pytest.approx(
                [graph.node_lon[t], graph.node_lat[t]], abs=1e-9
            )


def test_route_to_itself_is_empty(network: LoadedNetwork, drive_engine: Engine) -> None:
    s = int(rng_for(network.graph, "self").integers(network.graph.n_nodes))
    route = drive_engine.route(drive_engine.snap_node(s), drive_engine.snap_node(s))
    assert route is not None
    assert route.eta_s == 0.0
    assert route.length_m == 0.0
    assert route.edge_ids == ()


def test_routes_between_snapped_points(network: LoadedNetwork, drive_engine: Engine) -> None:
    """Points off the road: the route starts and ends at the snapped points, part-way along
    edges, and takes the same time as the matrix for that pair."""
    graph = network.graph
    rng = rng_for(graph, "points")
    nodes = rng.choice(graph.n_nodes, 12, replace=False)
    snaps: list[Snap] = []
    for i in nodes:
        lat = float(graph.node_lat[i])
        dx, dy = rng.uniform(-40, 40, 2)
        lon = float(graph.node_lon[i]) + dx / (M_PER_DEG * math.cos(math.radians(lat)))
        snaps.append(drive_engine.snap(lon, lat + dy / M_PER_DEG))
    matrix = drive_engine.matrix(snaps[:6], snaps[6:])
    for i, origin in enumerate(snaps[:6]):
        for j, dest in enumerate(snaps[6:]):
            route = drive_engine.route(origin, dest)
            assert route is not None
            assert route.eta_s == pytest.approx(matrix.durations_s[i, j], abs=TOL_S)
            assert route.length_m == pytest.approx(matrix.distances_m[i, j], rel=1e-9, abs=1e-6)
            assert haversine_m(tuple(route.coords[0]), (origin.lon, origin.lat)) < 0.01
            assert haversine_m(tuple(route.coords[-1]), (dest.lon, dest.lat)) < 0.01
            check_route_chain(graph, route.edge_ids)
            ids = list(route.edge_ids)
            # partial first and last edges: never more than the whole edges, and the
            # inner edges are driven in full
            assert route.eta_s <= float(graph.edge_time_s[ids].sum()) + TOL_S
            inner = float(graph.edge_time_s[ids[1:-1]].sum()) if len(ids) > 2 else 0.0
            assert route.eta_s >= inner - TOL_S


# --- snapping ---------------------------------------------------------------------------
def sideways_point(
    graph: RoadGraph, edge: int, offset_m: float
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The middle of ``edge`` (by length) and a point ``offset_m`` to its left, or None
    when the middle is within 25 m of a bend (the perpendicular would be ambiguous)."""
    coords = graph.edge_coords(edge)
    lat0 = float(coords[:, 1].mean())
    kx = M_PER_DEG * math.cos(math.radians(lat0))
    xy = local_xy(coords[:, 0], coords[:, 1], lat0)
    seg = np.hypot(*np.diff(xy, axis=0).T)
    cum = np.concatenate(([0.0], np.cumsum(seg)))
    half = cum[-1] / 2
    i = int(np.searchsorted(cum, half)) - 1
    if i < 0 or half - cum[i] < 25 or cum[i + 1] - half < 25:
        return None
    d = (xy[i + 1] - xy[i]) / seg[i]
    mid = xy[i] + d * (half - cum[i])
    off = mid + offset_m * np.array([-d[1], d[0]])
    return (
        (float(mid[0] / kx), float(mid[1] / M_PER_DEG)),
        (float(off[0] / kx), float(off[1] / M_PER_DEG)),
    )


def snap_candidates(graph: RoadGraph, count: int) -> list[tuple[int, set[int], tuple, tuple]]:
    """Edges with a point 20 m to one side of their middle and no other road within 35 m
    of that point (so the nearest road is unambiguous)."""
    lines = edge_lines_deg(graph)
    lat0 = float(np.median(graph.node_lat))
    scale = M_PER_DEG * math.cos(math.radians(lat0))
    tree = shapely.STRtree(lines)
    out = []
    for e in rng_for(graph, "snap").permutation(graph.n_edges):
        e = int(e)
        if graph.edge_length_m[e] < 60:
            continue
        for side in (20.0, -20.0):
            found = sideways_point(graph, e, side)
            if found is None:
                break
            mid, point = found
            near = tree.query(Point(point), predicate="dwithin", distance=35.0 / scale)
            same = {int(h) for h in near if shapely.equals(lines[h], lines[e])}
            if {int(h) for h in near} == same:
                out.append((e, same, mid, point))
                break
        if len(out) == count:
            break
    return out


def test_snap_to_the_middle_of_an_edge(network: LoadedNetwork, drive_engine: Engine) -> None:
    graph = network.graph
    candidates = snap_candidates(graph, 3)
    assert candidates, "no isolated straight edge to test with"
    for e, same, mid, point in candidates:
        snap = drive_engine.snap(*point)
        snapped = {edge for edge, _ in snap.edges}
        assert e in snapped
        # both directions of a two-way road (the reversed twin shares the geometry)
        assert snapped == same
        assert snap.distance_m == pytest.approx(20.0, abs=2.0)
        for edge, fraction in snap.edges:
            assert fraction == pytest.approx(0.5, abs=0.02), edge
        assert haversine_m((snap.lon, snap.lat), mid) < 1.0
        # the time from the snap is half the edge plus the time from its far end
        targets = [int(t) for t in rng_for(graph, f"snap{e}").choice(graph.n_nodes, 20)]
        got = drive_engine.matrix([snap], [drive_engine.snap_node(t) for t in targets])
        from_u, _ = drive_engine.node_times(int(graph.edge_u[e]))
        from_v, _ = drive_engine.node_times(int(graph.edge_v[e]))
        from_head = {x: drive_engine.node_times(int(graph.edge_v[x]))[0] for x, _ in snap.edges}
        for j, t in enumerate(targets):
            time = got.durations_s[0, j]
            expected = min((1 - f) * graph.edge_time_s[x] + from_head[x][t] for x, f in snap.edges)
            assert time == pytest.approx(expected, abs=TOL_S)
            lo, hi = sorted((from_u[t], from_v[t]))
            assert lo - TOL_S <= time <= hi + graph.edge_time_s[e] + TOL_S


def test_snap_node_is_exact(network: LoadedNetwork, drive_engine: Engine) -> None:
    graph = network.graph
    for i in rng_for(graph, "node").choice(graph.n_nodes, 20, replace=False):
        snap = drive_engine.snap(float(graph.node_lon[i]), float(graph.node_lat[i]))
        assert snap.distance_m < 0.01
        assert haversine_m((snap.lon, snap.lat), (graph.node_lon[i], graph.node_lat[i])) < 0.01
        # leaving from the snap is as fast as leaving from the junction itself
        t = drive_engine.matrix([snap], [drive_engine.snap_node(0)]).durations_s[0, 0]
        assert t == pytest.approx(drive_engine.node_times(int(i))[0][0], abs=TOL_S)


def test_point_far_from_any_road_is_refused(network: LoadedNetwork, drive_engine: Engine) -> None:
    _west, south, east, north = network.graph.bbox()
    lat = (south + north) / 2
    lon = east + 5000 / (M_PER_DEG * math.cos(math.radians(lat)))
    with pytest.raises(SnapError, match=r"no road within 500 m"):
        drive_engine.snap(lon, lat)
    with pytest.raises(SnapError, match=r"within 1000 m"):
        drive_engine.snap(lon, lat, max_m=1000)
    far = drive_engine.snap(lon, lat, max_m=50_000)  # a bigger limit does reach the graph
    assert far.distance_m > 4_900


# --- closures (property-based, on a small city) ---------------------------------------
@pytest.fixture(scope="module")
def small_times(small_engine: Engine) -> np.ndarray:
    """Edge times as loaded, to prove nothing writes to them."""
    return small_engine.graph.edge_time_s.copy()


@PROPERTY
@given(data=st.data())
def test_closures_only_lengthen_times(
    small_engine: Engine, small_times: np.ndarray, data: st.DataObject
) -> None:
    graph = small_engine.graph
    closed = data.draw(
        st.lists(st.integers(0, graph.n_edges - 1), min_size=1, max_size=60, unique=True)
    )
    centre = data.draw(st.integers(0, graph.n_nodes - 1))
    radius = data.draw(st.floats(5, 300))
    polygons = data.draw(
        st.sampled_from(
            [(), (ellipse_around(graph.node_lon[centre], graph.node_lat[centre], radius),)]
        )
    )
    closures = Closures(edge_ids=tuple(closed), polygons=polygons)
    source = data.draw(st.integers(0, graph.n_nodes - 1))
    base = {}
    for reverse in (False, True):
        base[reverse], _ = small_engine.node_times(source, reverse=reverse)
        cut, _ = small_engine.node_times(source, reverse=reverse, closures=closures)
        assert np.all(cut >= base[reverse] - 1e-9)  # inf where cut off
    targets = data.draw(st.lists(st.integers(0, graph.n_nodes - 1), min_size=1, max_size=8))
    near_centre = (float(graph.node_lon[centre]) + 1e-4, float(graph.node_lat[centre]))
    snaps = [small_engine.snap_node(source), small_engine.snap(*near_centre)]
    tsnaps = [small_engine.snap_node(t) for t in targets]
    free = small_engine.matrix(snaps, tsnaps).durations_s
    cut_m = small_engine.matrix(snaps, tsnaps, closures=closures).durations_s
    assert np.all(cut_m >= free - 1e-9)
    # nothing leaks: the same queries without closures give the original answers
    for reverse in (False, True):
        again, _ = small_engine.node_times(source, reverse=reverse)
        np.testing.assert_array_equal(again, base[reverse])
    np.testing.assert_array_equal(small_engine.matrix(snaps, tsnaps).durations_s, free)
    np.testing.assert_array_equal(graph.edge_time_s, small_times)


@PROPERTY
@given(data=st.data())
def test_closing_an_edge_of_the_route_avoids_it(
    small_engine: Engine, small_times: np.ndarray, data: st.DataObject
) -> None:
    graph = small_engine.graph
    a = data.draw(st.integers(0, graph.n_nodes - 1))
    b = data.draw(st.integers(0, graph.n_nodes - 1).filter(lambda x: x != a))
    origin, dest = small_engine.snap_node(a), small_engine.snap_node(b)
    first = small_engine.route(origin, dest)
    assert first is not None
    assert first.edge_ids
    edge = data.draw(st.sampled_from(first.edge_ids))
    closures = Closures(edge_ids=(edge,))
    second = small_engine.route(origin, dest, closures=closures)
    expected = small_engine.node_times(a, closures=closures)[0][b]
    if second is None:
        assert np.isinf(expected)
    else:
        assert edge not in second.edge_ids
        assert second.eta_s >= first.eta_s - 1e-9
        assert second.eta_s == pytest.approx(expected, abs=TOL_S)
        assert float(graph.edge_time_s[list(second.edge_ids)].sum()) == pytest.approx(
            second.eta_s, abs=TOL_S
        )
    again = small_engine.route(origin, dest)
    assert again is not None
    assert again.eta_s == first.eta_s
    assert again.edge_ids == first.edge_ids
    np.testing.assert_array_equal(graph.edge_time_s, small_times)


def test_polygon_closure_around_a_junction(small_engine: Engine) -> None:
    graph = small_engine.graph
    lines = edge_lines_deg(graph)
    degree = np.bincount(graph.edge_u, minlength=graph.n_nodes) + np.bincount(
        graph.edge_v, minlength=graph.n_nodes
    )
    rng = rng_for(graph, "polygon")
    junctions = rng.choice(np.flatnonzero(degree >= 6), 5, replace=False)
    for j in junctions:
        polygon = ellipse_around(graph.node_lon[j], graph.node_lat[j], 30.0)
        expected = set(np.flatnonzero(shapely.intersects(lines, polygon)).tolist())
        closures = Closures(polygons=(polygon,))
        assert set(small_engine.closed_edges(closures).tolist()) == expected
        assert len(expected) >= 3
        outside = np.flatnonzero(
            ~shapely.contains_xy(polygon.buffer(1e-4), graph.node_lon, graph.node_lat)
        )
        pairs = rng.choice(outside, (12, 2))
        inner = polygon.buffer(-1e-6)
        for a, b in pairs:
            route = small_engine.route(
                small_engine.snap_node(int(a)), small_engine.snap_node(int(b)), closures=closures
            )
            cut = small_engine.node_times(int(a), closures=closures)[0][b]
            if route is None:
                assert np.isinf(cut)
                continue
            assert not expected & set(route.edge_ids)
            assert route.eta_s == pytest.approx(cut, abs=TOL_S)
            if len(route.coords) >= 2:
                assert not LineString(route.coords).intersects(inner)


def test_unknown_edge_id_is_refused(small_engine: Engine) -> None:
    origin = small_engine.snap_node(0)
    for bad in (-1, small_engine.graph.n_edges, 10**9):
        with pytest.raises(ValueError, match="unknown edge id"):
            small_engine.route(
                origin, small_engine.snap_node(1), closures=Closures(edge_ids=(bad,))
            )
        with pytest.raises(ValueError, match="unknown edge id"):
            small_engine.matrix([origin], [origin], closures=Closures(edge_ids=(bad,)))


def test_cut_off_node_is_unreachable(small_engine: Engine, small_times: np.ndarray) -> None:
    graph = small_engine.graph
    rng = rng_for(graph, "cut")
    for x in rng.choice(graph.n_nodes, 5, replace=False):
        x = int(x)
        incident = np.flatnonzero((graph.edge_u == x) | (graph.edge_v == x))
        closures = Closures(edge_ids=tuple(int(e) for e in incident))
        others = [int(o) for o in rng.choice(graph.n_nodes, 4, replace=False) if o != x]
        snap_x = small_engine.snap_node(x)
        snaps = [small_engine.snap_node(o) for o in others]
        into = small_engine.matrix(snaps, [snap_x], closures=closures)  # reverse search
        assert np.isinf(into.durations_s).all()
        assert np.isinf(into.distances_m).all()
        out_of = small_engine.matrix([snap_x], snaps, closures=closures)
        assert np.isinf(out_of.durations_s).all()
        assert np.isinf(small_engine.node_times(x, closures=closures)[0][others]).all()
        for o in snaps:
            assert small_engine.route(o, snap_x, closures=closures) is None
            assert small_engine.route(snap_x, o, closures=closures) is None
        # the other pairs agree with the closed searches; without closures all is reachable
        rest = small_engine.matrix(snaps, snaps, closures=closures).durations_s
        for i, o in enumerate(others):
            expected = small_engine.node_times(o, closures=closures)[0][others]
            np.testing.assert_allclose(rest[i], expected, rtol=0, atol=TOL_S)
        assert np.isfinite(small_engine.matrix(snaps, [snap_x]).durations_s).all()
    np.testing.assert_array_equal(graph.edge_time_s, small_times)


# --- isochrones -------------------------------------------------------------------------
def test_isochrones_nest_and_cover_reached_junctions(
    network: LoadedNetwork, drive_engine: Engine
) -> None:
    graph = network.graph
    origin_node = int(rng_for(graph, "iso").integers(graph.n_nodes))
    origin = drive_engine.snap_node(origin_node)
    times, _ = drive_engine.node_times(origin_node)
    small = drive_engine.isochrone(origin, 90.0)
    big = drive_engine.isochrone(origin, 240.0)
    for area in (small, big):
        assert area.is_valid
        assert area.geom_type in ("Polygon", "MultiPolygon")
        assert shapely.contains_xy(area, graph.node_lon[origin_node], graph.node_lat[origin_node])
    assert big.area > small.area
    assert big.contains(small.representative_point())
    assert small.difference(big).area < 0.01 * small.area
    for seconds, area in ((90.0, small), (240.0, big)):
        inside = times < seconds - 30
        assert inside.sum() >= 1
        assert shapely.contains_xy(area, graph.node_lon[inside], graph.node_lat[inside]).all()


# --- the on-disk cache ------------------------------------------------------------------
def test_second_load_comes_from_the_cache(tmp_path: Path) -> None:
    path = extract_path(SMALL)
    first = load_network(path, cache_dir=tmp_path)
    assert not first.from_cache
    assert first.report is not None
    assert first.cache_path.is_file()
    second = load_network(path, cache_dir=tmp_path)
    assert second.from_cache
    assert second.cache_path == first.cache_path
    for name in (
        "node_osm_id", "node_lon", "node_lat", "edge_u", "edge_v", "edge_length_m",
        "edge_time_s", "edge_speed_kph", "edge_class", "edge_osm_way", "geom_offset",
        "geom_lon", "geom_lat", "fwd_indptr", "fwd_edge", "rev_indptr", "rev_edge",
    ):  # fmt: skip
        a, b = getattr(first.graph, name), getattr(second.graph, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert second.graph.classes == first.graph.classes
    assert second.graph.meta["sha256"] == first.graph.meta["sha256"]
    rebuilt = load_network(path, cache_dir=tmp_path, rebuild=True)
    assert not rebuilt.from_cache


def test_another_profile_gets_its_own_cache_file(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_PROFILE.read_text(encoding="utf-8"))
    data["speeds_kph"]["residential"] = 20
    custom = tmp_path / "slow.yaml"
    custom.write_text(yaml.safe_dump(data), encoding="utf-8")
    path = extract_path(SMALL)
    cache = tmp_path / "cache"
    default = load_network(path, cache_dir=cache)
    slow = load_network(path, profile=load_profile(custom), cache_dir=cache)
    assert not slow.from_cache
    assert slow.cache_path != default.cache_path
    graphs = [p for p in cache.glob("*.npz") if not p.name.endswith(".ch.npz")]
    assert len(graphs) == 2
    assert len(list(cache.glob("*.ch.npz"))) == 2  # each graph with its own hierarchy
    assert slow.graph.n_edges == default.graph.n_edges
    assert slow.graph.edge_time_s.sum() > default.graph.edge_time_s.sum()
    residential = default.graph.classes.index("residential")
    is_res = default.graph.edge_class == residential
    assert np.all(slow.graph.edge_speed_kph[is_res] <= 20)
    # both stay cached side by side
    assert load_network(path, cache_dir=cache).from_cache
    assert load_network(path, profile=load_profile(custom), cache_dir=cache).from_cache
