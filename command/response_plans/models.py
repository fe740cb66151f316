"""The run-card table: needs per incident type and severity."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Identity,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from command.incidents.models import SEVERITIES
from core.db import Base
from core.types import Timestamps, in_list


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
