"""The warning-zone table and its statuses."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from command.incidents.models import SEVERITIES
from command.intake import models as _intake  # noqa: F401 - alert: an FK target, mapped first
from core.db import Base
from core.types import Timestamps, in_list, wgs84_range

ZONE_STATUSES = ("active", "ended")


class WarningZone(Timestamps, Base):
    """An area under warning (a flood, a chemical plume): may close its roads to routing."""

    __tablename__ = "warning_zone"
    __table_args__ = (
        CheckConstraint(in_list("status", ZONE_STATUSES), name="status"),
        CheckConstraint(in_list("severity", SEVERITIES), name="severity"),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint(wgs84_range(), name="geom_range"),
        CheckConstraint("GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON')", name="geom_type"),
        CheckConstraint("ends_at IS NULL OR ends_at >= starts_at", name="period"),
        Index("ix_warning_zone_alert", "alert_id"),
        Index("ix_warning_zone_active_ends", "ends_at", postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20), default="moderate")
    status: Mapped[str] = mapped_column(String(20), default="active")
    blocks_roads: Mapped[bool] = mapped_column(Boolean, default=False)
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    geom: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))
