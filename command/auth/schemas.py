"""Request and response shapes for logging in and managing users."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from core.security import ROLES
from core.validate import Id, Line, Secret
from gis.features import Strict


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
