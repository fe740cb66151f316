"""A :class:`~command.exports.table.Table` written as a GIS file with geopandas (pyogrio).

GeoPackage and GeoJSON keep each column's type (Integer64, Real, Boolean, DateTime in UTC,
String) and the CRS, EPSG:4326, so QGIS opens them as they are. Times are cut to the
millisecond first: that is what a GeoPackage (and GDAL's GeoJSON) holds, so every format
carries the same instant. CSV has no types: every value is written as text that reads back
exactly (shortest round-trip floats, ``true``/``false``, ISO 8601 times in UTC), with
``lon``/``lat`` for point layers and ``wkt`` for the others, first, after a header.

geopandas is imported when a file is written, not when the app starts.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from command.exports.schemas import FORMATS
from command.exports.table import Kind, Table, wkt

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

CRS = "EPSG:4326"


def file_name(layer: str, until: datetime, fmt: str) -> str:
    """``incidents-20261206T1200Z.gpkg``: the layer and the window's end, in UTC."""
    return f"{layer}-{until.astimezone(UTC):%Y%m%dT%H%M}Z{FORMATS[fmt].suffix}"


def write(table: Table, path: Path, fmt: str) -> Path:
    """Write ``table`` to ``path`` (which must not exist) in format ``fmt``."""
    import pyogrio

    spec = FORMATS[fmt]
    if fmt == "csv":
        # Every value text, quoted only where CSV needs it (numbers stay unquoted); a UTF-8
        # byte-order mark, so Excel opens Chinese text right with a double-click.
        options = {"STRING_QUOTING": "IF_NEEDED", "WRITE_BOM": "YES"}
        pyogrio.write_dataframe(csv_frame(table), path, driver="CSV", layer_options=options)
        return path
    frame(table).to_file(
        path,
        driver=spec.driver,
        engine="pyogrio",
        layer=table.layer,
        # Declared, not guessed: an empty layer keeps its type, and Polygon zones join
        # MultiPolygon ones in one MultiPolygon layer (QGIS wants one type per layer).
        geometry_type=table.geometry_type,
        promote_to_multi=table.geometry_type.startswith("Multi"),
        # GDAL would write a text value that looks like a JSON array or object ("[drill]
        # ..." titles too) as JSON: text stays text, JSON columns are JSON text.
        **({"layer_options": {"AUTODETECT_JSON_STRINGS": "NO"}} if fmt == "geojson" else {}),
    )
    return path


def frame(table: Table) -> gpd.GeoDataFrame:
    """The table as a typed GeoDataFrame in EPSG:4326."""
    import geopandas as gpd
    import pandas as pd

    columns = {name: _series(table.values[name], kind) for name, kind in table.kinds}
    geometry = gpd.GeoSeries(list(table.geometry), crs=CRS)
    return gpd.GeoDataFrame(pd.DataFrame(columns, index=range(len(table))), geometry=geometry)


def _series(values: Any, kind: Kind) -> pd.Series:
    import numpy as np
    import pandas as pd

    if kind in ("int", "int64"):
        return pd.Series(pd.array(list(values), dtype="Int32" if kind == "int" else "Int64"))
    if kind == "float":
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    if kind == "bool":
        return pd.Series(pd.array(list(values), dtype="boolean"))
    if kind == "datetime":
        times = pd.to_datetime(pd.Series(list(values), dtype=object), utc=True, format="ISO8601")
        return times.dt.floor("ms").astype("datetime64[ms, UTC]")
    if kind == "json":
        return pd.Series([None if v is None else _json(v) for v in values], dtype=object)
    return pd.Series([None if v is None else str(v) for v in values], dtype=object)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def csv_frame(table: Table) -> pd.DataFrame:
    """The table as text columns: ``lon``, ``lat`` (point layers) or ``wkt`` first."""
    import pandas as pd

    typed = frame(table)
    columns: dict[str, Any] = {}
    if table.geometry_type == "Point":
        columns["lon"] = [None if g is None else _float(g.x) for g in table.geometry]
        columns["lat"] = [None if g is None else _float(g.y) for g in table.geometry]
    else:
        columns["wkt"] = [None if g is None else wkt(g) for g in table.geometry]
    for name, kind in table.kinds:
        columns[name] = _text(typed[name], kind)
    return pd.DataFrame(columns, index=range(len(table)), dtype=object)


def _float(value: float) -> str | None:
    return None if math.isnan(value) else repr(float(value))


def _text(column: pd.Series, kind: Kind) -> pd.Series:
    """A typed column as text (None where it is missing), a column at a time."""
    import pandas as pd

    missing = column.isna()
    if kind == "float":
        text = pd.Series([_float(v) for v in column.tolist()], index=column.index)
    elif kind == "bool":
        text = column.map({True: "true", False: "false"})
    elif kind == "datetime":
        text = column.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    elif kind in ("int", "int64"):
        text = column.astype("string")
    else:
        text = column
    return text.astype(object).where(~missing, None)
