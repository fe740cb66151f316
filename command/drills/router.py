"""HTTP: /api/drills (simulation runs: submit, status, report, replay, delete)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/drills", tags=["drills"])
