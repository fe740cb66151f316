"""``POST /api/import/{kind}``: the API twin of ``emergency import`` (multipart upload)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile
from pydantic import BaseModel, Field

from core.errors import InvalidInput
from core.security import require
from core.web import PrincipalDep, SessionDep
from gis.layers import SUFFIXES
from resources.imports.mapping import MAX_MAPPING_BYTES, ImportMapping, mapping_from_text
from resources.imports.service import KIND_NAMES, import_frame, read_file

router = APIRouter(prefix="/api", tags=["import"])
ImportKind = Literal[KIND_NAMES]  # type: ignore[valid-type]


class RefusedRow(BaseModel):
    row: int = Field(description="the file's 1-based row number (a CSV's first data row is 1)")
    reason: str


class ImportResult(BaseModel):
    kind: str
    rows: int
    created: int
    updated: int
    unchanged: int
    refused: list[RefusedRow]
    stored: bool = Field(description="false for a dry run, or a file refused for a bad row")
    dry_run: bool
    kept_columns: list[str] = Field(description="the file's columns kept in `attributes`")
    seconds: float


@router.post(
    "/import/{kind}",
    response_model=ImportResult,
    responses={
        422: {"description": "a bad row (without skip_invalid: nothing stored; `details` "
              "holds the summary naming each refused row), a bad mapping or an unreadable "
              "file"},
        413: {"description": "the upload is over EMERGENCY_IMPORT_MAX_BYTES"},
    },
)  # fmt: skip
def import_resources(
    kind: ImportKind,
    session: SessionDep,
    principal: PrincipalDep,
    file: Annotated[
        UploadFile,
        File(description="GeoJSON, GeoPackage, a zipped Shapefile or CSV (lon/lat columns)"),
    ],
    mapping: Annotated[
        UploadFile | None, File(description="the mapping YAML (docs/gis-data.md)")
    ] = None,
    dry_run: Annotated[bool, Query(description="check and count; store nothing")] = False,
    skip_invalid: Annotated[
        bool, Query(description="store the good rows and list the refused ones")
    ] = False,
) -> dict[str, Any]:
    """Create or update stations, shelters, warehouses, units or stock from a file.

    Rows are matched by `external_id` (units without one by callsign, stock by warehouse
    and item): importing the same file again creates nothing and counts the rows
    `unchanged`. Admin and commander."""
    require(principal, "resource.write")
    rules = ImportMapping()
    if mapping is not None:
        raw = mapping.file.read(MAX_MAPPING_BYTES + 1)
        rules = mapping_from_text(raw)
    name = Path(file.filename or "").name
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES or suffix == ".shp":
        raise InvalidInput(
            f"upload a .geojson, .json, .gpkg, .zip (a Shapefile with its sidecars) or .csv, "
            f"not {name or 'a file without a name'!r}"
        )
    with tempfile.TemporaryDirectory(prefix="emergency-import-") as folder:
        path = Path(folder) / f"upload{suffix}"
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, 1 << 20)
        frame = read_file(kind, path, rules)
        summary = import_frame(
            session, kind, frame, rules, principal=principal, skip_invalid=skip_invalid,
            dry_run=dry_run, source=name,
        )  # fmt: skip
    if summary.refused and not summary.stored and not dry_run:
        raise InvalidInput(summary.message, details=summary.as_dict())
    if summary.stored:
        session.commit()
    return summary.as_dict()
