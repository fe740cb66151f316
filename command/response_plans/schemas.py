"""Request and response shapes for run cards."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from command.incidents.schemas import IncidentType, Severity
from core.validate import MultiLine
from gis.features import Strict


class NeedIn(Strict):
    capability: str = Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    count: int = Field(ge=1, le=50)


class ResponsePlanIn(Strict):
    incident_type: IncidentType
    severity: Severity
    needs: list[NeedIn] = Field(min_length=1, max_length=20)
    note: MultiLine | None = Field(default=None, max_length=2000)


class ResponsePlanRead(BaseModel):
    id: int
    incident_type: str
    severity: str
    needs: list[dict[str, Any]]
    note: str | None
    updated_at: str
