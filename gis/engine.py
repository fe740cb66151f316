"""The drive-time engine: snap, matrices, routes and isochrones over a compiled RoadGraph.

This is the small typed interface ``dispatch`` and the API use (times in seconds, lengths in
metres, WGS-84 in and out). A point is snapped onto the nearest road *edge*, not the nearest
junction: it starts or ends part-way along that edge. Closures (edge ids or polygons) apply to
one call only: each call builds its own weight array and never touches the graph's.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely import Geometry

from gis import ch as hierarchy
from gis import dijkstra
from gis.ch import ContractionHierarchy
from gis.graph import FloatArray, IntArray, RoadGraph, reverse_edges

_M_PER_DEG = math.pi * 6_371_008.8 / 180.0
SNAP_CACHE_SIZE = 200_000  # snapped positions kept (units rarely move between requests)


class SnapError(ValueError):
    """A point too far from any usable road."""


@dataclass(frozen=True)
class Snap:
    """A point placed on the network: the edges it lies on and how far along (0..1)."""

    lon: float  # the point on the road
    lat: float
    distance_m: float  # from the input point to the road
    edges: tuple[tuple[int, float], ...]  # (edge id, fraction from the edge's start)


@dataclass(frozen=True)
class Closures:
    """Roads not to use for one request: edge ids and/or WGS-84 polygons."""

    edge_ids: tuple[int, ...] = ()
    polygons: tuple[Geometry, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.edge_ids or self.polygons)


NO_CLOSURES = Closures()


@dataclass(frozen=True)
class Matrix:
    """Drive times and lengths, ``[source, target]``; ``inf`` where unreachable."""

    durations_s: FloatArray
    distances_m: FloatArray


@dataclass(frozen=True)
class Route:
    eta_s: float
    length_m: float
    coords: FloatArray  # (k, 2) lon, lat
    edge_ids: tuple[int, ...]


class Engine:
    """Queries over one RoadGraph. Thread-safe: queries share only read-only arrays."""

    def __init__(
        self,
        graph: RoadGraph,
        *,
        ch: ContractionHierarchy | None = None,
        max_snap_m: float = 500.0,
    ) -> None:
        if ch is not None and ch.n_nodes != graph.n_nodes:
            raise ValueError("the contraction hierarchy belongs to another graph")
        self.graph = graph
        self._snaps: dict[tuple[float, float], Snap] = {}
        self.ch = ch  # matrices without closures use it (PHAST); the rest uses Dijkstra
        self.max_snap_m = max_snap_m
        lon0, lat0 = float(np.median(graph.node_lon)), float(np.median(graph.node_lat))
        self._origin = (lon0, lat0)
        self._kx = _M_PER_DEG * math.cos(math.radians(lat0))

    # --- projection (local, metres; error well under 1% across a city) ----------------
    def project(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> FloatArray:
        return np.column_stack(
            ((lon - self._origin[0]) * self._kx, (lat - self._origin[1]) * _M_PER_DEG)
        )

    def unproject(self, xy: FloatArray) -> FloatArray:
        return np.column_stack(
            (xy[:, 0] / self._kx + self._origin[0], xy[:, 1] / _M_PER_DEG + self._origin[1])
        )

    @cached_property
    def _lines(self) -> NDArray[np.object_]:
        g = self.graph
        xy = self.project(g.geom_lon, g.geom_lat)
        index = np.repeat(np.arange(g.n_edges), np.diff(g.geom_offset))
        return shapely.linestrings(xy, indices=index)  # type: ignore[no-any-return]

    @cached_property
    def _tree(self) -> shapely.STRtree:
        return shapely.STRtree(self._lines)

    def prepare(self) -> Engine:
        """Build the spatial index (what every query needs first); fast."""
        _ = self._tree
        return self

    def warm_in_background(self) -> threading.Thread:
        """Load the compiled kernels in a thread, so a server is ready before they are.

        numba's first call in a process costs about a second (its JIT machinery starts up)
        even with every kernel cached on disk; a query arriving meanwhile simply waits.
        """
        thread = threading.Thread(target=self.warm, name="engine-warm", daemon=True)
        thread.start()
        return thread

    def warm(self) -> Engine:
        """Build the spatial index and compile the kernels now, not on the first request."""
        self.prepare()
        _ = self._twin
        node = np.zeros(1, dtype=np.int64)
        self._search(node, np.zeros(1), np.zeros(1), reverse=False, weight=self.graph.edge_time_s)
        snaps = [self.snap_node(0), self.snap_node(self.graph.n_nodes - 1)]
        self.matrix(snaps, snaps)  # the parallel kernel
        self.matrix(snaps[:1], snaps)  # the single-search path
        closed = Closures(edge_ids=(0,))
        self.matrix(snaps, snaps, closures=closed)  # Dijkstra kernels too, if a CH is used
        self.matrix(snaps[:1], snaps, closures=closed)
        return self

    # --- snapping ----------------------------------------------------------------------
    def snap(self, lon: float, lat: float, *, max_m: float | None = None) -> Snap:
        """Place a WGS-84 point on the nearest road edge (both directions of a two-way road)."""
        limit = self.max_snap_m if max_m is None else max_m
        point = shapely.points(self.project(np.array([lon]), np.array([lat])))[0]
        hits, dists = self._tree.query_nearest(
            point, max_distance=limit, return_distance=True, all_matches=True
        )
        if len(hits) == 0:
            raise SnapError(f"no road within {limit:.0f} m of ({lon:.6f}, {lat:.6f})")
        best = float(dists.min())
        # query_nearest ties only exactly equal distances: the reversed twin of a two-way
        # road can differ in the last bit, so gather everything within a tolerance.
        near = np.sort(self._tree.query(point, predicate="dwithin", distance=best + 1e-6))
        near_d = shapely.distance(self._lines[near], point)
        chosen = [int(h) for h, d in zip(near, near_d, strict=True) if d <= best + 1e-6]
        fractions = shapely.line_locate_point(self._lines[chosen], point, normalized=True)
        on_road = shapely.line_interpolate_point(
            self._lines[chosen[0]], float(fractions[0]), normalized=True
        )
        lonlat = self.unproject(np.array([[on_road.x, on_road.y]]))[0]
        edges = tuple(sorted((e, float(t)) for e, t in zip(chosen, fractions, strict=True)))
        return Snap(float(lonlat[0]), float(lonlat[1]), best, edges)

    @cached_property
    def _twin(self) -> IntArray:
        return reverse_edges(self.graph)

    def snap_many(
        self, lons: Sequence[float], lats: Sequence[float], *, max_m: float | None = None
    ) -> list[Snap | None]:
        """:meth:`snap` for many points in one pass (None where no road is near enough).

        Each point goes on its nearest edge and, for a two-way road, the edge's twin in the
        other direction; where several roads are equally near (a junction) one is chosen.
        """
        limit = self.max_snap_m if max_m is None else max_m
        if len(lons) == 0:
            return []
        if max_m is None:  # positions repeat between requests: reuse their snaps
            keys = list(zip(lons, lats, strict=True))
            cached = [self._snaps.get(k) for k in keys]
            todo = [i for i, s in enumerate(cached) if s is None]
            if todo:
                fresh = self.snap_many(
                    [lons[i] for i in todo], [lats[i] for i in todo], max_m=limit
                )
                if len(self._snaps) + len(todo) > SNAP_CACHE_SIZE:
                    self._snaps.clear()
                for i, s in zip(todo, fresh, strict=True):
                    cached[i] = s
                    if s is not None:
                        self._snaps[keys[i]] = s
            return cached
        xy = self.project(np.asarray(lons, dtype=np.float64), np.asarray(lats, dtype=np.float64))
        points = shapely.points(xy)
        (which, edge), dist = self._tree.query_nearest(
            points, max_distance=limit, return_distance=True, all_matches=False
        )
        lines = self._lines[edge]
        fraction = shapely.line_locate_point(lines, points[which], normalized=True)
        on_road = self.unproject(
            shapely.get_coordinates(
                shapely.line_interpolate_point(lines, fraction, normalized=True)
            )
        )
        out: list[Snap | None] = [None] * len(lons)
        twin = self._twin[edge]
        for k, i in enumerate(which.tolist()):
            e, t = int(edge[k]), float(fraction[k])
            edges = [(e, t)] + ([(int(twin[k]), 1.0 - t)] if twin[k] >= 0 else [])
            lon, lat = on_road[k]
            out[i] = Snap(float(lon), float(lat), float(dist[k]), tuple(sorted(edges)))
        return out

    def snap_node(self, node: int) -> Snap:
        """A snap exactly at a junction (for tests and for callers that hold node ids)."""
        g = self.graph
        out = g.fwd_edge[g.fwd_indptr[node] : g.fwd_indptr[node + 1]]
        inc = g.rev_edge[g.rev_indptr[node] : g.rev_indptr[node + 1]]
        edges = tuple([(int(e), 0.0) for e in out] + [(int(e), 1.0) for e in inc])
        return Snap(float(g.node_lon[node]), float(g.node_lat[node]), 0.0, edges)

    # --- closures ----------------------------------------------------------------------
    def closed_edges(self, closures: Closures) -> IntArray:
        ids = [int(e) for e in closures.edge_ids]
        bad = [e for e in ids if not 0 <= e < self.graph.n_edges]
        if bad:
            raise ValueError(f"unknown edge id {bad[0]} (0..{self.graph.n_edges - 1})")
        for polygon in closures.polygons:
            coords = shapely.get_coordinates(polygon)
            projected = (
                shapely.transform(polygon, lambda c: self.project(c[:, 0], c[:, 1]))
                if len(coords)
                else polygon
            )
            ids.extend(int(e) for e in self._tree.query(projected, predicate="intersects"))
        return np.unique(np.asarray(ids, dtype=np.int64))

    def weights(self, closures: Closures = NO_CLOSURES) -> FloatArray:
        """Edge times for one request: a fresh copy with closed edges at infinity."""
        if not closures:
            return self.graph.edge_time_s
        weight = self.graph.edge_time_s.copy()
        weight[self.closed_edges(closures)] = np.inf
        return weight

    # --- searches ----------------------------------------------------------------------
    @cached_property
    def _adjacency(self) -> dict[bool, tuple[IntArray, IntArray, FloatArray, IntArray, FloatArray]]:
        """Per direction: indptr, head per slot, length per slot, edge per slot, and the
        default times per slot (the arrays a search reads, in adjacency order)."""
        g = self.graph
        out = {}
        for reverse, indptr, adj, heads in (
            (False, g.fwd_indptr, g.fwd_edge, g.edge_v),
            (True, g.rev_indptr, g.rev_edge, g.edge_u),
        ):
            out[reverse] = (indptr, heads[adj], g.edge_length_m[adj], adj, g.edge_time_s[adj])
        return out

    def _arrays(
        self, reverse: bool, weight: FloatArray
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray, IntArray]:
        indptr, head, length, adj, default = self._adjacency[reverse]
        slot_weight = default if weight is self.graph.edge_time_s else weight[adj]
        return indptr, head, slot_weight, length, adj

    def _search(
        self,
        nodes: IntArray,
        costs: FloatArray,
        lens: FloatArray,
        *,
        reverse: bool,
        weight: FloatArray,
        limit: float = np.inf,
        stop: IntArray | None = None,
        track_pred: bool = True,
    ) -> tuple[FloatArray, FloatArray, IntArray]:
        n = self.graph.n_nodes
        dist, dlen = np.empty(n), np.empty(n)
        pred = np.empty(n if track_pred else 0, dtype=np.int64)
        dijkstra.search(
            *self._arrays(reverse, weight),
            nodes,
            costs,
            lens,
            limit,
            dist,
            dlen,
            pred,
            np.zeros(0, dtype=np.int64) if stop is None else stop,
            track_pred,
        )
        return dist, dlen, pred

    def node_times(
        self,
        node: int,
        *,
        reverse: bool = False,
        closures: Closures = NO_CLOSURES,
        weight: FloatArray | None = None,
        limit_s: float = np.inf,
        stop: IntArray | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Seconds and metres from ``node`` to every node (to it, if ``reverse``).

        ``weight`` (edge times, from :meth:`weights`) replaces ``closures`` when a caller
        runs many searches under the same closures. With ``limit_s`` or ``stop`` (nodes) the
        search ends once past the limit or once every stop node is settled: nodes not
        settled by then are ``inf``.
        """
        seed = np.array([node], dtype=np.int64)
        bounded = math.isfinite(limit_s) or stop is not None
        if self.ch is not None and not closures and weight is None and not bounded:
            dist, dlen = np.empty(self.graph.n_nodes), np.empty(self.graph.n_nodes)
            hierarchy.phast(
                self.ch,
                seed,
                np.zeros(1),
                np.zeros(1),
                reverse=reverse,
                out_time=dist,
                out_len=dlen,
            )
            return dist, dlen
        dist, dlen, _ = self._search(
            seed,
            np.zeros(1),
            np.zeros(1),
            reverse=reverse,
            weight=self.weights(closures) if weight is None else weight,
            limit=limit_s,
            stop=stop,
            track_pred=False,
        )
        return dist, dlen

    def _entries(
        self, snap: Snap, *, start: bool, weight: FloatArray
    ) -> tuple[list[int], list[float], list[float]]:
        """Seed (or target) entries of a snap: leaving by each edge's head, or arriving
        at its tail, with the part of the edge still to drive."""
        g = self.graph
        nodes, costs, lens = [], [], []
        for e, t in snap.edges:
            if not np.isfinite(weight[e]):
                continue  # the road the point is on is closed in this direction
            share = (1.0 - t) if start else t
            nodes.append(int(g.edge_v[e] if start else g.edge_u[e]))
            costs.append(share * float(weight[e]))
            lens.append(share * float(g.edge_length_m[e]))
        return nodes, costs, lens

    def matrix(
        self,
        sources: Sequence[Snap],
        targets: Sequence[Snap],
        *,
        closures: Closures = NO_CLOSURES,
        limit_s: float = np.inf,
    ) -> Matrix:
        """Drive times (s) and lengths (m) from every source to every target.

        Runs one bounded search per source (forward) or per target (on the reversed graph),
        whichever is fewer, in parallel; each stops once all its targets are settled or past
        ``limit_s``. Unreachable pairs are ``inf``.
        """
        weight = self.weights(closures)
        reverse = len(targets) < len(sources)
        origins, readers = (targets, sources) if reverse else (sources, targets)
        seed = self._flatten(origins, start=not reverse, weight=weight)
        read = self._flatten(readers, start=reverse, weight=weight)
        out_t = np.empty((len(origins), len(readers)))
        out_l = np.empty((len(origins), len(readers)))
        arrays = self._arrays(reverse, weight)
        if self.ch is not None and not closures:  # contraction hierarchy: PHAST per origin
            if len(origins) and len(readers):
                hierarchy.phast_many(
                    self.ch,
                    *seed,
                    *read,
                    reverse=reverse,
                    out_time=out_t,
                    out_len=out_l,
                    limit=float(limit_s),
                )
        elif len(origins) == 1:  # one search: no thread start-up
            dist, dlen = np.empty(self.graph.n_nodes), np.empty(self.graph.n_nodes)
            dijkstra.search(
                *arrays,
                *seed[1:],
                float(limit_s),
                dist,
                dlen,
                np.empty(0, dtype=np.int64),
                read[1],
                False,
            )
            dijkstra.read_targets(dist, dlen, *read, float(limit_s), out_t[0], out_l[0])
        elif len(origins) and len(readers):
            dijkstra.many(*arrays, *seed, float(limit_s), *read, out_t, out_l)
        if reverse:
            out_t, out_l = out_t.T.copy(), out_l.T.copy()
        self._same_edge(sources, targets, weight, out_t, out_l, float(limit_s))
        return Matrix(out_t, out_l)

    def _flatten(
        self, snaps: Sequence[Snap], *, start: bool, weight: FloatArray
    ) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        """All snaps' seed (or target) entries as flat arrays, grouped by ``ptr``."""
        g = self.graph
        counts = np.fromiter((len(s.edges) for s in snaps), dtype=np.int64, count=len(snaps))
        pairs = np.array([p for s in snaps for p in s.edges], dtype=np.float64).reshape(-1, 2)
        edges = pairs[:, 0].astype(np.int64)
        share = (1.0 - pairs[:, 1]) if start else pairs[:, 1]
        keep = np.isfinite(weight[edges])  # the road a point is on may be closed
        group = np.repeat(np.arange(len(snaps)), counts)[keep]
        edges, share = edges[keep], share[keep]
        ptr = np.zeros(len(snaps) + 1, dtype=np.int64)
        np.cumsum(np.bincount(group, minlength=len(snaps)), out=ptr[1:])
        nodes = (g.edge_v if start else g.edge_u)[edges]
        return ptr, nodes, share * weight[edges], share * g.edge_length_m[edges]

    def _same_edge(
        self,
        sources: Sequence[Snap],
        targets: Sequence[Snap],
        weight: FloatArray,
        out_t: FloatArray,
        out_l: FloatArray,
        limit: float = np.inf,
    ) -> None:
        """A target further along the source's own edge is reached without a junction."""
        by_edge: dict[int, list[tuple[int, float]]] = {}
        for j, snap in enumerate(targets):
            for e, t in snap.edges:
                by_edge.setdefault(e, []).append((j, t))
        for i, snap in enumerate(sources):
            for e, t0 in snap.edges:
                for j, t1 in by_edge.get(e, ()):
                    if t1 >= t0 and np.isfinite(weight[e]):
                        cost = (t1 - t0) * float(weight[e])
                        if cost < out_t[i, j] and cost <= limit:
                            out_t[i, j] = cost
                            out_l[i, j] = (t1 - t0) * float(self.graph.edge_length_m[e])

    # --- routes ------------------------------------------------------------------------
    def route(self, origin: Snap, dest: Snap, *, closures: Closures = NO_CLOSURES) -> Route | None:
        """The fastest route with its geometry, or None when ``dest`` cannot be reached."""
        g = self.graph
        weight = self.weights(closures)
        nodes, costs, lens = self._entries(origin, start=True, weight=weight)
        ends = self._entries(dest, start=False, weight=weight)
        stop = np.asarray(ends[0], dtype=np.int64)
        dist, dlen, pred = self._search(
            np.asarray(nodes, dtype=np.int64),
            np.asarray(costs),
            np.asarray(lens),
            reverse=False,
            weight=weight,
            stop=stop,
        )
        best = (np.inf, -1, 0.0)  # cost, dest edge, fraction
        dest_edges = [(e, t) for e, t in dest.edges if np.isfinite(weight[e])]
        for (e, t), node, extra in zip(dest_edges, ends[0], ends[1], strict=True):
            if dist[node] + extra < best[0]:
                best = (dist[node] + extra, e, t)
        direct = self._direct(origin, dest, weight)
        if direct is not None and direct[0] <= best[0]:
            e, t0, t1 = direct[1], direct[2], direct[3]
            coords = self._piece(e, t0, t1)
            ids = (e,) if t1 > t0 else ()  # a zero-length piece is no road driven
            return Route(direct[0], (t1 - t0) * float(g.edge_length_m[e]), coords, ids)
        if not np.isfinite(best[0]):
            return None
        path: list[int] = []
        node = int(g.edge_u[best[1]])
        while pred[node] >= 0:
            path.append(int(pred[node]))
            node = int(g.edge_u[pred[node]])
        path.reverse()
        # The entry the search started from at ``node``: the cheapest one (a junction snap
        # also lists its incoming edges at fraction 1, which drive nothing).
        starts = [
            ((1.0 - t) * float(weight[e]), e, t)
            for e, t in origin.edges
            if int(g.edge_v[e]) == node and np.isfinite(weight[e])
        ]
        first = min(starts)[1:] if starts else None
        length = float(dlen[int(g.edge_u[best[1]])]) + best[2] * float(g.edge_length_m[best[1]])
        return self._assemble(first, path, (best[1], best[2]), float(best[0]), length)

    def _assemble(
        self,
        first: tuple[int, float] | None,
        path: list[int],
        last: tuple[int, float],
        eta_s: float,
        length_m: float,
    ) -> Route:
        """A route from: the rest of the start edge (from its fraction), whole edges, and
        the start of the end edge (up to its fraction)."""
        pieces = []
        edge_ids = []
        if first is not None:
            pieces.append(self._piece(first[0], first[1], 1.0))
            if first[1] < 1.0:
                edge_ids.append(first[0])
        for e in path:
            pieces.append(self._piece(e, 0.0, 1.0))
            edge_ids.append(e)
        pieces.append(self._piece(last[0], 0.0, last[1]))
        if last[1] > 0.0:  # a junction snap arrives at fraction 0 of an outgoing edge
            edge_ids.append(last[0])
        coords = np.concatenate(pieces)
        keep = np.ones(len(coords), dtype=bool)
        keep[1:] = np.any(np.diff(coords, axis=0) != 0, axis=1)
        return Route(eta_s, length_m, coords[keep], tuple(edge_ids))

    def routes_to(
        self, dest: Snap, origins: Sequence[Snap], *, closures: Closures = NO_CLOSURES
    ) -> list[Route | None]:
        """The fastest route from each origin to ``dest``, from one shortest-path tree.

        One search on the reversed graph grows from ``dest`` until every origin is reached,
        so routing the few units a recommendation proposes costs about one short search.
        """
        g = self.graph
        weight = self.weights(closures)
        nodes, costs, lens = self._entries(dest, start=False, weight=weight)
        heads = [n for o in origins for n in self._entries(o, start=True, weight=weight)[0]]
        dist, dlen, pred = self._search(
            np.asarray(nodes, dtype=np.int64), np.asarray(costs), np.asarray(lens),
            reverse=True, weight=weight, stop=np.asarray(heads, dtype=np.int64),
        )  # fmt: skip
        open_dest = [(e, t) for e, t in dest.edges if np.isfinite(weight[e])]
        seeds = [(c, e, t) for (e, t), c in zip(open_dest, costs, strict=True)]
        out: list[Route | None] = []
        for origin in origins:
            options = [
                ((1.0 - t) * float(weight[e]) + dist[int(g.edge_v[e])], e, t)
                for e, t in origin.edges
                if np.isfinite(weight[e])
            ]
            direct = self._direct(origin, dest, weight)
            best = min(options) if options else (np.inf, -1, 0.0)
            if direct is not None and direct[0] <= best[0]:
                e, t0, t1 = direct[1], direct[2], direct[3]
                piece = self._piece(e, t0, t1)
                ids = (e,) if t1 > t0 else ()
                out.append(Route(direct[0], (t1 - t0) * float(g.edge_length_m[e]), piece, ids))
                continue
            if not np.isfinite(best[0]):
                out.append(None)
                continue
            _, e0, t0 = best
            node = int(g.edge_v[e0])
            path: list[int] = []
            while pred[node] >= 0:
                path.append(int(pred[node]))
                node = int(g.edge_v[pred[node]])
            # The dest entry the tree grew from at ``node``: its cheapest seed there.
            _, last_e, last_t = min(s for s in seeds if int(g.edge_u[s[1]]) == node)
            length = (1.0 - t0) * float(g.edge_length_m[e0]) + float(dlen[int(g.edge_v[e0])])
            out.append(self._assemble((e0, t0), path, (last_e, last_t), float(best[0]), length))
        return out

    def _direct(
        self, origin: Snap, dest: Snap, weight: FloatArray
    ) -> tuple[float, int, float, float] | None:
        d = dict(dest.edges)
        options = [
            ((d[e] - t0) * float(weight[e]), e, t0, d[e])
            for e, t0 in origin.edges
            if e in d and d[e] >= t0 and np.isfinite(weight[e])
        ]
        return min(options) if options else None

    def _piece(self, edge: int, t0: float, t1: float) -> FloatArray:
        """The part of an edge's polyline between fractions ``t0`` and ``t1`` (lon, lat)."""
        coords = self.graph.edge_coords(edge)
        if t0 <= 0.0 and t1 >= 1.0:
            return coords
        xy = self.project(coords[:, 0], coords[:, 1])
        seg = np.hypot(*np.diff(xy, axis=0).T)
        cum = np.concatenate(([0.0], np.cumsum(seg)))
        total = cum[-1] if cum[-1] > 0 else 1.0
        a, b = t0 * total, t1 * total
        inner = xy[(cum > a) & (cum < b)]
        ends = np.array(
            [
                [np.interp(a, cum, xy[:, 0]), np.interp(a, cum, xy[:, 1])],
                [np.interp(b, cum, xy[:, 0]), np.interp(b, cum, xy[:, 1])],
            ]
        )
        return self.unproject(np.vstack((ends[:1], inner, ends[1:])))

    # --- isochrones --------------------------------------------------------------------
    def isochrone(
        self,
        origin: Snap,
        seconds: float,
        *,
        closures: Closures = NO_CLOSURES,
        buffer_m: float = 40.0,
    ) -> Geometry:
        """The area within ``seconds`` of driving: reachable road (parts) buffered by
        ``buffer_m`` and merged. A WGS-84 Polygon or MultiPolygon."""
        g = self.graph
        weight = self.weights(closures)
        nodes, costs, lens = self._entries(origin, start=True, weight=weight)
        dist, _, _ = self._search(
            np.asarray(nodes, dtype=np.int64),
            np.asarray(costs),
            np.asarray(lens),
            reverse=False,
            weight=weight,
            limit=seconds,
            track_pred=False,
        )
        start = dist[g.edge_u]
        reach = np.flatnonzero(np.isfinite(start) & np.isfinite(weight) & (start < seconds))
        pieces = []
        for e in reach.tolist():
            frac = min(1.0, (seconds - start[e]) / weight[e]) if weight[e] > 0 else 1.0
            pieces.append(self._piece(int(e), 0.0, frac))
        for e, t in origin.edges:  # the stretch from the point itself
            if np.isfinite(weight[e]) and weight[e] > 0:
                pieces.append(self._piece(e, t, min(1.0, t + seconds / weight[e])))
        lines = [shapely.linestrings(self.project(p[:, 0], p[:, 1])) for p in pieces if len(p) >= 2]
        area = shapely.union_all(
            shapely.buffer(np.asarray(lines, dtype=object), buffer_m, quad_segs=4)
        )
        area = shapely.simplify(area, buffer_m / 4)
        return shapely.transform(area, lambda c: self.unproject(c))
