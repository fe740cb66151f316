"""Contraction hierarchies + PHAST against the compiled Dijkstra on every shared OSM extract.

PHAST's one-to-all times (forward and reverse) must equal Dijkstra's to 1e-6 s, its lengths
must match wherever the times do (up to ties between equally fast paths), several seeds
with starting costs must behave as in Dijkstra, ``phast_many`` must equal one PHAST per
origin read at the targets, and unreachable nodes must stay ``inf``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from gis import dijkstra
from gis.ch import ContractionHierarchy, build_ch, phast, phast_many
from gis.engine import Engine
from gis.graph import RoadGraph
from gis.network import LoadedNetwork

N_SOURCES = 20
TOL_S = 1e-6
LEN_SHARE = 0.99  # lengths may differ only where equally fast paths tie


def rng_for(graph: RoadGraph, salt: str = "") -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{graph.meta.get('source')}:ch:{salt}".encode()))


@pytest.fixture(scope="session")
def hierarchy(network: LoadedNetwork) -> ContractionHierarchy:
    g = network.graph
    return build_ch(g.n_nodes, g.edge_u, g.edge_v, g.edge_time_s, g.edge_length_m)


def dijkstra_times(
    graph: RoadGraph, nodes: np.ndarray, costs: np.ndarray, lens: np.ndarray, *, reverse: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The reference: gis.dijkstra.search from several seeds (graph edge times)."""
    indptr, adj, heads = (
        (graph.rev_indptr, graph.rev_edge, graph.edge_u)
        if reverse
        else (graph.fwd_indptr, graph.fwd_edge, graph.edge_v)
    )
    n = graph.n_nodes
    dist, dlen = np.empty(n), np.empty(n)
    dijkstra.search(
        indptr,
        heads[adj],
        graph.edge_time_s[adj],
        graph.edge_length_m[adj],
        adj,
        np.asarray(nodes, dtype=np.int64),
        np.asarray(costs, dtype=np.float64),
        np.asarray(lens, dtype=np.float64),
        np.inf,
        dist,
        dlen,
        np.empty(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        False,
    )
    return dist, dlen


def run_phast(
    ch: ContractionHierarchy,
    nodes: np.ndarray,
    costs: np.ndarray,
    lens: np.ndarray,
    *,
    reverse: bool,
) -> tuple[np.ndarray, np.ndarray]:
    out_t, out_l = np.empty(ch.n_nodes), np.empty(ch.n_nodes)
    phast(ch, nodes, costs, lens, reverse=reverse, out_time=out_t, out_len=out_l)
    return out_t, out_l


def assert_same(got_t: np.ndarray, got_l: np.ndarray, ref_t: np.ndarray, ref_l: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isinf(got_t), np.isinf(ref_t))
    np.testing.assert_allclose(got_t, ref_t, rtol=TOL_S, atol=TOL_S)
    np.testing.assert_array_equal(np.isinf(got_l), np.isinf(ref_l))
    fin = np.isfinite(ref_l)
    same = np.isclose(got_l[fin], ref_l[fin], rtol=1e-9, atol=1e-6)
    assert same.mean() >= LEN_SHARE, f"lengths differ at {np.count_nonzero(~same)} nodes"


# --- every extract -------------------------------------------------------------------------
def test_hierarchy_is_well_formed(network: LoadedNetwork, hierarchy: ContractionHierarchy) -> None:
    ch, n = hierarchy, network.graph.n_nodes
    assert ch.n_nodes == n
    np.testing.assert_array_equal(np.sort(ch.rank), np.arange(n))
    np.testing.assert_array_equal(ch.order[ch.position], np.arange(n))
    for ptr, other in ((ch.up_ptr, ch.up_head), (ch.down_ptr, ch.down_tail)):
        key = np.repeat(np.arange(n), np.diff(ptr))
        assert np.all(other < key), "edges must come from / go to higher-ranked nodes"
    assert ch.n_edges >= ch.n_shortcuts


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_one_to_all_equals_dijkstra(
    network: LoadedNetwork, hierarchy: ContractionHierarchy, reverse: bool
) -> None:
    graph = network.graph
    engine = Engine(graph)
    rng = rng_for(graph, f"one:{reverse}")
    zero = np.zeros(1)
    for s in rng.choice(graph.n_nodes, N_SOURCES, replace=False):
        ref_t, ref_l = engine.node_times(int(s), reverse=reverse)
        got_t, got_l = run_phast(hierarchy, np.array([s]), zero, zero, reverse=reverse)
        assert_same(got_t, got_l, ref_t, ref_l)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_several_seeds_with_start_costs(
    network: LoadedNetwork, hierarchy: ContractionHierarchy, reverse: bool
) -> None:
    graph = network.graph
    rng = rng_for(graph, f"seeds:{reverse}")
    for _ in range(5):
        nodes = rng.choice(graph.n_nodes, 3, replace=False)
        nodes = np.append(nodes, nodes[0])  # the same node twice: the cheaper entry wins
        costs = rng.uniform(0.0, 120.0, len(nodes))
        lens = rng.uniform(0.0, 900.0, len(nodes))
        ref = dijkstra_times(graph, nodes, costs, lens, reverse=reverse)
        got = run_phast(hierarchy, nodes, costs, lens, reverse=reverse)
        assert_same(*got, *ref)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_phast_many_equals_per_origin(
    network: LoadedNetwork, hierarchy: ContractionHierarchy, reverse: bool
) -> None:
    graph, ch = network.graph, hierarchy
    rng = rng_for(graph, f"many:{reverse}")
    n_orig, n_targ = 6, 40
    seed_counts = rng.integers(1, 4, n_orig)
    seed_ptr = np.concatenate(([0], np.cumsum(seed_counts))).astype(np.int64)
    seed_node = rng.choice(graph.n_nodes, seed_ptr[-1])
    seed_cost = rng.uniform(0.0, 30.0, seed_ptr[-1])
    seed_len = rng.uniform(0.0, 300.0, seed_ptr[-1])
    targ_counts = rng.integers(1, 3, n_targ)
    target_ptr = np.concatenate(([0], np.cumsum(targ_counts))).astype(np.int64)
    target_node = rng.choice(graph.n_nodes, target_ptr[-1])
    target_cost = rng.uniform(0.0, 30.0, target_ptr[-1])
    target_len = rng.uniform(0.0, 300.0, target_ptr[-1])
    expect_t = np.empty((n_orig, n_targ))
    expect_l = np.empty((n_orig, n_targ))
    for i in range(n_orig):
        a, b = seed_ptr[i], seed_ptr[i + 1]
        dist, dlen = run_phast(ch, seed_node[a:b], seed_cost[a:b], seed_len[a:b], reverse=reverse)
        for j in range(n_targ):
            c, d = target_ptr[j], target_ptr[j + 1]
            totals = dist[target_node[c:d]] + target_cost[c:d]
            k = int(np.argmin(totals))
            expect_t[i, j] = totals[k]
            expect_l[i, j] = dlen[target_node[c + k]] + target_len[c + k]
    limit = float(np.median(expect_t))
    for origins in (n_orig, 1):  # the parallel kernel and the single-search path
        for lim in (np.inf, limit):
            out_t = np.full((origins, n_targ), -1.0)
            out_l = np.full((origins, n_targ), -1.0)
            phast_many(
                ch,
                seed_ptr[: origins + 1],
                seed_node,
                seed_cost,
                seed_len,
                target_ptr,
                target_node,
                target_cost,
                target_len,
                reverse=reverse,
                out_time=out_t,
                out_len=out_l,
                limit=lim,
            )
            want_t = np.where(expect_t <= lim, expect_t, np.inf)[:origins]
            want_l = np.where(expect_t <= lim, expect_l, np.inf)[:origins]
            np.testing.assert_array_equal(out_t, want_t)
            np.testing.assert_array_equal(out_l, want_l)


# --- by hand -------------------------------------------------------------------------------
def tiny_graph() -> RoadGraph:
    """0 -> 1 -> 2 -> 0 in a ring (with a slower and a faster twin of 0 -> 1, a shortcut
    2 -> 1 and a self-loop on 1); 3 -> 0 only (nothing reaches 3); 4 on its own."""
    u = np.array([0, 0, 0, 1, 2, 3, 1, 2], dtype=np.int64)
    v = np.array([1, 1, 1, 2, 0, 0, 1, 1], dtype=np.int64)
    t = np.array([10.0, 4.0, 7.0, 5.0, 6.0, 3.0, 1.0, 30.0])
    length = np.array([100.0, 80.0, 60.0, 50.0, 70.0, 20.0, 5.0, 10.0])
    n, m = 5, len(u)
    return RoadGraph(
        node_osm_id=np.arange(n, dtype=np.int64) + 100,
        node_lon=np.linspace(8.0, 8.01, n),
        node_lat=np.linspace(41.0, 41.01, n),
        edge_u=u,
        edge_v=v,
        edge_length_m=length,
        edge_time_s=t,
        edge_speed_kph=length / t * 3.6,
        edge_class=np.zeros(m, dtype=np.int16),
        edge_osm_way=np.arange(m, dtype=np.int64),
        geom_offset=np.arange(0, 2 * m + 1, 2, dtype=np.int64),
        geom_lon=np.zeros(2 * m),
        geom_lat=np.zeros(2 * m),
        classes=("residential",),
        meta={"source": "tiny"},
    )


def test_tiny_graph_by_hand() -> None:
    graph = tiny_graph()
    ch = build_ch(graph.n_nodes, graph.edge_u, graph.edge_v, graph.edge_time_s, graph.edge_length_m)
    engine = Engine(graph)
    zero = np.zeros(1)
    inf = np.inf
    t, length = run_phast(ch, np.array([0]), zero, zero, reverse=False)
    np.testing.assert_array_equal(t, [0.0, 4.0, 9.0, inf, inf])  # the fast twin of 0 -> 1
    np.testing.assert_array_equal(length, [0.0, 80.0, 130.0, inf, inf])
    t, length = run_phast(ch, np.array([0]), zero, zero, reverse=True)
    np.testing.assert_array_equal(t, [0.0, 11.0, 6.0, 3.0, inf])
    np.testing.assert_array_equal(length, [0.0, 120.0, 70.0, 20.0, inf])
    for node in range(graph.n_nodes):
        for reverse in (False, True):
            ref = engine.node_times(node, reverse=reverse)
            got = run_phast(ch, np.array([node]), zero, zero, reverse=reverse)
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_array_equal(got[1], ref[1])
    out_t, out_l = np.empty((2, 2)), np.empty((2, 2))
    phast_many(
        ch,
        np.array([0, 1, 2]),
        np.array([3, 4]),
        np.zeros(2),
        np.zeros(2),
        np.array([0, 1, 2]),
        np.array([2, 3]),
        np.array([1.0, 0.0]),
        np.zeros(2),
        reverse=False,
        out_time=out_t,
        out_len=out_l,
    )
    np.testing.assert_array_equal(out_t, [[3.0 + 4.0 + 5.0 + 1.0, 0.0], [inf, inf]])


def test_save_and_load(tmp_path: Path) -> None:
    graph = tiny_graph()
    ch = build_ch(graph.n_nodes, graph.edge_u, graph.edge_v, graph.edge_time_s, graph.edge_length_m)
    path = tmp_path / "ch" / "tiny.ch.npz"
    ch.save(path)
    back = ContractionHierarchy.load(path)
    for name in (
        "rank",
        "position",
        "order",
        "up_ptr",
        "up_head",
        "up_time_s",
        "up_length_m",
        "down_ptr",
        "down_tail",
        "down_time_s",
        "down_length_m",
    ):
        np.testing.assert_array_equal(getattr(back, name), getattr(ch, name))
    assert back.n_shortcuts == ch.n_shortcuts
    assert back.build_seconds == ch.build_seconds
    np.savez(tmp_path / "other.npz", rank=ch.rank)
    with pytest.raises(ValueError, match="another version"):
        ContractionHierarchy.load(tmp_path / "other.npz")
