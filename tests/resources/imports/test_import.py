"""Importing a city's own GIS files: real files, CRSs of China, upsert, refusals.

Files are the shared POI extracts, or written here through geopandas (Shapefile and
GeoPackage in EPSG:4547 with Chinese column names, CSV in GCJ-02), as a city's GIS office
would hand them over. Places are checked against the truth within 1 m (geodesic).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
import yaml
from geoalchemy2.shape import to_shape
from pyproj import Geod
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.security import SYSTEM
from gis.crs import from_wgs84
from resources.imports.mapping import ImportMapping, parse_mapping
from resources.imports.service import import_frame, read_file
from resources.models import Shelter, Station, Stock, Unit, Warehouse
from tests.support.cli import cli_database, invoke, rows

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "resources"
POIS = sorted(SHARED.glob("*.geojson"))
GEOD = Geod(ellps="WGS84")

# The shared POI files as stations: ids from OSM, kinds from the amenity, hydrants and
# the rest as "other", a name where OSM has none.
POI_MAPPING = {
    "fields": {"external_id": "osm:{osm_type}/{osm_id}", "name": "{name}", "kind": "amenity"},
    "defaults": {"name": "未命名", "kind": "other"},
    "values": {
        "kind": {
            "fire_station": "fire",
            "hospital": "hospital",
            "police": "police",
            "ambulance_station": "ambulance",
            "*": "other",
        }
    },
}

# Shelters in Wuhan (truth in WGS-84), as a civil-affairs register lists them.
TRUTH = [
    ("WH-001", "武汉体育中心", 114.1905, 30.4930, 5000, "地震;洪涝"),
    ("WH-002", "解放公园", 114.2943, 30.6056, 12000, "地震"),
    ("WH-003", "中山公园", 114.2690, 30.5842, 8000, "洪涝、火灾"),
    ("WH-004", "沙湖公园", 114.3327, 30.5660, 6000, "其他"),
]
SHELTER_MAPPING = {
    "fields": {"external_id": "编号", "name": "名称", "capacity": "人数", "hazards": "灾种"},
    "values": {"hazards": {"地震": "earthquake", "洪涝": "flood", "火灾": "fire", "*": "other"}},
}


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def run(
    session: Session, kind: str, path: Path, mapping: dict[str, Any] | None = None, **kw: Any
) -> Any:
    rules = parse_mapping(mapping)
    frame = read_file(kind, path, rules)
    return import_frame(session, kind, frame, rules, principal=SYSTEM, **kw)


def audit_rows(session: Session, action: str) -> int:
    """Audit rows of ``action`` once what the session wrote is committed (and sealed)."""
    session.commit()
    query = text("SELECT count(*) FROM audit_event WHERE action = :a")
    return int(session.execute(query, {"a": action}).scalar_one())


def shelters_frame(crs: str = "EPSG:4547") -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {
            "编号": [t[0] for t in TRUTH],
            "名称": [t[1] for t in TRUTH],
            "人数": [t[4] for t in TRUTH],
            "灾种": [t[5] for t in TRUTH],
            "区": ["洪山区", "江岸区", "江汉区", "武昌区"],
        },
        geometry=shapely.points([t[2] for t in TRUTH], [t[3] for t in TRUTH]),
        crs=4326,
    )
    return frame.to_crs(crs)


def assert_landed(session: Session) -> None:
    for ext, name, lon, lat, capacity, _ in TRUTH:
        shelter = session.scalars(select(Shelter).where(Shelter.external_id == ext)).one()
        point = to_shape(shelter.geom)
        assert metres((point.x, point.y), (lon, lat)) < 1.0, (ext, point)
        assert (shelter.name, shelter.capacity) == (name, capacity)


# --- the shared files -------------------------------------------------------------------------
@pytest.mark.parametrize("path", POIS, ids=[p.stem for p in POIS])
def test_shared_pois_import_as_stations_and_again(session: Session, path: Path) -> None:
    source = json.loads(path.read_text(encoding="utf-8"))["features"]
    first = run(session, "stations", path, POI_MAPPING)
    assert (first.created, first.updated, first.unchanged, first.refused) == (
        len(source), 0, 0, []
    )  # fmt: skip
    assert first.stored
    assert audit_rows(session, "station.created") >= len(source)
    for feature in source:
        p = feature["properties"]
        station = session.scalars(
            select(Station).where(Station.external_id == f"osm:{p['osm_type']}/{p['osm_id']}")
        ).one()
        point = to_shape(station.geom)
        assert (point.x, point.y) == tuple(feature["geometry"]["coordinates"])
        assert station.name == ((p.get("name") or "").strip() or "未命名")  # text is trimmed
        expected = {"fire_station": "fire", "hospital": "hospital", "police": "police"}
        assert station.kind == expected.get(p.get("amenity"), "other")
        # Columns no field took are kept as they were.
        assert station.attributes["category"] == p["category"]
    again = run(session, "stations", path, POI_MAPPING)
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(source))
    total = session.execute(select(Station).where(Station.external_id.like("osm:%"))).all()
    assert len(total) == len(source)


def test_a_changed_row_is_updated_and_only_it(session: Session, tmp_path: Path) -> None:
    path = POIS[0]
    run(session, "stations", path, POI_MAPPING)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["features"][0]["properties"]["name"] = "Renamed"
    data["features"][1]["geometry"]["coordinates"][0] += 0.001
    changed = tmp_path / "changed.geojson"
    changed.write_text(json.dumps(data), encoding="utf-8")
    before = audit_rows(session, "station.updated")
    summary = run(session, "stations", changed, POI_MAPPING)
    n = len(data["features"])
    assert (summary.created, summary.updated, summary.unchanged) == (0, 2, n - 2)
    assert audit_rows(session, "station.updated") == before + 2
    p0 = data["features"][0]["properties"]
    renamed = session.scalars(
        select(Station).where(Station.external_id == f"osm:{p0['osm_type']}/{p0['osm_id']}")
    ).one()
    assert renamed.name == "Renamed"


# --- China: projected zones, Chinese columns, GCJ-02 --------------------------------------
@pytest.mark.parametrize("suffix", [".shp", ".gpkg", ".zip"])
def test_shelters_in_epsg4547_with_chinese_columns_land_within_1m(
    session: Session, tmp_path: Path, suffix: str
) -> None:
    frame = shelters_frame("EPSG:4547")
    if suffix == ".zip":
        frame.to_file(tmp_path / "避难场所.shp", engine="pyogrio", encoding="UTF-8")
        path = tmp_path / "upload.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for side in tmp_path.glob("避难场所.*"):
                zf.write(side, side.name)
    else:
        path = tmp_path / f"避难场所{suffix}"
        frame.to_file(path, engine="pyogrio")
    assert read_file("shelters", path, ImportMapping()).crs.to_epsg() == 4326
    summary = run(session, "shelters", path, SHELTER_MAPPING)
    assert (summary.created, summary.refused) == (4, [])
    assert summary.kept_columns == ["区"]
    assert_landed(session)
    hazards = dict(session.execute(select(Shelter.external_id, Shelter.hazards)).all())
    assert hazards["WH-001"] == ["earthquake", "flood"]
    assert hazards["WH-003"] == ["flood", "fire"]
    assert hazards["WH-004"] == ["other"]
    district = session.scalars(select(Shelter).where(Shelter.external_id == "WH-002")).one()
    assert district.attributes == {"区": "江岸区"}


def test_the_mapping_crs_wins_over_a_file_without_one(session: Session, tmp_path: Path) -> None:
    # A Shapefile whose .prj was lost: refused until the mapping says the zone.
    path = tmp_path / "no_prj.shp"
    shelters_frame("EPSG:4547").to_file(path, engine="pyogrio")
    path.with_suffix(".prj").unlink()
    with pytest.raises(InvalidInput, match=r"coordinate system .*crs:"):
        run(session, "shelters", path, SHELTER_MAPPING)
    summary = run(session, "shelters", path, {**SHELTER_MAPPING, "crs": "EPSG:4547"})
    assert summary.created == 4
    assert_landed(session)


def test_cgcs2000_geographic(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "cgcs2000.gpkg"
    shelters_frame("EPSG:4490").to_file(path, engine="pyogrio")
    assert run(session, "shelters", path, SHELTER_MAPPING).created == 4
    assert_landed(session)


@pytest.mark.parametrize("offset", ["gcj02", "bd09"])
def test_csv_copied_from_a_chinese_map_app(session: Session, tmp_path: Path, offset: str) -> None:
    lines = ["编号,名称,人数,经度,纬度"]
    for ext, name, lon, lat, capacity, _ in TRUTH:
        x, y = from_wgs84(lon, lat, offset)  # type: ignore[arg-type]
        assert metres((x, y), (lon, lat)) > 100  # the offset is real
        lines.append(f"{ext},{name},{capacity},{x!r},{y!r}")
    path = tmp_path / "from_app.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = {"crs": offset, "fields": {"external_id": "编号", "name": "名称", "capacity": "人数"}}
    summary = run(session, "shelters", path, mapping)
    assert (summary.created, summary.refused) == (4, [])
    for ext, _name, lon, lat, _c, _h in TRUTH:
        point = to_shape(
            session.scalars(select(Shelter.geom).where(Shelter.external_id == ext)).one()
        )
        assert metres((point.x, point.y), (lon, lat)) < 0.01


def test_gbk_csv_from_excel(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    rows_ = ["编号,名称,人数,经度,纬度", "WH-009,汉口江滩,3000,114.3004,30.5931"]
    path.write_bytes("\r\n".join(rows_).encode("gb18030"))
    mapping = {"fields": {"external_id": "编号", "name": "名称", "capacity": "人数"}}
    assert run(session, "shelters", path, mapping).created == 1
    assert session.scalars(select(Shelter.name).where(Shelter.external_id == "WH-009")).one() == (
        "汉口江滩"
    )


# --- refusals -------------------------------------------------------------------------------
def broken_file(tmp_path: Path) -> Path:
    lines = ["id,name,capacity,lon,lat"]
    lines += [f"S{i},Shelter {i},{100 + i},24.9{i},60.1{i}" for i in range(1, 6)]
    lines[3] = "S3,Shelter 3,many,24.93,60.13"  # row 3: capacity is not a number
    lines[5] = "S5,Shelter 5,105,24.95,160.15"  # row 5: latitude out of range
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


BROKEN_MAPPING = {"fields": {"external_id": "id"}}


def test_one_bad_row_refuses_the_file_then_skip_invalid_stores_the_rest(
    session: Session, tmp_path: Path, count: Any
) -> None:
    path = broken_file(tmp_path)
    before = count("shelter")
    summary = run(session, "shelters", path, BROKEN_MAPPING)
    assert not summary.stored
    assert [r["row"] for r in summary.refused] == [3, 5]
    assert "capacity" in summary.refused[0]["reason"]
    assert "out of range" in summary.refused[1]["reason"]
    assert count("shelter") == before
    dry = run(session, "shelters", path, BROKEN_MAPPING, skip_invalid=True, dry_run=True)
    assert (dry.created, dry.stored) == (3, False)
    assert count("shelter") == before
    done = run(session, "shelters", path, BROKEN_MAPPING, skip_invalid=True)
    assert (done.created, done.stored, [r["row"] for r in done.refused]) == (3, True, [3, 5])
    assert count("shelter") == before + 3


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        (None, "no geometry"),
        (shapely.LineString([(24.9, 60.1), (24.95, 60.2)]), "a LineString"),
        (shapely.Polygon([(24.9, 60.1), (24.95, 60.2), (24.95, 60.1), (24.9, 60.2)]),
         "invalid geometry: Self-intersection"),
        (shapely.Point(0, 0), "at 0,0"),
    ],
)  # fmt: skip
def test_bad_geometry_is_named(
    session: Session, tmp_path: Path, geometry: Any, reason: str
) -> None:
    frame = gpd.GeoDataFrame(
        {"external_id": ["A", "B"], "name": ["Good", "Bad"], "capacity": [10, 10]},
        geometry=[shapely.Point(24.9, 60.1), geometry],
        crs=4326,
    )
    path = tmp_path / "bad.geojson"
    frame.to_file(path, engine="pyogrio")
    summary = run(session, "shelters", path)
    assert len(summary.refused) == 1
    assert summary.refused[0]["row"] == 2
    assert reason in summary.refused[0]["reason"]
    assert not summary.stored


def test_a_polygon_is_placed_inside_its_grounds(session: Session, tmp_path: Path) -> None:
    grounds = shapely.Polygon([(24.90, 60.10), (24.92, 60.10), (24.92, 60.11), (24.90, 60.11)])
    frame = gpd.GeoDataFrame(
        {"external_id": ["P"], "name": ["Park"], "capacity": [500]}, geometry=[grounds], crs=4326
    )
    path = tmp_path / "park.gpkg"
    frame.to_file(path, engine="pyogrio")
    assert run(session, "shelters", path).created == 1
    point = to_shape(session.scalars(select(Shelter.geom).where(Shelter.external_id == "P")).one())
    assert grounds.contains(point)


def test_repeated_and_missing_keys(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "repeats.csv"
    path.write_text("id,name,capacity,lon,lat\nA,One,1,24.9,60.1\nA,Two,2,24.9,60.1\n,Three,3,24.9,60.1\n",
                    encoding="utf-8")  # fmt: skip
    summary = run(session, "shelters", path, {"fields": {"external_id": "id"}})
    reasons = {r["row"]: r["reason"] for r in summary.refused}
    assert "repeats row 1" in reasons[2]
    assert "external_id" in reasons[3]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"fields": {"colour": "名称"}}, "shelters have no field 'colour'"),
        ({"fields": {"name": "NOPE"}}, "does not have"),
        ({"fields": {"name": "{NOPE} x"}}, "names column 'NOPE'"),
        ({"crs": "EPSG:99999999"}, "unknown crs"),
        ({"colour": 1}, "unknown key 'colour'"),
        ([1, 2], "must be a YAML mapping"),
    ],
)
def test_bad_mappings_are_refused_naming_the_key(
    session: Session, tmp_path: Path, mapping: Any, message: str
) -> None:
    path = tmp_path / "s.gpkg"
    shelters_frame().to_file(path, engine="pyogrio")
    with pytest.raises(InvalidInput, match=message):
        run(session, "shelters", path, mapping)


def test_unreadable_files(session: Session, tmp_path: Path) -> None:
    not_gis = tmp_path / "x.gpkg"
    not_gis.write_bytes(b"PK\x03\x04 not a geopackage")
    with pytest.raises(InvalidInput, match=r"cannot read x\.gpkg"):
        run(session, "shelters", not_gis)
    with pytest.raises(InvalidInput, match="not a layer"):
        run(session, "shelters", tmp_path / "x.kml")
    with pytest.raises(InvalidInput, match="cannot import 'hydrants'"):
        read_file("hydrants", not_gis, ImportMapping())


# --- units and stock refer to stations and warehouses --------------------------------------
def test_units_and_stock_by_external_ids(session: Session, tmp_path: Path) -> None:
    stations = tmp_path / "stations.csv"
    stations.write_text("external_id,name,kind,lon,lat\nST1,一中队,fire,114.30,30.59\n",
                        encoding="utf-8")  # fmt: skip
    assert run(session, "stations", stations).created == 1
    units = tmp_path / "units.csv"
    units.write_text(
        "编号,呼号,名称,类型,能力,人数\n"
        "U1,WH-E1,水罐车1,fire_engine,fire_suppression;water,6\n"
        "U2,WH-E2,抢险车,rescue_truck,rescue,4\n",
        encoding="utf-8",
    )
    unit_mapping = {
        "fields": {"external_id": "编号", "callsign": "呼号", "name": "名称", "type": "类型",
                   "capabilities": "能力", "crew": "人数"},
        "defaults": {"kind": "vehicle", "home_station": "ST1"},
    }  # fmt: skip
    first = run(session, "units", units, unit_mapping)
    assert (first.created, first.refused) == (2, [])
    unit = session.scalars(select(Unit).where(Unit.external_id == "U1")).one()
    assert unit.capabilities == ["fire_suppression", "water"]
    station = session.scalars(select(Station).where(Station.external_id == "ST1")).one()
    assert unit.home_station_id == station.id
    assert to_shape(unit.geom).equals(to_shape(station.geom))  # placed at home
    assert unit.position_at is None
    again = run(session, "units", units, unit_mapping)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    missing = run(session, "units", units, {**unit_mapping, "defaults": {
        "kind": "vehicle", "home_station": "NOPE"}})  # fmt: skip
    assert "no station with external_id 'NOPE'" in missing.refused[0]["reason"]

    warehouses = tmp_path / "warehouses.geojson"
    gpd.GeoDataFrame({"external_id": ["W1"], "name": ["一号库"]},
                     geometry=[shapely.Point(114.28, 30.60)], crs=4326).to_file(warehouses)  # fmt: skip
    assert run(session, "warehouses", warehouses).created == 1
    stock = tmp_path / "stock.csv"
    stock.write_text("仓库,物资,数量\nW1,tents,120\nW1,water_l,5000\n", encoding="utf-8")
    stock_mapping = {"fields": {"warehouse": "仓库", "item": "物资", "quantity": "数量"}}
    assert run(session, "stock", stock, stock_mapping).created == 2
    stock.write_text("仓库,物资,数量\nW1,tents,100\nW1,water_l,5000\n", encoding="utf-8")
    summary = run(session, "stock", stock, stock_mapping)
    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 1)
    warehouse = session.scalars(select(Warehouse).where(Warehouse.external_id == "W1")).one()
    tents = session.scalars(
        select(Stock).where(Stock.warehouse_id == warehouse.id, Stock.item == "tents")
    ).one()
    assert tents.quantity == 100


def test_capacity_below_the_people_there_is_refused(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "s.gpkg"
    shelters_frame().to_file(path, engine="pyogrio")
    run(session, "shelters", path, SHELTER_MAPPING)
    session.execute(text("UPDATE shelter SET occupancy = 4000 WHERE external_id = 'WH-001'"))
    frame = shelters_frame()
    frame.loc[frame["编号"] == "WH-001", "人数"] = 3000
    frame.to_file(path, engine="pyogrio")
    summary = run(session, "shelters", path, SHELTER_MAPPING)
    assert summary.refused == [
        {"row": 1, "reason": "capacity 3000 is below the 4000 people there and 0 on their way"}
    ]


# --- the API twin ------------------------------------------------------------------------------
def upload(
    client: Any, headers: dict[str, str], kind: str, name: str, data: bytes,
    mapping: dict[str, Any] | None = None, **params: Any,
) -> Any:  # fmt: skip
    files: dict[str, Any] = {"file": (name, data, "application/octet-stream")}
    if mapping is not None:
        files["mapping"] = (
            "mapping.yaml",
            yaml.safe_dump(mapping, allow_unicode=True),
            "text/yaml",
        )
    return client.post(f"/api/import/{kind}", files=files, params=params, headers=headers)


def test_api_imports_with_roles_dry_runs_and_refusals(
    client: Any, world: Any, tmp_path: Path, count: Any
) -> None:
    path = tmp_path / "s.gpkg"
    shelters_frame().to_file(path, engine="pyogrio")
    data = path.read_bytes()
    before = count("shelter")
    for role in ("dispatcher", "responder", "planner", "auditor"):
        assert upload(client, world.h(role), "shelters", "s.gpkg", data).status_code == 403
    dry = upload(client, world.h("commander"), "shelters", "s.gpkg", data, SHELTER_MAPPING,
                 dry_run="true")  # fmt: skip
    assert dry.status_code == 200, dry.text
    assert (dry.json()["created"], dry.json()["stored"]) == (4, False)
    assert count("shelter") == before
    done = upload(client, world.h("admin"), "shelters", "s.gpkg", data, SHELTER_MAPPING)
    assert done.status_code == 200, done.text
    assert {k: done.json()[k] for k in ("created", "updated", "unchanged", "refused")} == {
        "created": 4, "updated": 0, "unchanged": 0, "refused": []
    }  # fmt: skip
    assert count("shelter") == before + 4
    again = upload(client, world.h("commander"), "shelters", "s.gpkg", data, SHELTER_MAPPING)
    assert again.json()["unchanged"] == 4
    listed = client.get("/api/shelters", headers=world.h("dispatcher")).json()["features"]
    wh2 = next(f for f in listed if f["properties"]["external_id"] == "WH-002")
    assert wh2["properties"]["hazards"] == ["earthquake"]
    assert wh2["properties"]["attributes"] == {"区": "江岸区"}

    broken = broken_file(tmp_path).read_bytes()
    refused = upload(client, world.h("admin"), "shelters", "b.csv", broken, BROKEN_MAPPING)
    assert refused.status_code == 422
    body = refused.json()
    assert body["message"].startswith("row 3: capacity")
    assert [r["row"] for r in body["details"]["refused"]] == [3, 5]
    assert count("shelter") == before + 4
    skipped = upload(client, world.h("admin"), "shelters", "b.csv", broken, BROKEN_MAPPING,
                     skip_invalid="true")  # fmt: skip
    assert (skipped.status_code, skipped.json()["created"]) == (200, 3)
    assert count("shelter") == before + 7


@pytest.mark.parametrize(
    ("kind", "name", "data", "mapping", "message"),
    [
        ("hydrants", "a.csv", b"a", None, None),
        ("shelters", "a.exe", b"MZ", None, "upload a .geojson"),
        ("shelters", "a.shp", b"x", None, "upload a .geojson"),
        ("shelters", "a.zip", b"PK\x05\x06" + b"\0" * 18, None, "cannot read"),
        ("shelters", "a.geojson", b'{"type": "FeatureCollection", "features": [', None,
         "cannot read"),
        ("shelters", "a.geojson", b"{}", b"fields: [unclosed", "not valid YAML"),
    ],
)  # fmt: skip
def test_api_hostile_uploads_change_nothing(
    client: Any, world: Any, count: Any, kind: str, name: str, data: bytes,
    mapping: bytes | None, message: str | None,
) -> None:  # fmt: skip
    before = count("shelter")
    files: dict[str, Any] = {"file": (name, data, "application/octet-stream")}
    if mapping is not None:
        files["mapping"] = ("m.yaml", mapping, "text/yaml")
    response = client.post(f"/api/import/{kind}", files=files, headers=world.h("admin"))
    assert response.status_code == 422, response.text
    if message:
        assert message in response.json()["message"]
    assert count("shelter") == before


def test_api_upload_over_the_limit_is_413(app: Any, world: Any) -> None:
    from fastapi.testclient import TestClient

    app.state.settings = app.state.settings  # the limit is fixed when the app is made
    body = io.BytesIO(b"x" * (64 * 1024 * 1024 + 10))
    with TestClient(app) as c:
        response = c.post(
            "/api/import/shelters",
            files={"file": ("big.csv", body, "text/csv")},
            headers=world.h("admin"),
        )
    assert response.status_code == 413


# --- the CLI ---------------------------------------------------------------------------------
def test_cli_import_refuses_whole_then_skips_then_is_idempotent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = broken_file(tmp_path)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(yaml.safe_dump(BROKEN_MAPPING), encoding="utf-8")
    with cli_database(monkeypatch, "emergency_import_cli") as url:
        from sqlalchemy import create_engine

        from core.db import sqlalchemy_url

        engine = create_engine(sqlalchemy_url(url))
        try:
            refused = invoke("import", "shelters", str(path), "--mapping", str(mapping))
            assert refused.exit_code == 2
            summary = json.loads(refused.stdout.splitlines()[0])
            assert [r["row"] for r in summary["refused"]] == [3, 5]
            assert rows(engine, "shelter") == 0
            stored = invoke("import", "shelters", str(path), "--mapping", str(mapping),
                            "--skip-invalid")  # fmt: skip
            assert stored.exit_code == 2  # rows were refused: a person should look
            assert json.loads(stored.stdout.splitlines()[0])["created"] == 3
            assert rows(engine, "shelter") == 3
            good = tmp_path / "good.csv"
            good.write_text("\n".join(
                line for i, line in enumerate(path.read_text().splitlines()) if i not in (3, 5)
            ) + "\n", encoding="utf-8")  # fmt: skip
            again = invoke("import", "shelters", str(good), "--mapping", str(mapping))
            assert again.exit_code == 0, again.output
            assert json.loads(again.stdout.splitlines()[0]) | {"seconds": 0} == {
                "kind": "shelters", "rows": 3, "created": 0, "updated": 0, "unchanged": 3,
                "refused": [], "stored": True, "dry_run": False, "kept_columns": [],
                "seconds": 0,
            }  # fmt: skip
            assert rows(engine, "shelter") == 3
        finally:
            engine.dispose()


def test_units_by_callsign_adopt_an_id_and_clashes_are_refused(
    session: Session, tmp_path: Path
) -> None:
    # The demo-style unit E9 was entered by hand, without an external id.
    first = tmp_path / "first.csv"
    first.write_text("callsign,name,kind,type\nE9,Engine 9,vehicle,fire_engine\n",
                     encoding="utf-8")  # fmt: skip
    assert run(session, "units", first).created == 1
    fleet = tmp_path / "fleet.csv"
    fleet.write_text(
        "external_id,callsign,name,kind,type,home_station_id\n"
        "V-9,E9,Engine 9,vehicle,fire_engine,\n"  # the same unit: takes the id
        "V-10,E9,Engine 10,vehicle,fire_engine,\n"  # the same callsign again in the file
        "V-11,E11,Engine 11,vehicle,fire_engine,999999999\n",  # no such station
        encoding="utf-8",
    )
    summary = run(session, "units", fleet, skip_invalid=True)
    reasons = {r["row"]: r["reason"] for r in summary.refused}
    assert (summary.created, summary.updated) == (0, 1)
    assert reasons[2] == "callsign 'E9' repeats row 1"
    assert reasons[3] == "home_station_id: no station 999999999"
    unit = session.scalars(select(Unit).where(Unit.callsign == "E9")).one()
    assert unit.external_id == "V-9"
    other = tmp_path / "other.csv"
    other.write_text("external_id,callsign,name,kind,type\nV-99,E9,Engine,vehicle,fire_engine\n",
                     encoding="utf-8")  # fmt: skip
    clash = run(session, "units", other)
    assert clash.refused == [{"row": 1, "reason": "callsign 'E9' is unit 'V-9'"}]
    assert not clash.stored
