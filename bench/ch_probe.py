"""Contraction hierarchy + PHAST probe on Porto: build time, one-to-all and many-to-many.

Run with ``uv run python -m bench.ch_probe``. It loads
../shared/data/osm/r5_porto_portugal.osm.pbf (through the usual graph cache), builds the CH
(timed after a warm-up build on a tiny graph, so numba's compile is not counted), and
times, over 30 seeded random sources:

- PHAST one-to-all (all nodes' times and lengths), forward and reverse;
- PHAST reading 1,000 seeded random "unit" nodes (reverse: units to one incident), the
  shape of the dispatch query;
- ``Engine.node_times`` (the compiled Dijkstra), forward and reverse;

then 200 x 1,000 ``phast_many`` (3 runs). Every PHAST answer is checked against Dijkstra
(1e-6 s).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from gis.ch import build_ch, phast, phast_many
from gis.engine import Engine
from gis.network import load_network

ROOT = Path(__file__).resolve().parents[1]
OSM = ROOT.parent / "shared" / "data" / "osm" / "r5_porto_portugal.osm.pbf"
SEED = 20_261_122
N_SOURCES = 30
N_UNITS = 1_000
N_INCIDENTS = 200
M2M_RUNS = 3
TOL_S = 1e-6


def ms(seconds: list[float]) -> str:
    return f"median {statistics.median(seconds) * 1e3:7.3f} ms (min {min(seconds) * 1e3:.3f})"


def main() -> None:
    graph = load_network(OSM).graph
    n = graph.n_nodes
    print(f"Porto: {n:,} nodes / {graph.n_edges:,} edges")

    tiny = np.array([0, 1, 2], dtype=np.int64)
    build_ch(3, tiny, np.roll(tiny, 1), np.ones(3), np.ones(3))  # compile / load the kernels
    started = time.perf_counter()
    ch = build_ch(n, graph.edge_u, graph.edge_v, graph.edge_time_s, graph.edge_length_m)
    build_s = time.perf_counter() - started
    print(
        f"CH build: {build_s:.2f} s, {ch.n_shortcuts:,} shortcuts, {ch.n_edges:,} CH edges "
        f"({ch.up_head.shape[0]:,} up / {ch.down_tail.shape[0]:,} down)"
    )

    engine = Engine(graph).warm()
    rng = np.random.default_rng(SEED)
    sources = rng.choice(n, N_SOURCES, replace=False)
    units = rng.choice(n, N_UNITS, replace=False)
    incidents = rng.choice(n, N_INCIDENTS, replace=False)
    zero = np.zeros(1)
    out_t, out_l = np.empty(n), np.empty(n)
    t_ptr = np.arange(N_UNITS + 1, dtype=np.int64)
    t_zero = np.zeros(N_UNITS)
    row_t, row_l = np.empty((1, N_UNITS)), np.empty((1, N_UNITS))
    one_ptr = np.array([0, 1], dtype=np.int64)
    for s in sources[:2]:  # warm-up
        phast(ch, np.array([s]), zero, zero, reverse=True, out_time=out_t, out_len=out_l)
        phast_many(
            ch,
            one_ptr,
            np.array([s]),
            zero,
            zero,
            t_ptr,
            units,
            t_zero,
            t_zero,
            reverse=True,
            out_time=row_t,
            out_len=row_l,
        )

    for reverse in (False, True):
        label = "reverse" if reverse else "forward"
        t_all, t_read, t_dij = [], [], []
        for s in sources:
            seed = np.array([s], dtype=np.int64)
            started = time.perf_counter()
            phast(ch, seed, zero, zero, reverse=reverse, out_time=out_t, out_len=out_l)
            t_all.append(time.perf_counter() - started)
            started = time.perf_counter()
            phast_many(
                ch,
                one_ptr,
                seed,
                zero,
                zero,
                t_ptr,
                units,
                t_zero,
                t_zero,
                reverse=reverse,
                out_time=row_t,
                out_len=row_l,
            )
            t_read.append(time.perf_counter() - started)
            started = time.perf_counter()
            ref_t, _ = engine.node_times(int(s), reverse=reverse)
            t_dij.append(time.perf_counter() - started)
            np.testing.assert_allclose(out_t, ref_t, rtol=0, atol=TOL_S)
            np.testing.assert_allclose(row_t[0], ref_t[units], rtol=0, atol=TOL_S)
        speedup = statistics.median(t_dij) / statistics.median(t_read)
        print(f"{label} one-to-all PHAST            {ms(t_all)}")
        print(f"{label} PHAST + read {N_UNITS:,} targets   {ms(t_read)}")
        print(f"{label} Engine.node_times (Dijkstra) {ms(t_dij)}  -> PHAST {speedup:.1f}x faster")

    s_ptr = np.arange(N_INCIDENTS + 1, dtype=np.int64)
    s_zero = np.zeros(N_INCIDENTS)
    m_t, m_l = np.empty((N_INCIDENTS, N_UNITS)), np.empty((N_INCIDENTS, N_UNITS))
    args = (ch, s_ptr, incidents, s_zero, s_zero, t_ptr, units, t_zero, t_zero)
    phast_many(*args, reverse=True, out_time=m_t, out_len=m_l)  # warm-up (threads)
    runs = []
    for _ in range(M2M_RUNS):
        started = time.perf_counter()
        phast_many(*args, reverse=True, out_time=m_t, out_len=m_l)
        runs.append(time.perf_counter() - started)
    for i in (0, N_INCIDENTS - 1):
        ref_t, _ = engine.node_times(int(incidents[i]), reverse=True)
        np.testing.assert_allclose(m_t[i], ref_t[units], rtol=0, atol=TOL_S)
    print(
        f"{N_INCIDENTS} x {N_UNITS:,} phast_many (reverse): "
        + ", ".join(f"{r * 1e3:.1f}" for r in runs)
        + " ms"
    )


if __name__ == "__main__":
    main()
