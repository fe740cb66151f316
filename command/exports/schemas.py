"""The export formats: what a file is called, how it is sent, and the layers' names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Format = Literal["gpkg", "geojson", "csv"]


@dataclass(frozen=True)
class FileFormat:
    name: Format
    suffix: str
    media_type: str
    driver: str  # the GDAL driver pyogrio writes it with


FORMATS: dict[str, FileFormat] = {
    "gpkg": FileFormat("gpkg", ".gpkg", "application/geopackage+sqlite3", "GPKG"),
    "geojson": FileFormat("geojson", ".geojson", "application/geo+json", "GeoJSON"),
    "csv": FileFormat("csv", ".csv", "text/csv", "CSV"),
}
# A file name's suffix -> its format (the CLI's default when --format is not given).
SUFFIXES = {".gpkg": "gpkg", ".geojson": "geojson", ".json": "geojson", ".csv": "csv"}
