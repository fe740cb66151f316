"""Incidents, tasks, alerts, supply requests, users, API keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.security import ROLES
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
TASK_STATUSES = ("assigned", "accepted", "en_route", "on_scene", "done", "cancelled")
ACTIVE_TASK_STATUSES = ("assigned", "accepted", "en_route", "on_scene")
SUPPLY_REQUEST_STATUSES = ("open", "allocated", "delivered", "cancelled")


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
    geom: Mapped[WKBElement] = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))
    # Where units drive to: the point itself, or a point inside an area incident.
    location: Mapped[WKBElement] = mapped_column(
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


class Task(Timestamps, Base):
    """One unit assigned to one incident, with a timestamp per state."""

    __tablename__ = "task"
    __table_args__ = (
        CheckConstraint(in_list("status", TASK_STATUSES), name="status"),
        # The database itself guarantees a unit has at most one active task: two
        # dispatchers racing for one unit cannot both commit.
        Index(
            "uq_task_unit_active",
            "unit_id",
            unique=True,
            postgresql_where=text(in_list("status", ACTIVE_TASK_STATUSES)),
        ),
        Index("ix_task_incident", "incident_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), default="assigned")
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(120))
    assigned_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    en_route_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    on_scene_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the unit's phone acknowledged the assignment (the realtime hub's ack).
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Alert(Base):
    """A warning-system alert, the raw CAP kept verbatim."""

    __tablename__ = "alert"
    __table_args__ = (UniqueConstraint("sender", "identifier", "sent", name="uq_alert_key"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    identifier: Mapped[str] = mapped_column(String(300))
    sender: Mapped[str] = mapped_column(String(300))
    sent: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    msg_type: Mapped[str] = mapped_column(String(20))
    references: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(60))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class SupplyRequest(Timestamps, Base):
    __tablename__ = "supply_request"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        CheckConstraint(in_list("status", SUPPLY_REQUEST_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    item: Mapped[str] = mapped_column(String(80))
    quantity: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="open")


class User(Timestamps, Base):
    __tablename__ = "user"
    __table_args__ = (
        CheckConstraint(in_list("role", ROLES), name="role"),
        CheckConstraint("role <> 'responder' OR unit_id IS NOT NULL", name="responder_unit"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id", ondelete="RESTRICT"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiKey(Timestamps, Base):
    """A machine client's key; the HMAC secret is kept encrypted (Fernet) at rest."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ResponsePlan(Timestamps, Base):
    """What an incident type at a severity needs (预案 / run card): capability -> count."""

    __tablename__ = "response_plan"
    __table_args__ = (
        UniqueConstraint("incident_type", "severity", name="uq_response_plan_type_severity"),
        CheckConstraint(in_list("severity", SEVERITIES), name="severity"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_type: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))
    needs: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)  # [{"capability", "count"}]
    note: Mapped[str | None] = mapped_column(Text)


class DispatchDecision(Base):
    """What the system recommended next to what the dispatcher chose (after-action review)."""

    __tablename__ = "dispatch_decision"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), index=True)
    actor: Mapped[str] = mapped_column(String(160))
    recommended: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    chosen_unit_ids: Mapped[list[int]] = mapped_column(JSONB)
    task_ids: Mapped[list[int]] = mapped_column(JSONB)
    followed: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PlanRecord(Base):
    """A committed supply allocation or evacuation plan, kept as it was decided."""

    __tablename__ = "plan_record"
    __table_args__ = (CheckConstraint("kind IN ('supplies', 'evacuation')", name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(160))
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    plan: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="period"),
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
