"""GET /api/export/{layer} and `emergency export` against the real PostGIS: data seeded
through the API, every layer exported in every format, re-read with geopandas (and
pyogrio.read_info for the CRS and the field types) and compared with what the API says."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from pyproj import Geod
from shapely.geometry import Point, shape
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from command.app import create_app
from command.auth import service as auth
from command.auth.models import User
from command.drills.models import Drill
from command.exports import records, service, tracks
from command.incidents.models import Incident
from core.config import Settings
from core.db import AuditedSession, make_sessionmaker, sqlalchemy_url
from gis.engine import Engine as RoadEngine
from resources.models import Shelter
from tests.support.cli import CLI_SECRET, cli_database, invoke
from tests.support.world import World, point

NOW = datetime.now(UTC).replace(microsecond=0)  # at collection: the tests run later
T0 = NOW - timedelta(minutes=40)  # the fixes start here
WINDOW = {  # wide enough for rows the API stamps with the time they are made
    "since": (NOW - timedelta(hours=2)).isoformat(),
    "until": (NOW + timedelta(days=1)).isoformat(),
}
FORMATS = ("gpkg", "geojson", "csv")
MEDIA = {
    "gpkg": "application/geopackage+sqlite3",
    "geojson": "application/geo+json",
    "csv": "text/csv",
}
PHONE = "+358 40 123 4567"
AREA = [[24.97, 60.165], [24.99, 60.165], [24.99, 60.175], [24.97, 60.175], [24.97, 60.165]]
GEOD = Geod(ellps="WGS84")


# --- seeding through the API ------------------------------------------------------------
def created(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def feature(geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def fix(unit_id: int, lon: float, lat: float, at: datetime) -> dict[str, Any]:
    return {"unit_id": unit_id, "lon": lon, "lat": lat, "recorded_at": at.isoformat()}


@dataclass(frozen=True)
class Seeded:
    incident: int  # a point, with a caller's phone and a task on scene
    area: int  # a polygon
    drill_incident: int  # drill data that no drill owns
    tabletop: int  # a tabletop drill's id
    tabletop_incident: int  # its incident


@pytest.fixture
def seeded(client: TestClient, world: World, session: Session) -> Seeded:
    h = world.h("dispatcher")
    incident = created(
        client.post(
            "/api/incidents",
            json=feature(
                point(24.9412345678901, 60.1712345678901),
                title="Kitchen fire 厨房",
                type="fire",
                severity="severe",
                caller_phone=PHONE,
                people_affected=3,
            ),
            headers=h,
        )
    )["id"]
    area = created(
        client.post(
            "/api/incidents",
            json=feature(
                {"type": "Polygon", "coordinates": [AREA]}, title="Flooded streets", type="flood"
            ),
            headers=h,
        )
    )["id"]
    drill_incident = created(
        client.post(
            "/api/incidents",
            json=feature(point(24.95, 60.17), title="Exercise", type="fire", drill=True),
            headers=h,
        )
    )["id"]
    tasks = client.post(
        f"/api/incidents/{incident}/dispatch", json={"unit_ids": [world.unit_a.id]}, headers=h
    )
    assert tasks.status_code == 201, tasks.text
    task = tasks.json()[0]["id"]
    for status in ("accepted", "en_route", "on_scene"):
        r = client.post(f"/api/tasks/{task}/status", json={"status": status}, headers=h)
        assert r.status_code == 200, r.text
    # Warning zones: a polygon, a multipolygon, an old one (ended before the window), a drill.
    zone = {"type": "Polygon", "coordinates": [AREA]}
    multi = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[24.90, 60.15], [24.91, 60.15], [24.91, 60.16], [24.90, 60.15]]],
            [[[24.92, 60.15], [24.925, 60.15], [24.925, 60.155], [24.92, 60.15]]],
        ],
    }
    old = {
        "starts_at": (NOW - timedelta(days=3)).isoformat(),
        "ends_at": (NOW - timedelta(days=2)).isoformat(),
    }
    for geometry, props in (
        (zone, {"name": "Flood zone", "kind": "flood", "blocks_roads": True}),
        (multi, {"name": "Plume 烟羽", "kind": "chemical_leak"}),
        (zone, {"name": "Last week", "kind": "flood", **old}),
        (zone, {"name": "Drill zone", "kind": "flood", "drill": True}),
    ):
        created(client.post("/api/warning-zones", json=feature(geometry, **props), headers=h))
    for name, lon, hazards in (
        ("第一中学 避难场所", 24.9356789012345, ["earthquake", "fire"]),
        ("Hall", 24.96, []),
    ):
        created(
            client.post(
                "/api/shelters",
                json=feature(point(lon, 60.18), name=name, capacity=500, hazards=hazards),
                headers=world.h("admin"),
            )
        )
    # Fixes: unit A drives east (one impossible jump in the middle), unit B has one fix.
    a, b = world.unit_a.id, world.unit_b.id
    fixes = [
        fix(a, round(24.94 + k * 1e-4, 7), 60.17, T0 + timedelta(seconds=10 * k)) for k in range(6)
    ]
    fixes.insert(3, fix(a, 25.66, 60.39, T0 + timedelta(seconds=25)))
    fixes.append(fix(b, 24.95, 60.18, T0))
    r = client.post("/api/positions", json={"positions": fixes}, headers=h)
    assert r.status_code == 202 and r.json()["accepted"] == 8, r.text
    # A tabletop drill with an incident of its own.
    drill = Drill(
        name="Tabletop", mode="tabletop", status="running", scenario={}, created_by="test"
    )
    session.add(drill)
    session.flush()
    inject = Incident(
        title="Inject",
        type="fire",
        drill=True,
        drill_id=drill.id,
        geom=from_shape(Point(24.945, 60.172), 4326),
    )
    session.add(inject)
    session.commit()
    return Seeded(incident, area, drill_incident, drill.id, inject.id)


# --- reading exports back -----------------------------------------------------------------
def fetch(
    client: TestClient,
    world: World,
    layer: str,
    fmt: str = "gpkg",
    role: str = "planner",
    **params: Any,
) -> Any:
    return client.get(
        f"/api/export/{layer}", params={"format": fmt, **params}, headers=world.h(role)
    )


def save(response: Any, folder: Path) -> Path:
    assert response.status_code == 200, response.text
    match = re.fullmatch(r'attachment; filename="([^"]+)"', response.headers["content-disposition"])
    assert match is not None, response.headers["content-disposition"]
    path = folder / match.group(1)
    path.write_bytes(response.content)
    return path


def export(
    client: TestClient, world: World, folder: Path, layer: str, fmt: str, **params: Any
) -> Path:
    return save(fetch(client, world, layer, fmt, **{**WINDOW, **params}), folder)


def _missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NaT
        or value is pd.NA
        or value == ""
        or (isinstance(value, float) and math.isnan(value))
    )


def parse(value: Any, kind: str) -> Any:
    """A value as the file holds it, as a Python value of its kind (CSV's text too)."""
    if _missing(value):
        return None
    text = isinstance(value, str)
    if kind in ("int", "int64"):
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return value == "true" if text else bool(value)
    if kind == "datetime":
        return datetime.fromisoformat(value) if text else value.to_pydatetime()
    if kind == "json":
        return json.loads(value)
    return str(value)


def expected(value: Any, kind: str) -> Any:
    """A value as the API answers it, as the file should hold it (times to the ms)."""
    if value is None:
        return None
    if kind == "datetime":
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
        return at.astimezone(UTC).replace(microsecond=at.microsecond // 1000 * 1000)
    return value


def read(path: Path, kinds: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every row of an exported file: its values by kind, and ``geometry``."""
    frame = gpd.read_file(path)
    rows = []
    for record in frame.to_dict("records"):
        row = {name: parse(record[name], kind) for name, kind in kinds}
        if path.suffix == ".csv":
            if "wkt" in record:
                row["geometry"] = (
                    None if _missing(record["wkt"]) else shapely.from_wkt(record["wkt"])
                )
            else:
                lon, lat = record["lon"], record["lat"]
                row["geometry"] = None if _missing(lon) else Point(float(lon), float(lat))
        else:
            row["geometry"] = record["geometry"]
        rows.append(row)
    return rows


def same_shape(got: Any, want: dict[str, Any] | None) -> bool:
    """The same coordinates, bit for bit (a Polygon zone is a one-part MultiPolygon)."""
    if want is None:
        return got is None
    got_xy, want_xy = shapely.get_coordinates(got), shapely.get_coordinates(shape(want))
    return got_xy.shape == want_xy.shape and bool((got_xy == want_xy).all())


def api_features(client: TestClient, world: World, path: str) -> dict[int, dict[str, Any]]:
    r = client.get(path, params={"limit": 1000}, headers=world.h("commander"))
    assert r.status_code == 200, r.text
    return {f["id"]: f for f in r.json()["features"]}


# --- the layers ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_incidents_equal_the_api_without_personal_data_or_drills(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path, fmt: str
) -> None:
    path = export(client, world, tmp_path, "incidents", fmt)
    assert PHONE.encode() not in path.read_bytes() and b"caller_phone" not in path.read_bytes()
    rows = read(path, records.INCIDENT_COLUMNS)
    api = api_features(client, world, "/api/incidents")
    # The caller's phone is in the API for the commander (so it is there to leave out).
    assert api[seeded.incident]["properties"]["caller_phone"] == PHONE
    assert [r["id"] for r in rows] == [seeded.incident, seeded.area]
    for row in rows:
        props = api[row["id"]]["properties"]
        for name, kind in records.INCIDENT_COLUMNS:
            if name in props:
                assert row[name] == expected(props[name], kind), (name, row[name], props[name])
        reported = datetime.fromisoformat(props["reported_at"])
        for stage in records.INCIDENT_STAGES:
            at = props[f"{stage}_at"]
            want = None if at is None else (datetime.fromisoformat(at) - reported).total_seconds()
            assert row[f"to_{stage}_s"] == want
    point_row, area_row = rows
    assert same_shape(point_row["geometry"], api[seeded.incident]["geometry"])
    assert point_row["area_wkt"] is None and point_row["to_on_scene_s"] > 0
    # An area incident is exported at its point inside, with its area as WKT.
    area = shape(api[seeded.area]["geometry"])
    assert area.contains(area_row["geometry"])
    assert same_shape(shapely.from_wkt(area_row["area_wkt"]), api[seeded.area]["geometry"])


def test_field_types_and_crs_are_what_qgis_needs(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path
) -> None:
    gpkg = export(client, world, tmp_path, "incidents", "gpkg")
    info = pyogrio.read_info(gpkg)
    assert info["crs"] == "EPSG:4326" and info["geometry_type"] == "Point"
    types = dict(
        zip(info["fields"], zip(info["ogr_types"], info["ogr_subtypes"], strict=True), strict=True)
    )
    assert types["id"] == ("OFTInteger64", "OFSTNone")
    assert types["people_affected"] == ("OFTInteger", "OFSTNone")
    assert types["drill"] == ("OFTInteger", "OFSTBoolean")
    assert types["reported_at"] == ("OFTDateTime", "OFSTNone")
    assert types["to_on_scene_s"] == ("OFTReal", "OFSTNone")
    assert types["title"] == ("OFTString", "OFSTNone")
    geojson = pyogrio.read_info(export(client, world, tmp_path, "incidents", "geojson"))
    assert geojson["crs"] == "EPSG:4326"
    assert gpd.read_file(gpkg)["reported_at"].dt.tz == UTC
    shelters = pyogrio.read_info(export(client, world, tmp_path, "shelters", "gpkg"))
    shelter_types = dict(zip(shelters["fields"], shelters["ogr_types"], strict=True))
    assert shelter_types["hazards"] == "OFTString" and shelter_types["capacity"] == "OFTInteger"
    zones = pyogrio.read_info(export(client, world, tmp_path, "zones", "gpkg"))
    assert zones["geometry_type"] == "MultiPolygon" and zones["crs"] == "EPSG:4326"
    lines = pyogrio.read_info(export(client, world, tmp_path, "tracks", "gpkg"))
    assert lines["geometry_type"] == "LineString"


@pytest.mark.parametrize("fmt", FORMATS)
def test_tasks_equal_the_api_at_their_incidents_point(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path, fmt: str
) -> None:
    path = export(client, world, tmp_path, "tasks", fmt)
    rows = read(path, records.TASK_COLUMNS)
    r = client.get("/api/tasks", headers=world.h("commander"))
    api = {t["id"]: t for t in r.json()["items"]}
    # The API shows the commander the caller's phone on the task; the file never.
    assert {t["caller_phone"] for t in api.values()} == {PHONE}
    assert PHONE.encode() not in path.read_bytes()
    assert [row["id"] for row in rows] == sorted(api)
    incident = api_features(client, world, "/api/incidents")[seeded.incident]
    for row in rows:
        for name, kind in records.TASK_COLUMNS:
            if name in api[row["id"]] and name != "caller_phone":
                assert row[name] == expected(api[row["id"]][name], kind), name
        assert row["callsign"] == world.unit_a.callsign and row["incident_type"] == "fire"
        assert same_shape(row["geometry"], incident["geometry"])
        assert row["to_on_scene_s"] >= row["to_en_route_s"] >= row["to_accepted_s"] >= 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_tracks_equal_the_units_tracks(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path, fmt: str
) -> None:
    rows = read(export(client, world, tmp_path, "tracks", fmt), tracks.TRACK_COLUMNS)
    assert [r["unit_id"] for r in rows] == [world.unit_a.id, world.unit_b.id]
    a, b = rows
    track = client.get(
        f"/api/units/{world.unit_a.id}/track",
        params={"since": WINDOW["since"], "until": WINDOW["until"]},
        headers=world.h("commander"),
    ).json()
    assert same_shape(a["geometry"], track["geometry"])
    assert (a["fixes"], a["flagged"]) == (track["properties"]["fixes"], 1) == (6, 1)
    assert a["started_at"] == T0 and a["ended_at"] == T0 + timedelta(seconds=50)
    assert a["duration_s"] == 50.0
    lons, lats = zip(*track["geometry"]["coordinates"], strict=True)
    length = GEOD.line_length(lons, lats)
    assert a["length_m"] == pytest.approx(length, rel=1e-6)
    # One fix draws no line.
    assert b["geometry"] is None and b["fixes"] == 1 and b["length_m"] is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_positions_are_every_fix_with_its_flag(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path, fmt: str
) -> None:
    path = export(client, world, tmp_path, "positions", fmt)
    rows = read(path, tracks.POSITION_COLUMNS)
    assert len(rows) == 8
    a = [r for r in rows if r["unit_id"] == world.unit_a.id]
    assert [r["recorded_at"] for r in a] == sorted(r["recorded_at"] for r in a)
    assert [r["flag"] for r in a] == [None, None, None, "jump", None, None, None]
    assert (a[3]["geometry"].x, a[3]["geometry"].y) == (25.66, 60.39)
    assert all(r["callsign"] in (world.unit_a.callsign, world.unit_b.callsign) for r in rows)
    assert b"device" not in path.read_bytes()  # trackers' ids stay in the database


@pytest.mark.parametrize("fmt", FORMATS)
def test_zones_in_force_in_the_window_equal_the_api(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path, fmt: str
) -> None:
    rows = read(export(client, world, tmp_path, "zones", fmt), records.ZONE_COLUMNS)
    api = api_features(client, world, "/api/warning-zones")
    names = {f["properties"]["name"]: i for i, f in api.items()}
    # Ended before the window: out; a drill zone: out.
    assert [r["id"] for r in rows] == [names["Flood zone"], names["Plume 烟羽"]]
    for row in rows:
        props = api[row["id"]]["properties"]
        for name, kind in records.ZONE_COLUMNS:
            if name in props:
                assert row[name] == expected(props[name], kind), name
        assert same_shape(row["geometry"], api[row["id"]]["geometry"])
        if fmt != "csv":  # one type per layer; CSV's WKT keeps each shape's own
            assert row["geometry"].geom_type == "MultiPolygon"
        area = abs(GEOD.geometry_area_perimeter(shape(api[row["id"]]["geometry"]))[0])
        assert row["area_m2"] == pytest.approx(area, rel=1e-3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_shelters_equal_the_api_and_ignore_the_window(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path, fmt: str
) -> None:
    since = (NOW - timedelta(days=30)).isoformat()
    rows = read(
        export(
            client,
            world,
            tmp_path,
            "shelters",
            fmt,
            since=since,
            until=(NOW - timedelta(days=29)).isoformat(),
        ),
        records.SHELTER_COLUMNS,
    )
    api = api_features(client, world, "/api/shelters")
    assert [r["id"] for r in rows] == sorted(api)
    for row in rows:
        props = api[row["id"]]["properties"]
        for name, kind in records.SHELTER_COLUMNS:
            if name in props:
                assert row[name] == expected(props[name], kind), name
        assert same_shape(row["geometry"], api[row["id"]]["geometry"])
    assert rows[0]["hazards"] == ["earthquake", "fire"] and rows[1]["hazards"] == []


# --- KPIs by area -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_kpis_by_area_add_up_to_the_consoles(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path, fmt: str
) -> None:
    rows = read(export(client, world, tmp_path, "kpis", fmt), service.KPI_COLUMNS)
    console = client.get("/api/kpis", params=WINDOW, headers=world.h("planner")).json()
    assert sum(r["incidents"] for r in rows) == console["incidents"]["total"] == 2
    for key in ("within", "missed", "pending"):
        assert sum(r[key] for r in rows) == console["within_target"][key]
    assert sum(r["responded"] for r in rows) == console["times"]["reported_to_on_scene"]["n"]
    assert {r["grid_epsg"] for r in rows} == {32635} and {r["drill_id"] for r in rows} == {None}
    # Each incident's point lies in its cell's square, a 1 km square on the ground.
    incidents = api_features(client, world, "/api/incidents")
    fire = next(r for r in rows if r["types"] == {"fire": 1})
    assert fire["geometry"].contains(shape(incidents[seeded.incident]["geometry"]))
    assert fire["response_p50_s"] == console["times"]["reported_to_on_scene"]["p50_s"]
    area = abs(GEOD.geometry_area_perimeter(fire["geometry"])[0])
    assert area == pytest.approx(1_000_000, rel=2e-3)
    # A coarser grid puts both in one cell.
    one = read(export(client, world, tmp_path, "kpis", fmt, cell_m=50_000), service.KPI_COLUMNS)
    assert (
        len(one) == 1 and one[0]["types"] == {"fire": 1, "flood": 1} and one[0]["cell_m"] == 50_000
    )


# --- drills -------------------------------------------------------------------------------
def test_drill_data_only_when_asked_and_marked(
    client: TestClient, world: World, seeded: Seeded, tmp_path: Path
) -> None:
    plain = read(export(client, world, tmp_path, "incidents", "geojson"), records.INCIDENT_COLUMNS)
    assert seeded.drill_incident not in [r["id"] for r in plain]
    assert seeded.tabletop_incident not in [r["id"] for r in plain]
    with_drill = read(
        export(client, world, tmp_path, "incidents", "geojson", drill=seeded.tabletop),
        records.INCIDENT_COLUMNS,
    )
    marked = {r["id"]: r["drill_id"] for r in with_drill}
    assert marked == {
        seeded.incident: None,
        seeded.area: None,
        seeded.tabletop_incident: seeded.tabletop,
    }
    kpis = read(
        export(client, world, tmp_path, "kpis", "geojson", drill=seeded.tabletop, cell_m=50_000),
        service.KPI_COLUMNS,
    )
    assert [(r["drill_id"], r["incidents"]) for r in kpis] == [(None, 2), (seeded.tabletop, 1)]
    r = fetch(client, world, "incidents", drill=987654)
    assert r.status_code == 404 and "drill 987654" in r.json()["message"]


# --- the request --------------------------------------------------------------------------
def test_file_names_and_media_types(client: TestClient, world: World, seeded: Seeded) -> None:
    for fmt in FORMATS:
        r = fetch(client, world, "incidents", fmt, until="2026-12-06T20:00:00+08:00")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].split(";")[0] == MEDIA[fmt]
        suffix = ".geojson" if fmt == "geojson" else f".{fmt}"
        assert (
            r.headers["content-disposition"]
            == f'attachment; filename="incidents-20261206T1200Z{suffix}"'
        )
    raw = fetch(client, world, "incidents", "csv", **WINDOW).content
    assert raw.startswith(b"\xef\xbb\xbf")  # the UTF-8 mark Excel needs for Chinese text
    header = raw.decode("utf-8-sig").splitlines()[0].split(",")
    assert header[:3] == ["lon", "lat", "id"]
    zones = fetch(client, world, "zones", "csv", **WINDOW).content.decode("utf-8-sig")
    assert zones.splitlines()[0].startswith("wkt,id,")


@pytest.mark.parametrize("role", ["commander", "planner", "auditor", "admin"])
def test_roles_that_may_export(client: TestClient, world: World, role: str) -> None:
    assert fetch(client, world, "shelters", role=role).status_code == 200


@pytest.mark.parametrize("role", ["dispatcher", "responder"])
def test_roles_that_may_not(client: TestClient, world: World, role: str) -> None:
    r = fetch(client, world, "incidents", role=role)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_unknown_layer_bad_format_and_bad_windows(client: TestClient, world: World) -> None:
    r = fetch(client, world, "hydrants")
    assert r.status_code == 404
    assert all(name in r.json()["message"] for name in service.LAYERS)
    assert fetch(client, world, "incidents", "shp").status_code == 422
    assert fetch(client, world, "incidents", drill=2**63).status_code == 422  # past a bigint
    assert fetch(client, world, "kpis", cell_m=50).status_code == 422
    bad = [
        {"since": NOW.isoformat(), "until": (NOW - timedelta(seconds=1)).isoformat()},
        {"since": "2026-01-01T00:00:00"},  # no offset
        {"since": (NOW - timedelta(days=400)).isoformat(), "until": NOW.isoformat()},
        {"since": "yesterday"},
        {"until": "0001-01-01T00:00:00Z"},  # the default since would be before year 1
        {"since": "9999-12-30T00:00:00-12:00", "until": "9999-12-31T23:59:59-12:00"},
    ]
    for params in bad:
        r = fetch(client, world, "incidents", **params)
        assert r.status_code == 422, (params, r.text)
    month = {"since": (NOW - timedelta(days=40)).isoformat(), "until": NOW.isoformat()}
    assert fetch(client, world, "incidents", **month).status_code == 200
    for layer in ("tracks", "positions"):
        r = fetch(client, world, layer, **month)
        assert r.status_code == 422 and "31 days" in r.json()["message"]


def test_openapi_documents_the_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/api/export/{layer}"]["get"]
    assert op["tags"] == ["export"]
    assert set(op["responses"]["200"]["content"]) == set(MEDIA.values())
    assert {"401", "403", "404", "422"} <= set(op["responses"])
    assert op["security"]


def test_an_empty_export_keeps_its_fields(client: TestClient, world: World, tmp_path: Path) -> None:
    path = export(client, world, tmp_path, "incidents", "gpkg")
    info = pyogrio.read_info(path)
    assert info["features"] == 0 and "reported_at" in list(info["fields"])
    assert info["geometry_type"] == "Point" and info["crs"] == "EPSG:4326"


# --- the CLI ------------------------------------------------------------------------------
def _seed_cli(url: str) -> None:
    engine = create_engine(sqlalchemy_url(url))
    with AuditedSession(bind=engine) as session:
        session.add(User(username="planner", password_hash="x", role="planner"))
        for k in range(3):
            session.add(
                Incident(
                    title=f"Fire {k}",
                    type="fire",
                    reported_at=NOW - timedelta(minutes=30 - k),
                    geom=from_shape(Point(24.94 + k / 1000, 60.17), 4326),
                )
            )
        session.add(Shelter(name="Hall", capacity=10, geom=from_shape(Point(24.9, 60.2), 4326)))
        session.commit()
    engine.dispose()


@pytest.fixture
def cli_app(
    monkeypatch: pytest.MonkeyPatch, road_engine: RoadEngine
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A database of its own, committed, that both the CLI and an app read."""
    with cli_database(monkeypatch, "emergency_exports", seed=_seed_cli) as url:
        engine = create_engine(sqlalchemy_url(url))
        settings = Settings(env="test", database_url=url, secret_key=CLI_SECRET, realtime=False)
        app = create_app(settings, session_factory=make_sessionmaker(engine), graph=road_engine)
        with make_sessionmaker(engine)() as session:
            user = session.scalars(select(User).where(User.username == "planner")).one()
            token = auth.issue_token(user, secret=CLI_SECRET, ttl_s=600)
        with TestClient(app) as client:
            yield client, {"Authorization": f"Bearer {token}"}
        engine.dispose()


@pytest.mark.db
def test_cli_writes_the_file_the_api_answers(
    cli_app: tuple[TestClient, dict[str, str]], tmp_path: Path
) -> None:
    client, headers = cli_app
    (tmp_path / "api").mkdir()
    for layer, fmt in (("incidents", "csv"), ("incidents", "gpkg"), ("shelters", "geojson")):
        target = tmp_path / f"{layer}.{fmt}"
        result = invoke(
            "export", layer, str(target), "--since", WINDOW["since"], "--until", WINDOW["until"]
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert summary["rows"] == (3 if layer == "incidents" else 1) and summary["format"] == fmt
        r = client.get(f"/api/export/{layer}", params={"format": fmt, **WINDOW}, headers=headers)
        answered = save(r, tmp_path / "api")
        if fmt == "csv":
            assert target.read_bytes() == answered.read_bytes()
        else:
            pd.testing.assert_frame_equal(gpd.read_file(target), gpd.read_file(answered))
    # The format from --format, a suffix it does not know refused.
    other = tmp_path / "incidents.txt"
    assert invoke("export", "incidents", str(other), "--format", "geojson").exit_code == 0
    assert len(json.loads(other.read_text())["features"]) == 3
    refused = invoke("export", "incidents", str(tmp_path / "x.shp"))
    assert refused.exit_code != 0 and "format" in str(refused.exception)
    unknown = invoke("export", "hydrants", str(tmp_path / "x.gpkg"))
    assert unknown.exit_code != 0 and "incidents" in str(unknown.exception)
