"""Request and response shapes for incidents (GeoJSON Features)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from command.incidents.models import SEVERITIES
from core.validate import Line, MultiLine
from gis.features import FeatureIn, FeaturePatch, Strict

Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
IncidentType = Annotated[str, Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
AREA_TYPES = ("Point", "Polygon", "MultiPolygon")


class IncidentProps(Strict):
    title: Line = Field(min_length=1, max_length=200)
    type: IncidentType
    severity: Severity = "moderate"
    description: MultiLine | None = Field(default=None, max_length=10_000)
    address: Line | None = Field(default=None, max_length=300)
    people_affected: int | None = Field(default=None, ge=0, le=100_000_000)
    reported_by: Line | None = Field(default=None, max_length=120)
    drill: bool = False


class IncidentPatchProps(Strict):
    title: Line | None = Field(default=None, min_length=1, max_length=200)
    type: IncidentType | None = None
    severity: Severity | None = None
    description: MultiLine | None = Field(default=None, max_length=10_000)
    address: Line | None = Field(default=None, max_length=300)
    people_affected: int | None = Field(default=None, ge=0, le=100_000_000)


class IncidentCreate(FeatureIn[IncidentProps]):
    """An incident at a point, or over an area (Polygon / MultiPolygon)."""

    allowed_geometry = AREA_TYPES


class IncidentPatch(FeaturePatch[IncidentPatchProps]):
    allowed_geometry = AREA_TYPES


class IncidentRead(BaseModel):
    title: str
    type: str
    severity: str
    status: str
    description: str | None
    address: str | None
    people_affected: int | None
    source: str
    reported_by: str | None
    drill: bool
    alert_id: int | None = Field(description="the warning-system alert it came from")
    needs_review: bool = Field(description="a person must check it (see review_reason)")
    review_reason: str | None
    reported_at: datetime
    verified_at: datetime | None
    dispatched_at: datetime | None
    on_scene_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class IncidentStatusChange(Strict):
    status: Literal["verified", "on_scene", "resolved", "closed", "cancelled"]
    note: MultiLine | None = Field(default=None, max_length=2000)
