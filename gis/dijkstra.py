"""Compiled shortest-path kernels (numba) over the CSR arrays of a RoadGraph.

One search settles nodes in order of cost from a set of seeds (node, starting cost,
starting length), relaxing edges of a CSR adjacency; ``np.inf`` weights are closed roads.
It also carries the length in metres along the chosen (fastest) path and the edge that
reached each node, for routes. A binary heap with lazy deletion keeps it simple and fast.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

INF = np.inf


@njit(cache=True, nogil=True)
def _push(hc, hn, size, cost, node):  # type: ignore[no-untyped-def]
    i = size
    hc[i] = cost
    hn[i] = node
    while i > 0:
        parent = (i - 1) >> 1
        if hc[parent] <= hc[i]:
            break
        hc[i], hc[parent] = hc[parent], hc[i]
        hn[i], hn[parent] = hn[parent], hn[i]
        i = parent
    return size + 1


@njit(cache=True, nogil=True)
def _pop(hc, hn, size):  # type: ignore[no-untyped-def]
    cost = hc[0]
    node = hn[0]
    size -= 1
    hc[0] = hc[size]
    hn[0] = hn[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        right = left + 1
        if right < size and hc[right] < hc[left]:
            child = right
        if hc[i] <= hc[child]:
            break
        hc[i], hc[child] = hc[child], hc[i]
        hn[i], hn[child] = hn[child], hn[i]
        i = child
    return cost, node, size


@njit(cache=True, nogil=True)
def search(  # type: ignore[no-untyped-def]
    indptr,
    adj_edge,
    head,
    weight,
    length,
    seed_node,
    seed_cost,
    seed_len,
    limit,
    dist,
    dlen,
    pred,
    stop_nodes,
):
    """Fill ``dist``/``dlen``/``pred`` from the seeds; stop past ``limit`` or once every
    node in ``stop_nodes`` (may be empty) is settled. Returns the number of settled nodes."""
    n = indptr.shape[0] - 1
    for i in range(n):
        dist[i] = INF
        dlen[i] = INF
        pred[i] = -1
    cap = adj_edge.shape[0] + seed_node.shape[0] + 1
    hc = np.empty(cap, dtype=np.float64)
    hn = np.empty(cap, dtype=np.int64)
    done = np.zeros(n, dtype=np.bool_)
    size = 0
    for k in range(seed_node.shape[0]):
        s = seed_node[k]
        if seed_cost[k] < dist[s]:
            dist[s] = seed_cost[k]
            dlen[s] = seed_len[k]
            pred[s] = -1
            size = _push(hc, hn, size, seed_cost[k], s)
    remaining = stop_nodes.shape[0]
    wanted = np.zeros(n, dtype=np.bool_)
    for k in range(stop_nodes.shape[0]):
        if wanted[stop_nodes[k]]:
            remaining -= 1
        wanted[stop_nodes[k]] = True
    settled = 0
    while size > 0:
        cost, u, size = _pop(hc, hn, size)
        if done[u] or cost > dist[u]:
            continue
        if cost > limit:
            break
        done[u] = True
        settled += 1
        if wanted[u]:
            remaining -= 1
            if remaining == 0:
                break
        for j in range(indptr[u], indptr[u + 1]):
            e = adj_edge[j]
            w = weight[e]
            if w == INF:
                continue
            v = head[e]
            nc = cost + w
            if nc < dist[v]:
                dist[v] = nc
                dlen[v] = dlen[u] + length[e]
                pred[v] = e
                size = _push(hc, hn, size, nc, v)
    # Costs past the limit are not final: report them as unreached.
    for i in range(n):
        if not done[i]:
            dist[i] = INF
            dlen[i] = INF
    return settled


@njit(cache=True, nogil=True, parallel=True)
def many(  # type: ignore[no-untyped-def]
    indptr,
    adj_edge,
    head,
    weight,
    length,
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
    """One search per origin (seeds ``seed_ptr[i]:seed_ptr[i+1]``), each reading the best
    cost to every target (a target is several (node, extra cost, extra length) entries)."""
    n = indptr.shape[0] - 1
    n_origins = seed_ptr.shape[0] - 1
    n_targets = target_ptr.shape[0] - 1
    for i in prange(n_origins):
        dist = np.empty(n, dtype=np.float64)
        dlen = np.empty(n, dtype=np.float64)
        pred = np.empty(n, dtype=np.int64)
        a, b = seed_ptr[i], seed_ptr[i + 1]
        search(
            indptr,
            adj_edge,
            head,
            weight,
            length,
            seed_node[a:b],
            seed_cost[a:b],
            seed_len[a:b],
            limit,
            dist,
            dlen,
            pred,
            target_node,
        )
        for t in range(n_targets):
            best = INF
            best_len = INF
            for k in range(target_ptr[t], target_ptr[t + 1]):
                c = dist[target_node[k]] + target_cost[k]
                if c < best:
                    best = c
                    best_len = dlen[target_node[k]] + target_len[k]
            out_time[i, t] = best if best <= limit else INF
            out_len[i, t] = best_len if best <= limit else INF
