"""Load a road network: from the on-disk cache when the file and profile are unchanged.

The cache key is the file's SHA-256 plus the profile's hash, so editing either rebuilds,
and several cities or profiles can sit side by side in one cache directory. A GIS line layer
(:func:`load_gis_network`) is keyed by its files' SHA-256 (a Shapefile's ``.shp``, ``.dbf``,
``.shx``, ``.prj`` and ``.cpg`` together) plus the mapping's and its profiles' hashes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gis.ch import ContractionHierarchy, build_ch
from gis.graph import LoadReport, RoadGraph
from gis.osm_io import Progress, file_sha256
from gis.profile import Profile, load_profile

if TYPE_CHECKING:
    from gis.line_roads import RoadLayerReport
    from gis.road_mapping import RoadMapping

SHAPEFILE_PARTS = (".shp", ".dbf", ".shx", ".prj", ".cpg")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emergency" / "graphs"


@dataclass(frozen=True)
class LoadedNetwork:
    graph: RoadGraph
    report: LoadReport | RoadLayerReport | None  # None when read from the cache
    cache_path: Path
    seconds: float
    ch: ContractionHierarchy | None = None  # for fast matrices without closures

    @property
    def from_cache(self) -> bool:
        return self.report is None


def cache_path(path: Path, profile: Profile, cache_dir: Path) -> Path:
    digest = file_sha256(path)
    stem = path.name.split(".")[0]
    return cache_dir / f"{stem}-{digest[:16]}-{profile.key}.npz"


def load_network(
    path: Path | str,
    *,
    profile: Profile | None = None,
    cache_dir: Path | None = None,
    rebuild: bool = False,
    with_ch: bool = True,
    progress: Progress | None = None,
) -> LoadedNetwork:
    """The compiled graph of ``path`` (and its contraction hierarchy): cached arrays if
    present, else parse, contract and cache."""
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such OSM file: {path}")
    profile = profile or load_profile()
    target = cache_path(path, profile, cache_dir or default_cache_dir())
    graph, report = _graph(path, profile, target, rebuild=rebuild, progress=progress)
    ch = _hierarchy(graph, target.with_suffix(".ch.npz"), progress) if with_ch else None
    return LoadedNetwork(graph, report, target, time.perf_counter() - started, ch)


def _graph(
    path: Path, profile: Profile, target: Path, *, rebuild: bool, progress: Progress | None
) -> tuple[RoadGraph, LoadReport | None]:
    if target.exists() and not rebuild:
        try:
            return RoadGraph.load(target), None
        except (ValueError, OSError, KeyError):
            pass  # stale or broken cache: rebuild below
    from gis.osm import build_graph  # osmium and scipy load only when parsing

    graph, report = build_graph(path, profile, progress=progress)
    graph = dataclasses.replace(graph, meta={**graph.meta, "sha256": file_sha256(path)})
    graph.save(target)
    ch_file = target.with_suffix(".ch.npz")
    ch_file.unlink(missing_ok=True)  # a new graph needs a new hierarchy
    return graph, report


def layer_sha256(path: Path) -> str:
    """SHA-256 of a layer file; of a Shapefile, of its parts that exist, in a fixed order."""
    if path.suffix.lower() != ".shp":
        return file_sha256(path)
    digest = hashlib.sha256()
    for suffix in SHAPEFILE_PARTS:
        for part in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
            if part.is_file():
                digest.update(f"{suffix}:{file_sha256(part)};".encode())
                break
    return digest.hexdigest()


def load_gis_network(
    path: Path | str,
    mapping: RoadMapping,
    *,
    cache_dir: Path | None = None,
    rebuild: bool = False,
    with_ch: bool = True,
    progress: Progress | None = None,
) -> LoadedNetwork:
    """The compiled graph of a GIS line layer (and its contraction hierarchy): cached arrays
    if present, else read with :func:`gis.layers.read_layer`, build, contract and cache.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The layer cannot be read (:class:`gis.layers.LayerError`), a mapped column is
        missing or no road is left.
    """
    from gis.road_mapping import network_key

    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such road layer: {path}")
    digest = layer_sha256(path)
    key = network_key(mapping, mapping.profiles())
    target = (cache_dir or default_cache_dir()) / f"{path.stem}-gis-{digest[:16]}-{key}.npz"
    graph: RoadGraph | None = None
    report: RoadLayerReport | None = None
    if target.exists() and not rebuild:
        try:
            graph = RoadGraph.load(target)
        except (ValueError, OSError, KeyError):
            graph = None  # stale or broken cache: rebuild below
    if graph is None:
        graph, report = _build_layer(path, mapping, progress)
        graph = dataclasses.replace(graph, meta={**graph.meta, "sha256": digest})
        graph.save(target)
        target.with_suffix(".ch.npz").unlink(missing_ok=True)
    ch = _hierarchy(graph, target.with_suffix(".ch.npz"), progress) if with_ch else None
    return LoadedNetwork(graph, report, target, time.perf_counter() - started, ch)


def _build_layer(
    path: Path, mapping: RoadMapping, progress: Progress | None
) -> tuple[RoadGraph, RoadLayerReport]:
    from gis.layers import read_layer  # geopandas and GDAL load only when building
    from gis.line_roads import build_road_graph

    started = time.perf_counter()
    frame = read_layer(path, crs=mapping.crs, layer=mapping.layer)
    read_s = time.perf_counter() - started
    graph, report = build_road_graph(frame, mapping, progress, source=path.name)
    return graph, dataclasses.replace(report, read_seconds=read_s)


def _hierarchy(graph: RoadGraph, target: Path, progress: Progress | None) -> ContractionHierarchy:
    if target.exists():
        try:
            ch = ContractionHierarchy.load(target)
            if ch.n_nodes == graph.n_nodes:
                return ch
        except (ValueError, OSError, KeyError):
            pass
    ch = build_ch(
        graph.n_nodes,
        graph.edge_u,
        graph.edge_v,
        graph.edge_time_s,
        graph.edge_length_m,
        progress=progress,
    )
    ch.save(target)
    return ch
