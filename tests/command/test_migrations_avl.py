"""Migration 0013 (AVL) on a database with a track: the old ``unit_position`` rows are
copied into the daily partitions (a repeated unit and time once), their ids kept and the
id sequence going on after the largest; down to 0012 and up again keeps every row.

The migration runs with the session time zone at Asia/Shanghai (``PGTZ``): a day's
partition is a UTC day whatever the connection's zone, so a fix at 23:59:59.999999 UTC and
one at 00:00 UTC land in different partitions, each its own day's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from command.migrate import downgrade, upgrade
from core.db import sqlalchemy_url
from tests.support.db import create_database, drop_database, unavailable

pytestmark = pytest.mark.db
BEFORE = "0012_drills"
TODAY = datetime.now(UTC).date()
COLUMNS = "id, unit_id, recorded_at, ST_X(geom), ST_Y(geom), speed_mps, heading_deg, accuracy_m"


@pytest.fixture
def old_track(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Engine]]:
    """A database at 0012 (before the partitioned track); every connection's session
    time zone is Asia/Shanghai."""
    monkeypatch.setenv("PGTZ", "Asia/Shanghai")
    try:
        url = create_database("emergency_migr_avl")
    except Exception as exc:  # the shared fixtures' policy: skip on a laptop, fail in CI
        unavailable(str(exc).splitlines()[0])
        raise
    engine = create_engine(sqlalchemy_url(url))
    try:
        upgrade(url, BEFORE)
        yield url, engine
    finally:
        engine.dispose()
        drop_database(url)


def at(day: date, *args: int) -> datetime:
    return datetime.combine(day, time(*args), tzinfo=UTC)


def day_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


def track(engine: Engine) -> dict[int, tuple[Any, ...]]:
    """The track's rows by id: (unit, time, lon, lat, speed, heading, accuracy)."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT {COLUMNS} FROM unit_position")).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def partitions(engine: Engine) -> dict[str, set[tuple[int, datetime]]]:
    """Each partition of the track and the (unit, time) keys in it."""
    with engine.connect() as conn:
        names = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'unit_position'::regclass"
            )
        ).scalars()
        return {
            name: {
                (u, t) for u, t in conn.execute(text(f'SELECT unit_id, recorded_at FROM "{name}"'))
            }
            for name in names
        }


def insert_fix(engine: Engine, unit_id: int, when: datetime) -> int:
    """A fix as the new code stores one (the id from the sequence)."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                text(
                    "INSERT INTO unit_position (unit_id, recorded_at, geom) VALUES "
                    "(:u, :t, ST_SetSRID(ST_MakePoint(24.95, 60.18), 4326)) RETURNING id"
                ),
                {"u": unit_id, "t": when},
            ).scalar_one()
        )


def test_0013_copies_the_old_track_into_daily_partitions_and_back(
    old_track: tuple[str, Engine],
):
    url, engine = old_track
    with engine.begin() as conn:
        units = [
            conn.execute(
                text(
                    "INSERT INTO unit (callsign, name, kind, type, capabilities, crew, status, "
                    "geom, position_at) VALUES (:c, :c, 'vehicle', 'ambulance', "
                    "ARRAY['medical_bls'], 2, 'available', "
                    "ST_SetSRID(ST_MakePoint(24.94, 60.17), 4326), :p) RETURNING id"
                ),
                {"c": callsign, "p": at(TODAY, 0, 30)},
            ).scalar_one()
            for callsign in ("M1", "M2")
        ]
        a, b = units
        rows = [
            (a, at(day_ago(40), 12), 24.90, 60.10),  # long ago: a partition of its own
            (a, at(day_ago(3), 0), 24.91, 60.11),  # the first instant of the day
            (a, at(day_ago(3), 12), 24.92, 60.12),
            (a, at(day_ago(3), 12), 24.99, 60.19),  # the same unit and time again
            (b, at(day_ago(3), 12), 24.93, 60.13),  # the same time, another unit
            (a, at(day_ago(3), 23, 59, 59, 999999), 24.94, 60.14),  # the day's last instant
            (b, at(day_ago(2), 8), 24.95, 60.15),
            (a, at(day_ago(1), 10), 24.96, 60.16),
            (a, at(TODAY, 0, 30), 24.97, 60.17),
        ]
        for unit_id, when, lon, lat in rows:
            conn.execute(
                text(
                    "INSERT INTO unit_position (unit_id, recorded_at, geom, speed_mps, "
                    "heading_deg, accuracy_m) VALUES (:u, :t, "
                    "ST_SetSRID(ST_MakePoint(:x, :y), 4326), 4.5, 90, 8)"
                ),
                {"u": unit_id, "t": when, "x": lon, "y": lat},
            )
        # A row with an id above the old sequence's (an import): ids go on after it.
        conn.execute(
            text(
                "INSERT INTO unit_position (id, unit_id, recorded_at, geom) VALUES "
                "(500, :u, :t, ST_SetSRID(ST_MakePoint(24.98, 60.18), 4326))"
            ),
            {"u": b, "t": at(day_ago(2), 9)},
        )
    before = track(engine)
    assert len(before) == len(rows) + 1
    repeated = sorted(i for i, row in before.items() if row[:2] == (a, at(day_ago(3), 12)))
    assert len(repeated) == 2
    kept = {i: row for i, row in before.items() if i != repeated[1]}  # the first copy stays

    upgrade(url)

    assert track(engine) == kept
    by_day: dict[str, set[tuple[int, datetime]]] = {}
    for unit_id, when, *_ in kept.values():
        by_day.setdefault(f"unit_position_p{when.astimezone(UTC):%Y%m%d}", set()).add(
            (unit_id, when)
        )
    found = partitions(engine)
    for name, keys in by_day.items():
        assert found[name] == keys, name
    coming = {f"unit_position_p{TODAY + timedelta(days=k):%Y%m%d}" for k in (-1, 0, 1, 2)}
    assert set(found) == set(by_day) | coming
    assert all(not found[name] for name in coming - set(by_day))
    with engine.connect() as conn:
        extra = conn.execute(
            text("SELECT DISTINCT source, flag, device_id FROM unit_position")
        ).all()
        assert extra == [("api", None, None)]
    new_id = insert_fix(engine, a, at(TODAY, 1))
    assert new_id == max(kept) + 1 == 501
    with pytest.raises(IntegrityError, match="duplicate key"):  # (unit, time) is the key
        insert_fix(engine, a, at(day_ago(3), 12))

    downgrade(url, BEFORE)

    after_down = track(engine)
    assert set(after_down) == set(kept) | {new_id}
    assert {i: after_down[i] for i in kept} == kept
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM pg_class WHERE relname LIKE 'unit_position_p%'")
        ).scalar_one()
        assert left == 0
    down_id = insert_fix(engine, b, at(TODAY, 2))
    assert down_id == max(after_down) + 1 == new_id + 1

    upgrade(url)

    final = track(engine)
    assert set(final) == set(kept) | {new_id, down_id}
    assert {i: final[i] for i in kept} == kept
    assert insert_fix(engine, b, at(TODAY, 3)) == down_id + 1
    found = partitions(engine)
    for name, keys in by_day.items():
        assert keys <= found[name], name
