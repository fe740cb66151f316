"""Which road network the server uses, and loading it (from the cache in well under 2 s)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from command.seed import city_extract
from core.config import Settings
from gis.engine import Engine
from gis.network import LoadedNetwork, load_gis_network, load_network
from gis.osm_io import Progress
from gis.profile import load_profile
from gis.roads_db import read_roads_meta

log = logging.getLogger("emergency.roads")


@dataclass(frozen=True)
class RoadSource:
    """A road network's file, and for a GIS line layer the mapping it is built with."""

    path: Path
    mapping: dict[str, Any] | None = None  # None: an OSM file

    @property
    def kind(self) -> str:
        return "osm" if self.mapping is None else "gis"


def road_source(settings: Settings, sessions: sessionmaker[Session] | None = None) -> RoadSource:
    """The network to route on: EMERGENCY_OSM_FILE if set; else the file `load-osm` or
    `load-roads` last put into PostGIS (when it still exists), a GIS layer with its stored
    mapping; else the configured demo city's extract (EMERGENCY_DEMO_CITY)."""
    if settings.osm_file is not None:
        return RoadSource(settings.osm_file)
    if sessions is not None:
        try:
            with sessions() as session:
                meta = read_roads_meta(session)
        except SQLAlchemyError:
            meta = None  # no database or no road tables yet: fall through to the demo
        if meta is not None and meta.path and Path(meta.path).is_file():
            if meta.kind != "gis":
                return RoadSource(Path(meta.path))
            if meta.mapping:
                return RoadSource(Path(meta.path), dict(meta.mapping))
    return RoadSource(city_extract(settings.demo_city))


def osm_file(settings: Settings, sessions: sessionmaker[Session] | None = None) -> Path:
    """The file of :func:`road_source` (an OSM file, or a GIS layer after `load-roads`)."""
    return road_source(settings, sessions).path


def load(
    settings: Settings,
    path: Path | None = None,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> LoadedNetwork:
    """An OSM file's network (default: EMERGENCY_OSM_FILE or the demo city's extract)."""
    return load_network(
        path or osm_file(settings),
        profile=load_profile(settings.road_profile),
        cache_dir=settings.graph_cache_dir,
        rebuild=rebuild,
        progress=progress,
    )


def load_source(
    settings: Settings,
    source: RoadSource,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> LoadedNetwork:
    """The network of ``source``: an OSM file with the configured profile, or a GIS line
    layer with its mapping (both from the graph cache when unchanged)."""
    if source.mapping is None:
        return load(settings, source.path, rebuild=rebuild, progress=progress)
    from gis.road_mapping import parse_mapping  # pyproj loads only for a GIS network

    return load_gis_network(
        source.path,
        parse_mapping(source.mapping),
        cache_dir=settings.graph_cache_dir,
        rebuild=rebuild,
        progress=progress,
    )


def open_engine(settings: Settings, sessions: sessionmaker[Session] | None = None) -> Engine | None:
    """The warmed engine for the server, or None (logged) when no network can be loaded."""
    try:
        loaded = load_source(settings, road_source(settings, sessions))
    except Exception:
        log.exception("road network not loaded; routing endpoints will answer 503")
        return None
    engine = Engine(loaded.graph, ch=loaded.ch, max_snap_m=settings.max_snap_m).prepare()
    engine.warm_in_background()
    log.info(
        "road network %s (%s): %d nodes, %d edges (%s, %.2f s)",
        loaded.graph.meta.get("source"),
        loaded.graph.meta.get("kind", "osm"),
        loaded.graph.n_nodes,
        loaded.graph.n_edges,
        "cache" if loaded.from_cache else "parsed",
        loaded.seconds,
    )
    return engine
