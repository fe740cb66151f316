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

from command.drills import models as _drills  # noqa: F401 - drill: an FK target
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
        CheckConstraint("calls >= 0", name="calls"),
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
    # The drill (table ``drill``) a drill incident belongs to; NULL for live incidents and
    # for drill data that no drill owns (CAP Exercise alerts with no tabletop running).
    drill_id: Mapped[int | None] = mapped_column(
        ForeignKey("drill.id", ondelete="RESTRICT"), index=True
    )
    # How many calls were taken about it (rows of incident_call), kept here so the count
    # travels in the incident's own events; 0 for incidents from alerts.
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
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


class IncidentCall(Base):
    """One call about an incident: the first one creates it, later ones are attached.

    `caller_phone` is personal data: shown to staff roles and to the responders on the
    incident's tasks, never on shared topics or in the audit chain, and blanked (with
    `phone_purged_at` set) after `caller_phone_retention_days`."""

    __tablename__ = "incident_call"
    __table_args__ = (
        CheckConstraint("people_affected IS NULL OR people_affected >= 0", name="people"),
        Index("ix_incident_call_incident_received", "incident_id", "received_at"),
        # The retention purge: calls that still hold a phone, oldest first.
        Index(
            "ix_incident_call_phone_received",
            "received_at",
            postgresql_where=text("caller_phone IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="RESTRICT"))
    caller_phone: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    people_affected: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    taken_by: Mapped[str] = mapped_column(String(160))
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
