"""Roads from a GIS line layer: the graph built from its lines, and the load report.

A city's road layer (Shapefile, GeoPackage, GeoJSON) is one line per road piece with columns
for its class, and maybe its speed, direction and travel time (the mapping:
:mod:`gis.road_mapping`). :func:`build_road_graph` turns it into the same
:class:`~gis.graph.RoadGraph` the OSM loader builds: lines are joined where their ends meet,
or where an end lies on another line's vertex, within ``snap_tolerance_m`` metres
(:mod:`gis.line_topology`); speeds come from the class (a profile) unless a speed or travel
time column says otherwise; the largest strongly connected part is kept.

Everything runs on flat numpy arrays (shapely's vectorised coordinates, a KD-tree, connected
components), never a Python loop over lines or vertices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from gis.graph import RoadGraph
from gis.line_topology import Topology, join_lines
from gis.osm_io import Progress
from gis.profile import Profile
from gis.road_mapping import (
    SPEED_UNITS_KPH,
    RoadMapping,
    load_mapping,
    network_key,
    parse_mapping,
    value_key,
)

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "RoadLayerReport",
    "RoadMapping",
    "build_road_graph",
    "load_mapping",
    "network_key",
    "parse_mapping",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
UNKNOWN_HIGHWAY = "road"  # the OSM class of a road of unknown type: how unknown classes draw
MAX_REFUSED_LISTED = 50
_LINE_TYPES = (1, 2, 5)  # shapely type ids: LineString, LinearRing, MultiLineString
_TYPE_NAMES = {
    0: "a point",
    3: "a polygon",
    4: "a multipoint",
    6: "a multipolygon",
    7: "a geometry collection",
}
# One-way column values, compared case-folded: forward (drawn direction), both, backward.
_ONEWAY_WORDS = {
    **dict.fromkeys(("yes", "true", "1", "t", "y", "单向", "正向"), "yes"),
    **dict.fromkeys(("no", "false", "0", "f", "n", "", "双向"), "no"),
    **dict.fromkeys(("-1", "reverse", "逆向", "反向"), "-1"),
}


# --- the report ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RoadLayerReport:
    """What a line layer gave, for the operator: lines used and refused (with reasons),
    classes (known and unknown, lines each), how lines were joined, what was kept."""

    lines_read: int = 0
    lines_used: int = 0
    lines_skipped: int = 0  # by skip_classes
    parts: int = 0  # line parts used (a MultiLineString gives several)
    refused: tuple[tuple[int, str], ...] = ()  # (row, reason), the first MAX_REFUSED_LISTED
    refused_count: int = 0
    classes: dict[str, int] = field(default_factory=dict)  # known class value -> lines
    unknown_classes: dict[str, int] = field(default_factory=dict)  # at the default speed
    default_speed_kph: float = 0.0
    speed_from_column: int = 0
    speed_missing: int = 0  # speed column empty or not positive: class speed used
    time_from_column: int = 0
    oneway_unknown: dict[str, int] = field(default_factory=dict)  # taken as two-way
    ends_snapped: int = 0
    ends_on_vertices: int = 0
    pieces_collapsed: int = 0
    nodes_built: int = 0
    edges_built: int = 0
    nodes_kept: int = 0
    edges_kept: int = 0
    components: int = 0
    read_seconds: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["refused"] = [{"row": row, "reason": reason} for row, reason in self.refused]
        return out

    def lines(self) -> list[str]:
        out = [
            f"lines read: {self.lines_read}, used: {self.lines_used} ({self.parts} parts), "
            f"refused: {self.refused_count}, skipped by class: {self.lines_skipped}"
        ]
        out += [f"  row {row}: {reason}" for row, reason in self.refused]
        if self.refused_count > len(self.refused):
            out.append(f"  ... and {self.refused_count - len(self.refused)} more refused")
        known = ", ".join(f"{k} {n}" for k, n in sorted(self.classes.items()))
        out.append(f"classes: {known or 'none'}")
        if self.unknown_classes:
            unknown = ", ".join(f"{k!r} {n}" for k, n in sorted(self.unknown_classes.items()))
            out.append(f"unknown classes (at {self.default_speed_kph:g} km/h): {unknown}")
        if self.speed_from_column or self.speed_missing:
            out.append(
                f"speed column: {self.speed_from_column} lines, {self.speed_missing} empty "
                "or not positive (class speed used)"
            )
        if self.time_from_column:
            out.append(f"travel time column: {self.time_from_column} lines")
        if self.oneway_unknown:
            values = ", ".join(f"{k!r} {n}" for k, n in sorted(self.oneway_unknown.items()))
            out.append(f"one-way values not understood (taken as two-way): {values}")
        out += [
            f"joins: {self.ends_snapped} line ends snapped, {self.ends_on_vertices} onto "
            f"another line's vertex; {self.pieces_collapsed} pieces folded up by snapping",
            f"graph: {self.nodes_built} nodes / {self.edges_built} edges in "
            f"{self.components} strongly connected parts",
            f"kept the largest: {self.nodes_kept} nodes / {self.edges_kept} edges "
            f"(dropped {self.nodes_built - self.nodes_kept} nodes, "
            f"{self.edges_built - self.edges_kept} edges)",
        ]
        return out


# --- building ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Rows:
    """What each row of the layer gives its roads (indexed by row position)."""

    number: IntArray  # the file's row number (the graph's edge_osm_way)
    class_text: list[str]  # by class code
    class_code: IntArray
    highway_code: IntArray  # index into highways
    highways: tuple[str, ...]
    known: NDArray[np.bool_]  # by class code
    speed_kph: FloatArray
    speed_given: NDArray[np.bool_]
    speed_column: bool
    time_s: FloatArray  # NaN: none given
    forward: NDArray[np.bool_]
    backward: NDArray[np.bool_]
    skipped: NDArray[np.bool_]
    oneway_unknown: dict[str, int]
    default_speed_kph: float


@dataclass(frozen=True)
class _Lines:
    """The usable line parts: vertices (no consecutive repeats), cut by ``offsets``."""

    lon: FloatArray
    lat: FloatArray
    offsets: IntArray
    row: IntArray  # each line's row position
    reasons: dict[int, str]  # row position -> why it was refused


def build_road_graph(
    gdf: gpd.GeoDataFrame,
    mapping: RoadMapping,
    progress: Progress | None = None,
    *,
    source: str = "layer",
) -> tuple[RoadGraph, RoadLayerReport]:
    """Compile a line layer into the largest strongly connected drivable graph.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        One road line per row (LineString or MultiLineString, heights ignored), in any CRS
        (reprojected to WGS-84; no CRS: taken as WGS-84), indexed by the file's row number
        as :func:`gis.layers.read_layer` reads it.
    mapping : RoadMapping
        The columns, units, one-way rule, snap tolerance and profiles.
    progress : callable, optional
        Called with (stage, count) as the build goes.
    source : str
        The file name, kept in the graph's ``meta``.

    Returns
    -------
    (RoadGraph, RoadLayerReport)
        Edge times in seconds, lengths in metres (great circle), coordinates WGS-84;
        ``edge_osm_way`` is the row number of each edge's line and ``classes`` are OSM
        highway classes (a profile's ``osm_class``).
    """
    started = time.perf_counter()
    profiles = mapping.profiles()
    if gdf.crs is not None and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    _check_columns(gdf, mapping)
    rows = _rows(gdf, mapping, profiles)
    lines = _lines(np.asarray(gdf.geometry.array, dtype=object), ~rows.skipped)
    if progress:
        progress("lines", int(lines.row.shape[0]))
    if not lines.row.shape[0]:
        some = [f"row {rows.number[pos]}: {why}" for pos, why in sorted(lines.reasons.items())]
        why = f"; {'; '.join(some[:3])}" if some else ""
        raise ValueError(f"no usable line in the layer ({len(gdf)} rows{why})")
    topo = join_lines(lines.lon, lines.lat, lines.offsets, mapping.snap_tolerance_m)
    if progress:
        progress("nodes", topo.n_nodes)
    arrays, built = _compile(topo, lines.row, rows)
    graph = RoadGraph(
        **arrays,
        classes=rows.highways,
        meta={
            "source": source,
            "kind": "gis",
            "profile": "+".join(p.name for p in profiles),
            "profile_key": network_key(mapping, profiles),
            "mapping": mapping.as_dict(),
        },
    )
    if progress:
        progress("edges", graph.n_edges)
    report = _report(rows, lines, topo, graph, built, time.perf_counter() - started)
    return graph, report


def _check_columns(gdf: gpd.GeoDataFrame, mapping: RoadMapping) -> None:
    for key, column in (
        ("class", mapping.class_field),
        ("speed", mapping.speed_field),
        ("name", mapping.name_field),
        ("oneway", mapping.oneway_field),
        ("travel_time", mapping.travel_time_field),
    ):
        if column is not None and column not in gdf.columns:
            have = ", ".join(str(c) for c in gdf.columns if c != gdf.geometry.name)
            raise ValueError(f"fields.{key}: no column {column!r} in the layer (columns: {have})")


def _class_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # numeric class codes read back as floats
    return str(value).strip()


def _rows(gdf: gpd.GeoDataFrame, mapping: RoadMapping, profiles: tuple[Profile, ...]) -> _Rows:
    n = len(gdf)
    index = gdf.index.to_numpy()
    number = index.astype(np.int64) if index.dtype.kind in "iu" else np.arange(1, n + 1)
    codes, uniques = pd.factorize(gdf[mapping.class_field], use_na_sentinel=True)
    texts = [_class_text(u) for u in uniques] + [""]  # code -1 (missing) is the last
    codes = np.where(codes < 0, len(texts) - 1, codes).astype(np.int64)
    default = next(
        (p.default_speed_kph for p in profiles if p.default_speed_kph is not None),
        profiles[0].fallback_speed_kph,
    )
    found = [_lookup(text, profiles) for text in texts]
    highways = tuple(sorted({hw for _, hw in (f or (default, UNKNOWN_HIGHWAY) for f in found)}))
    class_speed = np.array([f[0] if f else default for f in found])
    class_highway = np.array([highways.index(f[1] if f else UNKNOWN_HIGHWAY) for f in found])
    skip = {value_key(v) for v in mapping.skip_classes}
    skipped_code = np.array([value_key(t) in skip for t in texts], dtype=bool)
    speed = class_speed[codes]
    given = np.zeros(n, dtype=bool)
    if mapping.speed_field is not None:
        column = _numbers(gdf[mapping.speed_field]) * SPEED_UNITS_KPH[mapping.speed_unit]
        given = np.isfinite(column) & (column > 0)
        speed = np.where(given, column, speed)
    time_s = np.full(n, np.nan)
    if mapping.travel_time_field is not None:
        column = _numbers(gdf[mapping.travel_time_field])
        time_s = np.where(np.isfinite(column) & (column > 0), column, np.nan)
    forward, backward, unknown = _directions(gdf, mapping)
    return _Rows(
        number=number,
        class_text=texts,
        class_code=codes,
        highway_code=class_highway[codes].astype(np.int64),
        highways=highways,
        known=np.array([f is not None for f in found], dtype=bool),
        speed_kph=speed.astype(np.float64),
        speed_given=given,
        speed_column=mapping.speed_field is not None,
        time_s=time_s,
        forward=forward,
        backward=backward,
        skipped=skipped_code[codes],
        oneway_unknown=unknown,
        default_speed_kph=float(default),
    )


def _lookup(text: str, profiles: tuple[Profile, ...]) -> tuple[float, str] | None:
    """(km/h, OSM class) of a class value, from the first profile that knows it."""
    if not text:
        return None
    for profile in profiles:
        cls = profile.lookup(text)
        if cls is not None:
            return profile.speeds_kph[cls], profile.highway_of(cls)
    return None


def _numbers(column: pd.Series) -> FloatArray:
    return np.asarray(pd.to_numeric(column, errors="coerce"), dtype=np.float64)


def _directions(
    gdf: gpd.GeoDataFrame, mapping: RoadMapping
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], dict[str, int]]:
    """Which way each row may be driven: (forward as drawn, backward), and the one-way
    values not understood (taken as two-way) with their counts."""
    n = len(gdf)
    if mapping.oneway != "column" or mapping.oneway_field is None:
        return np.ones(n, dtype=bool), np.full(n, mapping.oneway != "drawn"), {}
    codes, uniques = pd.factorize(gdf[mapping.oneway_field], use_na_sentinel=True)
    meanings, unknown = [], {}
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    for value, count in zip(uniques, counts, strict=True):
        key = value_key(value)
        meaning = mapping.oneway_values.get(key) or _ONEWAY_WORDS.get(key)
        if meaning is None:
            unknown[str(value)] = int(count)
        meanings.append(meaning or "no")
    meaning_of = np.array([*meanings, "no"])[np.where(codes < 0, len(meanings), codes)]
    return meaning_of != "-1", meaning_of != "yes", unknown


def _lines(geoms: NDArray[np.object_], wanted: NDArray[np.bool_]) -> _Lines:
    """The line parts of the wanted rows, and why the other rows give none."""
    reasons: dict[int, str] = {}
    type_id = shapely.get_type_id(geoms)
    empty = shapely.is_empty(geoms)
    for tid in np.unique(type_id[wanted]):
        rows = np.flatnonzero(wanted & (type_id == tid) & ~empty)
        if tid < 0:
            reasons.update(dict.fromkeys(rows.tolist(), "no geometry"))
        elif tid not in _LINE_TYPES:
            reasons.update(dict.fromkeys(rows.tolist(), f"not a line ({_TYPE_NAMES[int(tid)]})"))
    reasons.update(dict.fromkeys(np.flatnonzero(wanted & empty).tolist(), "empty geometry"))
    candidates = np.flatnonzero(wanted & np.isin(type_id, _LINE_TYPES) & ~empty)
    parts, part_of = shapely.get_parts(geoms[candidates], return_index=True)
    part_row = candidates[part_of]
    xy, vpart = shapely.get_coordinates(parts, return_index=True)
    lon, lat = xy[:, 0], xy[:, 1]
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(lon) <= 180) | ~(np.abs(lat) <= 90)  # NaN is bad too
    bad_rows = np.unique(part_row[vpart[bad]])
    reasons.update(
        dict.fromkeys(bad_rows.tolist(), "coordinates outside longitude/latitude (is crs: right?)")
    )
    row_bad = np.zeros(geoms.shape[0], dtype=bool)
    row_bad[bad_rows] = True
    keep = ~row_bad[part_row[vpart]]
    same_part = np.concatenate(([False], vpart[1:] == vpart[:-1]))
    repeat = same_part & np.concatenate(([False], (lon[1:] == lon[:-1]) & (lat[1:] == lat[:-1])))
    keep &= ~repeat
    counts = np.bincount(vpart[keep], minlength=parts.shape[0])
    good = counts >= 2
    has_good = np.zeros(geoms.shape[0], dtype=bool)
    has_good[part_row[good]] = True
    degenerate = candidates[~has_good[candidates] & ~row_bad[candidates]]
    reasons.update(dict.fromkeys(degenerate.tolist(), "fewer than two distinct points"))
    keep &= good[vpart]
    offsets = np.zeros(int(good.sum()) + 1, dtype=np.int64)
    np.cumsum(counts[good], out=offsets[1:])
    return _Lines(lon[keep], lat[keep], offsets, part_row[good], reasons)


@dataclass(frozen=True)
class _Built:
    nodes: int
    edges: int
    components: int


def _compile(
    topo: Topology, line_row: IntArray, rows: _Rows
) -> tuple[dict[str, NDArray[Any]], _Built]:
    """Directed edges of the pieces (both ways where the row allows), their times, and the
    largest strongly connected part as RoadGraph arrays."""
    piece_row = line_row[topo.piece_line]
    ahead = np.flatnonzero(rows.forward[piece_row])
    back = np.flatnonzero(rows.backward[piece_row])
    piece = np.concatenate((ahead, back))
    order = np.argsort(piece, kind="stable")  # each piece's forward edge, then its reverse
    piece = piece[order]
    rev = np.concatenate((np.zeros(ahead.shape[0], bool), np.ones(back.shape[0], bool)))[order]
    u = np.where(rev, topo.piece_v[piece], topo.piece_u[piece])
    v = np.where(rev, topo.piece_u[piece], topo.piece_v[piece])
    if not piece.shape[0]:
        raise ValueError("the layer's lines make no road (every line refused or folded up)")
    length = topo.piece_length_m[piece]
    row = piece_row[piece]
    speed = rows.speed_kph[row]
    time_s = length / (speed / 3.6)
    # A travel time column is the time of the whole line: its pieces share it by length.
    row_length = np.bincount(piece_row, weights=topo.piece_length_m, minlength=len(rows.number))
    given = np.isfinite(rows.time_s[row]) & (row_length[row] > 0)
    share = np.divide(length, row_length[row], out=np.zeros_like(length), where=given)
    time_s = np.where(given, np.nan_to_num(rows.time_s[row]) * share, time_s)
    moving = given & (time_s > 0)
    speed = np.where(
        moving, np.divide(length, time_s, out=np.ones_like(length), where=moving) * 3.6, speed
    )
    n = topo.n_nodes
    adjacency = csr_matrix((np.ones(u.shape[0]), (u, v)), shape=(n, n))
    n_comp, labels = connected_components(adjacency, directed=True, connection="strong")
    keep_node = labels == int(np.bincount(labels).argmax())
    kept = np.flatnonzero(keep_node[u] & keep_node[v])
    if not kept.shape[0]:
        raise ValueError(
            f"no two of the layer's {n} line ends reach each other both ways: are the "
            "lines joined (snap_tolerance_m) and the one-way rule right (oneway)?"
        )
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[keep_node] = np.arange(int(keep_node.sum()))
    start, stop = topo.piece_start[piece[kept]], topo.piece_stop[piece[kept]]
    sizes = stop - start + 1
    offsets = np.zeros(kept.shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    step = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], sizes)
    vertex = np.where(
        np.repeat(rev[kept], sizes), np.repeat(stop, sizes) - step, np.repeat(start, sizes) + step
    )
    arrays: dict[str, NDArray[Any]] = dict(
        node_osm_id=np.flatnonzero(keep_node).astype(np.int64) + 1,
        node_lon=topo.node_lon[keep_node],
        node_lat=topo.node_lat[keep_node],
        edge_u=new_index[u[kept]],
        edge_v=new_index[v[kept]],
        edge_length_m=length[kept],
        edge_time_s=time_s[kept],
        edge_speed_kph=speed[kept],
        edge_class=rows.highway_code[row[kept]].astype(np.int16),
        edge_osm_way=rows.number[row[kept]],
        geom_offset=offsets,
        geom_lon=topo.lon[vertex],
        geom_lat=topo.lat[vertex],
    )
    return arrays, _Built(nodes=n, edges=int(u.shape[0]), components=int(n_comp))


def _report(
    rows: _Rows, lines: _Lines, topo: Topology, graph: RoadGraph, built: _Built, seconds: float
) -> RoadLayerReport:
    used = np.zeros(len(rows.number), dtype=bool)
    used[lines.row] = True
    per_class = np.bincount(rows.class_code[used], minlength=len(rows.class_text))
    classes: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for code, count in enumerate(per_class.tolist()):
        if count:
            text = rows.class_text[code]
            target = classes if rows.known[code] else unknown
            target[text or "(empty)"] = target.get(text or "(empty)", 0) + count
    refused = sorted((int(rows.number[pos]), reason) for pos, reason in lines.reasons.items())
    return RoadLayerReport(
        lines_read=len(rows.number),
        lines_used=int(used.sum()),
        lines_skipped=int(rows.skipped.sum()),
        parts=int(lines.row.shape[0]),
        refused=tuple(refused[:MAX_REFUSED_LISTED]),
        refused_count=len(refused),
        classes=classes,
        unknown_classes=unknown,
        default_speed_kph=rows.default_speed_kph,
        speed_from_column=int((rows.speed_given & used).sum()),
        speed_missing=int((~rows.speed_given & used).sum()) if rows.speed_column else 0,
        time_from_column=int((np.isfinite(rows.time_s) & used).sum()),
        oneway_unknown=rows.oneway_unknown,
        ends_snapped=topo.ends_snapped,
        ends_on_vertices=topo.ends_on_vertices,
        pieces_collapsed=topo.pieces_collapsed,
        nodes_built=built.nodes,
        edges_built=built.edges,
        nodes_kept=graph.n_nodes,
        edges_kept=graph.n_edges,
        components=built.components,
        seconds=seconds,
    )
