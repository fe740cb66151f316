"""HTTP for stations, units, shelters, warehouses and stock (GeoJSON in and out)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from core import crud
from core.crud import FeatureKind
from core.security import require, require_unit
from core.web import BBoxDep, PageDep, PrincipalDep, SessionDep
from gis.features import FeatureCollectionOut, FeatureOut
from resources import service
from resources.models import Unit
from resources.schemas import (
    PositionReport,
    ShelterCreate,
    ShelterPatch,
    ShelterRead,
    StationCreate,
    StationPatch,
    StationRead,
    StockCreate,
    StockPage,
    StockPatch,
    StockRead,
    UnitCreate,
    UnitPatch,
    UnitRead,
    UnitStatusChange,
    WarehouseCreate,
    WarehousePatch,
    WarehouseRead,
)

router = APIRouter(prefix="/api")
Id = Annotated[int, "id"]


def _page(
    session: Any, feature_kind: FeatureKind, bbox: Any, page: Any, /, **filters: Any
) -> dict[str, Any]:
    result = crud.list_page(
        session, feature_kind, bbox=bbox, filters=filters, limit=page.limit, offset=page.offset
    )
    return crud.collection(feature_kind, result)


# --- stations -----------------------------------------------------------------------
@router.get("/stations", response_model=FeatureCollectionOut[StationRead], tags=["stations"])
def list_stations(
    session: SessionDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    page: PageDep,
    kind: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    require(principal, "read")
    return _page(session, service.STATIONS, bbox, page, kind=kind)


@router.post(
    "/stations",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureOut[StationRead],
    tags=["stations"],
)
def create_station(
    body: StationCreate, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "resource.write")
    obj = crud.create(
        session,
        service.STATIONS,
        props=body.properties.model_dump(),
        geom=body.shape,
        principal=principal,
    )
    session.commit()
    return crud.feature(service.STATIONS, obj)


@router.get("/stations/{station_id}", response_model=FeatureOut[StationRead], tags=["stations"])
def get_station(station_id: int, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "read")
    return crud.feature(service.STATIONS, crud.get(session, service.STATIONS, station_id))


@router.patch("/stations/{station_id}", response_model=FeatureOut[StationRead], tags=["stations"])
def patch_station(
    station_id: int, body: StationPatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "resource.write")
    obj = crud.update(
        session,
        service.STATIONS,
        station_id,
        changes=body.changes(),
        geom=body.shape,
        principal=principal,
    )
    session.commit()
    return crud.feature(service.STATIONS, obj)


# --- units --------------------------------------------------------------------------
@router.get("/units", response_model=FeatureCollectionOut[UnitRead], tags=["units"])
def list_units(
    session: SessionDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    page: PageDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
    type: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    station_id: int | None = None,
    capability: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    require(principal, "read")
    extra = [] if capability is None else [Unit.capabilities.contains([capability])]
    result = crud.list_page(
        session,
        service.UNITS,
        bbox=bbox,
        filters={"status": status, "type": type, "kind": kind, "station_id": station_id},
        limit=page.limit,
        offset=page.offset,
        extra=extra,
    )
    return crud.collection(service.UNITS, result)


@router.post(
    "/units",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureOut[UnitRead],
    tags=["units"],
)
def create_unit(body: UnitCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "resource.write")
    unit = service.create_unit(
        session,
        props=body.properties.model_dump(),
        geom=body.shape_or_none,
        principal=principal,
    )
    session.commit()
    return crud.feature(service.UNITS, unit)


@router.get("/units/{unit_id}", response_model=FeatureOut[UnitRead], tags=["units"])
def get_unit(unit_id: int, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "read")
    return crud.feature(service.UNITS, crud.get(session, service.UNITS, unit_id))


@router.patch("/units/{unit_id}", response_model=FeatureOut[UnitRead], tags=["units"])
def patch_unit(
    unit_id: int, body: UnitPatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "resource.write")
    changes = body.changes()
    if changes.get("home_station_id") is not None:
        crud.get(session, service.STATIONS, changes["home_station_id"])
    unit = crud.update(
        session, service.UNITS, unit_id, changes=changes, geom=body.shape, principal=principal
    )
    session.commit()
    return crud.feature(service.UNITS, unit)


@router.post("/units/{unit_id}/status", response_model=FeatureOut[UnitRead], tags=["units"])
def post_unit_status(
    unit_id: int, body: UnitStatusChange, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "unit.status")
    require_unit(principal, unit_id)
    unit = service.change_unit_status(
        session, unit_id, body.status, principal=principal, note=body.note
    )
    session.commit()
    return crud.feature(service.UNITS, unit)


@router.post("/units/{unit_id}/position", status_code=status.HTTP_202_ACCEPTED, tags=["units"])
def post_unit_position(
    unit_id: int, body: PositionReport, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "unit.position")
    require_unit(principal, unit_id)
    fix = service.report_position(session, unit_id, body, principal=principal)
    session.commit()
    return {"unit_id": unit_id, "position_id": fix.id, "recorded_at": fix.recorded_at.isoformat()}


# --- shelters -----------------------------------------------------------------------
@router.get("/shelters", response_model=FeatureCollectionOut[ShelterRead], tags=["shelters"])
def list_shelters(
    session: SessionDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    page: PageDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
    accessible: bool | None = None,
    pets_allowed: bool | None = None,
) -> dict[str, Any]:
    require(principal, "read")
    return _page(
        session,
        service.SHELTERS,
        bbox,
        page,
        status=status,
        accessible=accessible,
        pets_allowed=pets_allowed,
    )


@router.post(
    "/shelters",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureOut[ShelterRead],
    tags=["shelters"],
)
def create_shelter(
    body: ShelterCreate, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "resource.write")
    obj = crud.create(
        session,
        service.SHELTERS,
        props=body.properties.model_dump(),
        geom=body.shape,
        principal=principal,
    )
    session.commit()
    return crud.feature(service.SHELTERS, obj)


@router.get("/shelters/{shelter_id}", response_model=FeatureOut[ShelterRead], tags=["shelters"])
def get_shelter(shelter_id: int, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "read")
    return crud.feature(service.SHELTERS, crud.get(session, service.SHELTERS, shelter_id))


@router.patch("/shelters/{shelter_id}", response_model=FeatureOut[ShelterRead], tags=["shelters"])
def patch_shelter(
    shelter_id: int, body: ShelterPatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    # Occupancy changes all day during an evacuation: dispatchers keep it current.
    require(principal, "operations.write")
    obj = crud.update(
        session,
        service.SHELTERS,
        shelter_id,
        changes=body.changes(),
        geom=body.shape,
        principal=principal,
    )
    session.commit()
    return crud.feature(service.SHELTERS, obj)


# --- warehouses and stock -----------------------------------------------------------
@router.get("/warehouses", response_model=FeatureCollectionOut[WarehouseRead], tags=["warehouses"])
def list_warehouses(
    session: SessionDep, principal: PrincipalDep, bbox: BBoxDep, page: PageDep
) -> dict[str, Any]:
    require(principal, "read")
    return _page(session, service.WAREHOUSES, bbox, page)


@router.post(
    "/warehouses",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureOut[WarehouseRead],
    tags=["warehouses"],
)
def create_warehouse(
    body: WarehouseCreate, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "resource.write")
    obj = crud.create(
        session,
        service.WAREHOUSES,
        props=body.properties.model_dump(),
        geom=body.shape,
        principal=principal,
    )
    session.commit()
    return crud.feature(service.WAREHOUSES, obj)


@router.get(
    "/warehouses/{warehouse_id}", response_model=FeatureOut[WarehouseRead], tags=["warehouses"]
)
def get_warehouse(
    warehouse_id: int, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "read")
    return crud.feature(service.WAREHOUSES, crud.get(session, service.WAREHOUSES, warehouse_id))


@router.patch(
    "/warehouses/{warehouse_id}", response_model=FeatureOut[WarehouseRead], tags=["warehouses"]
)
def patch_warehouse(
    warehouse_id: int, body: WarehousePatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "resource.write")
    obj = crud.update(
        session,
        service.WAREHOUSES,
        warehouse_id,
        changes=body.changes(),
        geom=body.shape,
        principal=principal,
    )
    session.commit()
    return crud.feature(service.WAREHOUSES, obj)


@router.get("/stock", response_model=StockPage, tags=["stock"])
def list_stock(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    warehouse_id: int | None = None,
    item: Annotated[str | None, Query(max_length=80)] = None,
) -> dict[str, Any]:
    require(principal, "read")
    result = service.list_stock(
        session, warehouse_id=warehouse_id, item=item, limit=page.limit, offset=page.offset
    )
    items = [service.stock_dict(s) for s in result.items]
    return {"items": items, "numberMatched": result.total, "numberReturned": len(items)}


@router.post(
    "/stock", status_code=status.HTTP_201_CREATED, response_model=StockRead, tags=["stock"]
)
def create_stock(body: StockCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "operations.write")
    stock = service.create_stock(session, data=body.model_dump(), principal=principal)
    session.commit()
    return service.stock_dict(stock)


@router.patch("/stock/{stock_id}", response_model=StockRead, tags=["stock"])
def patch_stock(
    stock_id: int, body: StockPatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "operations.write")
    stock = service.update_stock(
        session,
        stock_id,
        quantity=body.quantity,
        delta=body.delta,
        note=body.note,
        principal=principal,
    )
    session.commit()
    return service.stock_dict(stock)
