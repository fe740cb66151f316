"""Stored plans (what a solver proposed, for review and audit) and supply requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from command.incidents import models as _incidents  # noqa: F401 - incident: an FK target
from core.db import Base
from core.types import Timestamps, in_list

SUPPLY_REQUEST_STATUSES = ("open", "allocated", "delivered", "cancelled")


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
