"""Build a :class:`~gis.graph.RoadGraph` from a real OSM file (.osm, .osm.bz2, .osm.pbf).

pyosmium reads all three formats with node locations attached to ways. Only ways a vehicle
of the profile may drive are kept; ways clipped at the extract edge (referring to nodes the
file does not contain) are cut at the missing nodes; the graph is simplified to junctions
and dead ends; only the largest strongly connected part is kept, so every kept node can
reach every other.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import osmium
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from gis.graph import LoadReport, RoadGraph
from gis.osm_io import Progress
from gis.profile import Profile

EARTH_RADIUS_M = 6_371_008.8


@dataclass
class _Way:
    osm_id: int
    cls: str
    speed_kph: float
    forward: bool
    backward: bool
    refs: list[int]
    lons: list[float]
    lats: list[float]


def _directions(tags: osmium.osm.TagList, cls: str, profile: Profile) -> tuple[bool, bool]:
    if not profile.respect_oneway:
        return True, True
    oneway = tags.get("oneway", "")
    if oneway in ("yes", "1", "true"):
        return True, False
    if oneway in ("-1", "reverse"):
        return False, True
    if oneway == "no":
        return True, True
    implied = cls in ("motorway", "motorway_link") or tags.get("junction") in (
        "roundabout",
        "circular",
    )
    return True, not implied


def _blocked(tags: osmium.osm.TagList, profile: Profile) -> bool:
    emergency = tags.get("emergency")
    if emergency in ("yes", "designated"):
        return False
    if emergency == "no":
        return True
    # The most specific access tag wins (OSM access hierarchy for a car-like vehicle).
    for key in ("motorcar", "motor_vehicle", "vehicle", "access"):
        value = tags.get(key)
        if value is not None:
            return value in profile.blocked_access
    return False


def read_ways(
    path: Path, profile: Profile, progress: Progress | None = None
) -> tuple[list[_Way], dict[str, int]]:
    """Drivable ways with their node ids and locations (NaN where the node is missing)."""
    counts = {"read": 0, "drivable": 0, "blocked": 0}
    ways: list[_Way] = []
    fp = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
    for obj in fp:
        if not isinstance(obj, osmium.osm.Way):
            continue
        cls = obj.tags.get("highway")
        if cls is None:
            continue
        counts["read"] += 1
        if cls not in profile.speeds_kph or obj.tags.get("area") == "yes":
            continue
        if _blocked(obj.tags, profile):
            counts["blocked"] += 1
            continue
        forward, backward = _directions(obj.tags, cls, profile)
        refs, lons, lats = [], [], []
        for node in obj.nodes:
            refs.append(node.ref)
            if node.location.valid():
                lons.append(node.location.lon)
                lats.append(node.location.lat)
            else:
                lons.append(float("nan"))
                lats.append(float("nan"))
        speed = profile.speed_kph(cls, obj.tags.get("maxspeed"))
        ways.append(_Way(obj.id, cls, speed, forward, backward, refs, lons, lats))
        counts["drivable"] += 1
        if progress and counts["drivable"] % 5000 == 0:
            progress("ways", counts["drivable"])
    return ways, counts


def _segments(way: _Way) -> list[tuple[list[int], list[float], list[float]]]:
    """Runs of consecutive nodes with known locations (a clipped way is cut at the gap)."""
    out = []
    start = None
    for i, lon in enumerate([*way.lons, float("nan")]):
        known = lon == lon  # not NaN
        if known and start is None:
            start = i
        elif not known and start is not None:
            if i - start >= 2:
                out.append((way.refs[start:i], way.lons[start:i], way.lats[start:i]))
            start = None
    return out


def haversine_m(lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """Great-circle length in metres of each step of a polyline (WGS-84 degrees)."""
    lon = np.radians(lons)
    lat = np.radians(lats)
    dlat = np.diff(lat)
    dlon = np.diff(lon)
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(dlon / 2) ** 2
    steps: np.ndarray = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    return steps


def build_graph(
    path: Path | str, profile: Profile, *, progress: Progress | None = None
) -> tuple[RoadGraph, LoadReport]:
    """Parse ``path`` and compile the largest strongly connected drivable graph.

    Parameters
    ----------
    path : Path
        An ``.osm``, ``.osm.bz2`` or ``.osm.pbf`` file.
    profile : Profile
        Road classes, speeds (km/h) and access rules.

    Returns
    -------
    (RoadGraph, LoadReport)
        Edge times in seconds, lengths in metres, coordinates WGS-84.
    """
    started = time.perf_counter()
    path = Path(path)
    ways, counts = read_ways(path, profile, progress)
    segments: list[tuple[_Way, tuple[list[int], list[float], list[float]]]] = []
    trimmed = dropped = 0
    for way in ways:
        parts = _segments(way)
        if len(parts) != 1 or len(parts[0][0]) != len(way.refs):
            trimmed += 1 if parts else 0
            dropped += 0 if parts else 1
        segments.extend((way, part) for part in parts)
    # Junctions: nodes used more than once, and the ends of every piece of road.
    uses: dict[int, int] = {}
    for _, (refs, _, _) in segments:
        for ref in refs:
            uses[ref] = uses.get(ref, 0) + 1
        uses[refs[0]] = uses.get(refs[0], 0) + 1
        uses[refs[-1]] = uses.get(refs[-1], 0) + 1
    index: dict[int, int] = {}
    node_lon: list[float] = []
    node_lat: list[float] = []
    node_osm: list[int] = []

    def node_index(ref: int, lon: float, lat: float) -> int:
        i = index.get(ref)
        if i is None:
            i = index[ref] = len(node_osm)
            node_osm.append(ref)
            node_lon.append(lon)
            node_lat.append(lat)
        return i

    classes = tuple(sorted(profile.speeds_kph))
    class_code = {c: i for i, c in enumerate(classes)}
    eu: list[int] = []
    ev: list[int] = []
    elen: list[float] = []
    espeed: list[float] = []
    ecls: list[int] = []
    eway: list[int] = []
    geoms: list[tuple[np.ndarray, np.ndarray]] = []
    for way, (refs, lons, lats) in segments:
        lon_a = np.asarray(lons)
        lat_a = np.asarray(lats)
        steps = haversine_m(lon_a, lat_a)
        cut = [0] + [i for i in range(1, len(refs) - 1) if uses[refs[i]] > 1] + [len(refs) - 1]
        for a, b in itertools.pairwise(cut):
            u = node_index(refs[a], lons[a], lats[a])
            v = node_index(refs[b], lons[b], lats[b])
            length = float(steps[a:b].sum())
            pieces = []
            if way.forward:
                pieces.append((u, v, lon_a[a : b + 1], lat_a[a : b + 1]))
            if way.backward:
                pieces.append((v, u, lon_a[a : b + 1][::-1], lat_a[a : b + 1][::-1]))
            for pu, pv, glon, glat in pieces:
                eu.append(pu)
                ev.append(pv)
                elen.append(length)
                espeed.append(way.speed_kph)
                ecls.append(class_code[way.cls])
                eway.append(way.osm_id)
                geoms.append((glon, glat))
    if progress:
        progress("edges", len(eu))
    n = len(node_osm)
    u_arr = np.asarray(eu, dtype=np.int64)
    v_arr = np.asarray(ev, dtype=np.int64)
    adjacency = csr_matrix((np.ones(len(eu)), (u_arr, v_arr)), shape=(n, n))
    n_comp, labels = connected_components(adjacency, directed=True, connection="strong")
    biggest = int(np.bincount(labels).argmax()) if n else 0
    keep_node = labels == biggest
    keep_edge = keep_node[u_arr] & keep_node[v_arr]
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[keep_node] = np.arange(int(keep_node.sum()))
    kept = np.flatnonzero(keep_edge)
    lengths = np.asarray(elen)[kept]
    speeds = np.asarray(espeed)[kept]
    sizes = np.array([len(geoms[e][0]) for e in kept], dtype=np.int64)
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    graph = RoadGraph(
        node_osm_id=np.asarray(node_osm, dtype=np.int64)[keep_node],
        node_lon=np.asarray(node_lon)[keep_node],
        node_lat=np.asarray(node_lat)[keep_node],
        edge_u=new_index[u_arr[kept]],
        edge_v=new_index[v_arr[kept]],
        edge_length_m=lengths,
        edge_time_s=lengths / (speeds / 3.6),
        edge_speed_kph=speeds,
        edge_class=np.asarray(ecls, dtype=np.int16)[kept],
        edge_osm_way=np.asarray(eway, dtype=np.int64)[kept],
        geom_offset=offsets,
        geom_lon=np.concatenate([geoms[e][0] for e in kept]) if len(kept) else np.zeros(0),
        geom_lat=np.concatenate([geoms[e][1] for e in kept]) if len(kept) else np.zeros(0),
        classes=classes,
        meta={"source": path.name, "profile": profile.name, "profile_key": profile.key},
    )
    report = LoadReport(
        ways_read=counts["read"],
        ways_drivable=counts["drivable"],
        ways_blocked=counts["blocked"],
        ways_trimmed=trimmed,
        ways_dropped_clipped=dropped,
        nodes_built=n,
        edges_built=len(eu),
        nodes_kept=graph.n_nodes,
        edges_kept=graph.n_edges,
        components=int(n_comp),
        seconds=time.perf_counter() - started,
    )
    return graph, report
