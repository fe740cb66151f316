"""The incident table, its statuses and the severity scale every room shares."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from command.intake import models as _intake  # noqa: F401 - alert: an FK target, mapped first
from core.db import Base
from core.types import Timestamps, in_list, wgs84_range

INCIDENT_STATUSES = (
    "reported",
    "verified",
    "dispatched",
    "on_scene",
    "resolved",
    "closed",
    "cancelled",
)

SEVERITIES = ("minor", "moderate", "severe", "extreme")


class Incident(Timestamps, Base):
    __tablename__ = "incident"
    __table_args__ = (
        CheckConstraint(in_list("status", INCIDENT_STATUSES), name="status"),
        CheckConstraint(in_list("severity", SEVERITIES), name="severity"),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint(wgs84_range(), name="geom_range"),
        CheckConstraint(
            "GeometryType(geom) IN ('POINT', 'POLYGON', 'MULTIPOLYGON')", name="geom_type"
        ),
        CheckConstraint("people_affected IS NULL OR people_affected >= 0", name="people"),
        Index("ix_incident_status_type", "status", "type"),
        # The KPIs' window: incidents reported in [since, until), drills kept apart.
        Index("ix_incident_drill_reported", "drill", "reported_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20), default="moderate")
    status: Mapped[str] = mapped_column(String(20), default="reported")
    address: Mapped[str | None] = mapped_column(String(300))
    people_affected: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20), default="manual")
    reported_by: Mapped[str | None] = mapped_column(String(120))
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    # NULL only for an alert's incident whose area has no usable shape (needs_review).
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=True)
    )
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"), index=True)
    # Set when a person must check the incident (no usable location, a cancelled alert
    # while units are out); `review_reason` says why.
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    review_reason: Mapped[str | None] = mapped_column(Text)
    # Where units drive to: the point itself, or a point inside an area incident.
    location: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=True),
        Computed("ST_PointOnSurface(geom)", persisted=True),
    )
    reported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    on_scene_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
