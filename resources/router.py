"""HTTP for stations, units, shelters, warehouses and stock (GeoJSON in and out)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from core import crud
from core.crud import FeatureKind
from core.errors import InvalidInput
from core.query import page_body
from core.security import require, require_unit
from core.web import (
    BBoxDep,
    GeoJSONResponse,
    IdFilter,
    PageDep,
    PathId,
    PrincipalDep,
    SessionDep,
    TextFilter,
    conflict,
)
from gis.features import FeatureCollectionOut, FeatureIn, FeatureOut, FeaturePatch
from resources import service
from resources.models import Station, Unit
from resources.schemas import (
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


def _page(
    session: Any, feature_kind: FeatureKind, bbox: Any, page: Any, /, **filters: Any
) -> GeoJSONResponse:
    result = crud.list_page(
        session, feature_kind, bbox=bbox, filters=filters, limit=page.limit, offset=page.offset
    )
    return GeoJSONResponse(crud.collection(feature_kind, result))


# --- stations -----------------------------------------------------------------------
@router.get(
    "/stations",
    response_model=FeatureCollectionOut[StationRead],
    response_class=GeoJSONResponse,
    tags=["stations"],
)
def list_stations(
    session: SessionDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    page: PageDep,
    kind: Annotated[TextFilter, Query(max_length=20)] = None,
) -> GeoJSONResponse:
    require(principal, "read")
    return _page(session, service.STATIONS, bbox, page, kind=kind)


# --- units --------------------------------------------------------------------------
@router.get(
    "/units",
    response_model=FeatureCollectionOut[UnitRead],
    response_class=GeoJSONResponse,
    tags=["units"],
)
def list_units(
    session: SessionDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    page: PageDep,
    status: Annotated[TextFilter, Query(max_length=20)] = None,
    type: Annotated[TextFilter, Query(max_length=40)] = None,
    kind: Annotated[TextFilter, Query(max_length=20)] = None,
    station_id: IdFilter = None,
    capability: Annotated[TextFilter, Query(max_length=40)] = None,
    drill: Annotated[
        int | None,
        Query(ge=1, le=2**63 - 1, description="a tabletop drill's stand-in units (default: real)"),
    ] = None,
) -> GeoJSONResponse:
    require(principal, "read")
    extra = [service.in_scope(drill)]  # stand-ins only with ?drill=ID, never among real units
    if capability is not None:
        extra.append(Unit.capabilities.contains([capability]))
    result = crud.list_page(
        session,
        service.UNITS,
        bbox=bbox,
        filters={"status": status, "type": type, "kind": kind, "station_id": station_id},
        limit=page.limit,
        offset=page.offset,
        extra=extra,
    )
    return GeoJSONResponse(crud.collection(service.UNITS, result))


@router.post(
    "/units",
    status_code=status.HTTP_201_CREATED,
    response_model=FeatureOut[UnitRead],
    response_class=GeoJSONResponse,
    tags=["units"],
    responses=conflict("a unit with this callsign exists"),
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


@router.get(
    "/units/{unit_id}",
    response_model=FeatureOut[UnitRead],
    response_class=GeoJSONResponse,
    tags=["units"],
)
def get_unit(unit_id: PathId, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "read")
    return crud.feature(service.UNITS, crud.get(session, service.UNITS, unit_id))


@router.patch(
    "/units/{unit_id}",
    response_model=FeatureOut[UnitRead],
    response_class=GeoJSONResponse,
    tags=["units"],
    responses=conflict("a unit with this callsign exists"),
)
def patch_unit(
    unit_id: PathId, body: UnitPatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "resource.write")
    changes = body.changes()
    station_id = changes.get("home_station_id")
    if station_id is not None and session.get(Station, station_id) is None:
        # As on create: a bad reference in the body is invalid input, not a missing unit.
        raise InvalidInput(f"home station {station_id} does not exist")
    # A drill's stand-in is published on its drill's topic, a real unit on the live map.
    topics = service.unit_topics(crud.get(session, service.UNITS, unit_id))
    unit = crud.update(
        session, service.UNITS, unit_id, changes=changes, geom=body.shape, principal=principal,
        topics=topics,
    )  # fmt: skip
    session.commit()
    return crud.feature(service.UNITS, unit)


@router.post(
    "/units/{unit_id}/status",
    response_model=FeatureOut[UnitRead],
    response_class=GeoJSONResponse,
    tags=["units"],
    responses=conflict("the unit cannot go to this status (or only its task sets it)"),
)
def post_unit_status(
    unit_id: PathId, body: UnitStatusChange, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "unit.status")
    require_unit(principal, unit_id)
    unit = service.change_unit_status(
        session, unit_id, body.status, principal=principal, note=body.note
    )
    session.commit()
    return crud.feature(service.UNITS, unit)


# --- shelters -----------------------------------------------------------------------
@router.get(
    "/shelters",
    response_model=FeatureCollectionOut[ShelterRead],
    response_class=GeoJSONResponse,
    tags=["shelters"],
)
def list_shelters(
    session: SessionDep,
    principal: PrincipalDep,
    bbox: BBoxDep,
    page: PageDep,
    status: Annotated[TextFilter, Query(max_length=20)] = None,
    accessible: bool | None = None,
    pets_allowed: bool | None = None,
) -> GeoJSONResponse:
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


# --- warehouses and stock -----------------------------------------------------------
@router.get(
    "/warehouses",
    response_model=FeatureCollectionOut[WarehouseRead],
    response_class=GeoJSONResponse,
    tags=["warehouses"],
)
def list_warehouses(
    session: SessionDep, principal: PrincipalDep, bbox: BBoxDep, page: PageDep
) -> GeoJSONResponse:
    require(principal, "read")
    return _page(session, service.WAREHOUSES, bbox, page)


@router.get("/stock", response_model=StockPage, tags=["stock"])
def list_stock(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    warehouse_id: IdFilter = None,
    item: Annotated[TextFilter, Query(max_length=80)] = None,
) -> dict[str, Any]:
    require(principal, "read")
    result = service.list_stock(
        session, warehouse_id=warehouse_id, item=item, limit=page.limit, offset=page.offset
    )
    return page_body(result, service.stock_dict)


@router.post(
    "/stock",
    status_code=status.HTTP_201_CREATED,
    response_model=StockRead,
    tags=["stock"],
    responses=conflict("this warehouse already stocks this item"),
)
def create_stock(body: StockCreate, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    require(principal, "operations.write")
    stock = service.create_stock(session, data=body.model_dump(), principal=principal)
    session.commit()
    return service.stock_dict(stock)


@router.patch("/stock/{stock_id}", response_model=StockRead, tags=["stock"])
def patch_stock(
    stock_id: PathId, body: StockPatch, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    require(principal, "operations.write")
    stock = service.update_stock(
        session,
        stock_id,
        quantity=body.quantity,
        delta=body.delta,
        note=body.note,
        principal=principal,
        low_water=body.low_water,
        set_low_water="low_water" in body.model_fields_set,
    )
    session.commit()
    return service.stock_dict(stock)


def feature_routes(
    path: str,
    kind: FeatureKind,
    *,
    create_schema: type[FeatureIn[Any]],
    patch_schema: type[FeaturePatch[Any]],
    read_schema: type[BaseModel],
    create_action: str,
    patch_action: str,
) -> None:
    """POST {path}, GET and PATCH {path}/{id} for a table exposed as GeoJSON Features."""
    tag = path.strip("/")
    out = FeatureOut[read_schema]  # type: ignore[valid-type]

    def create(body: FeatureIn[Any], session: SessionDep, principal: PrincipalDep) -> Any:
        require(principal, create_action)
        obj = crud.create(
            session, kind, props=body.properties.model_dump(), geom=body.shape, principal=principal
        )
        session.commit()
        return crud.feature(kind, obj)

    def read(obj_id: PathId, session: SessionDep, principal: PrincipalDep) -> Any:
        require(principal, "read")
        return crud.feature(kind, crud.get(session, kind, obj_id))

    def patch(
        obj_id: PathId, body: FeaturePatch[Any], session: SessionDep, principal: PrincipalDep
    ) -> Any:
        require(principal, patch_action)
        obj = crud.update(
            session, kind, obj_id, changes=body.changes(), geom=body.shape, principal=principal
        )
        session.commit()
        return crud.feature(kind, obj)

    # FastAPI reads the body model from the signature: give it the concrete schemas.
    create.__annotations__["body"] = create_schema
    patch.__annotations__["body"] = patch_schema
    name = kind.entity
    router.add_api_route(
        path,
        create,
        methods=["POST"],
        status_code=status.HTTP_201_CREATED,
        response_model=out,
        response_class=GeoJSONResponse,
        responses=conflict("`external_id` is taken by another row"),
        tags=[tag],
        name=f"create_{name}",
        summary=f"Create {name}",
    )
    router.add_api_route(
        path + "/{obj_id}",
        read,
        methods=["GET"],
        response_model=out,
        response_class=GeoJSONResponse,
        tags=[tag],
        name=f"get_{name}",
        summary=f"Get {name}",
    )
    router.add_api_route(
        path + "/{obj_id}",
        patch,
        methods=["PATCH"],
        response_model=out,
        response_class=GeoJSONResponse,
        responses=conflict("`external_id` is taken by another row"),
        tags=[tag],
        name=f"patch_{name}",
        summary=f"Change {name} (only the properties sent)",
    )


feature_routes(
    "/stations",
    service.STATIONS,
    create_schema=StationCreate,
    patch_schema=StationPatch,
    read_schema=StationRead,
    create_action="resource.write",
    patch_action="resource.write",
)
# Occupancy changes all day during an evacuation: dispatchers keep shelters current.
feature_routes(
    "/shelters",
    service.SHELTERS,
    create_schema=ShelterCreate,
    patch_schema=ShelterPatch,
    read_schema=ShelterRead,
    create_action="resource.write",
    patch_action="operations.write",
)
feature_routes(
    "/warehouses",
    service.WAREHOUSES,
    create_schema=WarehouseCreate,
    patch_schema=WarehousePatch,
    read_schema=WarehouseRead,
    create_action="resource.write",
    patch_action="resource.write",
)
