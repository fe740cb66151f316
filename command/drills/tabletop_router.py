"""HTTP: tabletop drills (start, stop, the drill's own view)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/drills", tags=["drills"])
