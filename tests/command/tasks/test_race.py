"""Two dispatchers racing for one unit: exactly one wins, the database never holds two
active tasks for it.

These tests need real commits from concurrent transactions, so they use their own
database (created and migrated here, dropped afterwards) instead of the rolled-back
per-test fixtures. To be sure both requests are in flight at once, most rounds hold the
unit's row lock from a third connection until both dispatchers are seen waiting on it in
``pg_stat_activity``; the other rounds just start both threads at a barrier.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from command.app import create_app
from command.auth import service as auth
from command.auth.models import User
from command.incidents.models import Incident
from command.migrate import upgrade
from command.tasks import service as tasks
from command.tasks.models import Task
from core.config import Settings
from core.db import AuditedSession, sqlalchemy_url
from core.errors import Conflict, InvalidTransition
from core.security import Principal
from resources.models import Station, Unit
from tests.support.db import create_database, drop_database
from tests.support.world import TEST_SECRET, point

ACTIVE = "('assigned', 'accepted', 'en_route', 'on_scene')"


@dataclass(frozen=True)
class RaceDb:
    url: str
    engine: Engine
    station_id: int
    dispatcher: Principal
    headers: dict[str, str]


@pytest.fixture(scope="module")
def race_db(database_url: str) -> Iterator[RaceDb]:
    # Asking for ``database_url`` makes these tests skip or fail like the others when
    # there is no PostGIS; the database itself is our own.
    del database_url
    url = create_database("emergency_race")
    engine = create_engine(sqlalchemy_url(url), pool_size=5)
    try:
        upgrade(url)
        with AuditedSession(engine) as s:
            station = Station(name="Race station", kind="fire", geom=_geom(24.94, 60.17))
            s.add(station)
            s.flush()
            user = User(
                username="race_dispatcher",
                password_hash=auth.hash_password("correct-horse-battery"),
                role="dispatcher",
            )
            s.add(user)
            s.commit()
            token = auth.issue_token(user, secret=TEST_SECRET, ttl_s=3600)
            principal = Principal(kind="user", id=user.id, name=user.username, role="dispatcher")
            station_id = station.id
        yield RaceDb(url, engine, station_id, principal, {"Authorization": f"Bearer {token}"})
    finally:
        engine.dispose()
        drop_database(url)


def _geom(lon: float, lat: float) -> Any:
    return from_shape(Point(lon, lat), srid=4326)


def _unit(s: Session, station_id: int) -> Unit:
    unit = Unit(
        callsign=f"R{uuid.uuid4().hex[:8]}",
        name="Race engine",
        kind="vehicle",
        type="fire_engine",
        capabilities=["fire_suppression"],
        crew=4,
        home_station_id=station_id,
        geom=_geom(24.941, 60.171),
    )
    s.add(unit)
    s.flush()
    return unit


@pytest.fixture
def unit_id(race_db: RaceDb) -> int:
    """A fresh, committed, available unit for one test."""
    with AuditedSession(race_db.engine) as s:
        unit = _unit(s, race_db.station_id)
        s.commit()
        return int(unit.id)


@pytest.fixture
def client(race_db: RaceDb) -> Iterator[TestClient]:
    # No session_factory: the app builds its own engine (and pool) in lifespan, so every
    # request has its own connection and transaction, as in production.
    settings = Settings(env="test", database_url=race_db.url, secret_key=TEST_SECRET)
    with TestClient(create_app(settings)) as c:
        yield c


def sql(engine: Engine, query: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(query), params).scalar_one()


def active_tasks(engine: Engine, unit_id: int) -> int:
    return int(
        sql(
            engine,
            f"SELECT count(*) FROM task WHERE unit_id = :u AND status IN {ACTIVE}",
            u=unit_id,
        )
    )


def lock_waiters(engine: Engine) -> int:
    """Backends of this database waiting on a lock (a fresh snapshot per call)."""
    return int(
        sql(
            engine,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    )


def race(
    engine: Engine, calls: list[Callable[[], Any]], *, hold_row: tuple[str, int] | None
) -> list[Any]:
    """Run ``calls`` at once from threads; each result, or the exception it raised.

    With ``hold_row=(table, id)``, that row stays locked from another connection until
    every call is seen blocked on it, so all of them are provably in flight together.
    """
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = calls[i]()
        except BaseException as exc:  # handed back to the test, never lost in the thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    if hold_row is None:
        for t in threads:
            t.start()
    else:
        table, row_id = hold_row
        with engine.connect() as gate:
            trans = gate.begin()
            gate.execute(text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})
            for t in threads:
                t.start()
            deadline = time.monotonic() + 15
            waiting = 0
            try:
                while time.monotonic() < deadline:
                    waiting = lock_waiters(engine)
                    if waiting >= len(calls):
                        break
                    time.sleep(0.01)
            finally:
                trans.rollback()
            assert waiting >= len(calls), f"only {waiting} of {len(calls)} calls were in flight"
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a racing call did not finish"
    return results


def new_incident(client: TestClient, race_db: RaceDb, title: str) -> int:
    body = {
        "type": "Feature",
        "geometry": point(24.95, 60.17),
        "properties": {"title": title, "type": "fire", "severity": "severe"},
    }
    r = client.post("/api/incidents", json=body, headers=race_db.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


ROUNDS = 10


def test_two_dispatchers_racing_for_one_unit_over_http(
    client: TestClient, race_db: RaceDb, unit_id: int
):
    engine = race_db.engine
    for round_no in range(ROUNDS):
        incidents = [new_incident(client, race_db, f"Race {round_no} {side}") for side in "AB"]
        assigned_before = sql(engine, "SELECT count(*) FROM event WHERE type = 'task.assigned'")
        tasks_before = sql(engine, "SELECT count(*) FROM task WHERE unit_id = :u", u=unit_id)

        def call(incident_id: int) -> Callable[[], Any]:
            return lambda: client.post(
                f"/api/incidents/{incident_id}/dispatch",
                json={"unit_ids": [unit_id]},
                headers=race_db.headers,
            )

        gated = round_no % 5 != 4  # most rounds provably overlap; some are free-running
        responses = race(
            engine, [call(i) for i in incidents], hold_row=("unit", unit_id) if gated else None
        )
        for r in responses:
            assert not isinstance(r, BaseException), repr(r)
        codes = sorted(r.status_code for r in responses)
        assert codes == [201, 409], [r.text for r in responses]
        winner_at = 0 if responses[0].status_code == 201 else 1
        winner, loser = responses[winner_at], responses[1 - winner_at]
        assert loser.json()["error"] == "conflict"
        (won,) = winner.json()
        assert won["unit_id"] == unit_id
        assert won["incident_id"] == incidents[winner_at]

        # The database: one active task, on the winner's incident; the loser wrote nothing.
        assert active_tasks(engine, unit_id) == 1
        assert sql(engine, "SELECT count(*) FROM task WHERE unit_id = :u", u=unit_id) == (
            tasks_before + 1
        )
        assert (
            sql(engine, "SELECT incident_id FROM task WHERE id = :t", t=won["id"])
            == incidents[winner_at]
        )
        assert sql(engine, "SELECT status FROM unit WHERE id = :u", u=unit_id) == "assigned"
        statuses = [
            sql(engine, "SELECT status FROM incident WHERE id = :i", i=i) for i in incidents
        ]
        assert statuses[winner_at] == "dispatched"
        assert statuses[1 - winner_at] == "reported"
        assert sql(engine, "SELECT count(*) FROM event WHERE type = 'task.assigned'") == (
            assigned_before + 2  # the winner's task, on "situation" and on "unit:<id>"
        )

        # Free the unit for the next round by cancelling the winner's incident.
        r = client.post(
            f"/api/incidents/{incidents[winner_at]}/status",
            json={"status": "cancelled"},
            headers=race_db.headers,
        )
        assert r.status_code == 200, r.text
        assert sql(engine, "SELECT status FROM unit WHERE id = :u", u=unit_id) == "available"
        assert active_tasks(engine, unit_id) == 0

    assert sql(engine, "SELECT count(*) FROM task WHERE unit_id = :u", u=unit_id) == ROUNDS
    with engine.connect() as conn:
        seqs = list(
            conn.execute(
                text("SELECT seq FROM event WHERE topic = :t ORDER BY seq"),
                {"t": f"unit:{unit_id}"},
            ).scalars()
        )
    assert seqs == list(range(1, 2 * ROUNDS + 1))  # assigned + cancelled per round, no gaps


def _incident(s: Session, title: str) -> int:
    incident = Incident(title=title, type="fire", severity="severe", geom=_geom(24.95, 60.17))
    s.add(incident)
    s.flush()
    return int(incident.id)


@pytest.mark.parametrize("gated", [True, False])
def test_two_sessions_racing_in_the_service(race_db: RaceDb, unit_id: int, gated: bool):
    engine = race_db.engine
    factory = sessionmaker(class_=AuditedSession, bind=engine, expire_on_commit=False)
    with factory() as s:
        incidents = [_incident(s, "Service race A"), _incident(s, "Service race B")]
        s.commit()

    def call(incident_id: int) -> Callable[[], Any]:
        def go() -> list[int]:
            with factory() as s:
                try:
                    created = tasks.dispatch(
                        s, incident_id, [unit_id], principal=race_db.dispatcher
                    )
                    s.commit()
                except BaseException:
                    s.rollback()
                    raise
                return [t.id for t in created]

        return go

    results = race(
        engine, [call(i) for i in incidents], hold_row=("unit", unit_id) if gated else None
    )
    won = [r for r in results if isinstance(r, list)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1, results
    assert len(lost) == 1, results
    assert isinstance(lost[0], Conflict), repr(lost[0])
    assert active_tasks(engine, unit_id) == 1
    (task_id,) = won[0]
    assert sql(engine, "SELECT unit_id FROM task WHERE id = :t", t=task_id) == unit_id
    assert sql(engine, "SELECT status FROM unit WHERE id = :u", u=unit_id) == "assigned"


def test_unique_index_stops_a_second_active_task_from_another_transaction(
    race_db: RaceDb, unit_id: int
):
    """Even code that skips the unit lock cannot commit two active tasks for one unit:
    the second insert waits on the first transaction, then fails on the index."""
    engine = race_db.engine
    with AuditedSession(engine) as s:
        first_incident, second_incident = _incident(s, "Index A"), _incident(s, "Index B")
        s.commit()

    with AuditedSession(engine) as first:
        first.add(Task(incident_id=first_incident, unit_id=unit_id, status="assigned"))
        first.flush()  # holds the index entry, uncommitted

        def second_insert() -> str:
            with AuditedSession(engine) as second:
                second.add(Task(incident_id=second_incident, unit_id=unit_id, status="en_route"))
                try:
                    second.commit()
                except IntegrityError as exc:
                    second.rollback()
                    return str(exc.orig.diag.constraint_name)  # type: ignore[union-attr]
                return "committed"

        outcome: list[str] = []
        worker = threading.Thread(target=lambda: outcome.append(second_insert()), daemon=True)
        worker.start()
        deadline = time.monotonic() + 15
        while lock_waiters(engine) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock_waiters(engine) == 1, "the second insert should wait on the first"
        first.commit()
        worker.join(timeout=30)
    assert outcome == ["uq_task_unit_active"]
    assert active_tasks(engine, unit_id) == 1


@pytest.mark.parametrize("first", ["step", "cancel"])
def test_task_step_and_incident_cancel_at_once_do_not_deadlock(
    race_db: RaceDb, unit_id: int, first: str
):
    """A responder reports en route while a commander cancels the incident.

    Both touch the incident, the task and the unit. One transaction is started first and
    held at the unit (its row is locked from outside) while the other arrives; then the
    unit is let go. Neither may get a deadlock error (the API would show it as a 503):
    a step that came first is kept and then cancelled; a step that comes after the
    cancel is refused as an invalid transition. Either way the unit ends up free.
    """
    engine = race_db.engine
    factory = sessionmaker(class_=AuditedSession, bind=engine, expire_on_commit=False)
    who = race_db.dispatcher
    with factory() as s:
        incident_id = _incident(s, "Deadlock")
        (task,) = tasks.dispatch(s, incident_id, [unit_id], principal=who)
        s.commit()
        task_id = task.id

    def in_session(fn: Callable[[Session], Any]) -> Callable[[], str]:
        def go() -> str:
            with factory() as s:
                try:
                    fn(s)
                    s.commit()
                except BaseException:
                    s.rollback()
                    raise
            return "ok"

        return go

    step = in_session(
        lambda s: tasks.change_task_status(s, task_id, "en_route", principal=who, note=None)
    )
    cancel = in_session(
        lambda s: tasks.change_incident_status(
            s, incident_id, "cancelled", principal=who, note=None
        )
    )
    results: list[Any] = [None, None]

    def run(i: int, fn: Callable[[], str]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:
            results[i] = exc

    threads = [
        threading.Thread(target=run, args=(0, step), daemon=True),
        threading.Thread(target=run, args=(1, cancel), daemon=True),
    ]
    if first == "cancel":
        threads.reverse()
    with engine.connect() as gate:
        trans = gate.begin()
        gate.execute(text("SELECT id FROM unit WHERE id = :id FOR UPDATE"), {"id": unit_id})
        try:
            for n, t in enumerate(threads, start=1):
                t.start()
                deadline = time.monotonic() + 15
                while lock_waiters(engine) < n and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert lock_waiters(engine) == n, f"call {n} is not waiting"
        finally:
            trans.rollback()
    for t in threads:
        t.join(timeout=30)
    if first == "step":
        assert results == ["ok", "ok"], [repr(r) for r in results]
    else:
        assert isinstance(results[0], InvalidTransition), repr(results[0])
        assert results[1] == "ok", repr(results[1])
    assert sql(engine, "SELECT status FROM task WHERE id = :t", t=task_id) == "cancelled"
    assert sql(engine, "SELECT status FROM incident WHERE id = :i", i=incident_id) == "cancelled"
    assert sql(engine, "SELECT status FROM unit WHERE id = :u", u=unit_id) == "available"
