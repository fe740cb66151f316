"""Request and response shapes for stations, units, shelters, warehouses and stock."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from core.config import get_settings
from core.validate import Id, Line, MultiLine, check_recent
from gis.features import FeatureIn, FeaturePatch, Strict
from resources.models import SHELTER_HAZARDS, STATION_KINDS, UNIT_KINDS, UNIT_STATUSES

Name = Annotated[Line, Field(min_length=1, max_length=200)]
Address = Annotated[Line, Field(max_length=300)]
Note = Annotated[MultiLine, Field(max_length=1000)]
Code = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.:/-]+$")]
Word = Annotated[str, Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
StationKind = Literal[STATION_KINDS]  # type: ignore[valid-type]
UnitKind = Literal[UNIT_KINDS]  # type: ignore[valid-type]
UnitStatus = Literal[UNIT_STATUSES]  # type: ignore[valid-type]
ShelterHazard = Literal[SHELTER_HAZARDS]  # type: ignore[valid-type]
Hazards = Annotated[list[ShelterHazard], Field(max_length=len(SHELTER_HAZARDS))]
Attributes = Annotated[
    dict[str, object] | None,
    Field(description="an imported file's columns that no field took (emergency import)"),
]


# --- stations -----------------------------------------------------------------------
class StationProps(Strict):
    name: Name
    kind: StationKind
    address: Address | None = None
    external_id: Code | None = None
    osm_id: Line | None = Field(default=None, max_length=40)


class StationPatchProps(Strict):
    name: Name | None = None
    kind: StationKind | None = None
    address: Address | None = None


class StationCreate(FeatureIn[StationProps]):
    pass


class StationPatch(FeaturePatch[StationPatchProps]):
    pass


class StationRead(BaseModel):
    name: str
    kind: str
    address: str | None
    external_id: str | None
    osm_id: str | None
    attributes: Attributes = None
    created_at: datetime
    updated_at: datetime


# --- units --------------------------------------------------------------------------
class UnitProps(Strict):
    callsign: Code
    name: Name
    kind: UnitKind
    type: Word
    capabilities: list[Word] = Field(default_factory=list, max_length=30)
    crew: int = Field(default=0, ge=0, le=500)
    home_station_id: Id | None = None
    status: Literal["available", "out_of_service"] = "available"
    external_id: Code | None = None


class UnitPatchProps(Strict):
    name: Name | None = None
    type: Word | None = None
    capabilities: list[Word] | None = Field(default=None, max_length=30)
    crew: int | None = Field(default=None, ge=0, le=500)
    home_station_id: Id | None = None


class UnitCreate(FeatureIn[UnitProps]):
    """A unit; ``geometry`` may be null to place it at its home station."""

    geometry_optional = True


class UnitPatch(FeaturePatch[UnitPatchProps]):
    pass


class UnitRead(BaseModel):
    # A unit's Feature may have null geometry (no known place yet): OpenAPI says so.
    geometry_optional: ClassVar[bool] = True

    callsign: str
    name: str
    kind: str
    type: str
    capabilities: list[str]
    crew: int
    home_station_id: int | None
    status: str
    drill_id: int | None = Field(default=None, description="a tabletop drill's stand-in: its drill")
    status_changed_at: datetime
    position_at: datetime | None
    external_id: str | None = None
    attributes: Attributes = None
    created_at: datetime
    updated_at: datetime


class UnitStatusChange(Strict):
    status: UnitStatus
    note: Note | None = None


def _recent(value: datetime) -> datetime:
    # The request carries no app; the window is the process's settings (the environment).
    settings = get_settings()
    return check_recent(
        value,
        # Not older than the track keeps either.
        max_age_s=min(settings.position_max_age_s, settings.track_retention_days * 86400),
        max_future_s=settings.position_max_future_s,
    )


RecordedAt = Annotated[datetime, AfterValidator(_recent)]


class PositionReport(Strict):
    """A position fix from a unit's device (``crs`` for Chinese map apps)."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    recorded_at: RecordedAt | None = Field(
        default=None,
        description="when the fix was taken, with its UTC offset; at most "
        "EMERGENCY_POSITION_MAX_AGE_S old and EMERGENCY_POSITION_MAX_FUTURE_S ahead "
        "(default: now)",
    )
    speed_mps: float | None = Field(default=None, ge=0, le=200)
    heading_deg: float | None = Field(default=None, ge=0, lt=360)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)


# --- shelters -----------------------------------------------------------------------
class ShelterProps(Strict):
    name: Name
    capacity: int = Field(ge=0, le=1_000_000)
    occupancy: int = Field(default=0, ge=0, le=1_000_000)
    accessible: bool = False
    pets_allowed: bool = False
    status: Literal["open", "closed"] = "open"
    hazards: Hazards = Field(default_factory=list)
    address: Address | None = None
    external_id: Code | None = None
    osm_id: Line | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _fits(self) -> ShelterProps:
        if self.occupancy > self.capacity:
            raise ValueError("occupancy must not exceed capacity")
        return self


class ShelterPatchProps(Strict):
    name: Name | None = None
    capacity: int | None = Field(default=None, ge=0, le=1_000_000)
    occupancy: int | None = Field(default=None, ge=0, le=1_000_000)
    accessible: bool | None = None
    pets_allowed: bool | None = None
    status: Literal["open", "closed"] | None = None
    hazards: Hazards | None = None
    address: Address | None = None


class ShelterCreate(FeatureIn[ShelterProps]):
    pass


class ShelterPatch(FeaturePatch[ShelterPatchProps]):
    pass


class ShelterRead(BaseModel):
    name: str
    capacity: int
    occupancy: int
    accessible: bool
    pets_allowed: bool
    status: str
    hazards: list[str] = Field(default_factory=list)
    address: str | None
    external_id: str | None
    osm_id: str | None
    attributes: Attributes = None
    created_at: datetime
    updated_at: datetime


# --- warehouses and stock -----------------------------------------------------------
class WarehouseProps(Strict):
    name: Name
    address: Address | None = None
    external_id: Code | None = None
    osm_id: Line | None = Field(default=None, max_length=40)


class WarehousePatchProps(Strict):
    name: Name | None = None
    address: Address | None = None


class WarehouseCreate(FeatureIn[WarehouseProps]):
    pass


class WarehousePatch(FeaturePatch[WarehousePatchProps]):
    pass


class WarehouseRead(BaseModel):
    name: str
    address: str | None
    external_id: str | None
    osm_id: str | None
    attributes: Attributes = None
    created_at: datetime
    updated_at: datetime


class StockCreate(Strict):
    warehouse_id: Id
    item: Word
    unit_of_measure: Line = Field(default="piece", min_length=1, max_length=20)
    quantity: int = Field(ge=0, le=10**12)
    # Below this quantity the item is listed by GET /api/kpis (null: never).
    low_water: int | None = Field(default=None, ge=0, le=10**12)
    note: Note | None = None


class StockPatch(Strict):
    """Set ``quantity``, or move it by ``delta`` (never below zero); not both.
    ``low_water`` sets the low-water mark (null clears it; absent leaves it)."""

    quantity: int | None = Field(default=None, ge=0, le=10**12)
    delta: int | None = Field(default=None, ge=-(10**12), le=10**12)
    low_water: int | None = Field(default=None, ge=0, le=10**12)
    note: Note | None = None

    @model_validator(mode="after")
    def _one(self) -> StockPatch:
        if self.quantity is not None and self.delta is not None:
            raise ValueError("give quantity or delta, not both")
        return self


class StockRead(BaseModel):
    id: int
    warehouse_id: int
    item: str
    unit_of_measure: str
    quantity: int
    low_water: int | None = None
    note: str | None
    updated_at: datetime


class StockPage(BaseModel):
    items: list[StockRead]
    numberMatched: int
    numberReturned: int
