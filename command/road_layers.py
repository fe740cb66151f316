"""`emergency load-roads FILE --mapping ROADS.yaml`: a city's GIS road layer as the network.

Builds the same cached graph, PostGIS road tables (and so map tiles) as `load-osm`, from any
line layer; the server routes on it from its next start, rebuilding it from the file and the
mapping stored in ``road_network`` when the cache is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from core.db import session_scope
from gis.network import load_gis_network
from gis.road_mapping import load_mapping


def _fail(console: Console, message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def load_roads(
    file: Path,
    *,
    mapping: Path,
    export_graphml: Path | None,
    rebuild: bool,
    db: bool,
    console: Console,
    sessions: Callable[[], sessionmaker[Session]],
) -> None:
    """Read the mapping and the layer, build (or take from the cache) and contract the
    graph, print the report; write the road tables unless ``db`` is False. Exit 2 with
    the reason for a bad mapping or an unreadable layer."""
    settings = get_settings()
    try:
        rules = load_mapping(mapping)
    except ValueError as exc:
        _fail(console, f"bad road mapping {mapping}: {exc}")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("reading the road layer", total=None)
        try:
            loaded = load_gis_network(
                file,
                rules,
                cache_dir=settings.graph_cache_dir,
                rebuild=rebuild,
                progress=lambda stage, done: progress.update(
                    task, description=f"{stage}: {done:,}"
                ),
            )
        except (OSError, RuntimeError, ValueError) as exc:
            _fail(console, f"cannot read {file}: {exc}")
    graph = loaded.graph
    source = "cache " + str(loaded.cache_path) if loaded.from_cache else "built"
    say = console.print
    say(
        f"{graph.meta.get('source')}: {graph.n_nodes:,} nodes, {graph.n_edges:,} edges "
        f"({source}, {loaded.seconds:.2f} s)",
        markup=False,
        soft_wrap=True,
    )
    for line in loaded.report.lines() if loaded.report else []:
        say("  " + line, markup=False, soft_wrap=True)
    if loaded.ch is not None:
        say(f"  contraction hierarchy: {loaded.ch.n_shortcuts:,} shortcuts")
    if db:
        from gis.roads_db import write_network

        with session_scope(sessions()) as session:
            n_nodes, n_edges = write_network(session, graph, path=str(file.resolve()))
        say(f"PostGIS: road_node {n_nodes:,} rows, road_edge {n_edges:,} rows (kind gis)")
    if export_graphml is not None:
        graph.export_graphml(export_graphml)
        say(f"GraphML written to {export_graphml}", markup=False, soft_wrap=True)
