"""Response shapes of the audit log and of a chain verification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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
