"""Request and response shapes for incidents (GeoJSON Features)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from command.incidents.models import SEVERITIES
from core.validate import Line, MultiLine, SchemaPattern
from gis.features import FeatureIn, FeaturePatch, Strict

Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
IncidentType = Annotated[str, Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
AREA_TYPES = ("Point", "Polygon", "MultiPolygon")
# A phone number as a caller gives it: digits, an optional leading +, spaces, brackets and
# dashes (trimmed first by Strict). Personal data: see command/incidents/calls.py.
CALLER_PHONE_PATTERN = r"^\+?[0-9][0-9 ()\-]{2,31}$"
_PHONE = re.compile(CALLER_PHONE_PATTERN)


def _phone(value: str) -> str:
    if not _PHONE.match(value):
        raise ValueError(
            "a phone number is digits, with an optional leading +, spaces, ( ) and -"
            " (e.g. +358 40 123 4567)"
        )
    return value


CallerPhone = Annotated[
    str,
    Field(
        min_length=3,
        max_length=32,
        description="the caller's phone: digits, optional leading +, spaces, ( ) and -",
    ),
    AfterValidator(_phone),
    SchemaPattern(CALLER_PHONE_PATTERN),
]
People = Annotated[int, Field(ge=0, le=100_000_000)]


class IncidentProps(Strict):
    title: Line = Field(min_length=1, max_length=200)
    type: IncidentType
    severity: Severity = "moderate"
    description: MultiLine | None = Field(default=None, max_length=10_000)
    address: Line | None = Field(default=None, max_length=300)
    people_affected: int | None = Field(default=None, ge=0, le=100_000_000)
    reported_by: Line | None = Field(default=None, max_length=120)
    drill: bool = False
    caller_phone: CallerPhone | None = Field(
        default=None, description="kept on the incident's first call, not on the incident"
    )


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
    drill_id: int | None = Field(default=None, description="the tabletop drill it belongs to")
    calls: int = Field(default=0, description="calls taken about it")
    caller_phone: str | None = Field(
        default=None,
        description="the latest call's phone; null unless the caller may read personal data",
    )
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


class CallCreate(Strict):
    """Another call about an incident already open: attached, never dispatched."""

    caller_phone: CallerPhone | None = None
    description: MultiLine | None = Field(default=None, max_length=10_000)
    people_affected: People | None = None


class CallRead(BaseModel):
    id: int
    incident_id: int
    caller_phone: str | None = Field(description="null once the retention period has passed")
    description: str | None
    people_affected: int | None
    received_at: datetime
    taken_by: str


class CallPage(BaseModel):
    items: list[CallRead]


class DuplicateRead(IncidentRead):
    distance_m: int = Field(description="from the point asked about, metres (geodesic)")
