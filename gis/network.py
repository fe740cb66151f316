"""Load a road network: from the on-disk cache when the file and profile are unchanged.

The cache key is the file's SHA-256 plus the profile's hash, so editing either rebuilds,
and several cities or profiles can sit side by side in one cache directory.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

from gis.ch import ContractionHierarchy, build_ch
from gis.graph import LoadReport, RoadGraph
from gis.osm_io import Progress, file_sha256
from gis.profile import Profile, load_profile


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emergency" / "graphs"


@dataclass(frozen=True)
class LoadedNetwork:
    graph: RoadGraph
    report: LoadReport | None  # None when read from the cache
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
