"""The committed demo city (Columbus, data/columbus/): big enough (issue 16), consistent, placed
on real OSM features, and seeded whole (roads and place index included) by `seed demo`.

The other tests use the small Helsinki centre; these load the real demo city, so they are
``slow`` (about 15 s: the graph is compiled once into a private cache and reused).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import osmium
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from command.migrate import upgrade
from command.seed import city_dir, city_extract, seed_demo
from core.db import make_engine, make_sessionmaker, session_scope, sqlalchemy_url
from core.errors import InvalidInput
from gis.network import LoadedNetwork, load_network
from tests.support.cli import rows
from tests.support.db import create_database, drop_database, unavailable

pytestmark = pytest.mark.slow

CITY = "columbus"
DATA = city_dir(CITY)
KINDS = ("fire", "ambulance", "police", "rescue")


def features(name: str) -> list[dict[str, Any]]:
    return list(json.loads((DATA / name).read_text(encoding="utf-8"))["features"])


def units() -> list[dict[str, Any]]:
    return list(yaml.safe_load((DATA / "units.yaml").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> LoadedNetwork:
    return load_network(city_extract(CITY), cache_dir=tmp_path_factory.mktemp("graphs"))


@pytest.fixture(scope="module")
def osm_ids() -> set[str]:
    """Every node and way id of the extract, as ``node/1`` / ``way/2``."""
    found: set[str] = set()
    for obj in osmium.FileProcessor(str(city_extract(CITY))):
        if isinstance(obj, osmium.osm.Node):
            found.add(f"node/{obj.id}")
        elif isinstance(obj, osmium.osm.Way):
            found.add(f"way/{obj.id}")
    return found


def test_the_city_has_a_real_road_network(network: LoadedNetwork):
    assert network.graph.n_nodes >= 10_000
    assert network.graph.n_edges > network.graph.n_nodes


def test_units_and_stations_are_enough_and_consistent():
    stations = [f["properties"] for f in features("stations.geojson")]
    by_kind = Counter(s["kind"] for s in stations)
    assert sum(by_kind[k] for k in KINDS) >= 15
    assert all(by_kind[k] >= 1 for k in KINDS), by_kind
    keys = {s["key"] for s in stations}
    assert len(keys) == len(stations)
    rows_ = units()
    assert len(rows_) >= 150
    assert len({u["callsign"] for u in rows_}) == len(rows_)
    assert {u["station"] for u in rows_} <= keys
    assert {s["key"] for s in stations} <= {u["station"] for u in rows_}  # none left empty


def test_units_cover_every_response_plan_line():
    have = Counter(cap for u in units() for cap in u["capabilities"])
    plans = yaml.safe_load((DATA / "response_plans.yaml").read_text(encoding="utf-8"))
    short = [
        (p["incident_type"], p["severity"], need)
        for p in plans
        for need in p["needs"]
        if have[need["capability"]] < need["count"]
    ]
    assert not short


def test_everything_is_placed_on_the_extract(osm_ids: set[str], network: LoadedNetwork):
    for name in ("shelters.geojson", "warehouses.geojson"):
        feats = features(name)
        assert feats, name
        missing = [
            f["properties"]["osm_id"] for f in feats if f["properties"]["osm_id"] not in osm_ids
        ]
        assert not missing, (name, missing)
    junctions = {f"node/{i}" for i in network.graph.node_osm_id.tolist()}
    for f in features("stations.geojson"):
        props = f["properties"]
        if props["placed"] == "osm":
            assert props["osm_id"] in osm_ids
        else:  # sited at a junction of the graph where the extract has no such station
            assert props["placed"] == "assumed" and props["osm_id"] is None
            assert props["junction"] in junctions
    bbox = yaml.safe_load((DATA / "city.yaml").read_text(encoding="utf-8"))["bbox"]
    for name in ("stations.geojson", "shelters.geojson", "warehouses.geojson"):
        for f in features(name):
            lon, lat = f["geometry"]["coordinates"]
            assert bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]


def test_seeding_refuses_an_unknown_city_or_another_citys_roads(network: LoadedNetwork):
    with pytest.raises(InvalidInput, match="unknown demo city"):
        city_dir("atlantis")
    # Checked before anything is written: no session is needed to see it.
    with pytest.raises(InvalidInput, match="not compiled from Helsinki"):
        seed_demo(cast(Session, None), city="helsinki", network=network)


@pytest.fixture(scope="module")
def seeded(network: LoadedNetwork) -> Iterator[str]:
    try:
        url = create_database("emergency_demo_city")
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
        raise
    try:
        upgrade(url)
        engine = make_engine(url, pool_size=1)
        try:
            with session_scope(make_sessionmaker(engine)) as session:
                seed_demo(session, city=CITY, network=network)
        finally:
            engine.dispose()
        yield url
    finally:
        drop_database(url)


@pytest.mark.db
def test_seeding_loads_the_whole_city(seeded: str, network: LoadedNetwork):
    engine = create_engine(sqlalchemy_url(seeded))
    try:
        warehouses = features("warehouses.geojson")
        assert rows(engine, "station") == len(features("stations.geojson"))
        assert rows(engine, "unit") == len(units())
        assert rows(engine, "shelter") == len(features("shelters.geojson"))
        assert rows(engine, "warehouse") == len(warehouses)
        assert rows(engine, "stock") == sum(len(w["properties"]["stock"]) for w in warehouses)
        assert rows(engine, "road_node") == network.graph.n_nodes >= 10_000
        assert rows(engine, "road_edge") == network.graph.n_edges
        assert rows(engine, "place") > 1000
        with engine.connect() as conn:
            path = conn.scalar(text("SELECT path FROM road_network"))
            homeless = conn.scalar(text("SELECT count(*) FROM unit WHERE home_station_id IS NULL"))
        assert Path(str(path)) == city_extract(CITY).resolve()
        assert homeless == 0
    finally:
        engine.dispose()
