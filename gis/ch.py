"""Contraction hierarchies (CH) and PHAST one-to-all searches, compiled with numba.

A CH contracts the nodes one by one (least important first, by a node-ordering heuristic),
adding a *shortcut* u->w for every pair of neighbours whose fastest path ran through the
contracted node v (unless a bounded *witness* search finds another path no slower). Every
fastest path in the road graph then has an equally fast *up-down* form in the CH: edges
going up in rank, then edges going down.

PHAST (Delling, Goldberg, Nowatzyk, Werneck: "PHAST: Hardware-accelerated shortest path
trees", 2011/2013) computes the costs from one source (or several seeds) to *all* nodes in
two steps:

1. an upward Dijkstra from the seeds over the edges going up in rank (a few hundred nodes);
2. one linear sweep over all nodes in descending rank, where each node ``x`` takes the best
   of its own upward cost and ``cost[y] + w(y, x)`` over its incoming edges from the
   higher-ranked nodes ``y`` (already final, as they come earlier in the sweep).

The reverse direction (the costs from all nodes *to* the seeds) is the same on the edges
turned around: the upward search runs over the downward edges backwards, and the sweep over
the upward edges backwards.

Nodes are renumbered by descending rank (the *position*: ``n - 1 - rank``), so the sweep
reads its arrays front to back and the hot, high-ranked nodes sit together at the start.
Times are seconds; lengths are metres along the chosen (fastest) path. Only the graph's
default edge times are contracted: per-request closures need the plain Dijkstra.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

from gis.dijkstra import read_targets
from gis.graph import FloatArray, IntArray
from gis.heap import SETTLED, UNSEEN, _pop, _sift_down, _sift_up

Progress = Callable[[str, int], None]  # (stage, nodes contracted so far)
Csr = tuple[IntArray, IntArray, FloatArray, FloatArray]  # indptr, other end, time s, length m

INF = np.inf
CH_VERSION = 1

# Witness searches stop after settling this many nodes (a stopped search may add a
# shortcut that was not needed: never a wrong distance, only a slightly larger CH).
WITNESS_SETTLED_SIMULATE = 60
WITNESS_SETTLED_CONTRACT = 600
BATCH = 2_048  # nodes contracted per kernel call (progress reports in between)

# Indices into the build's scalar state array.
_O_USED, _I_USED, _N_EDGES, _N_RANKED, _PQ_SIZE, _N_SHORTCUTS = range(6)


# --- contraction -------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _witness(src, skip, bound, max_settled, n_targets, g, ws):  # type: ignore[no-untyped-def]
    """Dijkstra from ``src`` over the remaining graph without node ``skip``, up to cost
    ``bound``, ``max_settled`` nodes or all ``n_targets`` flagged targets settled.

    Leaves tentative costs in ``ws`` dist (every finite one is a real path avoiding
    ``skip``); returns how many nodes it touched (listed in ``touched``, for the reset).
    """
    o_start, o_cnt = g[0], g[1]
    o_head, o_w = g[3], g[4]
    dist, pos, hc, hn, touched, is_target = ws[0], ws[1], ws[2], ws[3], ws[4], ws[5]
    dist[src] = 0.0
    touched[0] = src
    n_touched = 1
    size = 1
    _sift_up(hc, hn, pos, 0, 0.0, src)
    settled = 0
    remaining = n_targets
    while size > 0:
        cost = hc[0]
        u = hn[0]
        if cost > bound:
            break
        size = _pop(hc, hn, pos, size)
        settled += 1
        if is_target[u]:
            remaining -= 1
            if remaining == 0:
                break
        if settled >= max_settled:
            break
        for j in range(o_start[u], o_start[u] + o_cnt[u]):
            x = o_head[j]
            if x == skip:
                continue
            p = pos[x]
            if p == SETTLED:
                continue
            nc = cost + o_w[j]
            if nc > bound or nc >= dist[x]:
                continue
            dist[x] = nc
            if p == UNSEEN:
                touched[n_touched] = x
                n_touched += 1
                size += 1
                _sift_up(hc, hn, pos, size - 1, nc, x)
            else:
                _sift_up(hc, hn, pos, p, nc, x)
    return n_touched


@njit(cache=True, nogil=True)
def _add_arc(a, b, c, ln, start, cnt, cap, head, w, lens, st, used):  # type: ignore[no-untyped-def]
    """Add a->b (cost ``c``, length ``ln``) to a's list, or lower an existing one.
    Returns 1 if a new entry was made."""
    for j in range(start[a], start[a] + cnt[a]):
        if head[j] == b:
            if c < w[j]:
                w[j] = c
                lens[j] = ln
            return 0
    if cnt[a] == cap[a]:  # move the list to the end of the pool, with twice the room
        new_cap = 2 * cap[a]
        s = st[used]
        st[used] += new_cap
        for k in range(cnt[a]):
            head[s + k] = head[start[a] + k]
            w[s + k] = w[start[a] + k]
            lens[s + k] = lens[start[a] + k]
        start[a] = s
        cap[a] = new_cap
    j = start[a] + cnt[a]
    head[j] = b
    w[j] = c
    lens[j] = ln
    cnt[a] += 1
    return 1


@njit(cache=True, nogil=True)
def _drop_arc(a, b, start, cnt, head, w, lens):  # type: ignore[no-untyped-def]
    """Remove b from a's list (swap with the last entry)."""
    for j in range(start[a], start[a] + cnt[a]):
        if head[j] == b:
            last = start[a] + cnt[a] - 1
            head[j] = head[last]
            w[j] = w[last]
            lens[j] = lens[last]
            cnt[a] -= 1
            return


@njit(cache=True, nogil=True)
def _shortcuts(v, contract, max_settled, g, ws, st):  # type: ignore[no-untyped-def]
    """The shortcuts contracting ``v`` needs (added to the graph if ``contract``)."""
    o_start, o_cnt, o_cap, o_head, o_w, o_len = g[0], g[1], g[2], g[3], g[4], g[5]
    i_start, i_cnt, i_cap, i_head, i_w, i_len = g[6], g[7], g[8], g[9], g[10], g[11]
    dist, pos, is_target, touched = ws[0], ws[1], ws[5], ws[4]
    count = 0
    for a in range(i_start[v], i_start[v] + i_cnt[v]):
        u = i_head[a]
        w_uv = i_w[a]
        l_uv = i_len[a]
        bound = -1.0
        n_targets = 0
        for b in range(o_start[v], o_start[v] + o_cnt[v]):
            x = o_head[b]
            if x == u:
                continue
            c = w_uv + o_w[b]
            if c > bound:
                bound = c
            is_target[x] = True
            n_targets += 1
        if n_targets == 0:
            continue
        n_touched = _witness(u, v, bound, max_settled, n_targets, g, ws)
        for b in range(o_start[v], o_start[v] + o_cnt[v]):
            x = o_head[b]
            if x == u:
                continue
            is_target[x] = False
            c = w_uv + o_w[b]
            if dist[x] <= c:
                continue  # a witness: a path as fast without v
            count += 1
            if contract:
                ln = l_uv + o_len[b]
                st[_N_SHORTCUTS] += _add_arc(
                    u, x, c, ln, o_start, o_cnt, o_cap, o_head, o_w, o_len, st, _O_USED
                )
                _add_arc(x, u, c, ln, i_start, i_cnt, i_cap, i_head, i_w, i_len, st, _I_USED)
        for k in range(n_touched):
            dist[touched[k]] = INF
            pos[touched[k]] = UNSEEN
    return count


@njit(cache=True, nogil=True)
def _priority(v, max_settled, g, ws, st, deleted):  # type: ignore[no-untyped-def]
    """Twice the edge difference (shortcuts added - edges removed) plus deleted neighbours."""
    added = _shortcuts(v, False, max_settled, g, ws, st)
    removed = g[1][v] + g[7][v]
    return float(2 * (added - removed) + deleted[v])


@njit(cache=True, nogil=True)
def _init_queue(g, ws, st, deleted, pq_key, pq_node, pq_pos, max_settled):  # type: ignore[no-untyped-def]
    n = pq_pos.shape[0]
    size = 0
    for v in range(n):
        size += 1
        _sift_up(
            pq_key, pq_node, pq_pos, size - 1, _priority(v, max_settled, g, ws, st, deleted), v
        )
    st[_PQ_SIZE] = size


@njit(cache=True, nogil=True)
def _contract_batch(  # type: ignore[no-untyped-def]
    g,
    ws,
    st,
    deleted,
    rank,
    pq_key,
    pq_node,
    pq_pos,
    e_tail,
    e_head,
    e_w,
    e_len,
    mark,
    max_sim,
    max_con,
    batch,
):
    """Contract up to ``batch`` nodes. Returns 0 when it did, or 1 with the pool room it
    needs in ``st[6:9]`` (out pool, in pool, edge records) before it can go on."""
    o_start, o_cnt, o_cap, o_head, o_w, o_len = g[0], g[1], g[2], g[3], g[4], g[5]
    i_start, i_cnt, i_cap, i_head, i_w, i_len = g[6], g[7], g[8], g[9], g[10], g[11]
    done = 0
    while st[_PQ_SIZE] > 0 and done < batch:
        size = st[_PQ_SIZE]
        v = pq_node[0]
        p = _priority(v, max_sim, g, ws, st, deleted)
        nxt = INF
        if size > 1:
            nxt = pq_key[1]
        if size > 2 and pq_key[2] < nxt:
            nxt = pq_key[2]
        if p > nxt:  # lazy update: no longer the least important
            _sift_down(pq_key, pq_node, pq_pos, 0, size, p, v)
            continue
        # Room for the worst case of this contraction (lists may move and double).
        need_o = 0
        for a in range(i_start[v], i_start[v] + i_cnt[v]):
            need_o += 4 * (o_cap[i_head[a]] + o_cnt[v]) + 8
        need_i = 0
        for b in range(o_start[v], o_start[v] + o_cnt[v]):
            need_i += 4 * (i_cap[o_head[b]] + i_cnt[v]) + 8
        need_e = o_cnt[v] + i_cnt[v]
        if (
            st[_O_USED] + need_o > o_head.shape[0]
            or st[_I_USED] + need_i > i_head.shape[0]
            or st[_N_EDGES] + need_e > e_tail.shape[0]
        ):
            st[6] = st[_O_USED] + need_o
            st[7] = st[_I_USED] + need_i
            st[8] = st[_N_EDGES] + need_e
            return 1
        st[_PQ_SIZE] = _pop(pq_key, pq_node, pq_pos, size)
        _shortcuts(v, True, max_con, g, ws, st)
        # v's remaining edges are its CH edges (every other end is still uncontracted).
        k = st[_N_EDGES]
        for b in range(o_start[v], o_start[v] + o_cnt[v]):
            e_tail[k] = v
            e_head[k] = o_head[b]
            e_w[k] = o_w[b]
            e_len[k] = o_len[b]
            k += 1
        for a in range(i_start[v], i_start[v] + i_cnt[v]):
            e_tail[k] = i_head[a]
            e_head[k] = v
            e_w[k] = i_w[a]
            e_len[k] = i_len[a]
            k += 1
        st[_N_EDGES] = k
        rank[v] = st[_N_RANKED]
        st[_N_RANKED] += 1
        done += 1
        # Take v out of its neighbours' lists, then re-rate them.
        n_nb = 0
        nbrs = ws[4]  # the witness's touched list is free between searches
        for b in range(o_start[v], o_start[v] + o_cnt[v]):
            x = o_head[b]
            _drop_arc(x, v, i_start, i_cnt, i_head, i_w, i_len)
            if not mark[x]:
                mark[x] = True
                nbrs[n_nb] = x
                n_nb += 1
        for a in range(i_start[v], i_start[v] + i_cnt[v]):
            u = i_head[a]
            _drop_arc(u, v, o_start, o_cnt, o_head, o_w, o_len)
            if not mark[u]:
                mark[u] = True
                nbrs[n_nb] = u
                n_nb += 1
        o_cnt[v] = 0
        i_cnt[v] = 0
        for k in range(n_nb):
            mark[nbrs[k]] = False
        # Copy the list: the re-rating's witness searches reuse ``touched``.
        todo = nbrs[:n_nb].copy()
        for k in range(n_nb):
            x = todo[k]
            deleted[x] += 1
            q = _priority(x, max_sim, g, ws, st, deleted)
            size = st[_PQ_SIZE]
            p_old = pq_key[pq_pos[x]]
            if q < p_old:
                _sift_up(pq_key, pq_node, pq_pos, pq_pos[x], q, x)
            else:
                _sift_down(pq_key, pq_node, pq_pos, pq_pos[x], size, q, x)
    return 0


# --- the hierarchy -----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ContractionHierarchy:
    """A contracted road graph, ready for PHAST.

    Attributes
    ----------
    rank : (n,) int64
        Contraction order of each node (0 = contracted first, least important).
    position : (n,) int64
        Each node's index in the query arrays: ``n - 1 - rank`` (descending rank).
    order : (n,) int64
        The node at each position (the inverse of ``position``).
    up_ptr, up_head, up_time_s, up_length_m :
        CSR by position ``x``: the edges ``x -> y`` to higher-ranked nodes (``y < x``, as
        positions), with their time in seconds and length in metres.
    down_ptr, down_tail, down_time_s, down_length_m :
        CSR by position ``x``: the edges ``y -> x`` from higher-ranked nodes (``y < x``).
    n_shortcuts : int
        Shortcut edges the contraction added.
    build_seconds : float
        Wall time of the build.
    """

    rank: IntArray
    position: IntArray
    order: IntArray
    up_ptr: IntArray
    up_head: IntArray
    up_time_s: FloatArray
    up_length_m: FloatArray
    down_ptr: IntArray
    down_tail: IntArray
    down_time_s: FloatArray
    down_length_m: FloatArray
    n_shortcuts: int
    build_seconds: float

    @property
    def n_nodes(self) -> int:
        return int(self.rank.shape[0])

    @property
    def n_edges(self) -> int:
        """Edges in the hierarchy (original ones kept plus shortcuts)."""
        return int(self.up_head.shape[0] + self.down_tail.shape[0])

    def save(self, path: Path) -> None:
        """Write the arrays to ``path`` (``.npz``, uncompressed: loading is a memory copy)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays: dict[str, Any] = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        arrays["ch_version"] = np.asarray(CH_VERSION, dtype=np.int64)
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ContractionHierarchy:
        """Read a hierarchy written by :meth:`save`; ``ValueError`` if another version."""
        with np.load(path) as data:
            if "ch_version" not in data or int(data["ch_version"]) != CH_VERSION:
                raise ValueError(f"{path} was written by another version")
            values = {f.name: data[f.name] for f in fields(cls)}
        values["n_shortcuts"] = int(values["n_shortcuts"])
        values["build_seconds"] = float(values["build_seconds"])
        return cls(**values)

    def _arrays(self, reverse: bool) -> tuple[Csr, Csr]:
        """(upward search CSR, sweep CSR) for a direction."""
        up = (self.up_ptr, self.up_head, self.up_time_s, self.up_length_m)
        down = (self.down_ptr, self.down_tail, self.down_time_s, self.down_length_m)
        return (down, up) if reverse else (up, down)


def _base_edges(
    n_nodes: int, edge_u: IntArray, edge_v: IntArray, time_s: FloatArray, length_m: FloatArray
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Drop self-loops and closed (non-finite) edges; keep the fastest per (u, v), with
    its length (the shortest one among equally fast)."""
    u = np.asarray(edge_u, dtype=np.int64)
    v = np.asarray(edge_v, dtype=np.int64)
    t = np.asarray(time_s, dtype=np.float64)
    ln = np.asarray(length_m, dtype=np.float64)
    keep = (u != v) & np.isfinite(t)
    u, v, t, ln = u[keep], v[keep], t[keep], ln[keep]
    key = u * n_nodes + v
    order = np.lexsort((ln, t, key))
    key = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    pick = order[first]
    return u[pick], v[pick], t[pick], ln[pick]


def _lists(
    n: int, tail: IntArray, head: IntArray, t: FloatArray, ln: FloatArray
) -> tuple[IntArray, IntArray, IntArray, IntArray, FloatArray, FloatArray]:
    """Per-node lists in one pool, each with some slack: start, count, capacity, head,
    time, length (the pool has room to grow at its end)."""
    cnt = np.bincount(tail, minlength=n).astype(np.int64)
    cap = cnt + 2
    start = np.zeros(n, dtype=np.int64)
    np.cumsum(cap[:-1], out=start[1:])
    size = int(cap.sum()) * 4 + 1024
    order = np.argsort(tail, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(cnt, out=ptr[1:])
    slot = start[tail[order]] + (np.arange(len(order)) - ptr[tail[order]])
    hd = np.zeros(size, dtype=np.int64)
    w = np.zeros(size)
    lens = np.zeros(size)
    hd[slot], w[slot], lens[slot] = head[order], t[order], ln[order]
    return start, cnt, cap, hd, w, lens


def _grow(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(max(size, 2 * a.shape[0]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def _csr(key: IntArray, other: IntArray, t: FloatArray, ln: FloatArray, n: int) -> Csr:
    order = np.lexsort((other, key))
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=n), out=ptr[1:])
    return ptr, other[order].copy(), t[order].copy(), ln[order].copy()


def build_ch(
    n_nodes: int,
    edge_u: IntArray,
    edge_v: IntArray,
    edge_time_s: FloatArray,
    edge_length_m: FloatArray,
    *,
    progress: Progress | None = None,
) -> ContractionHierarchy:
    """Contract a directed graph into a hierarchy for PHAST.

    Parameters
    ----------
    n_nodes : int
        Nodes ``0..n_nodes-1``.
    edge_u, edge_v : (m,) int64
        Tail and head of each directed edge.
    edge_time_s : (m,) float64
        Travel time of each edge in seconds (the weight); non-finite edges are left out.
    edge_length_m : (m,) float64
        Length of each edge in metres, carried along the fastest paths.
    progress : callable, optional
        Called as ``progress("ch", nodes contracted so far)`` between batches.

    Returns
    -------
    ContractionHierarchy
        Parallel edges are reduced to the fastest per (u, v) and self-loops dropped; a
        shortcut's time is the sum of its two parts and its length the sum of theirs.

    Notes
    -----
    Node order: a lazily updated priority queue on twice the edge difference (shortcuts
    needed minus edges removed) plus the number of already contracted neighbours; the
    neighbours of a contracted node are re-rated at once. Witness searches stop at the
    largest shortcut cost in question and after a bounded number of settled nodes.
    """
    started = time.perf_counter()
    n = int(n_nodes)
    u, v, t, ln = _base_edges(n, edge_u, edge_v, edge_time_s, edge_length_m)
    o = _lists(n, u, v, t, ln)
    i = _lists(n, v, u, t, ln)
    st = np.zeros(9, dtype=np.int64)
    st[_O_USED] = int(o[2].sum())
    st[_I_USED] = int(i[2].sum())
    ws = (
        np.full(n, INF),
        np.full(n, UNSEEN, dtype=np.int64),
        np.empty(n),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.zeros(n, dtype=np.bool_),
    )
    deleted = np.zeros(n, dtype=np.int64)
    rank = np.full(n, -1, dtype=np.int64)
    pq_key = np.empty(n)
    pq_node = np.empty(n, dtype=np.int64)
    pq_pos = np.full(n, UNSEEN, dtype=np.int64)
    mark = np.zeros(n, dtype=np.bool_)
    cap_e = 2 * len(u) + 1024
    e_tail = np.empty(cap_e, dtype=np.int64)
    e_head = np.empty(cap_e, dtype=np.int64)
    e_w = np.empty(cap_e)
    e_len = np.empty(cap_e)
    g = (*o, *i)
    _init_queue(g, ws, st, deleted, pq_key, pq_node, pq_pos, WITNESS_SETTLED_SIMULATE)
    while st[_PQ_SIZE] > 0:
        status = _contract_batch(
            g,
            ws,
            st,
            deleted,
            rank,
            pq_key,
            pq_node,
            pq_pos,
            e_tail,
            e_head,
            e_w,
            e_len,
            mark,
            WITNESS_SETTLED_SIMULATE,
            WITNESS_SETTLED_CONTRACT,
            BATCH,
        )
        if status == 1:  # grow the pools and go on
            o_hd, o_w, o_ln = (_grow(a, int(st[6])) for a in g[3:6])
            i_hd, i_w, i_ln = (_grow(a, int(st[7])) for a in g[9:12])
            g = (*g[:3], o_hd, o_w, o_ln, *g[6:9], i_hd, i_w, i_ln)
            e_tail, e_head, e_w, e_len = (
                _grow(a, int(st[8])) for a in (e_tail, e_head, e_w, e_len)
            )
        elif progress is not None:
            progress("ch", int(st[_N_RANKED]))
    k = int(st[_N_EDGES])
    e_tail, e_head, e_w, e_len = e_tail[:k], e_head[:k], e_w[:k], e_len[:k]
    position = (n - 1 - rank).astype(np.int64)
    order = np.empty(n, dtype=np.int64)
    order[position] = np.arange(n, dtype=np.int64)
    pt, ph = position[e_tail], position[e_head]
    up = ph < pt  # towards a higher rank
    up_csr = _csr(pt[up], ph[up], e_w[up], e_len[up], n)
    down_csr = _csr(ph[~up], pt[~up], e_w[~up], e_len[~up], n)
    return ContractionHierarchy(
        rank=rank,
        position=position,
        order=order,
        up_ptr=up_csr[0],
        up_head=up_csr[1],
        up_time_s=up_csr[2],
        up_length_m=up_csr[3],
        down_ptr=down_csr[0],
        down_tail=down_csr[1],
        down_time_s=down_csr[2],
        down_length_m=down_csr[3],
        n_shortcuts=int(st[_N_SHORTCUTS]),
        build_seconds=time.perf_counter() - started,
    )


# --- PHAST -------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _phast(  # type: ignore[no-untyped-def]
    s_ptr,
    s_nbr,
    s_w,
    s_len,
    w_ptr,
    w_nbr,
    w_w,
    w_len,
    seed_node,
    seed_cost,
    seed_len,
    dist,
    dlen,
    pos,
    hc,
    hn,
):
    """One-to-all costs in position space: upward search over ``s_*`` from the seeds
    (positions), then the sweep over ``w_*`` (each position's edges from lower positions)."""
    n = s_ptr.shape[0] - 1
    dist[:] = INF
    dlen[:] = INF
    pos[:] = UNSEEN
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
    while size > 0:
        cost = hc[0]
        u = hn[0]
        size = _pop(hc, hn, pos, size)
        base_len = dlen[u]
        for j in range(s_ptr[u], s_ptr[u + 1]):
            x = s_nbr[j]
            p = pos[x]
            if p == SETTLED:
                continue
            nc = cost + s_w[j]
            if nc < dist[x]:
                dist[x] = nc
                dlen[x] = base_len + s_len[j]
                if p == UNSEEN:
                    size += 1
                    _sift_up(hc, hn, pos, size - 1, nc, x)
                else:
                    _sift_up(hc, hn, pos, p, nc, x)
    for x in range(n):
        best = dist[x]
        best_len = dlen[x]
        for k in range(w_ptr[x], w_ptr[x + 1]):
            y = w_nbr[k]
            c = dist[y] + w_w[k]
            if c < best:
                best = c
                best_len = dlen[y] + w_len[k]
        dist[x] = best
        dlen[x] = best_len


@njit(cache=True, nogil=True)
def _tree(  # type: ignore[no-untyped-def]
    s_ptr, s_nbr, s_w, s_len, w_ptr, w_nbr, w_w, w_len, seed_node, seed_cost, seed_len
):
    """One PHAST run: times and lengths for every position, in its own work arrays."""
    n = s_ptr.shape[0] - 1
    dist = np.empty(n)
    dlen = np.empty(n)
    pos = np.empty(n, dtype=np.int64)
    hc = np.empty(n)
    hn = np.empty(n, dtype=np.int64)
    _phast(
        s_ptr, s_nbr, s_w, s_len, w_ptr, w_nbr, w_w, w_len, seed_node, seed_cost, seed_len,
        dist, dlen, pos, hc, hn,
    )  # fmt: skip
    return dist, dlen


@njit(cache=True, nogil=True)
def _phast_all(  # type: ignore[no-untyped-def]
    s_ptr, s_nbr, s_w, s_len, w_ptr, w_nbr, w_w, w_len, seed_node, seed_cost, seed_len,
    position, out_time, out_len,
):  # fmt: skip
    dist, dlen = _tree(
        s_ptr, s_nbr, s_w, s_len, w_ptr, w_nbr, w_w, w_len, seed_node, seed_cost, seed_len
    )
    for i in range(dist.shape[0]):
        out_time[i] = dist[position[i]]
        out_len[i] = dlen[position[i]]


@njit(cache=True, nogil=True)
def _one_to_many(  # type: ignore[no-untyped-def]
    s_ptr, s_nbr, s_w, s_len, w_ptr, w_nbr, w_w, w_len, seed_node, seed_cost, seed_len,
    target_ptr, target_node, target_cost, target_len, limit, out_t, out_l,
):  # fmt: skip
    dist, dlen = _tree(
        s_ptr, s_nbr, s_w, s_len, w_ptr, w_nbr, w_w, w_len, seed_node, seed_cost, seed_len
    )
    read_targets(dist, dlen, target_ptr, target_node, target_cost, target_len, limit, out_t, out_l)


@njit(cache=True, nogil=True, parallel=True)
def _many(  # type: ignore[no-untyped-def]
    s_ptr,
    s_nbr,
    s_w,
    s_len,
    w_ptr,
    w_nbr,
    w_w,
    w_len,
    seed_ptr,
    seed_node,
    seed_cost,
    seed_len,
    target_ptr,
    target_node,
    target_cost,
    target_len,
    limit,
    out_time,
    out_len,
):
    for i in prange(seed_ptr.shape[0] - 1):
        a, b = seed_ptr[i], seed_ptr[i + 1]
        _one_to_many(
            s_ptr,
            s_nbr,
            s_w,
            s_len,
            w_ptr,
            w_nbr,
            w_w,
            w_len,
            seed_node[a:b],
            seed_cost[a:b],
            seed_len[a:b],
            target_ptr,
            target_node,
            target_cost,
            target_len,
            limit,
            out_time[i],
            out_len[i],
        )


def _f64(a: FloatArray | list[float]) -> FloatArray:
    return np.ascontiguousarray(a, dtype=np.float64)


def phast(
    ch: ContractionHierarchy,
    seed_node: IntArray,
    seed_cost: FloatArray,
    seed_len: FloatArray,
    *,
    reverse: bool,
    out_time: FloatArray,
    out_len: FloatArray,
) -> None:
    """Costs from the seeds to every node (or, if ``reverse``, from every node to them).

    Parameters
    ----------
    ch : ContractionHierarchy
    seed_node : (k,) int64
        Seed nodes (graph node ids); a search starts at each with its own cost.
    seed_cost : (k,) float64
        Starting time of each seed in seconds.
    seed_len : (k,) float64
        Starting length of each seed in metres.
    reverse : bool
        False: from the seeds along the edges; True: to the seeds (edges turned around).
    out_time, out_len : (n,) float64
        Filled with the best time (s) and its length (m) per node; ``inf`` if unreachable.
    """
    search, sweep = ch._arrays(reverse)
    _phast_all(
        *search,
        *sweep,
        ch.position[np.asarray(seed_node, dtype=np.int64)],
        _f64(seed_cost),
        _f64(seed_len),
        ch.position,
        out_time,
        out_len,
    )


def phast_many(
    ch: ContractionHierarchy,
    seed_ptr: IntArray,
    seed_node: IntArray,
    seed_cost: FloatArray,
    seed_len: FloatArray,
    target_ptr: IntArray,
    target_node: IntArray,
    target_cost: FloatArray,
    target_len: FloatArray,
    *,
    reverse: bool,
    out_time: FloatArray,
    out_len: FloatArray,
    limit: float = np.inf,
) -> None:
    """One PHAST per origin (in parallel), read at the targets.

    Parameters
    ----------
    seed_ptr : (o + 1,) int64
        Origin ``i`` has the seed entries ``seed_ptr[i]:seed_ptr[i+1]``.
    seed_node, seed_cost, seed_len : (k,)
        Seed entries: graph node, starting time (s), starting length (m).
    target_ptr : (t + 1,) int64
        Target ``j`` has the entries ``target_ptr[j]:target_ptr[j+1]``.
    target_node, target_cost, target_len : (q,)
        Target entries: graph node, extra time (s) and extra length (m) from that node on.
    reverse : bool
        False: origins to targets; True: targets to origins (costs on reversed edges).
    out_time, out_len : (o, t) float64
        Filled per origin and target with the best time (s) over the target's entries and
        the length (m) of that best; ``inf`` if unreachable or slower than ``limit`` (s).
    """
    search, sweep = ch._arrays(reverse)
    arrays = (*search, *sweep)
    seeds = (
        np.asarray(seed_ptr, dtype=np.int64),
        ch.position[np.asarray(seed_node, dtype=np.int64)],
        _f64(seed_cost),
        _f64(seed_len),
    )
    targets = (
        np.asarray(target_ptr, dtype=np.int64),
        ch.position[np.asarray(target_node, dtype=np.int64)],
        _f64(target_cost),
        _f64(target_len),
    )
    n_origins = seeds[0].shape[0] - 1
    if n_origins == 1:  # one search: no thread start-up
        a, b = seeds[0][0], seeds[0][1]
        _one_to_many(
            *arrays,
            seeds[1][a:b],
            seeds[2][a:b],
            seeds[3][a:b],
            *targets,
            float(limit),
            out_time[0],
            out_len[0],
        )
    elif n_origins > 1:
        _many(*arrays, *seeds, *targets, float(limit), out_time, out_len)


# --- point to point -------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _upward(ptr, nbr, w, start, dist, pos, hc, hn, touched):  # type: ignore[no-untyped-def]
    """Dijkstra over an upward CSR (positions) from ``start``, run to exhaustion (upward
    searches are small). ``dist`` is ``inf`` and ``pos`` ``UNSEEN`` on entry; the positions
    reached are listed in ``touched``; returns how many."""
    count = 1
    touched[0] = start
    dist[start] = 0.0
    size = 1
    _sift_up(hc, hn, pos, 0, 0.0, start)
    while size > 0:
        cost = hc[0]
        u = hn[0]
        size = _pop(hc, hn, pos, size)
        for j in range(ptr[u], ptr[u + 1]):
            x = nbr[j]
            p = pos[x]
            if p == SETTLED:
                continue
            nc = cost + w[j]
            if nc < dist[x]:
                dist[x] = nc
                if p == UNSEEN:
                    touched[count] = x
                    count += 1
                    size += 1
                    _sift_up(hc, hn, pos, size - 1, nc, x)
                else:
                    _sift_up(hc, hn, pos, p, nc, x)
    return count


@njit(cache=True, nogil=True)
def _many_to_one(up_ptr, up_head, up_w, down_ptr, down_tail, down_w, sources, target, out):  # type: ignore[no-untyped-def]
    n = up_ptr.shape[0] - 1
    hc = np.empty(n)
    hn = np.empty(n, dtype=np.int64)
    back = np.full(n, INF)
    pos = np.full(n, UNSEEN, dtype=np.int64)
    touched = np.empty(n, dtype=np.int64)
    # to the target: upward over the edges into each position from higher ones
    _upward(down_ptr, down_tail, down_w, target, back, pos, hc, hn, touched)
    fwd = np.full(n, INF)
    pos[:] = UNSEEN
    for k in range(sources.shape[0]):
        m = _upward(up_ptr, up_head, up_w, sources[k], fwd, pos, hc, hn, touched)
        best = INF
        for i in range(m):
            v = touched[i]
            c = fwd[v] + back[v]
            if c < best:
                best = c
            fwd[v] = INF
            pos[v] = UNSEEN
        out[k] = best


def many_to_one(ch: ContractionHierarchy, sources: IntArray, target: int) -> FloatArray:
    """Drive times (s) from each of ``sources`` to ``target`` (graph node ids) over the
    hierarchy: one upward search from the target on the reversed edges, one from each
    source, met at their best common node (the classic CH query; exact, ``inf`` when
    unreachable). Far cheaper than a search over the road graph when the sources are few.
    """
    src = ch.position[np.asarray(sources, dtype=np.int64)]
    out = np.empty(len(src))
    if len(src):
        _many_to_one(ch.up_ptr, ch.up_head, ch.up_time_s, ch.down_ptr, ch.down_tail,
                     ch.down_time_s, src, int(ch.position[int(target)]), out)  # fmt: skip
    return out
