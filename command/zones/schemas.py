"""Request and response shapes for warning zones (GeoJSON Features)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from command.incidents.schemas import IncidentType, Severity
from command.zones.service import AREAS
from core.validate import ClientTime, Line
from gis.features import FeatureIn, FeaturePatch, Strict


class ZoneProps(Strict):
    name: Line = Field(min_length=1, max_length=200)
    kind: IncidentType
    severity: Severity = "moderate"
    blocks_roads: bool = False
    drill: bool = False
    starts_at: ClientTime | None = None
    ends_at: ClientTime | None = None

    @model_validator(mode="after")
    def _period(self) -> ZoneProps:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ZonePatchProps(Strict):
    name: Line | None = Field(default=None, min_length=1, max_length=200)
    severity: Severity | None = None
    status: Literal["active", "ended"] | None = None
    blocks_roads: bool | None = None
    ends_at: ClientTime | None = None


class ZoneCreate(FeatureIn[ZoneProps]):
    allowed_geometry = AREAS


class ZonePatch(FeaturePatch[ZonePatchProps]):
    allowed_geometry = AREAS


class ZoneRead(BaseModel):
    name: str
    kind: str
    severity: str
    status: str
    blocks_roads: bool
    drill: bool
    alert_id: int | None
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime
