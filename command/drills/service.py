"""Simulation drills: submit a scenario, run it in the background, read its status, report
and replay, and delete a drill with everything it made.

A run goes to the app's :class:`DrillRunner`: one worker thread (a run uses one of the
machine's cores, and the server's road engine in process), at most ``max_waiting`` drills
queued or running; more is 503 Busy. The worker moves the drill row queued -> running ->
finished | failed, writing the progress at most every ``PROGRESS_EVERY_S``. Each move is
audited and published on the drill's own topic ``drill:<id>``, never on ``situation``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, defer, sessionmaker

from command.auth.models import User
from command.drills import fleet as fleets
from command.drills.models import Drill
from command.drills.schemas import InvalidScenario
from command.incidents.models import Incident, IncidentCall
from command.planning.models import SupplyRequest
from command.tasks.models import DispatchDecision, Task
from core.changes import record_change
from core.errors import Busy, Conflict, NotFound
from core.outbox import Event, TopicSeq
from core.security import Principal
from core.types import utcnow
from drills import scenario as sc
from drills.world import Fleet
from realtime.store import TopicAck
from resources.models import Unit

log = logging.getLogger("emergency.drills")

PROGRESS_EVERY_S = 0.5
# A run "running" whose row has not moved for this long lost its server (restarted): it
# may be deleted (a run writes its progress every few seconds; a tabletop exercise, which
# may sit still for hours, is stopped first).
STALE_AFTER = timedelta(minutes=15)
RUNNER_ACTOR = "system:drill-runner"
SHUTDOWN_WAIT_S = 10.0  # at the app's end, for the running drill to record that it stopped


# --- rows ------------------------------------------------------------------------------------


def links(drill_id: int) -> dict[str, str]:
    base = f"/api/drills/{drill_id}"
    return {"self": base, "report": f"{base}/report", "replay": f"{base}/replay"}


def drill_dict(drill: Drill, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        f: getattr(drill, f)
        for f in ("id", "name", "mode", "status", "progress", "error", "created_by")
    }
    for f in ("created_at", "updated_at", "started_at", "finished_at"):
        value = getattr(drill, f)
        out[f] = None if value is None else value.isoformat()
    out["links"] = links(drill.id)
    if detail:
        out["scenario"] = drill.scenario
        out["policies"] = list(drill.scenario.get("policies", []))
    return out


def create(session: Session, *, scenario: sc.Scenario, principal: Principal) -> Drill:
    """A queued run-mode drill for ``scenario`` (its public form: no paths), audited."""
    drill = Drill(
        name=scenario.name,
        mode="run",
        status="queued",
        progress=0.0,
        scenario=sc.public(scenario),
        created_by=principal.actor,
    )
    session.add(drill)
    session.flush()
    record_change(
        session,
        actor=principal.actor,
        action="drill.created",
        entity="drill",
        entity_id=drill.id,
        before=None,
        after=drill_dict(drill),
        topics=(f"drill:{drill.id}",),
    )
    return drill


def get(session: Session, drill_id: int, *, lock: bool = False) -> Drill:
    stmt = select(Drill).where(Drill.id == drill_id)
    drill = session.scalar(stmt.with_for_update() if lock else stmt)
    if drill is None:
        raise NotFound(f"drill {drill_id} not found")
    return drill


def page(session: Session, *, limit: int, offset: int) -> dict[str, Any]:
    """Drills, newest first, without their scenarios, reports and replays."""
    stmt = (
        select(Drill)
        .options(defer(Drill.scenario), defer(Drill.report), defer(Drill.replay))
        .order_by(Drill.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = list(session.scalars(stmt))
    total = session.scalar(select(func.count()).select_from(Drill)) or 0
    return {"drills": [drill_dict(d) for d in rows], "total": total}


def _not_ready(drill: Drill, what: str) -> Conflict:
    if drill.status == "failed":
        return Conflict(f"drill {drill.id} failed, so it has no {what}: {drill.error}")
    if drill.status in ("queued", "running"):
        return Conflict(
            f"drill {drill.id} is {drill.status} ({drill.progress:.0%} done): its {what} "
            "comes when it finishes"
        )
    return Conflict(f"drill {drill.id} ({drill.mode}, {drill.status}) has no {what}")


def report(session: Session, drill_id: int) -> dict[str, Any]:
    """report.json of a finished drill; Conflict (409) before that."""
    drill = get(session, drill_id)
    if drill.report is None:
        raise _not_ready(drill, "report")
    return drill.report


def replay(session: Session, drill_id: int, policy: str | None) -> dict[str, Any]:
    """The replay timeline of ``policy`` (default: the scenario's first that has one)."""
    drill = get(session, drill_id)
    if drill.mode == "tabletop":
        raise Conflict(
            f"drill {drill_id} is a tabletop exercise: its incidents are in the drill scope "
            f"(/screen?drill={drill_id}), it has no simulated timeline to replay"
        )
    if not drill.replay:
        raise _not_ready(drill, "replay")
    known = list(drill.replay)
    order = [p for p in drill.scenario.get("policies", []) if p in drill.replay] or known
    if policy is None:
        policy = order[0]
    if policy not in drill.replay:
        raise NotFound(f"drill {drill_id} has no replay of policy {policy!r}; known: {order}")
    timeline: dict[str, Any] = drill.replay[policy]
    return timeline


# --- delete ----------------------------------------------------------------------------------


def remove(session: Session, drill_id: int, *, principal: Principal) -> dict[str, int]:
    """Delete the drill, its incidents and their calls, tasks, dispatch decisions and
    supply requests, its stand-in units, and the events of its topics (``drill:<id>`` and
    the stand-ins' ``unit:<id>``). Its audit rows stay (append-only); the deletion itself
    is audited, naming the drill. Conflict while it runs, or while a user is bound to one
    of its stand-ins."""
    drill = get(session, drill_id, lock=True)
    lost = drill.mode == "run" and utcnow() - drill.updated_at >= STALE_AFTER
    if drill.status == "running" and not lost:
        if drill.mode == "tabletop":
            raise Conflict(f"tabletop drill {drill_id} is running: stop it first "
                           f"(POST /api/drills/{drill_id}/stop)")  # fmt: skip
        raise Conflict(f"drill {drill_id} is running ({drill.progress:.0%} done): delete it "
                       "when it has finished or failed")  # fmt: skip
    incidents = select(Incident.id).where(Incident.drill_id == drill_id).scalar_subquery()
    unit_ids = list(session.scalars(select(Unit.id).where(Unit.drill_id == drill_id)))
    bound = list(session.scalars(select(User.username).where(User.unit_id.in_(unit_ids))))
    if bound:
        raise Conflict(f"users are bound to drill {drill_id}'s stand-in units: {bound}; "
                       "bind them elsewhere first")  # fmt: skip
    topics = [f"drill:{drill_id}"] + [f"unit:{u}" for u in unit_ids]
    counts = {
        "dispatch_decisions": _delete(
            session, delete(DispatchDecision).where(DispatchDecision.incident_id.in_(incidents))
        ),
        "tasks": _delete(
            session,
            delete(Task).where(or_(Task.incident_id.in_(incidents), Task.unit_id.in_(unit_ids))),
        ),
        "calls": _delete(
            session, delete(IncidentCall).where(IncidentCall.incident_id.in_(incidents))
        ),
        "supply_requests": _delete(
            session, delete(SupplyRequest).where(SupplyRequest.incident_id.in_(incidents))
        ),
        "incidents": _delete(session, delete(Incident).where(Incident.drill_id == drill_id)),
        "units": _delete(session, delete(Unit).where(Unit.drill_id == drill_id)),
        "events": _delete(session, delete(Event).where(Event.topic.in_(topics))),
    }
    session.execute(delete(TopicSeq).where(TopicSeq.topic.in_(topics)))
    session.execute(delete(TopicAck).where(TopicAck.topic.in_(topics)))
    before = {**drill_dict(drill), "deleted": counts}
    session.delete(drill)
    session.flush()
    record_change(
        session,
        actor=principal.actor,
        action="drill.deleted",
        entity="drill",
        entity_id=drill_id,
        before=before,
        after=None,
        topics=(),  # its topic is gone with it
    )
    return counts


def _delete(session: Session, stmt: Any) -> int:
    result = session.execute(stmt.execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- the background runner -------------------------------------------------------------------


class DrillStopped(Exception):
    """The server is stopping: the run in progress gives up."""


@dataclass(frozen=True)
class Job:
    drill_id: int
    scenario: sc.Scenario
    fleet: Fleet
    network: Any  # the app's gis.engine.Engine
    injects: tuple[sc.Inject, ...] = ()


@dataclass
class DrillRunner:
    """The app's simulation runs, one at a time on one worker thread."""

    sessions: sessionmaker[Session]
    max_waiting: int = 4
    executor: Executor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="drill")
    )
    _waiting: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _futures: set[Future[None]] = field(default_factory=set)

    def reserve(self) -> None:
        """Take a place in the queue, or Busy (503) when ``max_waiting`` are waiting."""
        with self._lock:
            if self._stopping.is_set() or self._waiting >= self.max_waiting:
                raise Busy(f"{self._waiting} drills are queued or running (at most "
                           f"{self.max_waiting}); retry later", retry_after_s=30)  # fmt: skip
            self._waiting += 1

    def release(self) -> None:
        with self._lock:
            self._waiting -= 1

    def start(self, job: Job) -> None:
        """Run ``job`` in its reserved place (see :meth:`reserve`)."""
        try:
            future = self.executor.submit(self._execute, job)
        except RuntimeError:  # shut down meanwhile
            self.release()
            self._end(job.drill_id, "failed", error="the server stopped before the run")
            return
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def shutdown(self, timeout_s: float = SHUTDOWN_WAIT_S) -> None:
        """Stop: queued drills fail at once ("stopped before the run"), the running one at
        its next progress report; waits at most ``timeout_s`` for their rows to say so."""
        self._stopping.set()
        self.executor.shutdown(wait=False)
        with self._lock:
            pending = list(self._futures)
        wait(pending, timeout=timeout_s)

    def _execute(self, job: Job) -> None:
        from drills.runner import run  # the engine: imported with its first run

        try:
            if self._stopping.is_set():
                self._end(job.drill_id, "failed", error="the server stopped before the run")
                return
            if not self._begin(job.drill_id):
                return  # deleted while queued
            try:
                result = run(job.scenario, job.fleet, job.network, injects=job.injects,
                             workers=1, progress=self._progress(job.drill_id))  # fmt: skip
            except DrillStopped:
                self._end(job.drill_id, "failed", error="the server stopped during the run")
            except Exception as exc:
                log.exception("drill %s failed", job.drill_id)
                self._end(job.drill_id, "failed", error=f"{type(exc).__name__}: {exc}")
            else:
                self._end(job.drill_id, "finished", report=result.report, replay=result.replays)
        except Exception:  # the database went away: nothing more to do than say so
            log.exception("drill %s: could not record its state", job.drill_id)
        finally:
            self.release()

    def _begin(self, drill_id: int) -> bool:
        with self.sessions() as session:
            drill = session.scalar(
                select(Drill).where(Drill.id == drill_id, Drill.status == "queued")
                .with_for_update()
            )  # fmt: skip
            if drill is None:
                return False
            drill.status, drill.started_at, drill.progress = "running", utcnow(), 0.0
            self._record(session, drill, "drill.started")
            session.commit()
            return True

    def _progress(self, drill_id: int) -> Callable[[float], None]:
        last = -float("inf")

        def progress(fraction: float) -> None:
            nonlocal last
            if self._stopping.is_set():
                raise DrillStopped
            now = time.monotonic()
            if now - last < PROGRESS_EVERY_S:
                return
            last = now
            with self.sessions() as session:
                session.execute(
                    update(Drill)
                    .where(Drill.id == drill_id, Drill.status == "running")
                    .values(progress=min(1.0, max(0.0, float(fraction))))
                )
                session.commit()

        return progress

    def _end(self, drill_id: int, status: str, **values: Any) -> None:
        with self.sessions() as session:
            drill = session.get(Drill, drill_id, with_for_update=True)
            if drill is None:
                return
            drill.status, drill.finished_at = status, utcnow()
            if status == "finished":
                drill.progress = 1.0
            for name, value in values.items():
                setattr(drill, name, value)
            self._record(session, drill, f"drill.{status}")
            session.commit()

    @staticmethod
    def _record(session: Session, drill: Drill, action: str) -> None:
        session.flush()
        record_change(
            session,
            actor=RUNNER_ACTOR,
            action=action,
            entity="drill",
            entity_id=drill.id,
            before=None,
            after=drill_dict(drill),
            topics=(f"drill:{drill.id}",),
        )


def submit(
    session: Session,
    runner: DrillRunner,
    *,
    scenario: sc.Scenario,
    network: Any,
    principal: Principal,
) -> dict[str, Any]:
    """Queue a run of ``scenario`` on ``network`` (the app's road engine): the fleet is read
    now (a snapshot), the drill row committed, then the run handed to ``runner``."""
    runner.reserve()
    try:
        try:
            fleet, notes = fleets.resolve(scenario, session)
        except sc.ScenarioError as exc:
            raise InvalidScenario(exc.problems) from None
        drill = create(session, scenario=scenario, principal=principal)
        session.commit()
    except BaseException:
        runner.release()
        raise
    answer = drill_dict(drill, detail=True)
    answer["fleet"] = {
        "stations": len(fleet.stations),
        "units": len(fleet.units),
        "hospitals": len(fleet.hospitals),
        "notes": notes,
    }
    runner.start(Job(drill.id, scenario, fleet, network))
    return answer
