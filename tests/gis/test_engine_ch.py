"""The engine's contraction-hierarchy path gives the same answers as its Dijkstra path
(itself checked against networkx in test_engine.py), on every shared extract."""

from __future__ import annotations

import numpy as np
import pytest

from gis.engine import Closures, Engine, Snap
from gis.network import load_network
from tests.support.osm import extract_path


def _snaps(engine: Engine, rng: np.random.Generator, k: int) -> list[Snap]:
    """Half at junctions, half part-way along random edges (as real points are)."""
    g = engine.graph
    out = [engine.snap_node(int(n)) for n in rng.integers(0, g.n_nodes, k // 2)]
    for e in rng.integers(0, g.n_edges, k - k // 2):
        mid = g.edge_coords(int(e))
        lon, lat = mid[len(mid) // 2]
        out.append(engine.snap(float(lon), float(lat)))
    return out


def test_matrix_equals_dijkstra_for_1000_pairs(network, drive_engine, ch_engine):
    rng = np.random.default_rng(7)
    sources, targets = _snaps(drive_engine, rng, 10), _snaps(drive_engine, rng, 100)
    for a, b in ((sources, targets), (targets, sources)):  # forward and reversed searches
        plain = drive_engine.matrix(a, b)
        fast = ch_engine.matrix(a, b)
        assert np.array_equal(np.isinf(plain.durations_s), np.isinf(fast.durations_s))
        finite = np.isfinite(plain.durations_s)
        np.testing.assert_allclose(
            fast.durations_s[finite], plain.durations_s[finite], rtol=0, atol=1e-6
        )
        # Lengths follow the fastest path; equal-time ties may pick another path.
        same = np.isclose(fast.distances_m[finite], plain.distances_m[finite], atol=1e-6)
        assert same.mean() > 0.99


def test_one_incident_to_all_units_and_limits(drive_engine, ch_engine):
    rng = np.random.default_rng(11)
    units, incident = _snaps(drive_engine, rng, 300), _snaps(drive_engine, rng, 1)
    plain = drive_engine.matrix(units, incident, limit_s=300)
    fast = ch_engine.matrix(units, incident, limit_s=300)
    np.testing.assert_array_equal(np.isinf(plain.durations_s), np.isinf(fast.durations_s))
    finite = np.isfinite(plain.durations_s)
    assert (fast.durations_s[finite] <= 300).all()
    np.testing.assert_allclose(fast.durations_s[finite], plain.durations_s[finite], atol=1e-6)


def test_node_times_match(drive_engine, ch_engine):
    for node in (0, drive_engine.graph.n_nodes // 2):
        for reverse in (False, True):
            a, _ = drive_engine.node_times(node, reverse=reverse)
            b, _ = ch_engine.node_times(node, reverse=reverse)
            np.testing.assert_allclose(b, a, atol=1e-6)


def test_closures_bypass_the_hierarchy(small_network):
    plain = Engine(small_network.graph)
    fast = Engine(small_network.graph, ch=small_network.ch)
    rng = np.random.default_rng(3)
    snaps = _snaps(plain, rng, 20)
    route = plain.route(snaps[0], snaps[1])
    assert route is not None
    closed = Closures(edge_ids=route.edge_ids[:1])
    a = plain.matrix(snaps, snaps, closures=closed).durations_s
    b = fast.matrix(snaps, snaps, closures=closed).durations_s
    np.testing.assert_array_equal(a, b)
    assert fast.matrix(snaps[:1], snaps[1:2]).durations_s[0, 0] == pytest.approx(route.eta_s)


def test_a_hierarchy_of_another_graph_is_refused(small_network, graph_cache):
    other = load_network(extract_path("osrm_monaco.osm.pbf"), cache_dir=graph_cache)
    with pytest.raises(ValueError, match="another graph"):
        Engine(small_network.graph, ch=other.ch)


def test_many_to_one_over_the_hierarchy_equals_dijkstra(ch_engine: Engine) -> None:
    """The point-to-point CH query (upward searches meeting) against a plain Dijkstra to
    the same target, on every shared extract."""
    from gis.ch import many_to_one

    rng = np.random.default_rng(5)
    n = ch_engine.graph.n_nodes
    assert ch_engine.ch is not None
    for _ in range(20):
        target = int(rng.integers(n))
        sources = rng.integers(0, n, 6)
        ref, _ = Engine(ch_engine.graph).node_times(target, reverse=True)
        got = many_to_one(ch_engine.ch, sources, target)
        np.testing.assert_allclose(got, ref[sources], rtol=1e-9, atol=1e-6)
    assert many_to_one(ch_engine.ch, np.empty(0, dtype=np.int64), 0).shape == (0,)
