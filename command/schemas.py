"""Request and response shapes for incidents, tasks, auth and audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from command.models import SEVERITIES
from core.security import ROLES
from core.validate import Id, Line, MultiLine, Secret
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


class DispatchRequest(Strict):
    unit_ids: list[Id] = Field(min_length=1, max_length=50)
    note: MultiLine | None = Field(default=None, max_length=2000)


class TaskStatusChange(Strict):
    status: Literal["accepted", "en_route", "on_scene", "done", "cancelled"]
    note: MultiLine | None = Field(default=None, max_length=2000)


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
    username: Line = Field(min_length=1, max_length=80)
    password: Secret = Field(min_length=1, max_length=200)


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


class AuditBadRow(BaseModel):
    id: int
    reason: str


class AuditCheckpointRead(BaseModel):
    last_id: int
    at: str
    rows: int


class AuditVerifyRead(BaseModel):
    """The audit chain checked: every link, then every checkpoint of this chain."""

    ok: bool
    checked: int = Field(description="rows whose links were checked")
    first_bad_id: int | None
    reason: str | None = Field(
        description="what is wrong with the first bad row, or the first problem"
    )
    bad_count: int
    bad_rows: list[AuditBadRow] = Field(description="bad rows (the first 1,000)")
    legacy_rows: int = Field(description="rows with plain SHA-256 links, from before keyed links")
    pending: int = Field(description="changes committed but not sealed yet (not tampering)")
    pending_oldest_s: float | None
    checkpoints: int = Field(description="valid checkpoints of this chain found")
    checkpoint: AuditCheckpointRead | None = Field(description="the newest of them")
    problems: list[str] = Field(
        description="what the checkpoints contradict, and bad checkpoint files"
    )
    other_chains: int = Field(description="checkpoint files of other chains, ignored")


# --- users (issue 14: user management) ---------------------------------------------


class UserRead(BaseModel):
    id: int
    username: str
    role: str
    unit_id: int | None
    active: bool
    created_at: datetime
    updated_at: datetime


class UserPage(BaseModel):
    items: list[UserRead]
    numberMatched: int
    numberReturned: int


class UserPatch(Strict):
    """What to change; leave a field out to keep it. `unit_id: null` unbinds the unit
    (refused for a responder). A new password revokes the user's earlier tokens."""

    active: bool | None = Field(default=None, description="false: disabled, tokens revoked")
    role: Literal[ROLES] | None = None  # type: ignore[valid-type]
    unit_id: Id | None = Field(default=None, description="the unit a responder is bound to")
    password: Secret | None = Field(default=None, min_length=8, max_length=200)
