"""The drill table: one simulation run or tabletop exercise, its scenario and its report.

A drill's incidents, tasks and stand-in units carry its id (``incident.drill_id``,
``unit.drill_id``), so they stay apart from live operations and ``DELETE /api/drills/{id}``
can remove them; its audit rows stay (the chain is append-only) and name the drill.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Identity,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from core.types import Timestamps, in_list

DRILL_MODES = ("run", "tabletop")
DRILL_STATUSES = ("queued", "running", "finished", "failed", "stopped")


class Drill(Timestamps, Base):
    __tablename__ = "drill"
    __table_args__ = (
        CheckConstraint(in_list("mode", DRILL_MODES), name="mode"),
        CheckConstraint(in_list("status", DRILL_STATUSES), name="status"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        CheckConstraint("speed IS NULL OR speed > 0", name="speed"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(20), default="run")
    status: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    # The scenario as accepted (validated and normalised: no server paths).
    scenario: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # report.json once finished; the replay timelines (replication 0, per policy) beside it.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    replay: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(160))
    # Tabletop: the simulated clock runs ``speed`` times real time from ``started_at``.
    speed: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
