"""Stations, units (teams and vehicles), their position track, shelters, warehouses, stock."""

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
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB  # the dialect ARRAY has contains()
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.types import Timestamps, in_list, wgs84_range

STATION_KINDS = ("fire", "ambulance", "police", "hospital", "rescue", "other")
UNIT_KINDS = ("vehicle", "team")
UNIT_STATUSES = ("available", "assigned", "en_route", "on_scene", "returning", "out_of_service")
SHELTER_STATUSES = ("open", "closed")
SHELTER_HAZARDS = (
    "earthquake", "flood", "typhoon", "fire", "landslide", "tsunami", "chemical", "epidemic",
    "other",
)  # fmt: skip


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
    # An imported file's columns that no field took (emergency import), as they were.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
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
        {"postgresql_with": {"fillfactor": "70"}},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    callsign: Mapped[str] = mapped_column(String(40), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(80), unique=True)
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
    # No spatial index (migration 0013): a fleet is thousands of rows, a bbox over them
    # is a scan of milliseconds, and without one a position update changes no indexed
    # column, so it is a HOT update (no index writes; fillfactor 70 leaves the room).
    geom: Mapped[WKBElement | None] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=True
    )
    position_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Positions reach the live map at most once a second per unit: the fix last
    # published (its recorded_at) and when it was published.
    position_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    position_sent_wall: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The newest good fix's speed and heading, for the live map's arrows.
    position_speed_mps: Mapped[float | None] = mapped_column(Float)
    position_heading_deg: Mapped[float | None] = mapped_column(Float)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


POSITION_SOURCES = ("api", "batch", "ws", "osmand")
POSITION_FLAGS = ("jump",)


class UnitPosition(Base):
    """The track: every fix a unit's devices sent, append-only telemetry (not audited).

    Partitioned by day on ``recorded_at`` (migration 0013, ``unit_position_pYYYYMMDD``;
    partitions past ``EMERGENCY_TRACK_RETENTION_DAYS`` are dropped). One unit and one
    ``recorded_at`` is one fix: the primary key, so a repeated upload is a duplicate."""

    __tablename__ = "unit_position"
    __table_args__ = (
        in_range(),
        CheckConstraint("speed_mps IS NULL OR speed_mps >= 0", name="speed"),
        CheckConstraint(
            "heading_deg IS NULL OR (heading_deg >= 0 AND heading_deg < 360)", name="heading"
        ),
        CheckConstraint("accuracy_m IS NULL OR accuracy_m >= 0", name="accuracy"),
        CheckConstraint(in_list("source", POSITION_SOURCES), name="source"),
        CheckConstraint(f"flag IS NULL OR {in_list('flag', POSITION_FLAGS)}", name="flag"),
        {"postgresql_partition_by": "RANGE (recorded_at)"},
    )

    unit_id: Mapped[int] = mapped_column(
        ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True
    )
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # A number for people and exports (not unique across partitions by constraint, but
    # drawn from one sequence).
    id: Mapped[int] = mapped_column(
        BigInteger, server_default=text("nextval('unit_position_id_seq')")
    )
    # No spatial index: the track is read by unit and time, and a GiST index per fix was
    # a third of the insert's cost.
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    speed_mps: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    altitude_m: Mapped[float | None] = mapped_column(Float)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(10), server_default="api")
    # "jump": the speed implied from the unit's last good fix is impossible; kept in the
    # track for review, never used as the unit's position.
    flag: Mapped[str | None] = mapped_column(String(20))
    device_id: Mapped[int | None] = mapped_column(BigInteger)


DEVICE_KINDS = ("secret", "hardware")


class Device(Timestamps, Base):
    """A tracker bound to one unit (OsmAnd / Traccar client protocol). Only the SHA-256 of
    its id is stored: the id is a secret the tracker sends with every fix."""

    __tablename__ = "device"
    __table_args__ = (CheckConstraint(in_list("kind", DEVICE_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Enough of the id to tell devices apart in a list (hardware: the IMEI's last 4).
    hint: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    # Hardware ids are not secret: fixes are taken only from these networks (CIDR).
    allow_from: Mapped[list[str] | None] = mapped_column(ARRAY(String(50)))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Shelter(Timestamps, Base):
    __tablename__ = "shelter"
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="capacity"),
        in_range(),
        CheckConstraint("occupancy >= 0 AND occupancy <= capacity", name="occupancy"),
        CheckConstraint("planned_arrivals >= 0", name="planned_arrivals"),
        CheckConstraint(in_list("status", SHELTER_STATUSES), name="status"),
        CheckConstraint(
            "hazards <@ ARRAY[" + ", ".join(f"'{h}'" for h in SHELTER_HAZARDS) + "]::varchar[]",
            name="hazards",
        ),
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
    # What it is designated for (SHELTER_HAZARDS), as the registers of 应急避难场所 list it.
    hazards: Mapped[list[str]] = mapped_column(
        ARRAY(String(40)), default=list, server_default=text("'{}'::varchar[]")
    )
    osm_id: Mapped[str | None] = mapped_column(String(40))
    # An imported file's columns that no field took (emergency import), as they were.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    geom: Mapped[WKBElement] = mapped_column(point())


class Warehouse(Timestamps, Base):
    __tablename__ = "warehouse"
    __table_args__ = (in_range(),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    osm_id: Mapped[str | None] = mapped_column(String(40))
    # An imported file's columns that no field took (emergency import), as they were.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
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
