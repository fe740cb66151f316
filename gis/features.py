"""GeoJSON Feature schemas for the API: validated in, uniform out (RFC 7946)."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from shapely import Geometry

from gis.geojson import GeometryError, parse_geometry

P = TypeVar("P", bound=BaseModel)


class Strict(BaseModel):
    """Base for request bodies: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FeatureIn(Strict, Generic[P]):
    """A GeoJSON Feature to create; ``crs`` may say the input is GCJ-02 or BD-09."""

    allowed_geometry: ClassVar[tuple[str, ...]] = ("Point",)
    geometry_optional: ClassVar[bool] = False

    type: Literal["Feature"]
    geometry: dict[str, Any] | None
    properties: P
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    _shape: Geometry | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_geometry(self) -> FeatureIn[P]:
        if self.geometry is None:
            if not self.geometry_optional:
                raise ValueError("geometry is required")
            return self
        try:
            self._shape = parse_geometry(self.geometry, allowed=self.allowed_geometry, crs=self.crs)
        except GeometryError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @property
    def shape(self) -> Geometry:
        """The validated WGS-84 geometry (only where geometry is required)."""
        assert self._shape is not None
        return self._shape

    @property
    def shape_or_none(self) -> Geometry | None:
        return self._shape


class FeaturePatch(Strict, Generic[P]):
    """A partial update: any of geometry and properties (only the given ones change)."""

    allowed_geometry: ClassVar[tuple[str, ...]] = ("Point",)

    type: Literal["Feature"] = "Feature"
    geometry: dict[str, Any] | None = None
    properties: P | None = None
    crs: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    _shape: Geometry | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_geometry(self) -> FeaturePatch[P]:
        if self.geometry is not None:
            try:
                self._shape = parse_geometry(
                    self.geometry, allowed=self.allowed_geometry, crs=self.crs
                )
            except GeometryError as exc:
                raise ValueError(str(exc)) from exc
        return self

    @property
    def shape(self) -> Geometry | None:
        return self._shape

    def changes(self) -> dict[str, Any]:
        """Only the properties the client sent (explicit nulls included)."""
        return self.properties.model_dump(exclude_unset=True) if self.properties else {}


class FeatureOut(BaseModel, Generic[P]):
    type: Literal["Feature"] = "Feature"
    id: int
    geometry: dict[str, Any] | None
    properties: P


class Link(BaseModel):
    rel: str
    href: str


class FeatureCollectionOut(BaseModel, Generic[P]):
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[FeatureOut[P]]
    numberMatched: int = Field(description="all features matching the filters")
    numberReturned: int
    links: list[Link] = []
