"""The caller and the role table (pure: no database, no web)."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import Forbidden

ROLES = ("commander", "dispatcher", "responder", "planner", "auditor", "admin")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a person with a role, or a machine client."""

    kind: str  # "user" | "apikey" | "system"
    id: int
    name: str
    role: str
    unit_id: int | None = None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"


SYSTEM = Principal(kind="system", id=0, name="cli", role="admin")

# Which roles may do what: one table, read by every router through `require`.
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset(ROLES),
    "incident.write": frozenset({"commander", "dispatcher", "admin"}),
    "dispatch": frozenset({"commander", "dispatcher", "admin"}),
    "task.status": frozenset({"commander", "dispatcher", "admin", "responder"}),
    "unit.status": frozenset({"commander", "dispatcher", "admin", "responder"}),
    "unit.position": frozenset({"dispatcher", "admin", "responder"}),
    # Many units' fixes at once: gateways (API keys) and staff, never a responder.
    "position.batch": frozenset({"dispatcher", "admin", "machine"}),
    "resource.write": frozenset({"commander", "admin"}),
    "operations.write": frozenset({"commander", "dispatcher", "admin"}),
    "audit.read": frozenset({"auditor", "admin"}),
    "user.manage": frozenset({"admin"}),
    "drill.watch": frozenset({"commander", "dispatcher", "planner", "auditor", "admin"}),
    "drill.run": frozenset({"planner", "admin"}),
    "plan.write": frozenset({"commander", "planner", "admin"}),
    "plan.run": frozenset({"commander", "dispatcher", "planner", "admin"}),
    "alert.post": frozenset({"machine"}),
    # Every staff role; responders see their own tasks, not the centre's figures.
    "kpis.read": frozenset({"commander", "dispatcher", "planner", "auditor", "admin"}),
    "places.read": frozenset({"commander", "dispatcher", "planner", "auditor", "admin"}),
    # Personal data (the caller's phone): staff roles; a responder only on its own task.
    "personal.read": frozenset({"commander", "dispatcher", "planner", "auditor", "admin"}),
    # GIS files for analysts (GET /api/export/{layer}): personal data left out.
    "export": frozenset({"commander", "planner", "auditor", "admin"}),
}


def require(principal: Principal, action: str) -> None:
    """Raise Forbidden unless the principal's role may perform ``action``."""
    if principal.role not in PERMISSIONS[action]:
        raise Forbidden(f"role {principal.role!r} may not {action}")


def require_unit(principal: Principal, unit_id: int) -> None:
    """Responders act only for their own unit; other roles pass."""
    if principal.role == "responder" and principal.unit_id != unit_id:
        raise Forbidden("responders may act only for their own unit")
