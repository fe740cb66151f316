"""Incidents: create, change, list, and the lifecycle with a timestamp per step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from geoalchemy2 import Geography, WKBElement
from shapely import Geometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from command.incidents import calls
from command.incidents.models import Incident, IncidentCall
from command.tasks.models import Task
from core import crud, idempotency
from core.changes import SITUATION
from core.crud import FeatureKind
from core.errors import Forbidden, InvalidInput, InvalidTransition
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
        "drill_id",
        "calls",
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
OPEN = DISPATCHABLE  # what a second call may be about (possible duplicates)
ENDED = frozenset({"closed", "cancelled"})  # no call is attached to these


def drill_topic(drill_id: int) -> str:
    return f"drill:{drill_id}"


def topics_of(drill_id: int | None) -> tuple[str, ...]:
    """Where a row's events go: a tabletop drill's rows (``drill_id`` set) to that drill's
    topic only, never to the live ``situation``."""
    return (SITUATION,) if drill_id is None else (drill_topic(drill_id),)


def incident_topics(incident: Incident) -> tuple[str, ...]:
    return topics_of(incident.drill_id)


def incident_features(
    session: Session, incidents: Sequence[Incident], *, personal: bool
) -> list[dict[str, Any]]:
    """Incidents as GeoJSON Features for a reader: the recorded properties plus
    ``caller_phone``, the latest call's phone when ``personal`` and null otherwise.

    Every read of incidents goes through here, so the choice is explicit at each call:
    ``personal`` is True only for a reader allowed the phone (staff, see
    :func:`calls.may_read_personal`; a responder on its own task). Exports (a later issue)
    pass False unless the user asked for personal data. Events and the audit chain never
    use this: they record :data:`INCIDENTS`'s fields, which hold no phone."""
    phones = calls.latest_phones(session, [i.id for i in incidents]) if personal else {}
    out = []
    for incident in incidents:
        feature = crud.feature(INCIDENTS, incident)
        feature["properties"]["caller_phone"] = phones.get(incident.id)
        out.append(feature)
    return out


def incident_feature(session: Session, incident: Incident, *, personal: bool) -> dict[str, Any]:
    """One incident as :func:`incident_features` shows it."""
    return incident_features(session, [incident], personal=personal)[0]


def location_of(incident: Incident) -> WKBElement:
    """Where units drive to; an alert's incident with no usable shape has none until a
    person places it, and nothing may be planned or dispatched for it before then."""
    if incident.location is None:
        raise InvalidInput(f"incident {incident.id} has no location yet; set one first")
    return incident.location


def get_incident(session: Session, incident_id: int) -> Incident:
    incident: Incident = crud.get(session, INCIDENTS, incident_id)
    return incident


def create_incident(
    session: Session, *, props: Mapping[str, Any], geom: Geometry, principal: Principal
) -> Incident:
    """Report an incident; a manual one (a call taken) also records its first call,
    with the caller's phone if given."""
    data = {**props, "status": "reported", "source": props.get("source", "manual")}
    phone = data.pop("caller_phone", None)
    if not data.get("reported_by"):
        data["reported_by"] = principal.actor
    manual = data["source"] == "manual"
    data["calls"] = 1 if manual else 0
    incident: Incident = crud.create(
        session, INCIDENTS, props=data, geom=geom, principal=principal,
        topics=topics_of(data.get("drill_id")),
    )  # fmt: skip
    if manual:
        calls.record_call(
            session,
            incident,
            caller_phone=phone,
            description=data.get("description"),
            people_affected=data.get("people_affected"),
            principal=principal,
        )
    return incident


def create_incident_once(
    session: Session,
    *,
    props: Mapping[str, Any],
    geom: Geometry,
    principal: Principal,
    key: str | None,
) -> dict[str, Any]:
    """:func:`create_incident`, committed, as the Feature ``principal`` may read; with
    ``key``, a retry returns the first answer and reports no second incident (a call-taker
    whose request was cut off by a dying server sends it again)."""

    def work() -> dict[str, Any]:
        incident = create_incident(session, props=props, geom=geom, principal=principal)
        return incident_feature(session, incident, personal=calls.may_read_personal(principal))

    return idempotency.once(
        session,
        actor=principal.actor,
        key=key,
        digest=idempotency.fingerprint("incident.create", dict(props), geom.wkt),
        work=work,
    )


def attach_call_once(
    session: Session,
    incident_id: int,
    *,
    caller_phone: str | None,
    description: str | None,
    people_affected: int | None,
    principal: Principal,
    key: str | None,
) -> dict[str, Any]:
    """:func:`attach_call`, committed, as the API shows the call; with ``key``, a retry
    returns the first answer and counts no second call."""

    def work() -> dict[str, Any]:
        call = attach_call(
            session,
            incident_id,
            caller_phone=caller_phone,
            description=description,
            people_affected=people_affected,
            principal=principal,
        )
        return calls.call_dict(call)

    asked = {"phone": caller_phone, "text": description, "people": people_affected}
    return idempotency.once(
        session,
        actor=principal.actor,
        key=key,
        digest=idempotency.fingerprint("incident.call", incident_id, asked),
        work=work,
    )


def attach_call(
    session: Session,
    incident_id: int,
    *,
    caller_phone: str | None,
    description: str | None,
    people_affected: int | None,
    principal: Principal,
) -> IncidentCall:
    """Another call about an incident: recorded, the incident's ``calls`` raised by one
    (and its ``people_affected`` to the caller's count if that is higher), one
    ``incident.updated`` event. Nothing is dispatched: a second call about the same fire
    must not send a second set of engines."""
    incident: Incident = crud.get(session, INCIDENTS, incident_id, for_update=True)
    if incident.status in ENDED:
        raise InvalidTransition(
            f"incident {incident_id} is {incident.status}; a new call needs a new incident"
        )
    call = calls.record_call(
        session,
        incident,
        caller_phone=caller_phone,
        description=description,
        people_affected=people_affected,
        principal=principal,
    )
    changes: dict[str, Any] = {"calls": incident.calls + 1}
    if people_affected is not None and (
        incident.people_affected is None or people_affected > incident.people_affected
    ):
        changes["people_affected"] = people_affected
    crud.update_locked(
        session, INCIDENTS, incident, changes=changes, geom=None, principal=principal,
        topics=incident_topics(incident),
    )  # fmt: skip
    return call


def list_calls(session: Session, incident_id: int, *, principal: Principal) -> list[IncidentCall]:
    """An incident's calls, newest first: for staff, and for a responder whose unit has a
    task on the incident."""
    crud.get(session, INCIDENTS, incident_id)  # 404 first
    if not calls.may_read_personal(principal) and not _on_its_task(session, incident_id, principal):
        raise Forbidden("callers' details are for staff and the units sent to the incident")
    return calls.calls_of(session, incident_id)


def _on_its_task(session: Session, incident_id: int, principal: Principal) -> bool:
    if principal.role != "responder" or principal.unit_id is None:
        return False
    stmt = select(Task.id).where(Task.incident_id == incident_id, Task.unit_id == principal.unit_id)
    return session.execute(stmt.limit(1)).first() is not None


def find_duplicates(
    session: Session,
    *,
    type: str,
    lon: float,
    lat: float,
    radius_m: float,
    window_s: int,
    drill: bool,
    limit: int = 50,
) -> list[tuple[Incident, float]]:
    """Open incidents of ``type`` within ``radius_m`` metres (geodesic, WGS-84
    ``lon``/``lat``) of a point, reported in the last ``window_s`` seconds: each with its
    distance in metres, nearest first."""
    here = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326).cast(Geography)
    where = Incident.location.cast(Geography)
    distance = func.ST_Distance(where, here).label("distance_m")
    stmt = (
        select(Incident, distance)
        .where(
            Incident.type == type,
            Incident.status.in_(OPEN),
            Incident.drill.is_(drill),
            Incident.reported_at >= utcnow() - timedelta(seconds=window_s),
            func.ST_DWithin(where, here, radius_m),
        )
        .order_by(distance, Incident.id)
        .limit(limit)
    )
    return [(incident, float(d)) for incident, d in session.execute(stmt)]


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
        session, INCIDENTS, incident_id, changes=changes, geom=geom, principal=principal,
        topics=incident_topics(incident),
    )  # fmt: skip
    return updated


def move_incident(
    session: Session,
    incident: Incident,
    status: str,
    *,
    principal: Principal,
    note: str | None,
    topics: tuple[str, ...] | None = None,
) -> Incident:
    """Move a (locked) incident along its lifecycle, stamping ``<status>_at``; its events
    go to ``topics`` (default: :func:`incident_topics`)."""
    if status != incident.status:
        crud.update_many_locked(
            session, INCIDENTS, [move_change(incident, status, note=note)], principal=principal,
            topics=incident_topics(incident) if topics is None else topics,
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
    if drill is None:  # a tabletop drill's incidents are its own scope's (as on the live map)
        extra.append(Incident.drill_id.is_(None))
    return crud.list_page(
        session,
        INCIDENTS,
        bbox=bbox,
        filters={"type": type, "drill": drill},
        limit=limit,
        offset=offset,
        extra=extra,
    )
