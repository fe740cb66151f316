"""One export layer's rows, column by column, with each column's type: what the service
builds and the file writers write (no database, no geopandas here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import shapely
from shapely import Geometry
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, Numeric
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

# How a column is typed in the files: int -> Integer (32-bit), int64 -> Integer64 (ids,
# bigint in the database), float -> Real, bool -> Boolean, datetime -> DateTime (UTC, to
# the millisecond), text -> String, json -> String holding JSON (arrays and objects, which
# GIS formats have no type for).
Kind = Literal["int", "int64", "float", "bool", "datetime", "text", "json"]
GeometryType = Literal["Point", "LineString", "Polygon", "MultiPolygon"]


@dataclass(frozen=True)
class Table:
    """A layer's rows: ``values[name]`` holds column ``name``'s value for every row, in
    the order of ``geometry`` (WGS-84 shapes; None where a row has none)."""

    layer: str
    geometry_type: GeometryType
    kinds: tuple[tuple[str, Kind], ...]
    values: Mapping[str, Sequence[Any]]
    geometry: Sequence[Geometry | None]

    def __len__(self) -> int:
        return len(self.geometry)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.kinds]


def table(
    layer: str,
    geometry_type: GeometryType,
    kinds: Iterable[tuple[str, Kind]],
    rows: Sequence[Mapping[str, Any]],
    geometry: Sequence[Geometry | None],
) -> Table:
    """A :class:`Table` from rows (dicts holding at least every column named in ``kinds``)."""
    kinds = tuple(kinds)
    values = {name: [row[name] for row in rows] for name, _ in kinds}
    return Table(layer, geometry_type, kinds, values, list(geometry))


def wkt(geometry: Geometry) -> str:
    """WKT whose numbers read back bit for bit (Python's shortest round-trip decimals):
    GEOS writes at most 16 significant digits, so a coordinate could change its last bit."""
    if geometry.is_empty or geometry.has_z:
        return str(shapely.to_wkt(geometry, rounding_precision=-1))
    kind = geometry.geom_type
    if kind == "Point":
        return f"POINT {_points(geometry.coords)}"
    if kind == "LineString":
        return f"LINESTRING {_points(geometry.coords)}"
    if kind == "Polygon":
        return f"POLYGON {_rings(geometry)}"
    if kind == "MultiPolygon":
        return f"MULTIPOLYGON ({', '.join(_rings(part) for part in geometry.geoms)})"
    return str(shapely.to_wkt(geometry, rounding_precision=-1))


def _points(coords: Iterable[Sequence[float]]) -> str:
    return "(" + ", ".join(f"{float(x)!r} {float(y)!r}" for x, y in coords) + ")"


def _rings(polygon: Any) -> str:
    rings = [polygon.exterior, *polygon.interiors]
    return "(" + ", ".join(_points(ring.coords) for ring in rings) + ")"


def kind_of(model: Any, name: str) -> Kind:
    """The file type of a mapped column, from its SQL type."""
    sql_type = model.__table__.c[name].type
    if isinstance(sql_type, Boolean):
        return "bool"
    if isinstance(sql_type, BigInteger):
        return "int64"
    if isinstance(sql_type, Integer):
        return "int"
    if isinstance(sql_type, Float | Numeric):
        return "float"
    if isinstance(sql_type, DateTime):
        return "datetime"
    if isinstance(sql_type, ARRAY | JSONB | JSON):
        return "json"
    return "text"


def kinds_of(model: Any, names: Iterable[str]) -> list[tuple[str, Kind]]:
    return [(name, kind_of(model, name)) for name in names]
