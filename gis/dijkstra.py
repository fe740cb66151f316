"""Compiled shortest-path kernels (numba) over the CSR arrays of a RoadGraph.

One search settles nodes in order of cost from a set of seeds (node, starting cost,
starting length), scanning a CSR adjacency whose per-slot arrays (head node, weight,
length) are laid out in adjacency order, so a node's out-edges are read from contiguous
memory. ``np.inf`` weights are closed roads. The search carries the length in metres along
the chosen (fastest) path and, when asked, the edge that reached each node (for routes).
A binary heap with decrease-key (each node queued at most once) keeps it compact.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from gis.heap import SETTLED, UNSEEN, _pop, _sift_up

INF = np.inf


@njit(cache=True, nogil=True)
def search(  # type: ignore[no-untyped-def]
    indptr,
    head,
    weight,
    length,
    adj_edge,
    seed_node,
    seed_cost,
    seed_len,
    limit,
    dist,
    dlen,
    pred,
    stop_nodes,
    track_pred,
):
    """Fill ``dist``/``dlen`` (and ``pred`` if ``track_pred``) from the seeds; stop past
    ``limit`` or once every node in ``stop_nodes`` (may be empty) is settled.

    ``head``, ``weight`` and ``length`` are indexed by adjacency slot ``j`` (for node u,
    slots ``indptr[u]:indptr[u+1]``); ``adj_edge[j]`` is that slot's edge id. The heap
    holds each node at most once (decrease-key through ``pos``). Returns the number of
    settled nodes; unsettled nodes end at ``inf``.
    """
    n = indptr.shape[0] - 1
    dist[:] = INF
    dlen[:] = INF
    if track_pred:
        pred[:] = -1
    pos = np.full(n, UNSEEN, dtype=np.int64)
    hc = np.empty(n, dtype=np.float64)
    hn = np.empty(n, dtype=np.int64)
    size = 0
    for k in range(seed_node.shape[0]):
        s = seed_node[k]
        c = seed_cost[k]
        if c < dist[s]:
            dist[s] = c
            dlen[s] = seed_len[k]
            if pos[s] == UNSEEN:
                size += 1
                _sift_up(hc, hn, pos, size - 1, c, s)
            else:
                _sift_up(hc, hn, pos, pos[s], c, s)
    remaining = 0
    wanted = np.zeros(n, dtype=np.bool_)
    for k in range(stop_nodes.shape[0]):
        if not wanted[stop_nodes[k]]:
            wanted[stop_nodes[k]] = True
            remaining += 1
    stop = remaining > 0
    settled = 0
    while size > 0:
        cost = hc[0]
        u = hn[0]
        if cost > limit:
            break
        size = _pop(hc, hn, pos, size)
        settled += 1
        if stop and wanted[u]:
            remaining -= 1
            if remaining == 0:
                break
        base_len = dlen[u]
        for j in range(indptr[u], indptr[u + 1]):
            v = head[j]
            p = pos[v]
            if p == SETTLED:
                continue
            nc = cost + weight[j]
            if nc < dist[v]:
                dist[v] = nc
                dlen[v] = base_len + length[j]
                if track_pred:
                    pred[v] = adj_edge[j]
                if p == UNSEEN:
                    size += 1
                    _sift_up(hc, hn, pos, size - 1, nc, v)
                else:
                    _sift_up(hc, hn, pos, p, nc, v)
    for i in range(n):
        if pos[i] != SETTLED:
            dist[i] = INF
            dlen[i] = INF
    return settled


@njit(cache=True, nogil=True)
def read_targets(  # type: ignore[no-untyped-def]
    dist, dlen, target_ptr, target_node, target_cost, target_len, limit, out_t, out_l
):
    """Best cost to each target (several (node, extra cost, extra length) entries each)."""
    for t in range(target_ptr.shape[0] - 1):
        best = INF
        best_len = INF
        for k in range(target_ptr[t], target_ptr[t + 1]):
            c = dist[target_node[k]] + target_cost[k]
            if c < best:
                best = c
                best_len = dlen[target_node[k]] + target_len[k]
        if best <= limit:
            out_t[t] = best
            out_l[t] = best_len
        else:
            out_t[t] = INF
            out_l[t] = INF


@njit(cache=True, nogil=True, parallel=True)
def many(  # type: ignore[no-untyped-def]
    indptr,
    head,
    weight,
    length,
    adj_edge,
    seed_ptr,
    seed_node,
    seed_cost,
    seed_len,
    limit,
    target_ptr,
    target_node,
    target_cost,
    target_len,
    out_time,
    out_len,
):
    """One search per origin (seeds ``seed_ptr[i]:seed_ptr[i+1]``), in parallel, each
    stopping once all target nodes are settled; fills row i of ``out_time``/``out_len``."""
    n = indptr.shape[0] - 1
    for i in prange(seed_ptr.shape[0] - 1):
        dist = np.empty(n, dtype=np.float64)
        dlen = np.empty(n, dtype=np.float64)
        pred = np.empty(0, dtype=np.int64)
        a, b = seed_ptr[i], seed_ptr[i + 1]
        search(
            indptr,
            head,
            weight,
            length,
            adj_edge,
            seed_node[a:b],
            seed_cost[a:b],
            seed_len[a:b],
            limit,
            dist,
            dlen,
            pred,
            target_node,
            False,
        )
        read_targets(
            dist,
            dlen,
            target_ptr,
            target_node,
            target_cost,
            target_len,
            limit,
            out_time[i],
            out_len[i],
        )
