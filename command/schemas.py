"""Request and response shapes for incidents, tasks, auth and audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from command.models import SEVERITIES
from gis.features import FeatureIn, FeaturePatch, Strict

Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
IncidentType = Annotated[str, Field(min_length=2, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
AREA_TYPES = ("Point", "Polygon", "MultiPolygon")


class IncidentProps(Strict):
    title: str = Field(min_length=1, max_length=200)
    type: IncidentType
    severity: Severity = "moderate"
    description: str | None = Field(default=None, max_length=10_000)
    address: str | None = Field(default=None, max_length=300)
    people_affected: int | None = Field(default=None, ge=0, le=100_000_000)
    reported_by: str | None = Field(default=None, max_length=120)
    drill: bool = False


class IncidentPatchProps(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    type: IncidentType | None = None
    severity: Severity | None = None
    description: str | None = Field(default=None, max_length=10_000)
    address: str | None = Field(default=None, max_length=300)
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
    note: str | None = Field(default=None, max_length=2000)


class DispatchRequest(Strict):
    unit_ids: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=50)
    note: str | None = Field(default=None, max_length=2000)


class TaskStatusChange(Strict):
    status: Literal["accepted", "en_route", "on_scene", "done", "cancelled"]
    note: str | None = Field(default=None, max_length=2000)


class TaskRead(BaseModel):
    id: int
    incident_id: int
    unit_id: int
    status: str
    drill: bool
    note: str | None
    created_by: str | None
    assigned_at: datetime
    accepted_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    done_at: datetime | None
    cancelled_at: datetime | None
    acknowledged_at: datetime | None = Field(
        default=None, description="when the unit's phone acknowledged the assignment"
    )


class TaskPage(BaseModel):
    items: list[TaskRead]
    numberMatched: int
    numberReturned: int


class TokenRequest(Strict):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name
    expires_in: int


class Me(BaseModel):
    kind: str
    name: str
    role: str
    unit_id: int | None


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRead]
    numberMatched: int
    numberReturned: int


class AuditVerifyRead(BaseModel):
    ok: bool
    checked: int
    first_bad_id: int | None
    reason: str | None
