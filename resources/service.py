"""Queries and changes for stations, units, shelters, warehouses and stock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geoalchemy2.shape import to_shape
from shapely import Geometry
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import crud
from core.changes import SITUATION, record_change
from core.crud import FeatureKind
from core.db import flush
from core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from core.query import Page, paginate
from core.security import Principal
from core.types import utcnow
from resources.models import Shelter, Station, Stock, Unit, Warehouse

STATIONS = FeatureKind(
    Station,
    "station",
    ("name", "kind", "address", "external_id", "osm_id", "attributes", "created_at",
     "updated_at"),
)  # fmt: skip
UNITS = FeatureKind(
    Unit,
    "unit",
    (
        "callsign",
        "name",
        "kind",
        "type",
        "capabilities",
        "crew",
        "home_station_id",
        "status",
        "drill_id",
        "status_changed_at",
        "position_at",
        "external_id",
        "attributes",
        "created_at",
        "updated_at",
    ),
    filters={"station_id": "home_station_id"},
)
SHELTERS = FeatureKind(
    Shelter,
    "shelter",
    (
        "name",
        "capacity",
        "occupancy",
        "accessible",
        "pets_allowed",
        "status",
        "hazards",
        "address",
        "external_id",
        "osm_id",
        "attributes",
        "created_at",
        "updated_at",
    ),
)
WAREHOUSES = FeatureKind(
    Warehouse,
    "warehouse",
    ("name", "address", "external_id", "osm_id", "attributes", "created_at", "updated_at"),
)

# Unit lifecycle. Task changes drive assigned / en_route / on_scene; people drive the rest.
UNIT_TRANSITIONS: dict[str, frozenset[str]] = {
    "available": frozenset({"assigned", "out_of_service"}),
    "assigned": frozenset({"en_route", "on_scene", "available"}),
    "en_route": frozenset({"on_scene", "returning", "available"}),
    "on_scene": frozenset({"returning", "available"}),
    "returning": frozenset({"available", "assigned", "out_of_service"}),
    "out_of_service": frozenset({"available"}),
}
TASK_DRIVEN = frozenset({"assigned", "en_route", "on_scene"})


def unit_topics(unit: Unit) -> tuple[str, ...]:
    """Where a unit's events go: a tabletop drill's stand-in (``drill_id`` set) to that
    drill's topic ``drill:<id>`` only, a real unit to the live ``situation``."""
    return (SITUATION,) if unit.drill_id is None else (f"drill:{unit.drill_id}",)


def in_scope(drill_id: int | None) -> Any:
    """Units of one scope: real units (``None``), or one tabletop drill's stand-ins."""
    return Unit.drill_id.is_(None) if drill_id is None else Unit.drill_id == drill_id


def create_unit(
    session: Session, *, props: Mapping[str, Any], geom: Geometry | None, principal: Principal
) -> Unit:
    """A new unit; without a position it starts at its home station (position_at empty:
    nobody reported where it is)."""
    reported = geom is not None
    station_id = props.get("home_station_id")
    if station_id is not None:
        station = session.get(Station, station_id)
        if station is None:
            raise InvalidInput(f"home station {station_id} does not exist")
        if geom is None:
            geom = to_shape(station.geom)
    props = {**props, "position_at": utcnow() if reported else None}
    unit: Unit = crud.create(session, UNITS, props=props, geom=geom, principal=principal)
    return unit


def set_unit_status(
    session: Session,
    unit: Unit,
    status: str,
    *,
    principal: Principal,
    note: str | None = None,
    by_task: bool = False,
) -> Unit:
    """Move a (locked) unit to ``status`` if the lifecycle allows it; record the change."""
    if status == unit.status:
        return unit
    if status not in UNIT_TRANSITIONS[unit.status]:
        raise InvalidTransition(f"unit {unit.callsign} cannot go from {unit.status} to {status}")
    if status in TASK_DRIVEN and not by_task:
        raise InvalidTransition(f"{status} is set by the unit's task, not directly")
    before = crud.feature(UNITS, unit)
    unit.status = status
    unit.status_changed_at = utcnow()
    crud.record_update(
        session,
        UNITS,
        unit,
        before=before,
        action="unit.status_changed",
        principal=principal,
        note=note,
        topics=unit_topics(unit),
    )
    return unit


def change_unit_status(
    session: Session, unit_id: int, status: str, *, principal: Principal, note: str | None
) -> Unit:
    """A person's status change (out of service, back in service, returning)."""
    unit: Unit = crud.get(session, UNITS, unit_id, for_update=True)
    if unit.status in TASK_DRIVEN and status != unit.status:
        # Leaving assigned / en route / on scene by hand would strand the unit's task.
        raise InvalidTransition(
            f"unit {unit.callsign} is {unit.status} on a task; finish or cancel the task first"
        )
    return set_unit_status(session, unit, status, principal=principal, note=note)


# --- stock --------------------------------------------------------------------------
STOCK_FIELDS = (
    "id",
    "warehouse_id",
    "item",
    "unit_of_measure",
    "quantity",
    "low_water",
    "note",
    "updated_at",
)


def stock_dict(stock: Stock) -> dict[str, Any]:
    return {f: crud.json_value(getattr(stock, f)) for f in STOCK_FIELDS}


def create_stock(session: Session, *, data: Mapping[str, Any], principal: Principal) -> Stock:
    if session.get(Warehouse, data["warehouse_id"]) is None:
        raise InvalidInput(f"warehouse {data['warehouse_id']} does not exist")
    stock = Stock(**data)
    session.add(stock)
    flush(session)
    session.refresh(stock)
    record_change(
        session,
        actor=principal.actor,
        action="stock.created",
        entity="stock",
        entity_id=stock.id,
        before=None,
        after=stock_dict(stock),
    )
    return stock


def update_stock(
    session: Session,
    stock_id: int,
    *,
    quantity: int | None,
    delta: int | None,
    note: str | None,
    principal: Principal,
    low_water: int | None = None,
    set_low_water: bool = False,
) -> Stock:
    """Set or adjust a quantity under a row lock; never below zero. With
    ``set_low_water``, the low-water mark becomes ``low_water`` (None clears it)."""
    stock = session.get(Stock, stock_id, with_for_update=True)
    if stock is None:
        raise NotFound(f"stock {stock_id} not found")
    before = stock_dict(stock)
    new = quantity if quantity is not None else stock.quantity + (delta or 0)
    if new < 0:
        raise InvalidInput(
            f"only {stock.quantity} {stock.unit_of_measure} of {stock.item} in stock"
        )
    changes: dict[str, Any] = {"quantity": new}
    if set_low_water:
        changes["low_water"] = low_water
    if note is not None:
        changes["note"] = note
    return change_stock(session, stock, changes, principal=principal, before=before)


def change_stock(
    session: Session,
    stock: Stock,
    changes: Mapping[str, Any],
    *,
    principal: Principal,
    before: dict[str, Any] | None = None,
) -> Stock:
    """Set ``changes`` on a stock row the caller has locked; record ``stock.updated``
    against ``before`` (default: the row as it is now)."""
    before = before if before is not None else stock_dict(stock)
    for name, value in changes.items():
        setattr(stock, name, value)
    flush(session)
    session.refresh(stock)
    record_change(
        session,
        actor=principal.actor,
        action="stock.updated",
        entity="stock",
        entity_id=stock.id,
        before=before,
        after=stock_dict(stock),
    )
    return stock


def reserve_stock(
    session: Session, warehouse_id: int, item: str, quantity: int, *, principal: Principal
) -> Stock:
    """Take ``quantity`` of ``item`` out of a warehouse's stock for a plan, under a row lock:
    never more than is there (Conflict), and only from a line that exists (NotFound).
    Records ``stock.reserved`` with what was taken and what is left."""
    if quantity < 1:
        raise InvalidInput(f"a reservation takes at least 1 {item}, not {quantity}")
    stock = session.scalars(
        select(Stock)
        .where(Stock.warehouse_id == warehouse_id, Stock.item == item)
        .with_for_update()
        .execution_options(populate_existing=True)  # what is there now, not what was read
    ).one_or_none()
    if stock is None:
        if session.get(Warehouse, warehouse_id) is None:
            raise NotFound(f"warehouse {warehouse_id} not found")
        raise NotFound(f"warehouse {warehouse_id} has no {item} in stock")
    if stock.quantity < quantity:
        raise Conflict(
            f"warehouse {warehouse_id} has {stock.quantity} {stock.unit_of_measure} of {item},"
            f" not {quantity}"
        )
    stock.quantity -= quantity
    flush(session)
    record_change(
        session,
        actor=principal.actor,
        action="stock.reserved",
        entity="stock",
        entity_id=stock.id,
        before=None,
        after={"warehouse_id": warehouse_id, "item": item, "reserved": quantity,
               "left": stock.quantity},
    )  # fmt: skip
    return stock


def list_stock(
    session: Session, *, warehouse_id: int | None, item: str | None, limit: int, offset: int
) -> Page[Stock]:
    stmt = select(Stock).order_by(Stock.id)
    if warehouse_id is not None:
        stmt = stmt.where(Stock.warehouse_id == warehouse_id)
    if item is not None:
        stmt = stmt.where(Stock.item == item)
    return paginate(session, stmt, limit=limit, offset=offset)


# --- shelter space ------------------------------------------------------------------
def hold_shelter_space(
    session: Session, shelter_id: int, people: int, *, principal: Principal
) -> Shelter:
    """Add ``people`` an evacuation plan sends to a shelter to its planned arrivals, under a
    row lock: never past its capacity with those already there and on their way (Conflict).
    Records ``shelter.arrivals_planned`` with how many were added and the new total."""
    if people < 1:
        raise InvalidInput(f"space is held for at least 1 person, not {people}")
    shelter = session.get(Shelter, shelter_id, with_for_update=True, populate_existing=True)
    if shelter is None:
        raise NotFound(f"shelter {shelter_id} not found")
    room = shelter.capacity - shelter.occupancy - shelter.planned_arrivals
    if people > room:
        raise Conflict(f"shelter {shelter_id} has room for {max(room, 0)}, not {people}")
    shelter.planned_arrivals += people
    flush(session)
    record_change(
        session,
        actor=principal.actor,
        action="shelter.arrivals_planned",
        entity="shelter",
        entity_id=shelter_id,
        before=None,
        after={"shelter_id": shelter_id, "added": people,
               "planned_arrivals": shelter.planned_arrivals},
    )  # fmt: skip
    return shelter
