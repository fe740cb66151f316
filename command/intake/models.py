"""Stored alerts: the message, its info blocks and its areas (raw XML kept as sent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.types import in_list, wgs84_range

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
