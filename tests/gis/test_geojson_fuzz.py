"""Hostile GeoJSON against every endpoint that takes a geometry (issue 14, point 6).

Hypothesis builds geometries valid and invalid: right and wrong nesting, rings open and
closed, too few positions, huge, tiny, signed-zero and non-finite numbers (NaN, Infinity,
1e400, 400-digit integers: what Python's json reads although JSON forbids it), booleans and
strings for numbers, altitudes, and NUL, bidi and lone-surrogate text in the properties.
Each body goes through the real app (TestClient, real PostGIS). Every answer must be a
success or a 4xx with the JSON error body, never a 5xx; a refused request writes nothing,
and an accepted geometry reads back valid.

Bounded and deterministic for CI: ``derandomize`` and fixed example counts, about 30-40 s
in all on two cores (``--hypothesis-show-statistics`` shows the answers by status).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gis.geojson import parse_geometry
from tests.support.world import World

pytestmark = pytest.mark.slow

Count = Callable[[str], int]
WRITTEN = ("incident", "warning_zone", "event", "audit_event")
CENTRE = (24.9442949, 60.1716313)  # the demo city: geometries here can route and snap


def fuzz_settings(max_examples: int) -> Any:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # the app and its rolled-back database
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# --- numbers and positions ----------------------------------------------------------------
EDGE_NUMBERS = st.sampled_from(
    [
        0,
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        1e-300,
        1e308,
        -1e308,
        180,
        -180,
        90,
        -90,
        180.0000001,
        -90.0000001,
        1e400,
        float("nan"),
        float("-inf"),
        10**400,
        -(10**25),
        2**63,
        True,
        False,
    ]
)
NUMBERS = st.one_of(
    st.floats(min_value=-180, max_value=180),
    st.floats(),  # NaN and infinities included: json.dumps writes them as NaN / Infinity
    st.integers(min_value=-(10**30), max_value=10**30),
    EDGE_NUMBERS,
)
NEAR = st.tuples(
    st.floats(min_value=CENTRE[0] - 0.005, max_value=CENTRE[0] + 0.005),
    st.floats(min_value=CENTRE[1] - 0.005, max_value=CENTRE[1] + 0.005),
)
JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.just({"lon": 1}))
POSITIONS = st.one_of(
    NEAR.map(list),
    st.lists(NUMBERS, min_size=2, max_size=2),
    st.lists(NUMBERS, min_size=0, max_size=4),
    st.lists(st.one_of(NUMBERS, JUNK), min_size=2, max_size=3),
    NEAR.map(lambda p: [*p, 12.5]),
)


def square(lon: float, lat: float, size: float) -> list[list[float]]:
    return [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]


SIZES = st.sampled_from([1e-12, 1e-9, 1e-7, 1e-4, 1e-3, 0.01, 0.5, 400.0])


@st.composite
def rings(draw: st.DrawFn) -> list[Any]:
    """A closed square near the centre (or at a signed zero), sometimes spoiled."""
    lon, lat = draw(st.one_of(NEAR, NEAR, st.just((-0.0, -0.0)), st.just((179.9, 89.9))))
    ring: list[Any] = square(lon, lat, draw(SIZES))
    spoil = draw(
        st.sampled_from(
            ["none"] * 6
            + ["open", "short", "bowtie", "position", "swap", "reverse", "altitude", "any"]
        )
    )
    if spoil == "open":
        ring = ring[:-1]
    elif spoil == "short":
        ring = [*ring[:2], ring[0]]
    elif spoil == "bowtie":
        ring[1], ring[2] = ring[2], ring[1]
    elif spoil == "position":
        ring[draw(st.integers(0, len(ring) - 1))] = draw(POSITIONS)
    elif spoil == "swap":
        ring = [[y, x] for x, y in ring]
    elif spoil == "reverse":
        ring = ring[::-1]
    elif spoil == "altitude":
        ring = [[*p, draw(NUMBERS)] for p in ring]
    elif spoil == "any":
        ring = draw(st.lists(POSITIONS, max_size=6))
    return ring


@st.composite
def polygons(draw: st.DrawFn) -> list[Any]:
    """An outer ring, sometimes with a hole inside it or a stray second ring."""
    outer = draw(rings())
    extra = draw(st.sampled_from(["none", "none", "hole", "ring", "empty"]))
    if extra == "hole" and len(outer) == 5 and all(len(p) == 2 for p in outer):
        try:
            (x0, y0), (x1, _), (_, y2) = outer[0], outer[1], outer[2]
            w, hgt = (x1 - x0) / 4, (y2 - y0) / 4
            return [outer, square(x0 + w, y0 + hgt, min(abs(w), abs(hgt)))]
        except TypeError:  # a spoiled position is no number
            return [outer]
    if extra == "ring":
        return [outer, draw(rings())]
    if extra == "empty":
        return []
    return [outer]


@st.composite
def multipolygons(draw: st.DrawFn) -> list[Any]:
    """Apart (valid), overlapping (invalid) or empty polygons."""
    return draw(st.lists(polygons(), min_size=0, max_size=3))


ANY_JSON = st.recursive(
    st.one_of(NUMBERS, JUNK),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    value: Any = draw(st.one_of(POSITIONS, st.just([])))
    for _ in range(draw(st.integers(1, 950))):
        value = [value]
    return value


COORDINATES = {
    "Point": st.one_of(NEAR.map(list), NEAR.map(list), POSITIONS),
    "Polygon": polygons(),
    "MultiPolygon": multipolygons(),
}
TYPES = st.sampled_from(
    [
        "Point",
        "Polygon",
        "MultiPolygon",
        "Polygon",
        "MultiPolygon",
        "LineString",
        "GeometryCollection",
        "polygon",
        "",
    ]
)


@st.composite
def geometries(
    draw: st.DrawFn, types: tuple[str, ...] = ("Point", "Polygon", "MultiPolygon")
) -> Any:
    """Mostly well-formed for their type (so the storing path runs too), else hostile."""
    form = draw(st.sampled_from(["own"] * 6 + ["other", "any", "deep", "none", "odd type"]))
    gtype = draw(st.sampled_from(types))
    if form == "own":
        coords = draw(COORDINATES[gtype])
    elif form == "other":
        coords = draw(st.sampled_from(list(COORDINATES.values())).flatmap(lambda s: s))
    elif form == "deep":
        coords = draw(deep())
    elif form == "none":
        return draw(st.one_of(JUNK, st.just({"type": gtype})))
    elif form == "odd type":
        gtype = draw(TYPES)
        coords = draw(st.sampled_from(list(COORDINATES.values())).flatmap(lambda s: s))
    else:
        coords = draw(ANY_JSON)
    geometry: dict[str, Any] = {"type": gtype, "coordinates": coords}
    if draw(st.integers(0, 9)) == 0:
        geometry[draw(st.sampled_from(["bbox", "crs", "x\x00", "\u202e"]))] = draw(ANY_JSON)
    return geometry


CORNERS = st.one_of(
    NEAR,
    NEAR,
    st.tuples(st.sampled_from([0.0, -0.0]), st.sampled_from([0.0, -0.0])),  # signed zeros
    st.just((24, 60)),  # integers
    st.just((-180, -90)),
    st.just((179.5, 89.5)),
)


@st.composite
def well_formed(draw: st.DrawFn, types: tuple[str, ...]) -> dict[str, Any]:
    """Nested right for its type, numbers finite and in range: squares of any size from
    1e-12 to 0.5 degrees (tiny ones may fall apart on the way), holes, several polygons,
    either orientation, altitudes, signed zeros, integers. Most are stored."""
    gtype = draw(st.sampled_from(types))
    lon, lat = draw(CORNERS)
    size = draw(st.sampled_from([1e-12, 1e-9, 1e-7, 1e-4, 0.01, 0.5]))
    altitude = draw(st.sampled_from([None, None, None, 0, -0.0, 12.5, -430.0, 8848.86]))

    def pos(x: float, y: float) -> list[float]:
        return [x, y] if altitude is None else [x, y, altitude]

    def polygon(x: float, y: float) -> list[Any]:
        ring = [pos(px, py) for px, py in square(x, y, size)]
        rings = [ring[::-1] if draw(st.booleans()) else ring]
        if draw(st.booleans()):
            rings.append([pos(px, py) for px, py in square(x + size / 4, y + size / 4, size / 4)])
        return rings

    if gtype == "Point":
        return {"type": "Point", "coordinates": pos(lon, lat)}
    if gtype == "Polygon":
        return {"type": "Polygon", "coordinates": polygon(lon, lat)}
    count = draw(st.integers(1, 3))
    return {
        "type": "MultiPolygon",
        "coordinates": [polygon(lon + 2 * size * k, lat) for k in range(count)],
    }


ALL_TYPES = ("Point", "Polygon", "MultiPolygon")
AREA_TYPES = ("Polygon", "MultiPolygon")
GEOMETRIES = {"well-formed": well_formed(ALL_TYPES), "hostile": geometries(ALL_TYPES)}
AREAS = {"well-formed": well_formed(AREA_TYPES), "hostile": geometries(AREA_TYPES)}
KINDS = pytest.mark.parametrize("kind", ["well-formed", "hostile"])


HOSTILE_TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\u202e", "\u2066", "\u200b", "\ufeff", "\n", "\x1b", "\ud800"]),
    ),
    min_size=1,
    max_size=20,
)
TITLES = st.one_of(st.just("Fire at the market"), st.just("火灾 🔥"), st.just("A"), HOSTILE_TEXT)


def dumps(body: Any) -> bytes:
    """As a careless client writes it: NaN, Infinity and huge integers included."""
    return json.dumps(body).encode("ascii")


# --- the checks ------------------------------------------------------------------------------
def answered_well(client: Any, headers: dict[str, str], count: Count, path: str, body: Any) -> Any:
    """POST ``body``; a success, or a 4xx error body that wrote nothing. The response."""
    before = {t: count(t) for t in WRITTEN}
    r = client.post(
        path, content=dumps(body), headers={**headers, "Content-Type": "application/json"}
    )
    event(f"{path} -> {r.status_code}")
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()
        assert isinstance(err["error"], str) and err["error"], r.text
        assert isinstance(err["message"], str) and err["message"], r.text
        assert {t: count(t) for t in WRITTEN} == before, r.text
    else:
        assert r.status_code in (200, 201), r.text
    return r


def read_back_valid(feature: dict[str, Any]) -> None:
    """What was stored comes back as a geometry the API itself would accept."""
    geometry = feature["geometry"]
    parse_geometry(geometry, allowed=("Point", "Polygon", "MultiPolygon"))


@pytest.fixture
def h(world: World) -> dict[str, str]:
    return world.h("admin")


def patched_well(client: Any, h: dict[str, str], count: Count, path: str, body: Any) -> Any:
    """PATCH ``body``; a success, or a 4xx that changed nothing. The response."""
    before = {t: count(t) for t in WRITTEN}
    old = client.get(path, headers=h).json()
    r = client.patch(path, content=dumps(body), headers={**h, "Content-Type": "application/json"})
    event(f"PATCH {path.rsplit('/', 1)[0]} -> {r.status_code}")
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert {t: count(t) for t in WRITTEN} == before, r.text
        assert client.get(path, headers=h).json() == old
    else:
        assert r.status_code == 200, r.text
        read_back_valid(r.json())
    return r


def _created(client: Any, h: dict[str, str], path: str, body: dict[str, Any]) -> str:
    r = client.post(path, json=body, headers=h)
    assert r.status_code == 201, r.text
    return f"{path}/{r.json()['id']}"


SQUARE = {"type": "Polygon", "coordinates": [square(24.93, 60.16, 0.02)]}


@pytest.fixture
def incident_path(client: Any, h: dict[str, str]) -> str:
    """One incident, made once per test and changed by every example."""
    body = {"type": "Feature", "geometry": SQUARE, "properties": {"title": "t", "type": "fire"}}
    return _created(client, h, "/api/incidents", body)


@pytest.fixture
def zone_path(client: Any, h: dict[str, str]) -> str:
    body = {"type": "Feature", "geometry": SQUARE, "properties": {"name": "z", "kind": "flood"}}
    return _created(client, h, "/api/warning-zones", body)


@KINDS
@fuzz_settings(max_examples=220)
@given(data=st.data(), title=TITLES, crs=st.sampled_from(["wgs84", "wgs84", "gcj02"]))
def test_incidents(client, h, count, kind, data, title, crs):
    geometry = data.draw(GEOMETRIES[kind])
    properties = {"title": title, "type": "fire"}
    body = {"type": "Feature", "geometry": geometry, "crs": crs, "properties": properties}
    r = answered_well(client, h, count, "/api/incidents", body)
    if r.status_code == 201:
        read_back_valid(r.json())
        got = client.get(f"/api/incidents/{r.json()['id']}", headers=h)
        assert got.status_code == 200 and got.json()["geometry"] == r.json()["geometry"]


@KINDS
@fuzz_settings(max_examples=90)
@given(data=st.data(), title=TITLES)
def test_incident_changes(client, h, count, incident_path, kind, data, title):
    body = {"geometry": data.draw(GEOMETRIES[kind]), "properties": {"title": title}}
    patched_well(client, h, count, incident_path, body)


@KINDS
@fuzz_settings(max_examples=120)
@given(data=st.data(), name=TITLES)
def test_warning_zones(client, h, count, kind, data, name):
    properties = {"name": name, "kind": "flood", "blocks_roads": False}
    body = {"type": "Feature", "geometry": data.draw(AREAS[kind]), "properties": properties}
    r = answered_well(client, h, count, "/api/warning-zones", body)
    if r.status_code == 201:
        read_back_valid(r.json())


@KINDS
@fuzz_settings(max_examples=60)
@given(data=st.data(), name=TITLES)
def test_warning_zone_changes(client, h, count, zone_path, kind, data, name):
    body = {"geometry": data.draw(AREAS[kind]), "properties": {"name": name}}
    patched_well(client, h, count, zone_path, body)


@KINDS
@fuzz_settings(max_examples=75)
@given(data=st.data(), zone_id=TITLES)
def test_evacuation_zones(client, h, count, kind, data, zone_id):
    geometry = data.draw(GEOMETRIES[kind])
    body = {"zones": [{"id": zone_id, "population": 10, "geometry": geometry}]}
    answered_well(client, h, count, "/api/evacuation/plan", body)


@KINDS
@fuzz_settings(max_examples=75)
@given(data=st.data())
def test_route_closure_polygons(client, h, count, kind, data):
    polygons = data.draw(st.lists(AREAS[kind], min_size=1, max_size=2))
    body = {
        "from": [24.9400, 60.1680],
        "to": [24.9520, 60.1770],
        "closures": {"polygons": polygons},
    }
    answered_well(client, h, count, "/api/route", body)
