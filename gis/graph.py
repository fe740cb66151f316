"""The compiled road graph: flat numpy arrays (CSR), cached on disk, exportable to GraphML.

Nodes are road junctions and dead ends (index ``0..n-1``, with their OSM node ids); edges are
directed road pieces between them (index = edge id ``0..m-1``), each with its polyline, length
in metres and travel time in seconds. Coordinates are WGS-84 degrees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
CACHE_VERSION = 1
_ARRAYS = (
    "node_osm_id", "node_lon", "node_lat", "edge_u", "edge_v", "edge_length_m",
    "edge_time_s", "edge_speed_kph", "edge_class", "edge_osm_way", "geom_offset",
    "geom_lon", "geom_lat",
)  # fmt: skip


@dataclass(frozen=True)
class LoadReport:
    """What a load kept and dropped, for the operator."""

    ways_read: int = 0
    ways_drivable: int = 0
    ways_blocked: int = 0
    ways_trimmed: int = 0
    ways_dropped_clipped: int = 0
    nodes_built: int = 0
    edges_built: int = 0
    nodes_kept: int = 0
    edges_kept: int = 0
    components: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"highway ways read: {self.ways_read}, drivable: {self.ways_drivable}, "
            f"closed to vehicles: {self.ways_blocked}",
            f"ways clipped at the extract edge: {self.ways_trimmed} trimmed, "
            f"{self.ways_dropped_clipped} dropped (no two known nodes)",
            f"graph: {self.nodes_built} nodes / {self.edges_built} edges in "
            f"{self.components} strongly connected parts",
            f"kept the largest: {self.nodes_kept} nodes / {self.edges_kept} edges "
            f"(dropped {self.nodes_built - self.nodes_kept} nodes, "
            f"{self.edges_built - self.edges_kept} edges)",
        ]


@dataclass(frozen=True, eq=False)
class RoadGraph:
    """A directed road graph as arrays. ``edge_class`` indexes into ``classes``."""

    node_osm_id: IntArray
    node_lon: FloatArray
    node_lat: FloatArray
    edge_u: IntArray
    edge_v: IntArray
    edge_length_m: FloatArray
    edge_time_s: FloatArray
    edge_speed_kph: FloatArray
    edge_class: NDArray[np.int16]
    edge_osm_way: IntArray
    geom_offset: IntArray  # edge e's polyline is geom_*[geom_offset[e]:geom_offset[e+1]]
    geom_lon: FloatArray
    geom_lat: FloatArray
    classes: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    # Derived at construction: outgoing (forward) and incoming (reverse) adjacency.
    fwd_indptr: IntArray = field(init=False)
    fwd_edge: IntArray = field(init=False)
    rev_indptr: IntArray = field(init=False)
    rev_edge: IntArray = field(init=False)

    def __post_init__(self) -> None:
        n = self.n_nodes
        for name, key in (("fwd", self.edge_u), ("rev", self.edge_v)):
            order = np.argsort(key, kind="stable").astype(np.int64)
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.bincount(key, minlength=n), out=indptr[1:])
            object.__setattr__(self, f"{name}_indptr", indptr)
            object.__setattr__(self, f"{name}_edge", order)

    @property
    def n_nodes(self) -> int:
        return int(self.node_lon.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_u.shape[0])

    def edge_coords(self, edge: int) -> FloatArray:
        """The polyline of ``edge`` as an ``(k, 2)`` array of lon, lat."""
        a, b = self.geom_offset[edge], self.geom_offset[edge + 1]
        return np.column_stack((self.geom_lon[a:b], self.geom_lat[a:b]))

    def bbox(self) -> tuple[float, float, float, float]:
        return (
            float(self.node_lon.min()), float(self.node_lat.min()),
            float(self.node_lon.max()), float(self.node_lat.max()),
        )  # fmt: skip

    # --- cache -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the arrays (uncompressed: loading is a memory copy) and the metadata."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{name: getattr(self, name) for name in _ARRAYS})
        tmp.replace(path)
        meta = {**self.meta, "classes": list(self.classes), "cache_version": CACHE_VERSION}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> RoadGraph:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if meta.get("cache_version") != CACHE_VERSION:
            raise ValueError(f"{path} was written by another version")
        with np.load(path) as data:
            arrays = {name: data[name] for name in _ARRAYS}
        classes = tuple(meta.pop("classes"))
        return cls(**arrays, classes=classes, meta=meta)

    # --- interchange -------------------------------------------------------------------
    def to_networkx(self) -> Any:
        """A ``networkx.MultiDiGraph`` with node ``x`` (lon), ``y`` (lat) and edge
        ``travel_time_s``, ``length_m``, ``edge_id``, ``highway`` (the GraphML contract)."""
        import networkx as nx

        g = nx.MultiDiGraph(name=str(self.meta.get("source", "road graph")))
        for i in range(self.n_nodes):
            g.add_node(
                i,
                osmid=int(self.node_osm_id[i]),
                x=float(self.node_lon[i]),
                y=float(self.node_lat[i]),
            )
        for e in range(self.n_edges):
            g.add_edge(
                int(self.edge_u[e]),
                int(self.edge_v[e]),
                key=e,
                edge_id=e,
                travel_time_s=float(self.edge_time_s[e]),
                length_m=float(self.edge_length_m[e]),
                speed_kph=float(self.edge_speed_kph[e]),
                highway=self.classes[int(self.edge_class[e])],
                osm_way=int(self.edge_osm_way[e]),
            )
        return g

    def export_graphml(self, path: Path) -> None:
        import networkx as nx

        nx.write_graphml(self.to_networkx(), path)


def reverse_edges(graph: RoadGraph) -> IntArray:
    """For every edge, the edge running the other way over the same line, else ``-1``.

    Two edges are twins when they join the same two nodes in opposite directions, come
    from the same OSM way, have the same length (to the millimetre) and their polylines
    are the reverse of each other; pieces of a one-way road have no twin.
    """
    m = graph.n_edges
    twin = np.full(m, -1, dtype=np.int64)
    if m < 2:
        return twin
    u, v = graph.edge_u, graph.edge_v
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    mm = np.rint(graph.edge_length_m * 1000).astype(np.int64)
    order = np.lexsort((mm, graph.edge_osm_way, hi, lo))
    keys = np.stack((lo, hi, graph.edge_osm_way, mm))[:, order]
    same_next = np.all(keys[:, 1:] == keys[:, :-1], axis=0)
    # Only groups of exactly two: the pair (order[i], order[i+1]) with no third member.
    starts = np.flatnonzero(same_next)
    alone = np.ones(starts.shape[0], dtype=bool)
    alone &= np.concatenate(([True], ~same_next[:-1]))[starts]
    alone &= np.concatenate((~same_next[1:], [True]))[starts]
    a, b = order[starts[alone]], order[starts[alone] + 1]
    opposite = (u[a] == v[b]) & (v[a] == u[b])
    a, b = a[opposite], b[opposite]
    off = graph.geom_offset
    reversed_line = np.ones(a.shape[0], dtype=bool)
    for coords in (graph.geom_lon, graph.geom_lat):  # second point of a == last-but-one of b
        reversed_line &= coords[off[a] + 1] == coords[off[b + 1] - 2]
        reversed_line &= coords[off[a]] == coords[off[b + 1] - 1]
    a, b = a[reversed_line], b[reversed_line]
    twin[a], twin[b] = b, a
    return twin
