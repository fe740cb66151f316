"""Shared fixtures: a throwaway PostGIS database per run, each test rolled back.

Database tests skip on a laptop without PostGIS, but fail when CI=true, so a missing
database can never turn a CI run green by skipping. Every test whose fixtures reach a
database is marked ``db`` here at collection (tests/support/marks.py says how), so
``pytest -m "not db"`` runs exactly the tests that need no PostGIS.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from command.app import create_app
from command.auth import service as auth
from command.auth.models import User
from command.migrate import upgrade
from core.config import Settings, get_settings
from core.db import AuditedSession, sqlalchemy_url
from core.security import ROLES
from gis.engine import Engine as RoadEngine
from gis.network import load_network
from resources.models import Station, Unit
from tests.support.db import create_database, drop_database, unavailable
from tests.support.marks import DB_FIXTURES, first_database_reach
from tests.support.world import PASSWORD, TEST_SECRET, World

# Sessions outside an app (fixtures, the CLI) seal audit rows with the configured key: the
# test apps' own secret, so their /api/audit/verify checks those rows too.
os.environ["EMERGENCY_SECRET_KEY"] = TEST_SECRET
# The tests' city is the small Helsinki centre, not the demo (Columbus): servers and apps
# that fall back to the demo city's roads, here and in subprocesses, route on Helsinki.
os.environ["EMERGENCY_DEMO_CITY"] = "helsinki"
get_settings.cache_clear()


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``db`` every test whose fixture closure holds a database fixture; stop the
    run if a test reaches a database some other way without carrying the marker."""
    unmarked = []
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if DB_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.db)
            continue
        if item.get_closest_marker("db") is not None or not isinstance(item, pytest.Function):
            continue
        defs = item._fixtureinfo.name2fixturedefs
        reached = first_database_reach(
            [(item.name, item.function)]
            + [(f"fixture {name}", d.func) for name in fixtures for d in defs.get(name, ())]
        )
        if reached:
            unmarked.append(f"  {item.nodeid} ({reached})")
    if unmarked:
        raise pytest.UsageError(
            "these tests reach a database but are not marked db: ask for a fixture in "
            "tests/support/marks.py's DB_FIXTURES (e.g. database_url) or add "
            "@pytest.mark.db\n" + "\n".join(unmarked)
        )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    try:
        url = create_database()
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
        raise
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(sqlalchemy_url(database_url))
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection in an outer transaction that is rolled back after the test."""
    conn = engine.connect()
    trans = conn.begin()
    try:
        yield conn
    finally:
        trans.rollback()
        conn.close()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    # commit() inside code under test releases a savepoint; the outer transaction stays.
    return sessionmaker(
        class_=AuditedSession,
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
    )


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as s:
        yield s


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The per-test app shares one rolled-back connection: no hub threads on it
    # (tests/realtime runs the hub against databases of its own, with real commits).
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        max_body_bytes=64 * 1024,
        realtime=False,
    )


@pytest.fixture(scope="session")
def road_engine(tmp_path_factory: pytest.TempPathFactory) -> RoadEngine:
    """The demo city's drive-time engine, built once per run into a private cache."""
    from command.seed import city_extract

    loaded = load_network(city_extract("helsinki"), cache_dir=tmp_path_factory.mktemp("graphs"))
    return RoadEngine(loaded.graph, ch=loaded.ch).warm()


@pytest.fixture
def app(settings: Settings, session_factory: sessionmaker[Session], road_engine: Engine) -> Any:
    return create_app(settings, session_factory=session_factory, graph=road_engine)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    # A local client, as an operator's curl is (/metrics is served to loopback only).
    with TestClient(app, client=("127.0.0.1", 50000)) as c:
        yield c


@pytest.fixture(scope="session")
def password_hash() -> str:
    return auth.hash_password(PASSWORD)  # argon2 is slow on purpose: hash once per run


@pytest.fixture
def world(session: Session, password_hash: str, settings: Settings) -> World:
    from geoalchemy2.shape import from_shape
    from shapely.geometry import Point

    station = Station(name="Station 1", kind="fire", geom=from_shape(Point(24.94, 60.17), 4326))
    session.add(station)
    session.flush()
    units = []
    for callsign, caps in (("E1", ["fire_suppression"]), ("A1", ["medical_bls"])):
        unit = Unit(
            callsign=callsign,
            name=f"Unit {callsign}",
            kind="vehicle",
            type="fire_engine" if callsign.startswith("E") else "ambulance",
            capabilities=caps,
            crew=4,
            home_station_id=station.id,
            geom=from_shape(Point(24.941, 60.171), 4326),
        )
        session.add(unit)
        units.append(unit)
    session.flush()
    users: dict[str, User] = {}
    for role in ROLES:
        user = User(
            username=role,
            password_hash=password_hash,
            role=role,
            unit_id=units[0].id if role == "responder" else None,
        )
        session.add(user)
        users[role] = user
    other = User(
        username="responder_b", password_hash=password_hash, role="responder", unit_id=units[1].id
    )
    session.add(other)
    users["responder_b"] = other
    session.commit()
    headers = {
        name: {
            "Authorization": "Bearer "
            + auth.issue_token(user, secret=settings.secret_key, ttl_s=600)
        }
        for name, user in users.items()
    }
    return World(station, units[0], units[1], users, headers)


@pytest.fixture
def count(session: Session) -> Callable[[str], int]:
    """Rows in a table right now (to prove a refused request wrote nothing)."""

    def _count(table: str) -> int:
        return int(session.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())

    return _count
