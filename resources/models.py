"""Stations, units (teams and vehicles), their position track, shelters, warehouses, stock."""

from __future__ import annotations

from datetime import datetime

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
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY  # the dialect type has contains()
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.types import Timestamps, in_list, wgs84_range

STATION_KINDS = ("fire", "ambulance", "police", "hospital", "rescue", "other")
UNIT_KINDS = ("vehicle", "team")
UNIT_STATUSES = ("available", "assigned", "en_route", "on_scene", "returning", "out_of_service")
SHELTER_STATUSES = ("open", "closed")


def point() -> Geometry:
    """A WGS-84 point column type with a GiST index (a new instance per column)."""
    return Geometry("POINT", srid=4326, spatial_index=True)


def in_range() -> CheckConstraint:
    return CheckConstraint(wgs84_range(), name="geom_range")


class Station(Timestamps, Base):
    __tablename__ = "station"
    __table_args__ = (CheckConstraint(in_list("kind", STATION_KINDS), name="kind"), in_range())

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(String(300))
    osm_id: Mapped[str | None] = mapped_column(String(40))
    geom: Mapped[WKBElement] = mapped_column(point())


class Unit(Timestamps, Base):
    __tablename__ = "unit"
    __table_args__ = (
        CheckConstraint(in_list("kind", UNIT_KINDS), name="kind"),
        in_range(),
        CheckConstraint(in_list("status", UNIT_STATUSES), name="status"),
        CheckConstraint("crew >= 0", name="crew"),
        Index("ix_unit_status_type", "status", "type"),
        Index("ix_unit_capabilities", "capabilities", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    callsign: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(40))
    capabilities: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    crew: Mapped[int] = mapped_column(Integer, default=0)
    home_station_id: Mapped[int | None] = mapped_column(
        ForeignKey("station.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="available")
    # A tabletop drill's stand-in for a real unit (the drill's id; no foreign key, since
    # drills live above resources): drill incidents are dispatched only to these, and
    # live views, recommendations and KPIs leave them out. NULL for every real unit.
    drill_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    status_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    geom: Mapped[WKBElement | None] = mapped_column(point(), nullable=True)
    position_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Positions reach the live map at most once a second per unit: the fix last
    # published (its recorded_at) and when it was published.
    position_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    position_sent_wall: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UnitPosition(Base):
    __tablename__ = "unit_position"
    __table_args__ = (
        Index("ix_unit_position_unit_recorded", "unit_id", "recorded_at"),
        in_range(),
        CheckConstraint("speed_mps IS NULL OR speed_mps >= 0", name="speed"),
        CheckConstraint(
            "heading_deg IS NULL OR (heading_deg >= 0 AND heading_deg < 360)", name="heading"
        ),
        CheckConstraint("accuracy_m IS NULL OR accuracy_m >= 0", name="accuracy"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"))
    geom: Mapped[WKBElement] = mapped_column(point())
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    speed_mps: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)


class Shelter(Timestamps, Base):
    __tablename__ = "shelter"
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="capacity"),
        in_range(),
        CheckConstraint("occupancy >= 0 AND occupancy <= capacity", name="occupancy"),
        CheckConstraint("planned_arrivals >= 0", name="planned_arrivals"),
        CheckConstraint(in_list("status", SHELTER_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    capacity: Mapped[int] = mapped_column(Integer)
    occupancy: Mapped[int] = mapped_column(Integer, default=0)
    # People an evacuation plan sends here who have not arrived yet.
    planned_arrivals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    accessible: Mapped[bool] = mapped_column(Boolean, default=False)
    pets_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="open")
    osm_id: Mapped[str | None] = mapped_column(String(40))
    geom: Mapped[WKBElement] = mapped_column(point())


class Warehouse(Timestamps, Base):
    __tablename__ = "warehouse"
    __table_args__ = (in_range(),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    osm_id: Mapped[str | None] = mapped_column(String(40))
    geom: Mapped[WKBElement] = mapped_column(point())


class Stock(Timestamps, Base):
    __tablename__ = "stock"
    __table_args__ = (
        UniqueConstraint("warehouse_id", "item", name="uq_stock_warehouse_item"),
        CheckConstraint("quantity >= 0", name="quantity"),
        CheckConstraint("low_water IS NULL OR low_water >= 0", name="low_water"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouse.id", ondelete="CASCADE"))
    item: Mapped[str] = mapped_column(String(80))
    unit_of_measure: Mapped[str] = mapped_column(String(20), default="piece")
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    # The low-water mark: below it the item shows on the KPI panel (None: never).
    low_water: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)
