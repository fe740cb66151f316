"""Join the lines of a road layer into a graph: nodes where lines meet, pieces between them.

GIS road layers carry no topology: two lines "meet" when an end of one lies on an end or a
vertex of the other, up to the drawing's precision, and layers drawn lane by lane leave gaps
of tens of metres at junctions. :func:`join_lines` finds those meetings within a tolerance in
metres and cuts the lines into pieces between them, on flat numpy arrays:

1. every vertex in a local transverse Mercator projection (metres, true to a few parts in
   ten thousand across a province);
2. ends within the tolerance of each other (a KD-tree's pairs), and each end within the
   tolerance of another line's interior vertex (its nearest such vertex), become one node:
   connected components of those pairs (so a chain of close ends is one junction);
3. a node that holds a line's interior vertex sits on that vertex (the through road keeps its
   shape); otherwise at the mean of its ends. Ends move onto their node;
4. every line is cut at its node vertices; a piece whose two ends fell into one node and
   which is no longer than twice the tolerance is a line folded up by snapping, dropped.

Lines crossing at interior vertices only (a bridge over a road, drawn without a shared end)
are not joined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from gis.osm import EARTH_RADIUS_M, haversine_m

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
JOIN_EPS_M = 1e-3  # ends closer than this are one point, whatever the tolerance
_NEIGHBOURS = 4  # interior vertices looked at per end (the nearest may be its own line's)


@dataclass(frozen=True)
class Topology:
    """Lines cut into pieces between nodes.

    ``lon``/``lat`` are the input vertices with ends moved onto their nodes; piece ``k``
    runs over vertices ``piece_start[k] .. piece_stop[k]`` (inclusive) of line
    ``piece_line[k]``, from node ``piece_u[k]`` to node ``piece_v[k]``, ``piece_length_m[k]``
    metres long (great circle, WGS-84).
    """

    lon: FloatArray
    lat: FloatArray
    node_lon: FloatArray
    node_lat: FloatArray
    piece_start: IntArray
    piece_stop: IntArray
    piece_line: IntArray
    piece_u: IntArray
    piece_v: IntArray
    piece_length_m: FloatArray
    ends_snapped: int  # ends moved (more than JOIN_EPS_M) to join another line
    ends_on_vertices: int  # ends joined onto another line's interior vertex
    pieces_collapsed: int

    @property
    def n_nodes(self) -> int:
        return int(self.node_lon.shape[0])


def local_metres(lon: FloatArray, lat: FloatArray) -> FloatArray:
    """``(n, 2)`` metres in a transverse Mercator centred on the points' bounding box."""
    lon0 = float((lon.min() + lon.max()) / 2)
    lat0 = float((lat.min() + lat.max()) / 2)
    proj = (
        f"+proj=tmerc +lat_0={lat0:.9f} +lon_0={lon0:.9f} +k=1 +x_0=0 +y_0=0 "
        "+ellps=WGS84 +units=m +no_defs"
    )
    to_metres = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
    x, y = to_metres.transform(lon, lat)
    return np.column_stack((np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)))


def _pairs(
    xy: FloatArray,
    ends: IntArray,
    end_line: IntArray,
    vline: IntArray,
    interior: IntArray,
    r: float,
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Vertex pairs to join (ends, ends or interior vertices), and of those the ends that
    landed on an interior vertex and the vertices they landed on."""
    a_idx, b_idx = cKDTree(xy[ends]).query_pairs(r, output_type="ndarray").T
    a, b = ends[a_idx], ends[b_idx]
    # A line's own ends join only where they touch (a closed ring), never across a gap: a
    # short line would otherwise fold into a point.
    touching = np.hypot(*(xy[a] - xy[b]).T) <= JOIN_EPS_M
    keep = (end_line[a_idx] != end_line[b_idx]) | touching
    a, b = a[keep], b[keep]
    hit_end = hit_vertex = np.zeros(0, dtype=np.int64)
    if interior.shape[0]:
        k = min(_NEIGHBOURS, interior.shape[0])
        # query's bound is strict: nudge it so a vertex exactly r away counts, as for pairs.
        _, j = cKDTree(xy[interior]).query(xy[ends], k=k, distance_upper_bound=r * (1 + 1e-12))
        j = j.reshape(ends.shape[0], k)
        found = j < interior.shape[0]
        vertex = interior[np.where(found, j, 0)]
        other = found & (vline[vertex] != end_line[:, None])
        has = other.any(axis=1)
        first = other.argmax(axis=1)
        hit_end = ends[has]
        hit_vertex = vertex[np.flatnonzero(has), first[has]]
    return np.concatenate((a, hit_end)), np.concatenate((b, hit_vertex)), hit_end, hit_vertex


def join_lines(lon: FloatArray, lat: FloatArray, offsets: IntArray, tolerance_m: float) -> Topology:
    """Nodes and pieces of the lines ``offsets`` cuts ``lon``/``lat`` into.

    Parameters
    ----------
    lon, lat : ndarray
        Every line's vertices, one after another (WGS-84 degrees), no two consecutive
        vertices of a line equal.
    offsets : ndarray of int
        Line ``i`` is vertices ``offsets[i]:offsets[i + 1]``, at least two of them.
    tolerance_m : float
        Ends this close (metres) to another end, or to another line's vertex, join it.

    Returns
    -------
    Topology
    """
    n_lines = offsets.shape[0] - 1
    n_v = lon.shape[0]
    first, last = offsets[:-1], offsets[1:] - 1
    vline = np.repeat(np.arange(n_lines, dtype=np.int64), np.diff(offsets))
    ends = np.concatenate((first, last))
    end_line = np.concatenate((np.arange(n_lines), np.arange(n_lines)))
    is_end = np.zeros(n_v, dtype=bool)
    is_end[ends] = True
    r = max(float(tolerance_m), JOIN_EPS_M)
    xy = local_metres(lon, lat)
    rows, cols, hit_end, hit_vertex = _pairs(xy, ends, end_line, vline, np.flatnonzero(~is_end), r)
    links = coo_matrix((np.ones(rows.shape[0]), (rows, cols)), shape=(n_v, n_v)).tocsr()
    _, label = connected_components(links, directed=False)
    is_node = is_end.copy()
    is_node[hit_vertex] = True
    node_pos = np.flatnonzero(is_node)
    _, node_of = np.unique(label[node_pos], return_inverse=True)
    node_lon, node_lat = _node_points(lon, lat, node_pos, node_of, ~is_end[node_pos])
    moved_m = distance_m(lon[node_pos], lat[node_pos], node_lon[node_of], node_lat[node_of])
    lon, lat = lon.copy(), lat.copy()
    lon[node_pos] = node_lon[node_of]
    lat[node_pos] = node_lat[node_of]
    node_index = np.full(n_v, -1, dtype=np.int64)
    node_index[node_pos] = node_of
    is_last = np.zeros(n_v, dtype=bool)
    is_last[last] = True
    start = node_pos[~is_last[node_pos]]
    stop = node_pos[np.searchsorted(node_pos, start, side="right")]
    steps = np.zeros(n_v)
    steps[:-1] = haversine_m(lon, lat)
    steps[last] = 0.0  # the step from one line's last vertex to the next line's first
    length = np.add.reduceat(steps, start) if start.shape[0] else np.zeros(0)
    u, v = node_index[start], node_index[stop]
    collapsed = (u == v) & (length <= 2 * r)
    keep = ~collapsed
    return Topology(
        lon=lon,
        lat=lat,
        node_lon=node_lon,
        node_lat=node_lat,
        piece_start=start[keep],
        piece_stop=stop[keep],
        piece_line=vline[start[keep]],
        piece_u=u[keep],
        piece_v=v[keep],
        piece_length_m=length[keep],
        ends_snapped=int(((moved_m > JOIN_EPS_M) & is_end[node_pos]).sum()),
        ends_on_vertices=int(np.unique(hit_end).shape[0]),
        pieces_collapsed=int(collapsed.sum()),
    )


def distance_m(
    lon1: FloatArray, lat1: FloatArray, lon2: FloatArray, lat2: FloatArray
) -> FloatArray:
    """Great-circle metres between matching points (WGS-84 degrees)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    h = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    )
    out: FloatArray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
    return out


def _node_points(
    lon: FloatArray,
    lat: FloatArray,
    node_pos: IntArray,
    node_of: IntArray,
    interior: NDArray[np.bool_],
) -> tuple[FloatArray, FloatArray]:
    """Each node's point: its first interior vertex if it has one, else the mean of its
    ends (taken as offsets from the first, so ends that coincide keep their exact value)."""
    n = int(node_of.max()) + 1 if node_of.shape[0] else 0
    ref = node_pos[np.unique(node_of, return_index=True)[1]]
    count = np.bincount(node_of, minlength=n)
    out = []
    for coord in (lon, lat):
        offset = coord[node_pos] - coord[ref][node_of]
        point = coord[ref] + np.bincount(node_of, weights=offset, minlength=n) / count
        on_vertex = node_of[interior]
        vertex_pos = node_pos[interior]
        _, first = np.unique(on_vertex, return_index=True)
        point[on_vertex[first]] = coord[vertex_pos[first]]
        out.append(point)
    return out[0], out[1]
