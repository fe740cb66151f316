"""Which road network the server uses, and loading it (from the cache in well under 2 s)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from command.seed import city_extract
from core.config import Settings
from gis.engine import Engine
from gis.network import LoadedNetwork, load_network
from gis.osm_io import Progress
from gis.profile import load_profile
from gis.roads_db import read_roads_meta

log = logging.getLogger("emergency.roads")


def osm_file(settings: Settings, sessions: sessionmaker[Session] | None = None) -> Path:
    """The network to route on: EMERGENCY_OSM_FILE if set; else the file `load-osm` last
    put into PostGIS (when it still exists); else the configured demo city's extract
    (EMERGENCY_DEMO_CITY)."""
    if settings.osm_file is not None:
        return settings.osm_file
    if sessions is not None:
        try:
            with sessions() as session:
                meta = read_roads_meta(session)
        except SQLAlchemyError:
            meta = None  # no database or no road tables yet: fall through to the demo
        if meta is not None and meta.path and Path(meta.path).is_file():
            return Path(meta.path)
    return city_extract(settings.demo_city)


def load(
    settings: Settings,
    path: Path | None = None,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
) -> LoadedNetwork:
    return load_network(
        path or osm_file(settings),
        profile=load_profile(settings.road_profile),
        cache_dir=settings.graph_cache_dir,
        rebuild=rebuild,
        progress=progress,
    )


def open_engine(settings: Settings, sessions: sessionmaker[Session] | None = None) -> Engine | None:
    """The warmed engine for the server, or None (logged) when no network can be loaded."""
    try:
        loaded = load(settings, osm_file(settings, sessions))
    except Exception:
        log.exception("road network not loaded; routing endpoints will answer 503")
        return None
    engine = Engine(loaded.graph, ch=loaded.ch, max_snap_m=settings.max_snap_m).prepare()
    engine.warm_in_background()
    log.info(
        "road network %s: %d nodes, %d edges (%s, %.2f s)",
        loaded.graph.meta.get("source"),
        loaded.graph.n_nodes,
        loaded.graph.n_edges,
        "cache" if loaded.from_cache else "parsed",
        loaded.seconds,
    )
    return engine
