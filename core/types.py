"""Column helpers shared by every package's models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, func
from sqlalchemy.orm import Mapped, mapped_column


def utcnow() -> datetime:
    """Now, timezone-aware UTC (storage is always UTC)."""
    return datetime.now(UTC)


class Timestamps:
    """`created_at` / `updated_at`, set by the database and by SQLAlchemy on update.

    Server-generated values come back in the INSERT's RETURNING (eager defaults), so
    reading a row just written costs no second round trip."""

    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": True}

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def in_list(column: str, values: tuple[str, ...]) -> str:
    """SQL text for a CHECK that `column` is one of `values` (constants, never user input)."""
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"


def wgs84_range(column: str = "geom") -> str:
    """SQL text for a CHECK that every vertex of `column` lies in lon/lat range."""
    return (
        f"{column} IS NULL OR (ST_XMin({column}) >= -180 AND ST_XMax({column}) <= 180 "
        f"AND ST_YMin({column}) >= -90 AND ST_YMax({column}) <= 90)"
    )
