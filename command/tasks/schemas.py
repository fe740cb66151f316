"""Request and response shapes for dispatch and tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from core.validate import Id, MultiLine
from gis.features import Strict


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
    caller_phone: str | None = Field(
        default=None,
        description="the incident's latest caller phone: for staff and the task's own unit",
    )


class TaskPage(BaseModel):
    items: list[TaskRead]
    numberMatched: int
    numberReturned: int
