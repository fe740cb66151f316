"""The track's retention: daily partitions made ahead and on demand, those past
``EMERGENCY_TRACK_RETENTION_DAYS`` dropped whole (their rows with them), and fixes older
than the retention refused at the door (real PostGIS; each test rolled back)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from command.live.jobs import maintain_track
from core.config import Settings
from resources.avl import track
from resources.avl import writer as writer_module
from resources.avl.fixes import Fix
from resources.avl.writer import PositionWriter
from tests.support.world import TEST_SECRET, World

RETENTION_DAYS = 6
RETENTION_S = RETENTION_DAYS * 86400


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The shared test settings, with a short retention (6 days) inside a longer maximum
    age (30 days): the retention is what limits a fix's age here."""
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        max_body_bytes=64 * 1024,
        realtime=False,
        track_retention_days=RETENTION_DAYS,
        position_max_age_s=30 * 86400,
    )


def at(day: date, hour: int = 6) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def name(day: date) -> str:
    return f"unit_position_p{day:%Y%m%d}"


def exists(session: Session, table: str) -> bool:
    return session.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None


def per_day(session: Session, unit_id: int) -> dict[date, int]:
    rows = session.execute(
        text(
            "SELECT (recorded_at AT TIME ZONE 'UTC')::date, count(*) FROM unit_position "
            "WHERE unit_id = :u GROUP BY 1"
        ),
        {"u": unit_id},
    ).all()
    return {day: n for day, n in rows}


def keys(session: Session, unit_id: int) -> set[datetime]:
    return set(
        session.execute(
            text("SELECT recorded_at FROM unit_position WHERE unit_id = :u"), {"u": unit_id}
        ).scalars()
    )


def fix(unit_id: int, when: datetime, k: int = 0) -> Fix:
    return Fix(unit_id=unit_id, lon=24.94 + k * 1e-5, lat=60.17, recorded_at=when)


def drop(session: Session, day: date) -> None:
    """Drop a day's partition, if there is one (inside the test's transaction)."""
    session.execute(text(f'DROP TABLE IF EXISTS "{name(day)}"'))


def batch(unit_id: int, *times: datetime) -> dict[str, Any]:
    return {
        "positions": [
            {"unit_id": unit_id, "lon": 24.94, "lat": 60.17, "recorded_at": t.isoformat()}
            for t in times
        ]
    }


def test_maintain_makes_the_coming_days_and_drops_whole_days_past_the_retention(
    session: Session, session_factory: sessionmaker[Session], world: World
):
    today = datetime.now(UTC).date()
    now = at(today, 12)  # the cutoff: 10 days before, at noon
    unit = world.unit_a.id
    drop(session, today + timedelta(days=2))  # made by the migration: maintain makes it again
    assert today + timedelta(days=2) not in track.partitions(session)
    writer = PositionWriter(session_factory, max_rows=100, max_speed_mps=1000.0)
    days = {k: today - timedelta(days=k) for k in (12, 11, 10, 1, 0)}
    fixes = [fix(unit, at(day, hour), k) for k, day in days.items() for hour in (6, 18)]
    outcomes = writer.flush(fixes)  # old days' partitions are made on demand
    assert [o.status for o in outcomes] == ["stored"] * len(fixes)
    assert per_day(session, unit) == {day: 2 for day in days.values()}

    dropped = track.maintain(session, retention_days=10, now=now)

    # Day -11 ends at midnight before day -10's noon, the cutoff: wholly older, dropped.
    # Day -10 ends after the cutoff: kept whole, its morning fix too (the day goes whole).
    assert dropped == [name(days[12]), name(days[11])]
    found = track.partitions(session)
    assert {today + timedelta(days=k) for k in range(3)} <= found.keys()
    assert {days[10], days[1], days[0]} <= found.keys()
    assert not {days[12], days[11]} & found.keys()
    assert not exists(session, name(days[12])) and not exists(session, name(days[11]))
    assert per_day(session, unit) == {days[10]: 2, days[1]: 2, days[0]: 2}
    assert track.maintain(session, retention_days=10, now=now) == []  # nothing more to do


def test_the_hourly_job_uses_the_retention_setting(
    session: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    world: World,
):
    today = datetime.now(UTC).date()
    old, kept = today - timedelta(days=RETENTION_DAYS + 2), today - timedelta(days=RETENTION_DAYS)
    writer = PositionWriter(session_factory, max_rows=100, max_speed_mps=1000.0)
    writer.flush([fix(world.unit_a.id, at(old)), fix(world.unit_a.id, at(kept, 23))])
    drop(session, today + timedelta(days=1))

    assert maintain_track(session_factory, settings) == [name(old)]

    found = track.partitions(session)
    assert old not in found and kept in found and today + timedelta(days=1) in found
    assert per_day(session, world.unit_a.id) == {kept: 1}


def test_a_fix_older_than_the_retention_is_refused_by_its_age_and_stores_nothing(
    client: TestClient, world: World, session: Session
):
    now = datetime.now(UTC).replace(microsecond=0)
    unit = world.unit_a.id
    too_old = [now - timedelta(days=RETENTION_DAYS + 1), now - timedelta(seconds=RETENTION_S + 60)]
    fine = [now - timedelta(days=RETENTION_DAYS - 1), now - timedelta(minutes=1)]
    days_before = set(track.partitions(session))
    r = client.post("/api/positions", json=batch(unit, *too_old, *fine), headers=world.h("admin"))
    assert r.status_code == 202, r.text
    got = r.json()
    reason = f"recorded_at is more than {RETENTION_S} s in the past"
    assert got["refused"] == [{"index": 0, "reason": reason}, {"index": 1, "reason": reason}]
    assert (got["accepted"], got["duplicates"]) == (2, 0)
    assert keys(session, unit) == set(fine)
    made = set(track.partitions(session)) - days_before
    assert not {t.date() for t in too_old} & made  # not even an empty partition for them

    # The single fix: the same rule, the same reason.
    r = client.post(
        f"/api/units/{unit}/position",
        json={"lon": 24.94, "lat": 60.17, "recorded_at": too_old[1].isoformat()},
        headers=world.h("dispatcher"),
    )
    assert r.status_code == 422, r.text
    assert reason in r.json()["message"]
    assert keys(session, unit) == set(fine)


def test_the_writer_makes_a_missing_days_partition_on_demand(
    client: TestClient, world: World, session: Session
):
    today = datetime.now(UTC).date()
    day = today - timedelta(days=RETENTION_DAYS - 1)  # 5 days ago: the migration made none
    drop(session, day)
    assert day not in track.partitions(session)
    when = at(day, 12)
    r = client.post("/api/positions", json=batch(world.unit_b.id, when), headers=world.h("admin"))
    assert r.status_code == 202, r.text
    assert (r.json()["accepted"], r.json()["refused"]) == (1, [])
    assert track.partitions(session)[day] == name(day)
    in_it = session.execute(text(f'SELECT unit_id, recorded_at FROM "{name(day)}"')).all()
    assert in_it == [(world.unit_b.id, when)]


def test_a_partition_dropped_under_the_writer_is_made_again(
    client: TestClient, world: World, session: Session, monkeypatch: pytest.MonkeyPatch
):
    missed: list[str] = []

    def no_partition(cause: BaseException | None) -> bool:
        found = real(cause)
        if found:
            missed.append(str(cause))
        return found

    real = writer_module._no_partition
    monkeypatch.setattr(writer_module, "_no_partition", no_partition)
    day = datetime.now(UTC).date() - timedelta(days=4)
    first, second = at(day, 8), at(day, 9)
    unit = world.unit_a.id
    r = client.post("/api/positions", json=batch(unit, first), headers=world.h("admin"))
    assert (r.status_code, r.json()["accepted"]) == (202, 1), r.text
    drop(session, day)  # the writer still believes the day has its partition
    assert day not in track.partitions(session) and keys(session, unit) == set()

    r = client.post("/api/positions", json=batch(unit, second), headers=world.h("admin"))
    assert r.status_code == 202, r.text
    assert (r.json()["accepted"], r.json()["refused"]) == (1, [])
    assert day in track.partitions(session)
    assert keys(session, unit) == {second}
    assert len(missed) == 1 and "no partition" in missed[0]  # one failed try, then made


def test_the_server_runs_the_track_job_at_start_with_or_without_realtime(
    session: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
):
    """``track_jobs`` (started by every server, realtime or not) maintains the track at
    once, then sleeps an hour."""
    import asyncio
    import threading

    from command.live import jobs

    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    drop(session, tomorrow)
    session.commit()
    done = threading.Event()
    real = jobs.maintain_track

    def spy(*args: Any) -> list[str]:
        try:
            return real(*args)
        finally:
            done.set()

    monkeypatch.setattr(jobs, "maintain_track", spy)

    async def run() -> bool:
        job = asyncio.create_task(jobs.track_jobs(session_factory, settings))
        try:
            assert await asyncio.to_thread(done.wait, 30)
            await asyncio.sleep(0.05)
            return not job.done()  # asleep until the next hour
        finally:
            job.cancel()

    assert asyncio.run(run())
    assert tomorrow in track.partitions(session)
