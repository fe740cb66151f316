"""Tasks, their statuses, and the dispatch decisions (what was recommended, what was chosen)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from command.incidents import models as _incidents  # noqa: F401 - incident: an FK target
from core.db import Base
from core.types import Timestamps, in_list
from resources import models as _resources  # noqa: F401 - unit: an FK target, mapped first

TASK_STATUSES = ("assigned", "accepted", "en_route", "on_scene", "done", "cancelled")
ACTIVE_TASK_STATUSES = ("assigned", "accepted", "en_route", "on_scene")


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
