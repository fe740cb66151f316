"""HTTP for exports: one GET per layer, answering a GIS file."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from command.exports import files, service
from command.exports.schemas import FORMATS, Format
from command.exports.scope import DEFAULT_CELL_M
from command.kpis.service import target_table
from core.security import require
from core.types import utcnow
from core.validate import MAX_ID
from core.web import PrincipalDep, SessionDep, SettingsDep

router = APIRouter(prefix="/api")

_BINARY = {"schema": {"type": "string", "format": "binary"}}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the layer as a file (Content-Disposition names it)",
        "content": {
            FORMATS["gpkg"].media_type: _BINARY,
            FORMATS["geojson"].media_type: {
                "schema": {"type": "object", "description": "a GeoJSON FeatureCollection"}
            },
            FORMATS["csv"].media_type: {"schema": {"type": "string"}},
        },
    },
    404: {"description": "no such layer (the message names the layers), or no such drill"},
}


@router.get(
    "/export/{layer}",
    tags=["export"],
    response_class=FileResponse,
    responses=FILE_RESPONSES,
)
def export_layer(
    layer: Annotated[
        str,
        PathParam(
            max_length=40,
            description=f"one of {', '.join(service.LAYERS)}",
        ),
    ],
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    format: Annotated[Format, Query(description="gpkg (default), geojson or csv")] = "gpkg",
    since: Annotated[
        datetime | None, Query(description="ISO 8601 with offset; default until - 24 h")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="ISO 8601 with offset; default now")
    ] = None,
    drill: Annotated[
        int | None,
        Query(ge=1, le=MAX_ID, description="also this tabletop drill's data, marked by drill_id"),
    ] = None,
    cell_m: Annotated[
        int, Query(ge=100, le=50_000, description="kpis: the grid's cell side, metres")
    ] = DEFAULT_CELL_M,
) -> FileResponse:
    """A layer as a GeoPackage, GeoJSON or CSV file in WGS-84 (EPSG:4326) for analysts:
    incidents, tasks, tracks, positions, zones, shelters or kpis (by grid cell), in the
    window [since, until) on the layer's own time (at most 366 days; tracks and positions
    31). Personal data is never in it; drill data only with ``drill``. Commander, planner,
    auditor and admin (docs/gis-data.md, "Exports")."""
    require(principal, "export")
    found = service.layer(layer)
    where = service.scope(
        session,
        found,
        since=since,
        until=until,
        drill_id=drill,
        targets=target_table(settings),
        now=utcnow(),
        cell_m=cell_m,
    )
    table = service.export(session, found, where)
    name = files.file_name(found.name, where.until, format)
    folder = Path(tempfile.mkdtemp(prefix="export-"))
    try:
        path = files.write(table, folder / name, format)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=FORMATS[format].media_type,
        filename=name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
