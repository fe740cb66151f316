"""Login throttling (issue 14, point 7): per username and per client address, shared by
server processes through the database; a bound on password checks in flight; failed
logins audited coalesced; X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from command.app import create_app
from command.auth import service as auth
from command.auth.login import Logins
from command.client_address import address_key, client_address
from command.migrate import upgrade
from core.audit import AuditEvent
from core.config import Settings
from core.db import AuditedSession, sqlalchemy_url
from core.errors import Busy, TooManyRequests, Unauthenticated
from core.metrics import registry
from tests.support.db import create_database, drop_database
from tests.support.servers import serve_in_thread
from tests.support.world import PASSWORD, World

LIMITS = {"login_max_failures": 3, "login_max_failures_per_address": 5}


def checks() -> float:
    """Password hashes checked so far (argon2), in this process."""
    return registry.get_sample_value("login_password_checks_total") or 0.0


def post_login(client: Any, username: str, password: str, **kw: Any) -> Any:
    return client.post("/api/auth/token", json={"username": username, "password": password}, **kw)


@pytest.fixture
def throttled(settings: Settings, session_factory, road_engine) -> Iterator[Any]:
    """A test client whose app counts 3 failures per username, 5 per address."""

    def make(client_host: str = "198.51.100.9", **changes: Any) -> TestClient:
        app = create_app(
            settings.model_copy(update={**LIMITS, **changes}),
            session_factory=session_factory,
            graph=road_engine,
        )
        made = TestClient(app, client=(client_host, 40000))
        clients.append(made.__enter__())
        return made

    clients: list[TestClient] = []
    yield make
    for c in clients:
        c.__exit__(None, None, None)


def login_audits(session: Session) -> list[tuple[str, str | None, dict[str, Any] | None]]:
    session.expire_all()
    stmt = select(AuditEvent).where(AuditEvent.action.like("login.%")).order_by(AuditEvent.id)
    return [(a.action, a.entity_id, a.after) for a in session.scalars(stmt)]


# --- per username ---------------------------------------------------------------------


def test_a_username_is_locked_after_its_failures_even_for_the_right_password(
    throttled, world: World
):
    client = throttled()
    start = checks()
    for _ in range(3):
        assert post_login(client, "dispatcher", "wrong-password").status_code == 401
    for password in ("wrong-password", PASSWORD):
        r = post_login(client, "dispatcher", password)
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "too_many_requests"
        assert "even the right password is refused" in r.json()["message"]
        assert 890 <= int(r.headers["retry-after"]) <= 900
    assert checks() - start == 3, "a locked login costs no password check"
    # other usernames are not affected
    assert post_login(client, "planner", PASSWORD).status_code == 200


def test_a_known_lockout_is_refused_without_a_database_statement(
    throttled, world: World, connection
):
    from sqlalchemy import event

    client = throttled()
    for _ in range(4):
        post_login(client, "dispatcher", "wrong-password")
    statements: list[str] = []
    record = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(connection, "before_cursor_execute", record)
    try:
        for _ in range(20):
            assert post_login(client, "dispatcher", PASSWORD).status_code == 429
    finally:
        event.remove(connection, "before_cursor_execute", record)
    assert statements == []


def test_a_lockout_says_the_same_whether_or_not_the_user_exists(throttled, world: World):
    client = throttled(login_max_failures_per_address=1000)
    answers = {}
    for name in ("dispatcher", "no-such-user"):
        for _ in range(3):
            assert post_login(client, name, "wrong-password").status_code == 401
        r = post_login(client, name, "wrong-password")
        answers[name] = (r.status_code, r.json(), r.headers["retry-after"])
    assert answers["dispatcher"][0] == 429
    assert answers["dispatcher"][:2] == answers["no-such-user"][:2]


def test_flood_of_wrong_passwords_reaches_argon2_only_up_to_the_limit(throttled, world: World):
    client = throttled()
    start = checks()
    statuses = [post_login(client, "admin", f"guess-{n}").status_code for n in range(60)]
    assert statuses[:3] == [401, 401, 401]
    assert set(statuses[3:]) == {429}
    assert checks() - start == 3


def test_failed_logins_are_audited_coalesced(throttled, world: World, session: Session):
    client = throttled(login_max_failures_per_address=1000)
    for n in range(25):
        post_login(client, "commander", f"guess-{n}")
    audits = login_audits(session)
    assert [(a, e) for a, e, _ in audits] == [
        ("login.failed", "commander"),
        ("login.locked", "commander"),
    ]
    first, locked = audits[0][2], audits[1][2]
    assert first == {"username": "commander", "address": "198.51.100.9", "failures": 1}
    assert locked is not None and locked["failures"] == 3
    assert datetime.fromisoformat(locked["locked_until"]) > datetime.now(UTC)
    assert "guess" not in str(audits), "never a password"


def test_success_clears_the_usernames_failures_and_is_audited(
    throttled, world: World, session: Session
):
    client = throttled()
    for _ in range(2):
        assert post_login(client, "auditor", "wrong-password").status_code == 401
    assert post_login(client, "auditor", PASSWORD).status_code == 200
    for _ in range(2):  # counted from zero again: not locked after 4 in all
        assert post_login(client, "auditor", "wrong-password").status_code == 401
    assert post_login(client, "auditor", PASSWORD).status_code == 200
    actions = [(a, after["failures"]) for a, _, after in login_audits(session) if after]
    assert actions == [
        ("login.failed", 1),
        ("login.succeeded", 2),
        ("login.failed", 1),
        ("login.succeeded", 2),
    ]


def _run(logins: Logins, username: str, password: str, at: datetime) -> Any:
    try:
        return anyio.run(
            lambda: logins.log_in(username=username, password=password, address="192.0.2.1", now=at)
        )
    except (Unauthenticated, TooManyRequests, Busy) as exc:
        return exc


def test_the_right_password_after_the_lockout_window_gets_in(
    settings: Settings, session_factory, world: World
):
    logins = Logins(session_factory, settings.model_copy(update=LIMITS))
    t0 = datetime.now(UTC)
    for n in range(3):
        assert isinstance(
            _run(logins, "dispatcher", "nope-nope", t0 + timedelta(seconds=n)), Unauthenticated
        )
    locked_at = t0 + timedelta(seconds=2)
    during = _run(logins, "dispatcher", PASSWORD, locked_at + timedelta(seconds=899))
    assert isinstance(during, TooManyRequests) and during.retry_after_s == 1
    after = _run(logins, "dispatcher", PASSWORD, locked_at + timedelta(seconds=900))
    assert isinstance(after, str), after
    assert (
        auth.principal_from_token(session_factory(), after, secret=settings.secret_key).name
        == "dispatcher"
    )


def test_failures_spread_beyond_the_window_do_not_lock(
    settings: Settings, session_factory, world: World
):
    logins = Logins(session_factory, settings.model_copy(update=LIMITS))
    t0 = datetime.now(UTC)
    for n in range(6):  # two failures per 15-minute window
        at = t0 + timedelta(seconds=n * 460)
        assert isinstance(_run(logins, "planner", "nope-nope", at), Unauthenticated)
    assert isinstance(_run(logins, "planner", PASSWORD, t0 + timedelta(seconds=2800)), str)


# --- per address, and who the address is -----------------------------------------------


def test_an_address_spraying_usernames_is_locked(throttled, world: World, session: Session):
    client = throttled()
    for n in range(5):
        assert post_login(client, f"user-{n}", "wrong-password").status_code == 401
    r = post_login(client, "dispatcher", PASSWORD)
    assert r.status_code == 429 and "this address" in r.json()["message"], r.text
    other = throttled(client_host="198.51.100.10")
    assert post_login(other, "dispatcher", PASSWORD).status_code == 200
    assert ("login.locked", "198.51.100.9") in [(a, e) for a, e, _ in login_audits(session)]


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(throttled, world: World):
    """Rotating X-Forwarded-For does not get around the address limit."""
    client = throttled(trusted_proxies=("10.0.0.0/8",))
    for n in range(5):
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert post_login(client, f"u{n}", "wrong-password", headers=headers).status_code == 401
    r = post_login(client, "x", "wrong-password", headers={"X-Forwarded-For": "203.0.113.99"})
    assert r.status_code == 429, r.text


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(
    throttled, world: World, session: Session
):
    proxy = throttled(client_host="10.1.2.3", trusted_proxies=("10.0.0.0/8",))
    for n in range(5):
        headers = {"X-Forwarded-For": "203.0.113.7, 10.9.9.9"}
        assert post_login(proxy, f"u{n}", "wrong-password", headers=headers).status_code == 401
    blocked = post_login(proxy, "planner", PASSWORD, headers={"X-Forwarded-For": "203.0.113.7"})
    assert blocked.status_code == 429
    # another client behind the same proxy is another address
    ok = post_login(proxy, "planner", PASSWORD, headers={"X-Forwarded-For": "203.0.113.8"})
    assert ok.status_code == 200, ok.text
    assert login_audits(session)[0][2]["address"] == "203.0.113.7"


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("198.51.100.1", ["203.0.113.5"], (), "198.51.100.1"),
        ("127.0.0.1", ["203.0.113.5"], (), "127.0.0.1"),  # uvicorn's default trust: not ours
        ("10.0.0.2", ["203.0.113.5"], ("10.0.0.0/8",), "203.0.113.5"),
        ("10.0.0.2", ["1.1.1.1, 203.0.113.5"], ("10.0.0.0/8",), "203.0.113.5"),  # forged left
        ("10.0.0.2", ["203.0.113.5, 10.0.0.3"], ("10.0.0.0/8",), "203.0.113.5"),
        ("10.0.0.2", ["203.0.113.5", "10.0.0.3"], ("10.0.0.0/8",), "203.0.113.5"),
        ("10.0.0.2", ["203.0.113.5:5555"], ("10.0.0.2",), "203.0.113.5"),
        ("10.0.0.2", ["[2001:db8::1]:80"], ("10.0.0.2",), "2001:db8::1"),
        ("10.0.0.2", [], ("10.0.0.0/8",), "10.0.0.2"),
        ("10.0.0.2", ["10.0.0.7"], ("10.0.0.0/8",), "10.0.0.7"),  # all trusted: leftmost
        ("::1", ["203.0.113.5"], ("::1",), "203.0.113.5"),
        (None, ["203.0.113.5"], ("10.0.0.0/8",), "unknown"),
    ],
)
def test_client_address(peer, forwarded, trusted, expected):
    assert client_address(peer, forwarded, trusted) == expected


def test_address_keys_group_ipv6_by_64():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:203.0.113.5") == "203.0.113.5"
    assert address_key("203.0.113.5") == "203.0.113.5"


def test_trusted_proxies_are_checked_and_serve_passes_them_to_uvicorn(monkeypatch):
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        Settings(trusted_proxies=("10.0.0.300/8",))
    import uvicorn

    from command import cli
    from core.config import get_settings

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("EMERGENCY_TRUSTED_PROXIES", '["10.0.0.0/8", "192.0.2.1"]')
    get_settings.cache_clear()
    try:
        assert CliRunner().invoke(cli.app, ["serve"]).exit_code == 0
        assert seen["forwarded_allow_ips"] == ["10.0.0.0/8", "192.0.2.1"]
        monkeypatch.delenv("EMERGENCY_TRUSTED_PROXIES")
        get_settings.cache_clear()
        assert CliRunner().invoke(cli.app, ["serve"]).exit_code == 0
        # no trusted proxy: uvicorn must not trust 127.0.0.1's X-Forwarded-For either
        assert seen["forwarded_allow_ips"] == []
    finally:
        get_settings.cache_clear()


# --- several processes, and the bound on checks in flight -------------------------------


@pytest.fixture
def shared_db(settings: Settings) -> Iterator[tuple[Settings, list[sessionmaker[Session]]]]:
    """A committed database and two engines on it: two server processes' worth."""
    url = create_database("emergency_login")
    upgrade(url)
    engines: list[Engine] = [create_engine(sqlalchemy_url(url)) for _ in range(2)]
    factories = [sessionmaker(e, class_=AuditedSession, expire_on_commit=False) for e in engines]
    with factories[0]() as session:
        auth.add_user(session, username="alice", password=PASSWORD, role="dispatcher")
        session.commit()
    try:
        yield settings.model_copy(update={"database_url": url, **LIMITS}), factories
    finally:
        for e in engines:
            e.dispose()
        drop_database(url)


async def _burst(logins: list[Logins], n: int, username: str, **kw: Any) -> list[Any]:
    async def one(i: int) -> Any:
        try:
            return await logins[i % len(logins)].log_in(
                username=username.format(i=i),
                password="wrong-password",
                address="192.0.2.7",
                **kw,
            )
        except (Unauthenticated, TooManyRequests, Busy) as exc:
            return exc

    return await asyncio.gather(*(one(i) for i in range(n)))


def test_the_limit_holds_across_processes_under_a_concurrent_burst(shared_db):
    settings, factories = shared_db
    settings = settings.model_copy(update={"login_max_concurrent": 4, "login_wait_s": 30})
    processes = [Logins(f, settings) for f in factories]
    start = checks()
    results = asyncio.run(_burst(processes, 40, "alice"))
    kinds = [type(r).__name__ for r in results]
    assert kinds.count("Unauthenticated") == 3, kinds
    assert kinds.count("TooManyRequests") == 37, kinds
    assert checks() - start == 3
    with factories[0]() as session:
        rows = session.execute(
            text("SELECT scope, failures, pending FROM login_throttle ORDER BY scope")
        ).all()
    assert [tuple(r) for r in rows] == [("address", 3, 0), ("user", 3, 0)]


def test_checks_in_flight_are_bounded_and_a_busy_login_is_not_a_failure(shared_db):
    settings, factories = shared_db
    settings = settings.model_copy(
        update={
            "login_max_concurrent": 1,
            "login_max_waiting": 0,
            "login_max_failures_per_address": 1000,
        }
    )
    logins = Logins(factories[0], settings)
    start = checks()
    results = asyncio.run(_burst([logins], 6, "user-{i}"))
    busy = [r for r in results if isinstance(r, Busy)]
    assert busy, "one slot, nobody may wait: the others are turned away"
    assert all(r.retry_after_s == 1 for r in busy)
    failed = [r for r in results if isinstance(r, Unauthenticated)]
    assert len(busy) + len(failed) == 6
    assert checks() - start == len(failed)
    with factories[0]() as session:
        total = session.execute(
            text("SELECT sum(failures), sum(pending) FROM login_throttle WHERE scope = 'user'")
        ).one()
    assert tuple(total) == (len(failed), 0), "busy attempts are given back, not counted"


def test_a_real_server_answers_429_with_retry_after(shared_db, road_engine):
    settings, _ = shared_db
    settings = settings.model_copy(update={"realtime": False})
    import httpx2 as httpx

    app = create_app(settings, graph=road_engine)
    with serve_in_thread(app, name="login-server") as base, httpx.Client(base_url=base) as http:
        start = checks()
        answers = [
            http.post("/api/auth/token", json={"username": "alice", "password": f"g{n}"})
            for n in range(50)
        ]
        assert [a.status_code for a in answers[:3]] == [401] * 3
        assert {a.status_code for a in answers[3:]} == {429}
        assert all(int(a.headers["retry-after"]) > 800 for a in answers[3:])
        assert checks() - start == 3
