"""Incidents: create, change, list, and the lifecycle with a timestamp per step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geoalchemy2 import WKBElement
from shapely import Geometry
from sqlalchemy.orm import Session

from command.incidents.models import Incident
from core import crud
from core.changes import SITUATION
from core.crud import FeatureKind
from core.errors import InvalidInput, InvalidTransition
from core.query import Page
from core.security import Principal
from core.types import utcnow

INCIDENTS = FeatureKind(
    Incident,
    "incident",
    (
        "title",
        "type",
        "severity",
        "status",
        "description",
        "address",
        "people_affected",
        "source",
        "reported_by",
        "drill",
        "alert_id",
        "needs_review",
        "review_reason",
        "reported_at",
        "verified_at",
        "dispatched_at",
        "on_scene_at",
        "resolved_at",
        "closed_at",
        "cancelled_at",
        "created_at",
        "updated_at",
    ),
)

# reported -> verified -> dispatched -> on_scene -> resolved -> closed, or cancelled.
# Dispatch may skip verification: a caller reporting a fire is not kept waiting for it.
INCIDENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "reported": frozenset({"verified", "dispatched", "cancelled"}),
    "verified": frozenset({"dispatched", "cancelled"}),
    "dispatched": frozenset({"on_scene", "cancelled"}),
    "on_scene": frozenset({"resolved", "cancelled"}),
    "resolved": frozenset({"closed"}),
    "closed": frozenset(),
    "cancelled": frozenset(),
}
DISPATCHABLE = frozenset({"reported", "verified", "dispatched", "on_scene"})


def location_of(incident: Incident) -> WKBElement:
    """Where units drive to; an alert's incident with no usable shape has none until a
    person places it, and nothing may be planned or dispatched for it before then."""
    if incident.location is None:
        raise InvalidInput(f"incident {incident.id} has no location yet; set one first")
    return incident.location


def create_incident(
    session: Session, *, props: Mapping[str, Any], geom: Geometry, principal: Principal
) -> Incident:
    data = {**props, "status": "reported", "source": props.get("source", "manual")}
    if not data.get("reported_by"):
        data["reported_by"] = principal.actor
    incident: Incident = crud.create(session, INCIDENTS, props=data, geom=geom, principal=principal)
    return incident


def update_incident(
    session: Session,
    incident_id: int,
    *,
    changes: Mapping[str, Any],
    geom: Geometry | None,
    principal: Principal,
) -> Incident:
    incident: Incident = crud.get(session, INCIDENTS, incident_id, for_update=True)
    if incident.status in ("closed", "cancelled"):
        raise InvalidTransition(f"incident {incident_id} is {incident.status}; it cannot change")
    if geom is not None and incident.geom is None and incident.needs_review:
        changes = {**changes, "needs_review": False, "review_reason": None}  # located now
    updated: Incident = crud.update(
        session, INCIDENTS, incident_id, changes=changes, geom=geom, principal=principal
    )
    return updated


def move_incident(
    session: Session,
    incident: Incident,
    status: str,
    *,
    principal: Principal,
    note: str | None,
    topics: tuple[str, ...] = (SITUATION,),
) -> Incident:
    """Move a (locked) incident along its lifecycle, stamping ``<status>_at``."""
    if status != incident.status:
        crud.update_many_locked(
            session, INCIDENTS, [move_change(incident, status, note=note)], principal=principal,
            topics=topics,
        )  # fmt: skip
    return incident


def move_change(incident: Incident, status: str, *, note: str | None) -> crud.Change:
    """The change that moves a (locked) incident to ``status`` (for
    :func:`core.crud.update_many_locked`); InvalidTransition if its lifecycle forbids it."""
    if status not in INCIDENT_TRANSITIONS[incident.status]:
        raise InvalidTransition(
            f"incident {incident.id} cannot go from {incident.status} to {status}"
        )
    return crud.Change(
        incident, {"status": status, f"{status}_at": utcnow()}, action=f"incident.{status}",
        note=note,
    )  # fmt: skip


def list_incidents(
    session: Session,
    *,
    bbox: tuple[float, float, float, float] | None,
    status: list[str] | None,
    type: str | None,
    drill: bool | None,
    limit: int,
    offset: int,
) -> Page[Incident]:
    extra = [] if not status else [Incident.status.in_(status)]
    return crud.list_page(
        session,
        INCIDENTS,
        bbox=bbox,
        filters={"type": type, "drill": drill},
        limit=limit,
        offset=offset,
        extra=extra,
    )
