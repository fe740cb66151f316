"""Import stations, shelters, warehouses, units and stock from a city's own GIS files.

A file (read by :func:`gis.layers.read_layer`, so in WGS-84 whatever it was drawn in) and a
mapping (:mod:`resources.imports.mapping`) become rows checked one by one: geometry, range
and every field as the API checks it (the same pydantic models). Rows are matched to what
is stored by ``external_id`` (a unit without one by callsign; stock by warehouse and
item): a new key is created, a known one updated where a mapped field, the kept attributes
or the place differ, and otherwise counted unchanged, so importing a file twice creates
nothing the second time. Every change is recorded (audit row and event) as an edit through
the API would be.

One bad row refuses the whole file and nothing is stored, unless ``skip_invalid`` stores
the good rows; ``dry_run`` checks and counts and stores nothing. Whatever happens, the
summary names each refused row (the file's 1-based row number) and the reason.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import geopandas as gpd
import numpy as np
import shapely
from geoalchemy2.shape import to_shape
from pydantic import BaseModel, ValidationError
from shapely import Geometry
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from core import crud
from core.crud import Change, FeatureKind
from core.errors import InvalidInput
from core.security import Principal
from gis.layers import LayerError, read_layer
from resources import service
from resources.imports.mapping import ImportMapping, Source
from resources.models import Station, Stock, Warehouse
from resources.schemas import ShelterProps, StationProps, StockCreate, UnitProps, WarehouseProps

KIND_NAMES = ("stations", "shelters", "warehouses", "units", "stock")
Progress = Callable[[int, int], None]  # rows done, rows in all
_SPLIT = re.compile(r"\s*[;,，、|/；]\s*|\s+")
_TRUE = {"true", "yes", "y", "1", "t", "是", "有", "对", "√"}
_FALSE = {"false", "no", "n", "0", "f", "否", "无", "没有", "×"}
_SAME_DEG = 1e-9  # a place within this of the stored one has not moved (about 0.1 mm)


@dataclass(frozen=True)
class KindSpec:
    """How one kind is imported."""

    name: str
    props: type[BaseModel]  # the API's validation of one row's fields
    feature: FeatureKind | None  # None: stock (no geometry, no Feature)
    geometry: str  # "required", "optional" (units: else at the home station), "none"
    refs: tuple[str, ...] = ()  # fields naming another row by external id
    list_fields: tuple[str, ...] = ()
    # Fields an update may not change (the unit's status and place are operations').
    fixed: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        names = [n for n in self.props.model_fields if n not in ("warehouse_id",)]
        if "external_id" not in names and self.name != "stock":
            names.append("external_id")
        return (*names, *self.refs)


KINDS: dict[str, KindSpec] = {
    "stations": KindSpec("stations", StationProps, service.STATIONS, "required"),
    "shelters": KindSpec(
        "shelters", ShelterProps, service.SHELTERS, "required", list_fields=("hazards",)
    ),
    "warehouses": KindSpec("warehouses", WarehouseProps, service.WAREHOUSES, "required"),
    "units": KindSpec(
        "units",
        UnitProps,
        service.UNITS,
        "optional",
        refs=("home_station",),
        list_fields=("capabilities",),
        fixed=("status",),
    ),
    "stock": KindSpec("stock", StockCreate, None, "none", refs=("warehouse",)),
}


@dataclass
class ImportSummary:
    """What an import did (or, refused or dry, would have done)."""

    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    stored: bool = False
    dry_run: bool = False
    kept_columns: list[str] = field(default_factory=list)  # into each row's attributes
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "refused": self.refused,
            "stored": self.stored,
            "dry_run": self.dry_run,
            "kept_columns": self.kept_columns,
            "seconds": round(self.seconds, 3),
        }

    @property
    def message(self) -> str:
        first = self.refused[0]
        more = f" and {len(self.refused) - 1} more" if len(self.refused) > 1 else ""
        return f"row {first['row']}: {first['reason']}{more}; nothing stored"


class RowRefused(ValueError):
    pass


def spec_of(kind: str) -> KindSpec:
    spec = KINDS.get(kind)
    if spec is None:
        raise InvalidInput(f"cannot import {kind!r}: one of {', '.join(KIND_NAMES)}")
    return spec


def read_file(kind: str, path: Path, mapping: ImportMapping) -> gpd.GeoDataFrame:
    """The file's rows in WGS-84, or InvalidInput saying why it cannot be read."""
    spec = spec_of(kind)
    try:
        return read_layer(
            path,
            crs=mapping.crs,
            lon=mapping.lon,
            lat=mapping.lat,
            layer=mapping.layer,
            points={"required": True, "optional": None, "none": False}[spec.geometry],
        )
    except LayerError as exc:
        raise InvalidInput(str(exc)) from exc


# --- one row ------------------------------------------------------------------------------
@dataclass
class _Row:
    number: int
    props: dict[str, Any]  # validated, every field (defaults included)
    given: set[str]  # the fields the file or the mapping's defaults set
    refs: dict[str, str]
    geom: Geometry | None
    attributes: dict[str, Any] | None

    key: Any = None


def _cell(value: Any) -> Any:
    """A cell as plain Python: None for empty, NaN and NaT; numbers and text as they are."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, datetime | date):
        return None if str(value) == "NaT" else value.isoformat()
    return value


def _jsonable(value: Any) -> Any:
    value = _cell(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray):
        return None  # blobs are not attributes
    return str(value)


def _mapped(spec: KindSpec, name: str, value: Any, mapping: ImportMapping) -> Any:
    table = mapping.values.get(name)
    if name in spec.list_fields:
        if value is None:
            return None
        items = value if isinstance(value, list) else _SPLIT.split(str(value))
        out = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            if table is not None:
                item = table.get(item, table.get("*", item))
            if item is not None and item not in out:
                out.append(item)
        return out
    if table is not None and value is not None:
        key = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        value = table.get(key, table.get("*", value))
    kind = _field_type(spec.props, name)
    if kind == "text" and isinstance(value, int | float) and not isinstance(value, bool):
        # An id or code column the file stored as a number.
        return str(int(value)) if float(value).is_integer() else str(value)
    if kind == "int" and isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.0*)?", value):
        return int(float(value)) if "." in value else int(value)  # ids are strict integers
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "bool" and isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    return value


@functools.cache
def _field_type(model: type[BaseModel], name: str) -> str | None:
    """What ``model``'s field ``name`` takes: "text", "int", "bool", or None (other)."""
    info = model.model_fields.get(name)
    if info is None:
        return None
    for kind, base in (("text", str), ("bool", bool), ("int", int)):
        if _takes(info.annotation, base):
            return kind
    return None


def _takes(annotation: Any, base: type) -> bool:
    """Whether a field's type is ``base`` (constrained, or ``base | None``)."""
    if annotation is base:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes(get_args(annotation)[0], base)
    if origin in (Union, UnionType):
        return any(_takes(a, base) for a in get_args(annotation) if a is not type(None))
    return False


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _place(geom: Any, required: bool) -> Geometry | None:
    """The row's point in WGS-84, or RowRefused saying what is wrong with it."""
    if geom is None or shapely.is_empty(geom):
        if required:
            raise RowRefused("no geometry")
        return None
    kind = geom.geom_type
    if kind in ("Polygon", "MultiPolygon"):
        if not geom.is_valid:
            raise RowRefused(f"invalid geometry: {shapely.is_valid_reason(geom)}")
        geom = geom.point_on_surface()  # a shelter drawn as its grounds: a point inside
    elif kind == "MultiPoint" and len(geom.geoms) == 1:
        geom = geom.geoms[0]
    elif kind != "Point":
        raise RowRefused(f"a {kind}, not a point or an area")
    lon, lat = geom.x, geom.y
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise RowRefused("coordinates are not numbers")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise RowRefused(
            f"coordinates out of range: lon {lon:.6g}, lat {lat:.6g} (is the crs right?)"
        )
    if lon == 0 and lat == 0:
        raise RowRefused("at 0,0: a missing position, not a place")
    return shapely.Point(lon, lat)


def build_rows(
    spec: KindSpec, frame: gpd.GeoDataFrame, mapping: ImportMapping
) -> tuple[list[_Row], list[dict[str, Any]], list[str]]:
    """Each row checked: (good rows, refused {row, reason}, the columns kept as attributes)."""
    mapping.check_fields(spec.fields, spec.name)
    geometry_name = frame.geometry.name
    columns = [str(c) for c in frame.columns if c != geometry_name]
    sources: dict[str, Source] = mapping.sources(spec.fields, columns)
    used = {c for s in sources.values() for c in s.columns}
    kept = [c for c in columns if c not in used]
    records = frame.drop(columns=[geometry_name]).to_dict("records")
    geoms = list(frame.geometry.array)
    numbers = [int(i) for i in frame.index]
    good: list[_Row] = []
    refused: list[dict[str, Any]] = []
    prop_names = set(spec.props.model_fields)
    for number, record, geom in zip(numbers, records, geoms, strict=True):
        try:
            data: dict[str, Any] = {}
            for name in spec.fields:
                source = sources.get(name)
                value = _cell(source.value(record)) if source is not None else None
                if value is None and name in mapping.defaults:
                    value = mapping.defaults[name]
                value = _mapped(spec, name, value, mapping)
                if value is not None:
                    data[name] = value
            refs = {r: str(data.pop(r)) for r in spec.refs if r in data}
            if spec.name == "stock":
                data.setdefault("warehouse_id", 1)  # resolved from `warehouse` below
            try:
                model = spec.props.model_validate(data)
            except ValidationError as exc:
                raise RowRefused(_reason(exc)) from exc
            props = model.model_dump()
            if spec.name == "stock":
                props.pop("warehouse_id")
                if "warehouse" not in refs:
                    raise RowRefused("warehouse: the warehouse's external_id is required")
            place = _place(geom, spec.geometry == "required") if spec.geometry != "none" else None
            attributes = {c: _jsonable(record.get(c)) for c in kept}
            attributes = {k: v for k, v in attributes.items() if v is not None}
            given = set(data) & prop_names
            if spec.name != "stock" and "external_id" in data:
                given.add("external_id")
            good.append(_Row(number, props, given, refs, place, attributes or None))
        except RowRefused as exc:
            refused.append({"row": number, "reason": str(exc)})
    return good, refused, kept


# --- matching and storing -------------------------------------------------------------------
def _keys(spec: KindSpec, rows: list[_Row], refused: list[dict[str, Any]]) -> list[_Row]:
    """Give each row its upsert key; refuse rows without one and repeats of a key."""
    seen: dict[Any, int] = {}
    out = []
    for row in rows:
        if spec.name == "stock":
            key: Any = (row.refs["warehouse"], row.props["item"])
        elif spec.name == "units":
            key = ("external_id", row.props["external_id"]) if row.props.get("external_id") else (
                "callsign", row.props["callsign"]
            )  # fmt: skip
        else:
            key = row.props.get("external_id")
            if not key:
                refused.append({"row": row.number, "reason": "external_id: required to import "
                                "(the key a second import matches on)"})  # fmt: skip
                continue
        if spec.name == "units" and key[0] == "external_id":
            callsign = ("callsign", row.props["callsign"])
            if callsign in seen:
                refused.append({"row": row.number, "reason": f"callsign "
                                f"{callsign[1]!r} repeats row {seen[callsign]}"})  # fmt: skip
                continue
            seen[callsign] = row.number
        if key in seen:
            shown = "/".join(map(str, key)) if isinstance(key, tuple) else key
            refused.append({"row": row.number, "reason": f"repeats row {seen[key]} ({shown})"})
            continue
        seen[key] = row.number
        row.key = key
        out.append(row)
    return out


def _resolve_refs(
    session: Session, spec: KindSpec, rows: list[_Row], refused: list[dict[str, Any]]
) -> list[_Row]:
    """Stock's warehouse and a unit's home station, by their external ids."""
    if not spec.refs:
        return rows
    if spec.name == "units":
        rows = _known_stations(session, rows, refused)
    ref = spec.refs[0]
    model: Any = Warehouse if ref == "warehouse" else Station
    wanted = {row.refs[ref] for row in rows if ref in row.refs}
    found: dict[str, int] = {}
    if wanted:
        query = select(model.external_id, model.id).where(model.external_id.in_(wanted))
        found = {str(k): int(v) for k, v in session.execute(query).all()}
    target = "warehouse_id" if ref == "warehouse" else "home_station_id"
    out = []
    for row in rows:
        if ref in row.refs:
            ident = found.get(row.refs[ref])
            if ident is None:
                entity = "warehouse" if ref == "warehouse" else "station"
                refused.append({"row": row.number, "reason": f"{ref}: no {entity} with "
                                f"external_id {row.refs[ref]!r}"})  # fmt: skip
                continue
            row.props[target] = ident
            row.given.add(target)
        out.append(row)
    return out


def _known_stations(
    session: Session, rows: list[_Row], refused: list[dict[str, Any]]
) -> list[_Row]:
    """Units whose ``home_station_id`` (given as a number) names a station that exists."""
    given = {row.props["home_station_id"] for row in rows if row.props.get("home_station_id")}
    known = (
        set(session.scalars(select(Station.id).where(Station.id.in_(given)))) if given else set()
    )
    out = []
    for row in rows:
        ident = row.props.get("home_station_id")
        if ident and ident not in known:
            refused.append({"row": row.number, "reason": f"home_station_id: no station {ident}"})
        else:
            out.append(row)
    return out


def _existing(session: Session, spec: KindSpec, rows: list[_Row]) -> dict[Any, Any]:
    """The stored rows the file's keys match, locked for the update."""
    if not rows:
        return {}
    if spec.name == "stock":
        pairs = {(row.props["warehouse_id"], row.props["item"]) for row in rows}
        found = session.scalars(
            select(Stock).where(tuple_(Stock.warehouse_id, Stock.item).in_(pairs))
            .with_for_update()
        ).all()  # fmt: skip
        by_pair = {(s.warehouse_id, s.item): s for s in found}
        return {row.key: by_pair.get((row.props["warehouse_id"], row.props["item"]))
                for row in rows}  # fmt: skip
    model: Any = spec.feature.model if spec.feature else None
    out: dict[Any, Any] = {}
    for column in ("external_id", "callsign") if spec.name == "units" else ("external_id",):
        if column == "callsign":  # every unit's: an id-keyed row may adopt an unkeyed unit
            values = [row.props["callsign"] for row in rows]
        else:
            values = [
                row.key[1] if isinstance(row.key, tuple) else row.key
                for row in rows
                if not isinstance(row.key, tuple) or row.key[0] == column
            ]
        if not values:
            continue
        for obj in session.scalars(
            select(model).where(getattr(model, column).in_(values)).with_for_update()
        ):
            key = (column, getattr(obj, column)) if spec.name == "units" else obj.external_id
            out[key] = obj
    return out


def _norm(value: Any) -> Any:
    """A value as stored JSON would give it back (only containers need the round trip)."""
    if isinstance(value, dict | list | tuple):
        return json.loads(json.dumps(value, default=str))
    return value


def _changes(spec: KindSpec, row: _Row, obj: Any) -> tuple[dict[str, Any], Geometry | None]:
    """What an update changes: the fields the row set that differ, the attributes, the
    place (not a unit's: that is its devices')."""
    changes = {}
    for name in sorted(row.given):
        if name in spec.fixed or name == "warehouse_id":
            continue
        if _norm(getattr(obj, name)) != _norm(row.props[name]):
            changes[name] = row.props[name]
    if spec.feature is not None and _norm(obj.attributes) != _norm(row.attributes):
        changes["attributes"] = row.attributes
    geom = None
    if row.geom is not None and spec.geometry == "required":
        stored = to_shape(obj.geom)
        if abs(stored.x - row.geom.x) > _SAME_DEG or abs(stored.y - row.geom.y) > _SAME_DEG:
            geom = row.geom
    return changes, geom


def _check_update(spec: KindSpec, row: _Row, obj: Any, changes: dict[str, Any]) -> None:
    if spec.name == "shelters" and "capacity" in changes:
        occupancy = changes.get("occupancy", obj.occupancy)
        if occupancy + obj.planned_arrivals > changes["capacity"]:
            raise RowRefused(
                f"capacity {changes['capacity']} is below the {occupancy} people there and "
                f"{obj.planned_arrivals} on their way"
            )


def import_frame(
    session: Session,
    kind: str,
    frame: gpd.GeoDataFrame,
    mapping: ImportMapping,
    *,
    principal: Principal,
    skip_invalid: bool = False,
    dry_run: bool = False,
    source: str = "",
    progress: Progress | None = None,
) -> ImportSummary:
    """Check every row of ``frame`` and store them, in the caller's transaction.

    Returns the summary; ``stored`` says whether anything was written (False for a dry run,
    and for a file refused because of a bad row without ``skip_invalid``). The caller
    commits (nothing was written when ``stored`` is False)."""
    started = time.perf_counter()
    spec = spec_of(kind)
    summary = ImportSummary(kind=kind, rows=len(frame), dry_run=dry_run)
    rows, refused, summary.kept_columns = build_rows(spec, frame, mapping)
    rows = _keys(spec, rows, refused)
    rows = _resolve_refs(session, spec, rows, refused)
    existing = _existing(session, spec, rows)
    creates: list[_Row] = []
    updates: list[tuple[_Row, Any, dict[str, Any], Geometry | None]] = []
    for row in rows:
        obj = existing.get(row.key)
        if obj is None and spec.name == "units":
            # A unit keyed by external_id whose callsign is taken: the same unit, entered
            # before it had an id (it takes the id), or another unit's (refused).
            callsign = row.props["callsign"]
            same = existing.get(("callsign", callsign))
            if same is not None and same.external_id not in (None, row.props["external_id"]):
                reason = f"callsign {callsign!r} is unit {same.external_id!r}"
                refused.append({"row": row.number, "reason": reason})
                continue
            obj = same
        if obj is None:
            creates.append(row)
            continue
        changes, geom = _changes(spec, row, obj)
        try:
            _check_update(spec, row, obj, changes)
        except RowRefused as exc:
            refused.append({"row": row.number, "reason": str(exc)})
            continue
        if changes or geom is not None:
            updates.append((row, obj, changes, geom))
        else:
            summary.unchanged += 1
    refused.sort(key=lambda r: r["row"])
    summary.refused = refused
    summary.created, summary.updated = len(creates), len(updates)
    if (refused and not skip_invalid) or dry_run:
        summary.seconds = time.perf_counter() - started
        return summary
    note = f"import {source}".strip()
    _store(session, spec, creates, updates, principal=principal, note=note, progress=progress)
    summary.stored = True
    summary.seconds = time.perf_counter() - started
    return summary


CHUNK = 2000


def _store(
    session: Session,
    spec: KindSpec,
    creates: Sequence[_Row],
    updates: Sequence[tuple[_Row, Any, dict[str, Any], Geometry | None]],
    *,
    principal: Principal,
    note: str,
    progress: Progress | None,
) -> None:
    total = len(creates) + len(updates)
    done = 0
    for start in range(0, len(creates), CHUNK):
        chunk = creates[start : start + CHUNK]
        if spec.name == "stock":
            for row in chunk:
                service.create_stock(session, data=row.props, principal=principal)
        elif spec.name == "units":
            for row in chunk:
                props = {**row.props, "attributes": row.attributes}
                service.create_unit(session, props=props, geom=row.geom, principal=principal)
        else:
            assert spec.feature is not None
            items = [({**row.props, "attributes": row.attributes}, row.geom) for row in chunk]
            crud.create_many(session, spec.feature, items, principal=principal)
        done += len(chunk)
        if progress:
            progress(done, total)
    for start in range(0, len(updates), CHUNK):
        chunk_u = updates[start : start + CHUNK]
        if spec.name == "stock":
            for _row, stock, changes, _geom in chunk_u:
                service.change_stock(session, stock, changes, principal=principal)
        else:
            assert spec.feature is not None
            crud.update_many_locked(
                session,
                spec.feature,
                [Change(obj, changes, geom, note=note) for _row, obj, changes, geom in chunk_u],
                principal=principal,
            )
        done += len(chunk_u)
        if progress:
            progress(done, total)
