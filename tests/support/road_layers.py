"""Road line layers made from a compiled OSM graph, for the load-roads tests and benchmark:
one line per road piece, as a city's GIS road layer would hold it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from gis.graph import RoadGraph, reverse_edges


def road_pieces(graph: RoadGraph, *, crs: Any = 4326) -> gpd.GeoDataFrame:
    """Every road piece of ``graph`` once: a two-way piece (an edge with a twin) drawn
    along its lower-id edge with ``oneway`` "no", a one-way piece drawn in its direction
    with "yes". Columns: ``highway`` (the OSM class), ``speed_kph``, ``oneway``,
    ``travel_time_s`` and ``edge`` (the graph's edge id); index 1..n like a read file."""
    twin = reverse_edges(graph)
    edges = np.flatnonzero((twin < 0) | (np.arange(graph.n_edges) < twin))
    off = graph.geom_offset
    sizes = off[edges + 1] - off[edges]
    starts = np.repeat(off[edges], sizes)
    step = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    vertex = starts + step
    lines = shapely.linestrings(
        np.column_stack((graph.geom_lon[vertex], graph.geom_lat[vertex])),
        indices=np.repeat(np.arange(edges.shape[0]), sizes),
    )
    frame = gpd.GeoDataFrame(
        {
            "highway": np.asarray(graph.classes, dtype=object)[graph.edge_class[edges]],
            "speed_kph": graph.edge_speed_kph[edges],
            "oneway": np.where(twin[edges] >= 0, "no", "yes"),
            "travel_time_s": graph.edge_time_s[edges],
            "edge": edges,
        },
        geometry=lines,
        crs=4326,
    )
    frame.index = np.arange(1, len(frame) + 1)
    return frame if crs == 4326 else frame.to_crs(crs)


def write_layer(frame: gpd.GeoDataFrame, path: Path, **kwargs: Any) -> Path:
    """``frame`` written with geopandas (pyogrio), its format from ``path``'s suffix."""
    frame.to_file(path, engine="pyogrio", **kwargs)
    return path


def node_index(graph: RoadGraph) -> dict[tuple[float, float], int]:
    """Node index by its exact (lon, lat)."""
    points = zip(graph.node_lon.tolist(), graph.node_lat.tolist(), strict=True)
    return {point: i for i, point in enumerate(points)}


def osmnx_reference(frame: gpd.GeoDataFrame, seconds: np.ndarray) -> tuple[Any, np.ndarray]:
    """An independent graph of a layer whose lines meet exactly at their ends: osmnx's
    ``graph_from_gdfs`` over a node at each distinct line end and an edge per line and
    direction (``oneway`` "no": both), weighted ``travel_time`` = ``seconds``; its largest
    strongly connected part. Returns the graph and the nodes' (lon, lat) by node id."""
    import osmnx as ox
    import pandas as pd

    lines = frame.geometry.array
    ends = np.vstack([
        shapely.get_coordinates(shapely.get_point(lines, 0)),
        shapely.get_coordinates(shapely.get_point(lines, -1)),
    ])  # fmt: skip
    points, inverse = np.unique(ends, axis=0, return_inverse=True)
    n = len(frame)
    first, last = inverse[:n], inverse[n:]
    nodes = gpd.GeoDataFrame(
        {"x": points[:, 0], "y": points[:, 1]},
        geometry=gpd.points_from_xy(points[:, 0], points[:, 1]),
        crs=4326,
        index=pd.Index(np.arange(len(points)), name="osmid"),
    )
    both = (frame["oneway"] == "no").to_numpy()
    u = np.concatenate([first, last[both]])
    v = np.concatenate([last, first[both]])
    edges = gpd.GeoDataFrame(
        {"travel_time": np.concatenate([seconds, seconds[both]])},
        geometry=np.concatenate([lines, lines[both]]),
        crs=4326,
        index=pd.MultiIndex.from_arrays([u, v, np.arange(len(u))], names=["u", "v", "key"]),
    )
    graph = ox.truncate.largest_component(ox.graph_from_gdfs(nodes, edges), strongly=True)
    return graph, points
