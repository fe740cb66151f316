"""Run Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from alembic import command as alembic_command
from alembic.config import Config
from geoalchemy2 import alembic_helpers

from core.db import sqlalchemy_url


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "command:migrations")
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    alembic_command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    alembic_command.downgrade(alembic_config(database_url), revision)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """What autogenerate compares: GeoAlchemy2's rule, less the track's daily partitions
    (``unit_position_pYYYYMMDD``: made by the server as days come, not by the models)."""
    if type_ == "table" and reflected and name and name.startswith("unit_position_p"):
        return False
    keep = alembic_helpers.include_object(  # type: ignore[no-untyped-call]
        obj, name, type_, reflected, compare_to
    )
    return bool(keep)
