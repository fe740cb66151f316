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
    progress: Progress | None = None,
) -> LoadedNetwork:
    """The compiled graph of ``path``: cached arrays if present, else parse and cache."""
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such OSM file: {path}")
    profile = profile or load_profile()
    target = cache_path(path, profile, cache_dir or default_cache_dir())
    if target.exists() and not rebuild:
        try:
            graph = RoadGraph.load(target)
            return LoadedNetwork(graph, None, target, time.perf_counter() - started)
        except (ValueError, OSError, KeyError):
            pass  # stale or broken cache: rebuild below
    from gis.osm import build_graph  # osmium and scipy load only when parsing

    graph, report = build_graph(path, profile, progress=progress)
    meta = {**graph.meta, "sha256": file_sha256(path)}
    graph = dataclasses.replace(graph, meta=meta)
    graph.save(target)
    return LoadedNetwork(graph, report, target, time.perf_counter() - started)
