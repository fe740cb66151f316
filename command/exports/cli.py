"""`emergency export LAYER FILE`: the file GET /api/export/{layer} answers, written here."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from core.errors import InvalidInput
from core.validate import MAX_ID


def _when(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{name}: not an ISO 8601 time ({value!r})") from exc


def export(
    layer: Annotated[
        str, typer.Argument(help="incidents, tasks, tracks, positions, zones, shelters, kpis")
    ],
    file: Annotated[Path, typer.Argument(help="where to write it (replaced if it exists)")],
    format: Annotated[
        str | None,
        typer.Option("--format", help="gpkg, geojson or csv (default: from FILE's suffix)"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 with offset; default until - 24 h")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 with offset; default now")] = None,
    drill: Annotated[
        int | None, typer.Option(min=1, max=MAX_ID, help="also this tabletop drill's data, marked")
    ] = None,
    cell_m: Annotated[
        int, typer.Option(min=100, max=50_000, help="kpis: the grid's cell side, metres")
    ] = 1000,
) -> None:
    """Export a layer for analysts, as GET /api/export/{layer} does (personal data never,
    drill data only with --drill); prints one JSON summary."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from command.exports import files, service
    from command.exports.schemas import FORMATS, SUFFIXES
    from command.kpis.service import target_table
    from core.config import get_settings
    from core.db import make_sessionmaker, sqlalchemy_url
    from core.types import utcnow

    fmt = format or SUFFIXES.get(file.suffix.lower())
    if fmt not in FORMATS:
        raise InvalidInput(
            f"format {format or file.suffix!r}: one of {', '.join(FORMATS)} "
            f"(or a file ending {', '.join(SUFFIXES)})"
        )
    if not file.parent.is_dir():
        raise InvalidInput(f"no folder {file.parent} to write {file.name} in")
    settings = get_settings()
    engine = create_engine(sqlalchemy_url(settings.database_url), poolclass=NullPool)
    with make_sessionmaker(engine)() as session:
        found = service.layer(layer)
        where = service.scope(
            session,
            found,
            since=_when("since", since),
            until=_when("until", until),
            drill_id=drill,
            targets=target_table(settings),
            now=utcnow(),
            cell_m=cell_m,
        )
        table = service.export(session, found, where)
    engine.dispose()
    # Written beside, then moved: a file half-written is never left under FILE's name.
    with tempfile.TemporaryDirectory(dir=file.parent) as tmp:
        written = files.write(table, Path(tmp) / files.file_name(layer, where.until, fmt), fmt)
        shutil.move(written, file)
    summary = {
        "layer": layer,
        "file": str(file),
        "format": fmt,
        "rows": len(table),
        "since": where.since.isoformat(),
        "until": where.until.isoformat(),
        "drill_id": drill,
    }
    typer.echo(json.dumps(summary))
