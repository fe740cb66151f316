"""Request and response shapes of the routing API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from core.validate import EdgeId
from gis.features import Strict

LonLat = tuple[float, float]


class ClosuresIn(Strict):
    """Roads not to use for this request only."""

    edge_ids: list[EdgeId] = Field(default_factory=list, max_length=10_000)
    polygons: list[dict[str, Any]] = Field(
        default_factory=list, max_length=100, description="GeoJSON Polygon or MultiPolygon"
    )


class RouteRequest(Strict):
    from_: LonLat = Field(alias="from", description="[lon, lat]")
    to: LonLat = Field(description="[lon, lat]")
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    closures: ClosuresIn = Field(default_factory=ClosuresIn)


class IsochroneRequest(Strict):
    at: LonLat = Field(description="[lon, lat]")
    seconds: float = Field(gt=0, le=7200)
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    closures: ClosuresIn = Field(default_factory=ClosuresIn)


class MatrixRequest(Strict):
    sources: list[LonLat] = Field(min_length=1, max_length=2000)
    targets: list[LonLat] = Field(min_length=1, max_length=2000)
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    closures: ClosuresIn = Field(default_factory=ClosuresIn)
    limit_s: float | None = Field(default=None, gt=0, le=86_400)

    @model_validator(mode="after")
    def _size(self) -> MatrixRequest:
        if len(self.sources) * len(self.targets) > 250_000:
            raise ValueError("at most 250,000 source x target pairs per request")
        return self


class SnapRead(BaseModel):
    lon: float
    lat: float
    distance_m: float
    edge_ids: list[int]


class MatrixRead(BaseModel):
    durations_s: list[list[float | None]] = Field(description="null where unreachable")
    distances_m: list[list[float | None]]
    sources: list[SnapRead]
    targets: list[SnapRead]


class RouteProperties(BaseModel):
    reachable: bool
    eta_s: float | None
    length_m: float | None
    edge_ids: list[int]
    origin: SnapRead
    destination: SnapRead


class RouteFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: dict[str, Any] | None
    properties: RouteProperties


class IsochroneProperties(BaseModel):
    seconds: float
    origin: SnapRead


class IsochroneFeature(BaseModel):
    type: Literal["Feature"] = "Feature"
    geometry: dict[str, Any]
    properties: IsochroneProperties
