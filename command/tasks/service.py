"""Tasks: dispatch units to an incident and follow each task to done.

Task, unit and incident states move together in one transaction: a task going en route
puts its unit en route; the first unit on scene puts the incident on scene; ending an
incident cancels its tasks and frees their units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from command.drills.models import Drill
from command.incidents import calls
from command.incidents.models import Incident
from command.incidents.service import (
    DISPATCHABLE,
    INCIDENTS,
    incident_topics,
    location_of,
    move_incident,
)
from command.tasks.models import ACTIVE_TASK_STATUSES, DispatchDecision, Task
from core import crud, idempotency
from core.changes import record_change
from core.db import flush
from core.errors import Conflict, Forbidden, InvalidTransition, NotFound
from core.query import Page, paginate
from core.security import Principal
from core.types import utcnow
from resources.models import Unit
from resources.service import UNITS, set_unit_status

TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    "assigned": frozenset({"accepted", "en_route", "on_scene", "cancelled"}),
    "accepted": frozenset({"en_route", "on_scene", "cancelled"}),
    "en_route": frozenset({"on_scene", "cancelled"}),
    "on_scene": frozenset({"done", "cancelled"}),
    "done": frozenset(),
    "cancelled": frozenset(),
}
# What the unit does when its task reaches a state.
UNIT_FOR_TASK = {"en_route": "en_route", "on_scene": "on_scene", "done": "returning"}
DISPATCHABLE_UNIT = frozenset({"available", "returning"})
ENDS = frozenset({"cancelled", "closed"})  # incident states that cancel its active tasks
TASK_FIELDS = (
    "id",
    "incident_id",
    "unit_id",
    "status",
    "drill",
    "note",
    "created_by",
    "assigned_at",
    "accepted_at",
    "en_route_at",
    "on_scene_at",
    "done_at",
    "cancelled_at",
    "acknowledged_at",
)


def task_dict(task: Task) -> dict[str, Any]:
    return {f: crud.json_value(getattr(task, f)) for f in TASK_FIELDS}


def task_reads(
    session: Session, tasks: Sequence[Task], *, principal: Principal
) -> list[dict[str, Any]]:
    """Tasks as the API shows them to ``principal``: with the incident's ``caller_phone``
    for staff and for the responders of the task's own unit, null for anyone else. Events
    carry :func:`task_dict` only: one payload serves ``situation`` and ``unit:<id>``."""
    staff = calls.may_read_personal(principal)

    def mine(task: Task) -> bool:
        return staff or (principal.role == "responder" and task.unit_id == principal.unit_id)

    phones = calls.latest_phones(session, [t.incident_id for t in tasks if mine(t)])
    return [
        {**task_dict(t), "caller_phone": phones.get(t.incident_id) if mine(t) else None}
        for t in tasks
    ]


def unit_topic(unit_id: int) -> str:
    return f"unit:{unit_id}"


def _record_task(
    session: Session,
    task: Task,
    action: str,
    *,
    before: dict[str, Any] | None,
    principal: Principal,
    incident: Incident | None = None,
) -> None:
    after = task_dict(task)
    payload = dict(after)
    if incident is not None:
        payload["incident"] = crud.feature(INCIDENTS, incident)
    # A drill task's events go to its drill's topic, never to ``situation``; the unit's own
    # topic reaches only phones logged in as that (stand-in) unit.
    scope = incident_topics(incident) if incident is not None else task_topics(session, task)
    record_change(
        session,
        actor=principal.actor,
        action=action,
        entity="task",
        entity_id=task.id,
        before=before,
        after=after,
        topics=(*scope, unit_topic(task.unit_id)),
        payload=payload,
    )


def task_topics(session: Session, task: Task) -> tuple[str, ...]:
    """The live or drill topic of a task's events (its incident's), without the unit's."""
    incident: Incident = crud.get(session, INCIDENTS, task.incident_id)
    return incident_topics(incident)


def _check_scope(session: Session, incident: Incident, units: Sequence[Unit]) -> None:
    """Drill incidents go only to the stand-in units of their own running drill, live
    incidents only to real units (409 before anything is written)."""
    if incident.drill_id is None:
        standins = [u.callsign for u in units if u.drill_id is not None]
        if standins:
            raise Conflict(
                f"{', '.join(standins)}: drill stand-in units are never sent to a live incident"
            )
        return
    drill = session.get(Drill, incident.drill_id)
    if drill is None or drill.status != "running":
        state = "gone" if drill is None else drill.status
        raise Conflict(f"drill {incident.drill_id} is {state}: its incidents are not dispatched")
    outside = [u.callsign for u in units if u.drill_id != incident.drill_id]
    if outside:
        raise Conflict(
            f"incident {incident.id} is a drill incident (drill {incident.drill_id}): it may go "
            f"only to that drill's stand-in units, not to {', '.join(outside)}; a drill never "
            "pages a real unit"
        )


def dispatch(
    session: Session,
    incident_id: int,
    unit_ids: Sequence[int],
    *,
    principal: Principal,
    note: str | None = None,
    recommended: list[dict[str, Any]] | None = None,
) -> list[Task]:
    """Assign units to an incident: one task each; all or nothing.

    ``recommended`` (what the system proposed, if it could) is kept beside the choice in
    ``dispatch_decision`` for the after-action review.

    Units are locked in id order (no deadlock between two dispatchers); a unit that is
    busy gives 409, and the partial unique index on active tasks backs this up.
    """
    incident: Incident = crud.get(session, INCIDENTS, incident_id, for_update=True)
    if incident.status not in DISPATCHABLE:
        raise InvalidTransition(
            f"incident {incident_id} is {incident.status}; it cannot be dispatched"
        )
    if incident.drill and incident.drill_id is None:
        raise Conflict("drill incidents are run by the drill engine and never page real units")
    location_of(incident)  # never page a unit to an incident nobody has placed yet
    if len(set(unit_ids)) != len(unit_ids):
        raise Conflict("a unit is listed twice")
    units = list(
        session.scalars(
            select(Unit).where(Unit.id.in_(unit_ids)).order_by(Unit.id).with_for_update()
        )
    )
    missing = sorted(set(unit_ids) - {u.id for u in units})
    if missing:
        raise NotFound(f"unit {missing[0]} not found")
    _check_scope(session, incident, units)
    busy = [u.callsign for u in units if u.status not in DISPATCHABLE_UNIT]
    if busy:
        raise Conflict(f"unit {', '.join(busy)} is not available")
    tasks: list[Task] = []
    for unit in units:
        task = Task(
            incident_id=incident.id,
            unit_id=unit.id,
            status="assigned",
            drill=incident.drill,
            note=note,
            created_by=principal.actor,
            assigned_at=utcnow(),
        )
        session.add(task)
        flush(session)  # the partial unique index speaks here if another dispatcher won
        set_unit_status(session, unit, "assigned", principal=principal, by_task=True)
        tasks.append(task)
    if incident.status in ("reported", "verified"):
        move_incident(session, incident, "dispatched", principal=principal, note=note)
    for task in tasks:
        _record_task(
            session, task, "task.assigned", before=None, principal=principal, incident=incident
        )
    proposed = None if recommended is None else {r["unit_id"] for r in recommended}
    session.add(
        DispatchDecision(
            incident_id=incident.id,
            actor=principal.actor,
            recommended=recommended,
            chosen_unit_ids=[u.id for u in units],
            task_ids=[t.id for t in tasks],
            followed=None if proposed is None else proposed == {u.id for u in units},
        )
    )
    flush(session)
    return tasks


def dispatch_once(
    session: Session,
    incident_id: int,
    unit_ids: Sequence[int],
    *,
    principal: Principal,
    note: str | None,
    key: str | None,
    advice: Callable[[], list[dict[str, Any]] | None],
) -> list[dict[str, Any]]:
    """:func:`dispatch`, committed, as the API shows its tasks; with ``key``, a retry
    returns the first answer and creates no second task.

    A dispatcher whose request was cut off (its server died mid-request) cannot tell
    whether it committed; the retry must not page the units twice, nor come back as a
    409 "unit not available" that looks like another dispatcher's doing. ``advice`` (what
    the system recommends, for the record) is asked only when the work is done.
    """

    def work() -> list[dict[str, Any]]:
        created = dispatch(
            session, incident_id, unit_ids, principal=principal, note=note, recommended=advice()
        )
        return task_reads(session, created, principal=principal)

    return idempotency.once(
        session,
        actor=principal.actor,
        key=key,
        digest=idempotency.fingerprint(
            "dispatch", incident_id, {"unit_ids": list(unit_ids), "note": note}
        ),
        work=work,
    )


def get_task(
    session: Session, task_id: int, *, principal: Principal, for_update: bool = False
) -> Task:
    task = session.get(Task, task_id, with_for_update=for_update)
    if task is None:
        raise NotFound(f"task {task_id} not found")
    if principal.role == "responder" and task.unit_id != principal.unit_id:
        raise Forbidden("responders may see only their own unit's tasks")
    return task


def move_task(
    session: Session, task: Task, status: str, *, principal: Principal, note: str | None
) -> Task:
    """Move a task (and with it, its unit and incident); repeating a step does nothing."""
    if status == task.status:
        return task
    if status not in TASK_TRANSITIONS[task.status]:
        raise InvalidTransition(f"task {task.id} cannot go from {task.status} to {status}")
    before = task_dict(task)
    task.status = status
    setattr(task, f"{status}_at", utcnow())
    if note:
        task.note = note
    flush(session)
    unit: Unit = crud.get(session, UNITS, task.unit_id, for_update=True)
    if status == "cancelled":
        target = "returning" if unit.status == "on_scene" else "available"
    else:
        target = UNIT_FOR_TASK.get(status, unit.status)
    set_unit_status(session, unit, target, principal=principal, by_task=True)
    incident: Incident = crud.get(session, INCIDENTS, task.incident_id, for_update=True)
    if status == "on_scene" and incident.status == "dispatched":
        move_incident(session, incident, "on_scene", principal=principal, note=None)
    _record_task(
        session, task, f"task.{status}", before=before, principal=principal, incident=incident
    )
    return task


def change_task_status(
    session: Session, task_id: int, status: str, *, principal: Principal, note: str | None
) -> Task:
    task = get_task(session, task_id, principal=principal)
    if principal.role == "responder" and status == "cancelled":
        raise Forbidden("only a dispatcher can cancel a task")
    # Lock incident, task, unit in that order (as dispatch and incident changes do) and
    # before anything is recorded: recording holds the audit and topic locks to commit,
    # so a row lock taken after it can deadlock with a writer that holds that row.
    crud.get(session, INCIDENTS, task.incident_id, for_update=True)
    session.refresh(task, with_for_update=True)
    crud.get(session, UNITS, task.unit_id, for_update=True)
    return move_task(session, task, status, principal=principal, note=note)


def change_task_status_once(
    session: Session,
    task_id: int,
    status: str,
    *,
    principal: Principal,
    note: str | None,
    key: str | None,
) -> dict[str, Any]:
    """A task step, committed; with ``key``, a retry returns the first answer and has no
    second effect (even if the task has moved on since)."""
    return idempotency.once(
        session,
        actor=principal.actor,
        key=key,
        digest=idempotency.fingerprint("task.status", task_id, {"status": status, "note": note}),
        work=lambda: task_dict(
            change_task_status(session, task_id, status, principal=principal, note=note)
        ),
    )


def active_tasks(session: Session, *, incident_id: int) -> list[Task]:
    stmt = (
        select(Task)
        .where(Task.incident_id == incident_id, Task.status.in_(ACTIVE_TASK_STATUSES))
        .order_by(Task.id)
        .with_for_update()
    )
    return list(session.scalars(stmt))


def change_incident_status(
    session: Session, incident_id: int, status: str, *, principal: Principal, note: str | None
) -> Incident:
    """A person's lifecycle step; ending an incident cancels its active tasks."""
    incident: Incident = crud.get(session, INCIDENTS, incident_id, for_update=True)
    # Every row lock before the first record (see change_task_status): tasks, then units.
    ending = active_tasks(session, incident_id=incident.id) if status in ENDS else []
    for unit_id in sorted({task.unit_id for task in ending}):
        crud.get(session, UNITS, unit_id, for_update=True)
    move_incident(session, incident, status, principal=principal, note=note)
    for task in ending:
        move_task(session, task, "cancelled", principal=principal, note=f"incident {status}")
    return incident


def change_incident_status_once(
    session: Session,
    incident_id: int,
    status: str,
    *,
    principal: Principal,
    note: str | None,
    key: str | None,
    read: Callable[[Incident], dict[str, Any]],
) -> dict[str, Any]:
    """:func:`change_incident_status`, committed, answered as ``read`` shows the incident;
    with ``key``, a retry returns the first answer (not a 409 for a step already taken)."""

    def work() -> dict[str, Any]:
        return read(
            change_incident_status(session, incident_id, status, principal=principal, note=note)
        )

    return idempotency.once(
        session,
        actor=principal.actor,
        key=key,
        digest=idempotency.fingerprint(
            "incident.status", incident_id, {"status": status, "note": note}
        ),
        work=work,
    )


def list_tasks(
    session: Session,
    *,
    principal: Principal,
    unit_id: int | None,
    incident_id: int | None,
    status: list[str] | None,
    limit: int,
    offset: int,
) -> Page[Task]:
    if principal.role == "responder":
        if unit_id is not None and unit_id != principal.unit_id:
            raise Forbidden("responders may see only their own unit's tasks")
        unit_id = principal.unit_id
    stmt = select(Task).order_by(Task.id)
    if unit_id is not None:
        stmt = stmt.where(Task.unit_id == unit_id)
    if incident_id is not None:
        stmt = stmt.where(Task.incident_id == incident_id)
    if status:
        stmt = stmt.where(Task.status.in_(status))
    return paginate(session, stmt, limit=limit, offset=offset)
