"""GeoJSON Feature schemas for the API: validated in, uniform out (RFC 7946)."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from shapely import Geometry

from gis.geojson import GeometryError, parse_geometry

P = TypeVar("P", bound=BaseModel)


class Strict(BaseModel):
    """Base for request bodies: unknown fields are refused, not ignored; so are NaN and
    infinities (Python's json reads NaN, Infinity and 1e400, which JSON forbids)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


def _array(items: dict[str, Any], min_items: int = 0) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items}


# Each geometry type's coordinates, as gis/geojson.py checks them (RFC 7946): a position
# is [lon, lat] or [lon, lat, altitude]; a line has 2+ positions, a ring 4+.
_POSITION = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 3}
COORDINATES: dict[str, dict[str, Any]] = {
    "Point": _POSITION,
    "MultiPoint": _array(_POSITION),
    "LineString": _array(_POSITION, 2),
    "MultiLineString": _array(_array(_POSITION, 2)),
    "Polygon": _array(_array(_POSITION, 4), 1),
    "MultiPolygon": _array(_array(_array(_POSITION, 4), 1), 1),
}
GEOMETRY_TYPES = tuple(COORDINATES)


def geometry_schema(types: tuple[str, ...], *, nullable: bool) -> dict[str, Any]:
    """The JSON schema of a GeoJSON geometry of one of ``types`` (or null)."""
    variants = [
        {
            "type": "object",
            "title": kind,
            "required": ["type", "coordinates"],
            "properties": {
                "type": {"type": "string", "enum": [kind]},
                "coordinates": COORDINATES[kind],
            },
        }
        for kind in types
    ]
    geometry: dict[str, Any] = variants[0] if len(variants) == 1 else {"oneOf": variants}
    names = " or ".join(types)
    geometry["description"] = f"GeoJSON {names}, [lon, lat] (WGS-84 unless `crs` says)"
    return {"anyOf": [geometry, {"type": "null"}]} if nullable else geometry


def _feature_in_schema(schema: dict[str, Any], cls: type[Any]) -> None:
    # The model says `dict | None` so that a missing shape gets our message; the document
    # says what is accepted: the kind's geometry types, null only where it is optional.
    schema["properties"]["geometry"] = geometry_schema(
        cls.allowed_geometry, nullable=cls.geometry_optional
    )


def _feature_patch_schema(schema: dict[str, Any], cls: type[Any]) -> None:
    schema["properties"]["geometry"] = geometry_schema(cls.allowed_geometry, nullable=True)


def _feature_out_schema(schema: dict[str, Any], cls: type[Any]) -> None:
    # Null only for kinds whose rows may lack a place (units: `geometry_optional`).
    args = getattr(cls, "__pydantic_generic_metadata__", {}).get("args") or (None,)
    optional = bool(getattr(args[0], "geometry_optional", False))
    schema["properties"]["geometry"] = geometry_schema(GEOMETRY_TYPES, nullable=optional)


class FeatureIn(Strict, Generic[P]):
    """A GeoJSON Feature to create; ``crs`` may say the input is GCJ-02 or BD-09."""

    model_config = ConfigDict(json_schema_extra=_feature_in_schema)

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

    model_config = ConfigDict(json_schema_extra=_feature_patch_schema)

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
    model_config = ConfigDict(json_schema_extra=_feature_out_schema)

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
