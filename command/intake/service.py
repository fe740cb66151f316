"""Alert intake: a parsed CAP alert becomes stored rows, incidents and warning zones.

Rules (docs/alerts.md says the same for operators):

* **Duplicates.** The same (sender, identifier, sent) again creates nothing and gets the
  first answer back (``duplicate: true``); concurrent duplicates are serialised by the
  unique key, so exactly one does the work.
* **Threads.** An alert that references alerts we hold joins their thread (the first
  alert's id). The incidents and zones of a thread are what later Updates change and
  Cancels end. References to alerts we never received are warned about; an Update of an
  unknown alert is taken as a new alert, so a missed first message never hides a warning.
* **Alert** (and an Update of nothing we hold): one incident per distinct area of the
  primary-language info blocks (Chinese if present, else the first block's language; the
  others are translations and only stored). An area with a polygon or circle also becomes
  a warning zone for its time window; an area with no usable shape gives an incident with
  no location, flagged ``needs_review`` for a person to place it.
* **Update**: the thread's open incidents and active zones are changed in place, paired by
  position with the update's areas; new areas add incidents and zones; zones no longer
  named end, incidents no longer named are flagged for review (never silently closed).
* **Order**: messages of one thread are applied one at a time (the thread's first alert
  row is locked); one sent before a message already applied is stored as ``stale`` and
  changes nothing, so a late Update cannot revive what a Cancel ended, nor a late
  original Alert duplicate what its Update already created.
* **Cancel**: the thread's active zones end; its incidents still waiting for units are
  cancelled; those with units out are flagged for a person to stand them down.
* **Expired**: an info block already expired when it arrives (or with no ``expires`` and
  sent over 24 h before) creates nothing live: it is stored and warned about. Zones end
  when their ``expires`` passes (``end_expired_zones``, run every housekeeping round).
* **Exercise / Test** alerts are drill data: marked ``drill``, published only to the
  ``drill:<thread>`` topic, and a drill incident can never be dispatched to a real unit.
  While a tabletop drill runs, an Exercise alert's incidents are injects of that drill
  (the newest running one): ``drill_id`` set, published only to ``drill:<drill id>``,
  dispatched only to its stand-in units.
  **System**, **Draft**, **Ack** and **Error** messages are stored and change nothing.
* A zone closes its roads to routing when the alert says so with a parameter
  ``blocks_roads`` (or ``roadClosure``, ``impassable``, ``道路封闭``) set to true/yes/1/是;
  staff may also mark any zone later (``PATCH /api/warning-zones/{id}``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from shapely import Geometry
from sqlalchemy import Connection, Table, select, text, tuple_
from sqlalchemy.orm import Session

from command.drills.models import Drill
from command.incidents.service import INCIDENTS
from command.intake.cap import ParsedAlert
from command.intake.mapping import (
    _LEVELS,
    Target,
    blocks_roads,
    incident_severity,
    primary_infos,
    targets,
)
from command.intake.models import Alert, AlertArea, AlertInfo
from command.intake.thread import Outcome, Stored, ThreadChanges
from command.zones.service import ZONES
from core import bulk, crud
from core.changes import SITUATION, record_change
from core.security import Principal
from core.types import utcnow

DRILL_STATUSES = ("Exercise", "Test")
INERT_STATUSES = ("System", "Draft")
INERT_TYPES = ("Ack", "Error")
# Intake writes these with Core statements (see intake()).
ALERT_TABLE = cast(Table, Alert.__table__)
INFO_TABLE = cast(Table, AlertInfo.__table__)
AREA_TABLE = cast(Table, AlertArea.__table__)


def intake(
    session: Session,
    alert: ParsedAlert,
    *,
    raw: bytes,
    content_type: str,
    principal: Principal,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store ``alert`` and apply it; returns (the answer, created). The caller commits.

    A duplicate (same sender, identifier, sent) returns the first answer and False."""
    now = now or utcnow()
    drill = alert.status in DRILL_STATUSES
    # Core statements on the session's connection, not ORM objects: intake is the system's
    # busiest writer, and the unit of work costs more than these rows.
    conn = session.connection()
    stored = bulk.insert(
        conn, ALERT_TABLE, [_alert_row(Posted(alert, raw, content_type, principal))],
        returning=("sent",), on_conflict="uq_alert_key",
    )  # fmt: skip
    inserted = stored[0] if stored else None
    if inserted is None:  # already received (or received concurrently and now committed)
        first = conn.execute(
            select(Alert.result).where(
                Alert.sender == alert.sender,
                Alert.identifier == alert.identifier,
                Alert.sent == alert.sent,
            )
        ).scalar_one()
        return {**first, "duplicate": True}, False
    row = Stored(inserted.id, alert.sender, alert.identifier, inserted.sent, alert.status,
                 alert.msg_type, drill)  # fmt: skip
    warnings = [w.as_dict() for w in alert.warnings]
    _store_parts(conn, [(row.id, alert)])
    referenced = _referenced(session, alert)
    missing = len(alert.references) - len(referenced)
    if missing:
        warnings.append(
            {"field": "alert.references",
             "message": f"{missing} referenced alert(s) never received here"}
        )  # fmt: skip
    threads = sorted({r.thread_id or r.id for r in referenced})
    later = _superseded_by(session, row, alert, threads)
    if later is not None:
        threads = threads or [later.thread_id or later.id]
    row.thread_id = threads[0] if threads else row.id
    out = Outcome(row.id, row.thread_id, "stored", warnings=warnings)
    topics = (f"drill:{row.thread_id}",) if drill else (SITUATION,)
    tabletop = running_tabletop(session) if alert.status == "Exercise" else None
    if tabletop is not None:  # an inject of the running tabletop drill, on its topic only
        topics = (f"drill:{tabletop}",)
    parts = (session, row, principal, topics, drill, blocks_roads(alert), now, out)
    live = (
        ThreadChanges(*parts) if tabletop is None else DrillThreadChanges(*parts, drill_id=tabletop)
    )
    if later is not None:
        warnings.append(
            {"field": "alert.sent",
             "message": f"older than {later.msg_type} {later.identifier} ({later.sent.isoformat()})"
                        " already applied: stored, nothing changed"}
        )  # fmt: skip
        out.action = "stale"
    elif alert.status in INERT_STATUSES or alert.msg_type in INERT_TYPES:
        warnings.append(
            {"field": "alert.status" if alert.status in INERT_STATUSES else "alert.msgType",
             "message": f"a {alert.status} {alert.msg_type} message changes nothing"}
        )  # fmt: skip
    elif alert.msg_type == "Cancel":
        if threads:
            live.cancel(threads)
        else:
            warnings.append({"field": "alert.references", "message": "nothing here to cancel"})
    else:
        found, expired = targets(alert, now)
        warnings.extend(expired)
        if alert.msg_type == "Update" and threads:
            live.update(threads, found)
        else:
            if alert.msg_type == "Update":
                warnings.append(
                    {"field": "alert.msgType",
                     "message": "an Update of alerts never received here: taken as a new alert"}
                )  # fmt: skip
            live.create(found)
    if out.action == "stored" and (out.incident_ids or out.zone_ids):
        out.action = "created"
    result = _answer(row, alert, out)
    bulk.update(
        conn, ALERT_TABLE,
        [{"id": row.id, "thread_id": row.thread_id, "warnings": warnings, "result": result}],
    )  # fmt: skip
    record_change(
        session,
        actor=principal.actor,
        action="alert.received",
        entity="alert",
        entity_id=row.id,
        before=None,
        after=result,
        topics=topics,
    )
    return {**result, "duplicate": False}, True


def running_tabletop(session: Session) -> int | None:
    """The id of the running tabletop drill (the newest, if several run), else None."""
    stmt = (
        select(Drill.id)
        .where(Drill.mode == "tabletop", Drill.status == "running")
        .order_by(Drill.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


class DrillThreadChanges(ThreadChanges):
    """An Exercise alert's thread while a tabletop drill runs: its incidents belong to it."""

    def __init__(self, *args: Any, drill_id: int) -> None:
        super().__init__(*args)
        self.drill_id = drill_id

    def _incident_props(self, t: Target) -> dict[str, Any]:
        return {**super()._incident_props(t), "drill_id": self.drill_id}


@dataclass(frozen=True)
class Posted:
    """An alert as posted: parsed, its raw bytes, and who posted it."""

    alert: ParsedAlert
    raw: bytes
    content_type: str
    principal: Principal


def _alert_row(p: Posted) -> dict[str, Any]:
    a = p.alert
    return dict(
        identifier=a.identifier, sender=a.sender, sent=a.sent, status=a.status,
        msg_type=a.msg_type, scope=a.scope, version=a.version, source=a.source, note=a.note,
        codes=a.codes, references=a.references_text,
        referenced=[_ref(r.sender, r.identifier, r.sent) for r in a.references],
        drill=a.status in DRILL_STATUSES, raw=p.raw, content_type=p.content_type[:60],
        received_by=p.principal.actor[:160], warnings=[], result={},
    )  # fmt: skip


def _key(alert: ParsedAlert) -> tuple[str, str, datetime]:
    return alert.sender, alert.identifier, alert.sent


def intake_many(
    session: Session, posted: Sequence[Posted], now: datetime | None = None
) -> list[tuple[dict[str, Any], bool]]:
    """Take in several alerts, in arrival order, with the same outcome as :func:`intake` on
    each in turn; the caller commits. Returns each one's (answer, created).

    The batch's *plain* alerts (an Actual Alert that references nothing, whose key neither
    an earlier message of the batch has nor references) depend on nothing else in the batch,
    and nothing earlier in it on them: they are taken in together, a few statements for all
    of them instead of a few each. The rest follow one by one, in arrival order."""
    now = now or utcnow()
    seen: set[tuple[str, str, datetime]] = set()
    plain: list[int] = []
    for n, p in enumerate(posted):
        a = p.alert
        if (
            a.status == "Actual" and a.msg_type == "Alert" and not a.references
            and _key(a) not in seen
        ):  # fmt: skip
            plain.append(n)
        seen.add(_key(a))
        seen.update((r.sender, r.identifier, r.sent) for r in a.references)
    results: list[tuple[dict[str, Any], bool] | None] = [None] * len(posted)
    by_poster: dict[str, list[int]] = {}
    for n in plain:
        by_poster.setdefault(posted[n].principal.actor, []).append(n)
    for group in by_poster.values():
        taken = _intake_plain(session, [posted[n] for n in group], now)
        for n, result in zip(group, taken, strict=True):
            results[n] = result
    out = []
    for p, result in zip(posted, results, strict=True):
        if result is None:  # not plain, or referenced by an alert already here: one by one
            result = intake(
                session, p.alert, raw=p.raw, content_type=p.content_type,
                principal=p.principal, now=now,
            )  # fmt: skip
        out.append(result)
    return out


def _intake_plain(
    session: Session, posted: Sequence[Posted], now: datetime
) -> list[tuple[dict[str, Any], bool] | None]:
    """Plain alerts of one poster, set-based (see :func:`intake_many`); None for those a
    stored alert already references (they came late: :func:`intake` stores them stale)."""
    conn = session.connection()
    keys = json.dumps([_ref(*_key(p.alert)) for p in posted])
    named = {int(n) - 1 for n in conn.scalars(_NAMED, {"keys": keys})}
    todo = [p for n, p in enumerate(posted) if n not in named]
    stored: dict[tuple[str, str, datetime], Stored] = {}
    if todo:
        for r in bulk.insert(
            conn, ALERT_TABLE, [_alert_row(p) for p in todo],
            returning=("sender", "identifier", "sent"), on_conflict="uq_alert_key",
        ):  # fmt: skip
            stored[(r.sender, r.identifier, r.sent)] = Stored(
                r.id, r.sender, r.identifier, r.sent, "Actual", "Alert", False, thread_id=r.id
            )
    new = [p for p in todo if _key(p.alert) in stored]
    firsts: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    if len(new) < len(todo):  # already received (or concurrently, and now committed)
        again = [_key(p.alert) for p in todo if _key(p.alert) not in stored]
        for r in conn.execute(
            select(Alert.sender, Alert.identifier, Alert.sent, Alert.result).where(
                tuple_(Alert.sender, Alert.identifier, Alert.sent).in_(again)
            )
        ):
            firsts[(r.sender, r.identifier, r.sent)] = r.result
    _store_parts(conn, [(stored[_key(p.alert)].id, p.alert) for p in new])
    lives: list[tuple[Posted, Stored, ThreadChanges, list[Target]]] = []
    incidents: list[tuple[dict[str, Any], Geometry | None]] = []
    zones: list[tuple[dict[str, Any], Geometry | None]] = []
    for p in new:
        row = stored[_key(p.alert)]
        out = Outcome(row.id, row.id, "stored", warnings=[w.as_dict() for w in p.alert.warnings])
        live = ThreadChanges(
            session, row, p.principal, (SITUATION,), False, blocks_roads(p.alert), now, out
        )
        found, expired = targets(p.alert, now)
        out.warnings.extend(expired)
        incidents += live.incident_items(found)
        zones += live.zone_items(found)
        lives.append((p, row, live, found))
    principal = posted[0].principal  # one poster (see intake_many)
    incident_ids = iter(crud.create_many(session, INCIDENTS, incidents, principal=principal))
    zone_ids = iter(crud.create_many(session, ZONES, zones, principal=principal))
    answers: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    for p, row, live, found in lives:
        out = live.out
        out.incident_ids = [next(incident_ids) for _ in found]
        out.zone_ids = [next(zone_ids) for t in found if t.is_zone]
        if out.incident_ids or out.zone_ids:
            out.action = "created"
        answers[_key(p.alert)] = _answer(row, p.alert, out)
    if answers:
        bulk.update(
            conn, ALERT_TABLE,
            [{"id": a["alert_id"], "thread_id": a["alert_id"], "warnings": a["warnings"],
              "result": a} for a in answers.values()],
        )  # fmt: skip
    results: list[tuple[dict[str, Any], bool] | None] = []
    for p in posted:
        key = _key(p.alert)
        if key in answers:
            record_change(
                session, actor=p.principal.actor, action="alert.received", entity="alert",
                entity_id=answers[key]["alert_id"], before=None, after=answers[key],
                topics=(SITUATION,),
            )  # fmt: skip
            results.append(({**answers[key], "duplicate": False}, True))
        elif key in firsts:
            results.append(({**firsts[key], "duplicate": True}, False))
        else:
            results.append(None)
    return results


# Which of these keys a stored alert references: one constant statement whatever their
# number (prepared once per connection), each key looked up in the GIN index on
# ``referenced`` (an OR of containments, one per key, was a new statement for every batch
# size and, planned afresh, often a whole-table scan).
_NAMED = text(
    "SELECT k.n FROM jsonb_array_elements(CAST(:keys AS jsonb)) WITH ORDINALITY AS k(key, n) "
    "WHERE EXISTS (SELECT 1 FROM alert a WHERE a.referenced @> jsonb_build_array(k.key))"
)


def _ref(sender: str, identifier: str, sent: datetime) -> dict[str, str]:
    return {"sender": sender, "identifier": identifier, "sent": _utc(sent)}


def _answer(row: Stored, alert: ParsedAlert, out: Outcome) -> dict[str, Any]:
    infos = primary_infos(alert.infos)
    first = infos[:1]
    levels = [_LEVELS.index(incident_severity(i.severity, i.urgency, i.certainty)) for i in infos]
    return {
        "alert_id": row.id,
        "thread_id": row.thread_id,
        "sender": row.sender,
        "identifier": row.identifier,
        "sent": row.sent.isoformat(),
        "status": row.status,
        "msg_type": row.msg_type,
        "drill": row.drill,
        "event": first[0].event if first else None,
        "headline": first[0].headline if first else None,
        # Our level (as its incidents get it), the highest of its info blocks; None if none.
        "severity": _LEVELS[max(levels)] if levels else None,
        "action": out.action,
        "incident_ids": out.incident_ids,
        "zone_ids": out.zone_ids,
        "updated_incident_ids": out.updated_incident_ids,
        "updated_zone_ids": out.updated_zone_ids,
        "cancelled_incident_ids": out.cancelled_incident_ids,
        "ended_zone_ids": out.ended_zone_ids,
        "review_incident_ids": out.review_incident_ids,
        "warnings": out.warnings,
    }


def _store_parts(conn: Connection, stored: Sequence[tuple[int, ParsedAlert]]) -> None:
    """The alerts' info blocks and areas: one INSERT for each kind, whatever their number."""
    infos = [
        (alert_id, position, info)
        for alert_id, alert in stored
        for position, info in enumerate(alert.infos, start=1)
    ]
    if not infos:
        return
    info_ids = [
        r.id
        for r in bulk.insert(
            conn, INFO_TABLE,
            [
                dict(
                    alert_id=alert_id, position=position, language=info.language[:40],
                    categories=info.categories, event=info.event,
                    response_types=info.response_types, urgency=info.urgency,
                    severity=info.severity, certainty=info.certainty, audience=info.audience,
                    event_codes=info.event_codes, effective=info.effective, onset=info.onset,
                    expires=info.expires, sender_name=info.sender_name,
                    headline=info.headline, description=info.description,
                    instruction=info.instruction, web=info.web, contact=info.contact,
                    parameters=info.parameters, resources=info.resources,
                )
                for alert_id, position, info in infos
            ],
            returning=("id",),
        )
    ]  # fmt: skip
    areas = [
        dict(
            alert_id=alert_id, info_id=info_id, position=k, area_desc=area.desc,
            polygons=area.polygons, circles=area.circles, geocodes=area.geocodes,
            altitude=area.altitude, ceiling=area.ceiling,
            geom=area.shape,
        )
        for info_id, (alert_id, _position, info) in zip(info_ids, infos, strict=True)
        for k, area in enumerate(info.areas, start=1)
    ]  # fmt: skip
    bulk.insert(conn, AREA_TABLE, areas)


# What intake reads of other alerts of a thread (columns, not ORM objects: an alert row
# carries its raw message and its answer, read for nothing here).
_THREAD_COLUMNS = (Alert.id, Alert.thread_id, Alert.msg_type, Alert.identifier, Alert.sent)


def _superseded_by(
    session: Session, row: Stored, alert: ParsedAlert, threads: list[int]
) -> Any | None:
    """A message of this thread sent after ``alert`` and already applied, if any: then
    ``alert`` arrived out of order and must not undo it (CAP: the later message wins).

    The thread's first alert is locked first, so two messages of one thread are applied
    one after the other, each seeing the other's committed effects."""
    if threads:
        session.execute(select(Alert.id).where(Alert.id.in_(threads)).with_for_update())
        return session.execute(
            select(*_THREAD_COLUMNS)
            .where(
                Alert.thread_id.in_(threads),
                Alert.id != row.id,
                Alert.msg_type.in_(("Alert", "Update", "Cancel")),
                Alert.sent > alert.sent,
            )
            .order_by(Alert.sent.desc())
            .limit(1)
        ).first()
    # Nothing referenced: has a later message already named this one (it came first)?
    key = [_ref(*_key(alert))]
    # No LIMIT: with one, the prepared statement's generic plan expects an early match and
    # scans the whole table; without, it takes the GIN index (almost always 0 rows).
    return session.execute(
        select(*_THREAD_COLUMNS)
        .where(Alert.referenced.contains(key), Alert.id != row.id)
        .order_by(Alert.id)
    ).first()


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _referenced(session: Session, alert: ParsedAlert) -> list[Any]:
    if not alert.references:
        return []
    keys = [(r.sender, r.identifier, r.sent) for r in alert.references]
    return list(
        session.execute(
            select(*_THREAD_COLUMNS).where(
                tuple_(Alert.sender, Alert.identifier, Alert.sent).in_(keys)
            )
        )
    )
