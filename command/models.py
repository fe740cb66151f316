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
    Float,
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
from resources import models as _resources  # noqa: F401 - unit, station: FK targets, mapped first

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


ALERT_STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
ALERT_MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")


class Alert(Base):
    """A warning-system alert: the raw CAP (or JSON) kept verbatim, its parsed header here,
    its info blocks and areas in `alert_info` / `alert_area`.

    Alerts that update or cancel one another share a ``thread_id`` (the first alert's id):
    the incidents and zones of a thread are what later Updates change and Cancels end."""

    __tablename__ = "alert"
    __table_args__ = (
        UniqueConstraint("sender", "identifier", "sent", name="uq_alert_key"),
        CheckConstraint(in_list("status", ALERT_STATUSES), name="status"),
        CheckConstraint(in_list("msg_type", ALERT_MSG_TYPES), name="msg_type"),
        Index("ix_alert_thread", "thread_id"),
        Index("ix_alert_received_at", "received_at"),
        # "has a later message already named this one?" on every intake
        Index(
            "ix_alert_referenced",
            "referenced",
            postgresql_using="gin",
            postgresql_ops={"referenced": "jsonb_path_ops"},
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    identifier: Mapped[str] = mapped_column(String(300))
    sender: Mapped[str] = mapped_column(String(300))
    sent: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    msg_type: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(20))
    version: Mapped[str] = mapped_column(String(8))
    source: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    codes: Mapped[list[str]] = mapped_column(JSONB, default=list)
    references: Mapped[str | None] = mapped_column(Text)
    # [{"sender", "identifier", "sent"}] as parsed from `references`
    referenced: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"))
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # the body exactly as posted
    content_type: Mapped[str] = mapped_column(String(60))
    received_by: Mapped[str] = mapped_column(String(160))
    warnings: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    # What intake did (the answer to the first post, given again to duplicates).
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class AlertInfo(Base):
    """One CAP `info` block (one language's text of the alert)."""

    __tablename__ = "alert_info"
    __table_args__ = (Index("ix_alert_info_alert", "alert_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(40))
    categories: Mapped[list[str]] = mapped_column(JSONB)
    event: Mapped[str] = mapped_column(String(300))
    response_types: Mapped[list[str]] = mapped_column(JSONB, default=list)
    urgency: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(20))
    certainty: Mapped[str] = mapped_column(String(20))
    audience: Mapped[str | None] = mapped_column(Text)
    event_codes: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    effective: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    onset: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sender_name: Mapped[str | None] = mapped_column(Text)
    headline: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    instruction: Mapped[str | None] = mapped_column(Text)
    web: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    resources: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)


class AlertArea(Base):
    """One CAP `area`: its polygons and circles as one geometry (lon/lat), geocodes kept."""

    __tablename__ = "alert_area"
    __table_args__ = (
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        CheckConstraint(wgs84_range(), name="geom_range"),
        Index("ix_alert_area_alert", "alert_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id", ondelete="CASCADE"))
    info_id: Mapped[int] = mapped_column(ForeignKey("alert_info.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    area_desc: Mapped[str] = mapped_column(Text)
    polygons: Mapped[list[str]] = mapped_column(JSONB, default=list)  # as written: lat,lon
    circles: Mapped[list[str]] = mapped_column(JSONB, default=list)
    geocodes: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    altitude: Mapped[float | None] = mapped_column(Float)
    ceiling: Mapped[float | None] = mapped_column(Float)
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("GEOMETRY", srid=4326, spatial_index=True)
    )


class ApiNonce(Base):
    """Signatures already used, kept for the clock-skew window: a replay is refused."""

    __tablename__ = "api_nonce"
    __table_args__ = (Index("ix_api_nonce_seen_at", "seen_at"),)

    signature: Mapped[str] = mapped_column(String(80), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40))
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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
    # Bumped by a password change or a disable: a token carries the value it was issued
    # with (claim `tv`), so every token issued before the bump stops working.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class LoginThrottle(Base):
    """Failed logins per username and per client address in the current window, shared by
    every server process (command/login.py). `pending` counts checks in flight, so a burst
    cannot slip past the limit while its password hashes are being verified."""

    __tablename__ = "login_throttle"
    __table_args__ = (
        CheckConstraint("scope IN ('user', 'address')", name="scope"),
        CheckConstraint("failures >= 0 AND pending >= 0", name="counts"),
        Index("ix_login_throttle_window_started_at", "window_started_at"),
    )

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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
