"""Shared fixtures: a throwaway PostGIS database per run, each test rolled back.

Database tests skip on a laptop without PostGIS, but fail when CI=true, so a missing
database can never turn a CI run green by skipping.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from command import auth
from command.app import create_app
from command.migrate import upgrade
from command.models import User
from core.config import DEFAULT_DATABASE_URL, Settings, get_settings
from core.db import sqlalchemy_url
from core.security import ROLES
from gis.engine import Engine as RoadEngine
from gis.network import load_network
from resources.models import Station, Unit

TEST_SECRET = secrets.token_urlsafe(48)
# Sessions outside an app (fixtures, the CLI) seal audit rows with the configured key: the
# test apps' own secret, so their /api/audit/verify checks those rows too.
os.environ["EMERGENCY_SECRET_KEY"] = TEST_SECRET
get_settings.cache_clear()
PASSWORD = "correct-horse-battery"


def _admin_url() -> str:
    base = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    return make_url(sqlalchemy_url(base)).set(database="postgres").render_as_string(False)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostGIS is required in CI: {reason}")
    pytest.skip(f"no PostGIS: {reason}")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: Any, *, name: str = "live-server", start_s: float = 30, **options: Any
) -> Iterator[str]:
    """``app`` under uvicorn (with ``options``, e.g. ``command.server.uvicorn_options``) in
    a background thread on a free loopback port; yields its base URL once /healthz answers
    200, and stops it afterwards."""
    import httpx2 as httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options
        )
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("live server did not become healthy")
            time.sleep(0.1)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def create_database(prefix: str = "emergency_test") -> str:
    """A new, empty, migrated database (cloned from the PostGIS template when present)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            has_template = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = 'emergency_template'")
            )
            template = " TEMPLATE emergency_template" if has_template else ""
            conn.execute(text(f'CREATE DATABASE "{name}"{template}'))
    finally:
        admin.dispose()
    url = make_url(_admin_url()).set(database=name).render_as_string(False)
    return url


def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    try:
        url = create_database()
    except Exception as exc:
        _unavailable(str(exc).splitlines()[0])
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
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
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
    from command.seed import load_city, locate_extract

    loaded = load_network(locate_extract(load_city()), cache_dir=tmp_path_factory.mktemp("graphs"))
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


@dataclass
class World:
    """A small city: two stations, units, one user per role, and their auth headers."""

    station: Station
    unit_a: Unit
    unit_b: Unit
    users: dict[str, User]
    headers: dict[str, dict[str, str]]

    def h(self, role: str) -> dict[str, str]:
        return self.headers[role]


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


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


def chain_ok(session: Session) -> bool:
    """Whether the audit chain verifies (links only) with the tests' key."""
    from core import audit_verify, changes

    return audit_verify.verify(session, changes.keyring(), checkpoint_dir=None).ok
