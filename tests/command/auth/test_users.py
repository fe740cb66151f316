"""User management (issue 14, point 5): the admin API, the CLI, token revocation by a
password change or a disable, the last-admin rule, and every change audited without the
password or its hash."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from command.auth import service as auth
from command.auth import users
from command.auth.models import User
from core.audit import AuditEvent
from core.db import AuditedSession, sqlalchemy_url
from core.errors import Conflict
from core.security import ROLES, SYSTEM
from tests.support.cli import CLI_SECRET, invoke, rows
from tests.support.db import create_database, drop_database
from tests.support.world import PASSWORD, World

NEW_PASSWORD = "a-new-password-2026"


def login(client, username: str, password: str) -> Any:
    return client.post("/api/auth/token", json={"username": username, "password": password})


def bearer(r: Any) -> dict[str, str]:
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def user_row(session: Session, username: str) -> dict[str, Any]:
    row = session.execute(
        text(
            'SELECT id, role, unit_id, active, token_version, password_hash FROM "user" '
            "WHERE username = :u"
        ),
        {"u": username},
    ).one()
    return dict(row._mapping)


def audit_rows(session: Session, action: str = "user.updated") -> list[AuditEvent]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
    )


# --- GET /api/users -------------------------------------------------------------------


def test_admin_lists_users_paged_without_secrets(client, world: World):
    r = client.get("/api/users", headers=world.h("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberMatched"] == len(ROLES) + 1
    names = [u["username"] for u in body["items"]]
    assert names == [*ROLES, "responder_b"]  # by id
    responder = body["items"][names.index("responder")]
    assert responder["unit_id"] == world.unit_a.id and responder["active"] is True
    assert set(responder) == {
        "id",
        "username",
        "role",
        "unit_id",
        "active",
        "created_at",
        "updated_at",
    }
    assert "argon2" not in r.text and "password" not in r.text and "token_version" not in r.text
    page = client.get("/api/users?limit=2&offset=3", headers=world.h("admin")).json()
    assert [u["username"] for u in page["items"]] == names[3:5]
    assert page["numberMatched"] == len(ROLES) + 1 and page["numberReturned"] == 2


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_only_admins_manage_users(client, world: World, session: Session, count, role: str):
    before = (user_row(session, "dispatcher"), count("user"), count("audit_event"))
    r = client.get("/api/users", headers=world.h(role))
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    target = world.users["dispatcher"].id
    r = client.patch(f"/api/users/{target}", json={"active": False}, headers=world.h(role))
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    r = client.patch(f"/api/users/{target}", json={"role": "admin"}, headers=world.h(role))
    assert r.status_code == 403, r.text
    session.expire_all()
    assert (user_row(session, "dispatcher"), count("user"), count("audit_event")) == before


def test_no_credentials_is_401(client, world: World):
    assert client.get("/api/users").status_code == 401
    r = client.patch(f"/api/users/{world.users['planner'].id}", json={"active": False})
    assert r.status_code == 401


# --- PATCH /api/users/{id}: revocation --------------------------------------------------


def test_disable_revokes_tokens_and_logins_and_enable_needs_a_new_login(
    client, world: World, session: Session
):
    token = bearer(login(client, "dispatcher", PASSWORD))
    assert client.get("/api/me", headers=token).status_code == 200
    uid = world.users["dispatcher"].id
    r = client.patch(f"/api/users/{uid}", json={"active": False}, headers=world.h("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert client.get("/api/me", headers=token).status_code == 401
    assert client.get("/api/me", headers=world.h("dispatcher")).status_code == 401
    assert login(client, "dispatcher", PASSWORD).status_code == 401
    row = user_row(session, "dispatcher")
    assert (row["active"], row["token_version"]) == (False, 1)
    (audited,) = audit_rows(session)
    assert audited.actor == "user:admin" and audited.entity_id == str(uid)
    assert audited.before == {"username": "dispatcher", "active": True, "token_version": 0}
    assert audited.after == {"username": "dispatcher", "active": False, "token_version": 1}

    r = client.patch(f"/api/users/{uid}", json={"active": True}, headers=world.h("admin"))
    assert r.status_code == 200 and r.json()["active"] is True
    assert client.get("/api/me", headers=token).status_code == 401, "stays revoked"
    fresh = bearer(login(client, "dispatcher", PASSWORD))
    assert client.get("/api/me", headers=fresh).json()["name"] == "dispatcher"
    assert audit_rows(session)[-1].after == {"username": "dispatcher", "active": True}


def test_password_change_revokes_earlier_tokens_and_is_audited_without_it(
    client, world: World, session: Session
):
    old_token = bearer(login(client, "planner", PASSWORD))
    uid = world.users["planner"].id
    r = client.patch(f"/api/users/{uid}", json={"password": NEW_PASSWORD}, headers=world.h("admin"))
    assert r.status_code == 200, r.text
    assert "password" not in r.text
    assert client.get("/api/me", headers=old_token).status_code == 401
    assert client.get("/api/me", headers=world.h("planner")).status_code == 401
    assert login(client, "planner", PASSWORD).status_code == 401
    new_token = bearer(login(client, "planner", NEW_PASSWORD))
    assert client.get("/api/me", headers=new_token).status_code == 200
    row = user_row(session, "planner")
    assert row["token_version"] == 1 and row["active"] is True
    (audited,) = audit_rows(session)
    assert audited.before == {"username": "planner", "token_version": 0}
    assert audited.after == {"username": "planner", "token_version": 1, "password_changed": True}
    everything = json.dumps([audited.before, audited.after])
    assert NEW_PASSWORD not in everything and PASSWORD not in everything
    assert row["password_hash"] not in everything and "argon2" not in everything


def test_a_token_without_tv_counts_as_version_0(client, world: World, settings):
    """Tokens issued before token_version existed carry no `tv`: good until the first bump."""
    import jwt

    claims = jwt.decode(
        world.h("auditor")["Authorization"].split()[1],
        settings.secret_key,
        algorithms=["HS256"],
    )
    assert claims["tv"] == 0
    del claims["tv"]
    legacy = {"Authorization": "Bearer " + jwt.encode(claims, settings.secret_key, "HS256")}
    assert client.get("/api/me", headers=legacy).status_code == 200
    uid = world.users["auditor"].id
    client.patch(f"/api/users/{uid}", json={"password": NEW_PASSWORD}, headers=world.h("admin"))
    assert client.get("/api/me", headers=legacy).status_code == 401


def test_role_change_is_reread_and_audited_and_keeps_the_token(
    client, world: World, session: Session
):
    uid = world.users["dispatcher"].id
    r = client.patch(f"/api/users/{uid}", json={"role": "commander"}, headers=world.h("admin"))
    assert r.status_code == 200 and r.json()["role"] == "commander", r.text
    me = client.get("/api/me", headers=world.h("dispatcher")).json()
    assert me["role"] == "commander"
    (audited,) = audit_rows(session)
    assert audited.before == {"username": "dispatcher", "role": "dispatcher"}
    assert audited.after == {"username": "dispatcher", "role": "commander"}
    assert user_row(session, "dispatcher")["token_version"] == 0


def test_responder_rules(client, world: World, session: Session):
    admin = world.h("admin")
    planner, responder = world.users["planner"].id, world.users["responder"].id
    r = client.patch(f"/api/users/{planner}", json={"role": "responder"}, headers=admin)
    assert r.status_code == 422 and "bound to a unit" in r.json()["message"], r.text
    r = client.patch(f"/api/users/{responder}", json={"unit_id": None}, headers=admin)
    assert r.status_code == 422 and "bound to a unit" in r.json()["message"], r.text
    r = client.patch(
        f"/api/users/{planner}", json={"role": "responder", "unit_id": 999_999}, headers=admin
    )
    assert r.status_code == 422 and "unit 999999 does not exist" in r.json()["message"], r.text
    assert audit_rows(session) == []
    r = client.patch(
        f"/api/users/{planner}",
        json={"role": "responder", "unit_id": world.unit_b.id},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["unit_id"] == world.unit_b.id, r.text
    me = client.get("/api/me", headers=world.h("planner")).json()
    assert (me["role"], me["unit_id"]) == ("responder", world.unit_b.id)
    # another role drops the unit
    r = client.patch(f"/api/users/{responder}", json={"role": "dispatcher"}, headers=admin)
    assert r.status_code == 200 and r.json()["unit_id"] is None, r.text
    assert audit_rows(session)[-1].before == {
        "username": "responder",
        "role": "responder",
        "unit_id": world.unit_a.id,
    }


@pytest.mark.parametrize(
    ("path_id", "body", "status", "words"),
    [
        ("999999", {"active": False}, 404, "user 999999 not found"),
        ("9223372036854775808", {"active": False}, 422, "user_id"),
        ("{id}", {"role": "janitor"}, 422, "role"),
        ("{id}", {"password": "short"}, 422, "password"),
        ("{id}", {"password": "x" * 201}, 422, "password"),
        ("{id}", {}, 422, "nothing to change"),
        ("{id}", {"active": None}, 422, "nothing to change"),
        ("{id}", {"username": "root"}, 422, "username"),
        ("{id}", {"unit_id": 0}, 422, "unit_id"),
        ("{id}", {"password": "long-enough\u0000password"}, 422, "password"),
    ],
    ids=[
        "unknown",
        "huge-id",
        "bad-role",
        "short-password",
        "long-password",
        "empty",
        "null",
        "unknown-field",
        "bad-unit-id",
        "nul-in-password",
    ],
)
def test_bad_input_changes_nothing(
    client, world: World, session: Session, count, path_id, body, status, words
):
    before = (user_row(session, "commander"), count("user"), count("audit_event"))
    url = "/api/users/" + path_id.format(id=world.users["commander"].id)
    r = client.patch(url, json=body, headers=world.h("admin"))
    assert r.status_code == status, r.text
    assert words in r.text
    session.expire_all()
    assert (user_row(session, "commander"), count("user"), count("audit_event")) == before


# --- the last admin ---------------------------------------------------------------------


def test_the_last_active_admin_cannot_be_disabled_or_demoted(
    client, world: World, session: Session, count
):
    admin_id, admin = world.users["admin"].id, world.h("admin")
    before = (user_row(session, "admin"), count("audit_event"))
    for change in ({"active": False}, {"role": "commander"}, {"role": "auditor", "active": False}):
        r = client.patch(f"/api/users/{admin_id}", json=change, headers=admin)
        assert r.status_code == 409, r.text
        assert "last active admin" in r.json()["message"]
    session.expire_all()
    assert (user_row(session, "admin"), count("audit_event")) == before
    # with a second admin, the first may step down; the second is then the last one
    second = world.users["commander"].id
    assert (
        client.patch(f"/api/users/{second}", json={"role": "admin"}, headers=admin).status_code
        == 200
    )
    r = client.patch(f"/api/users/{admin_id}", json={"role": "auditor"}, headers=admin)
    assert r.status_code == 200, r.text
    r = client.patch(f"/api/users/{second}", json={"active": False}, headers=world.h("commander"))
    assert r.status_code == 409, r.text
    # a disabled admin does not count as one
    assert (
        client.patch(
            f"/api/users/{admin_id}",
            json={"role": "admin", "active": False},
            headers=world.h("commander"),
        ).status_code
        == 200
    )
    r = client.patch(f"/api/users/{second}", json={"role": "planner"}, headers=world.h("commander"))
    assert r.status_code == 409, r.text


@pytest.fixture
def committed_db(database_url: str) -> Any:
    """A database of its own with real commits (two transactions at once)."""
    from command.migrate import upgrade

    del database_url  # skip or fail like the other database tests

    url = create_database("emergency_users")
    upgrade(url)
    engine = create_engine(sqlalchemy_url(url))
    yield engine
    engine.dispose()
    drop_database(url)


def test_two_admins_demoting_each_other_at_once_leave_one(committed_db: Engine):
    factory = sessionmaker(committed_db, class_=AuditedSession)
    with factory() as session:
        a = auth.add_user(session, username="a", password=NEW_PASSWORD, role="admin")
        b = auth.add_user(session, username="b", password=NEW_PASSWORD, role="admin")
        session.commit()
        ids = (a.id, b.id)
    outcomes: dict[int, str] = {}

    def demote(user_id: int, hold_s: float) -> None:
        with factory() as session:
            try:
                users.update_user(session, user_id, users.UserChange(role="planner"), actor="t")
                time.sleep(hold_s)  # still uncommitted when the other one checks
                session.commit()
                outcomes[user_id] = "demoted"
            except Conflict:
                outcomes[user_id] = "refused"

    first = threading.Thread(target=demote, args=(ids[0], 0.5))
    second = threading.Thread(target=demote, args=(ids[1], 0.0))
    first.start()
    time.sleep(0.15)
    second.start()
    first.join(10)
    second.join(10)
    assert outcomes == {ids[0]: "demoted", ids[1]: "refused"}
    with factory() as session:
        admins = session.scalar(
            select(text("count(*)")).select_from(User).where(User.role == "admin", User.active)
        )
    assert admins == 1


# --- the CLI ----------------------------------------------------------------------------


@pytest.fixture
def cli_engine(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A new migrated database with real commits, which the CLI reaches (as in test_cli)."""
    from command.migrate import upgrade
    from core.config import get_settings

    del database_url  # skip or fail like the other database tests

    url = create_database("emergency_cli_users")
    try:
        upgrade(url)
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.delenv("EMERGENCY_DATABASE_URL", raising=False)
        monkeypatch.setenv("EMERGENCY_SECRET_KEY", CLI_SECRET)
        monkeypatch.setenv("EMERGENCY_ENV", "test")
        get_settings.cache_clear()
        engine = create_engine(sqlalchemy_url(url))
        yield engine
        engine.dispose()
    finally:
        get_settings.cache_clear()
        drop_database(url)


def _cli_user(db: Engine, username: str) -> dict[str, Any]:
    with AuditedSession(db) as session:
        return user_row(session, username)


def _cli_audits(db: Engine) -> list[tuple[str, Any, Any]]:
    with AuditedSession(db) as session:
        stmt = select(AuditEvent).where(AuditEvent.action == "user.updated")
        return [(a.actor, a.before, a.after) for a in session.scalars(stmt.order_by(AuditEvent.id))]


@pytest.fixture
def db(cli_engine: Engine) -> Engine:
    return cli_engine


@pytest.fixture
def people(db: Engine) -> Callable[..., None]:
    for name, role in (("alice", "admin"), ("bob", "dispatcher")):
        result = invoke("user", "add", name, "--role", role, "--password", NEW_PASSWORD)
        assert result.exit_code == 0, result.output
    return invoke


def test_cli_user_list(people, db: Engine):
    result = invoke("user", "list")
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(u["username"], u["role"], u["active"]) for u in listed] == [
        ("alice", "admin", True),
        ("bob", "dispatcher", True),
    ]
    assert "argon2" not in result.stdout and "token_version" not in result.stdout


def test_cli_disable_enable_set_role(people, db: Engine):
    result = invoke("user", "disable", "bob")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["active"] is False
    assert _cli_user(db, "bob")["token_version"] == 1
    assert invoke("user", "enable", "bob").exit_code == 0
    assert _cli_user(db, "bob")["active"] is True
    result = invoke("user", "set-role", "bob", "commander")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["role"] == "commander"
    assert _cli_audits(db) == [
        (
            "system:cli",
            {"username": "bob", "active": True, "token_version": 0},
            {"username": "bob", "active": False, "token_version": 1},
        ),
        ("system:cli", {"username": "bob", "active": False}, {"username": "bob", "active": True}),
        (
            "system:cli",
            {"username": "bob", "role": "dispatcher"},
            {"username": "bob", "role": "commander"},
        ),
    ]


def test_cli_set_role_responder_with_a_unit_by_callsign(people, db: Engine):
    from geoalchemy2.shape import from_shape
    from shapely.geometry import Point

    from resources.models import Unit

    with AuditedSession(db) as session:
        unit = Unit(
            callsign="E7",
            name="Engine 7",
            kind="vehicle",
            type="fire_engine",
            capabilities=["fire_suppression"],
            crew=4,
            geom=from_shape(Point(24.94, 60.17), 4326),
        )
        session.add(unit)
        session.commit()
        unit_id = unit.id
    refused = invoke("user", "set-role", "bob", "responder")
    assert refused.exit_code != 0 and "bound to a unit" in str(refused.exception)
    assert invoke("user", "set-role", "bob", "responder", "--unit", "NOPE").exit_code != 0
    result = invoke("user", "set-role", "bob", "responder", "--unit", "E7")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["unit_id"] == unit_id
    assert (_cli_user(db, "bob")["role"], _cli_user(db, "bob")["unit_id"]) == ("responder", unit_id)


def test_cli_set_password_prompts_twice_and_never_echoes(people, db: Engine):
    before = _cli_user(db, "bob")
    result = runner_input("user", "set-password", "bob", stdin="brand-new-pass\nbrand-new-pass\n")
    assert result.exit_code == 0, result.output
    assert "brand-new-pass" not in result.output
    after = _cli_user(db, "bob")
    assert after["password_hash"] != before["password_hash"]
    assert after["token_version"] == before["token_version"] + 1
    with AuditedSession(db) as session:
        assert auth.authenticate(session, username="bob", password="brand-new-pass")
    audits = _cli_audits(db)
    assert audits[-1][2] == {"username": "bob", "token_version": 1, "password_changed": True}
    assert "brand-new-pass" not in json.dumps(audits)


def test_cli_set_password_mismatch_or_short_changes_nothing(people, db: Engine):
    before = (_cli_user(db, "bob"), rows(db, "audit_event"))
    mismatch = runner_input("user", "set-password", "bob", stdin="first-one-123\nsecond-one-123\n")
    assert mismatch.exit_code != 0
    short = runner_input("user", "set-password", "bob", "--password-stdin", stdin="short\n")
    assert short.exit_code != 0 and "at least 8" in str(short.exception)
    unknown = runner_input("user", "set-password", "nobody", "--password-stdin", stdin="x" * 9)
    assert unknown.exit_code != 0 and "not found" in str(unknown.exception)
    assert (_cli_user(db, "bob"), rows(db, "audit_event")) == before


def test_cli_set_password_from_stdin(people, db: Engine):
    result = runner_input(
        "user", "set-password", "bob", "--password-stdin", stdin="piped-pass-99\n"
    )
    assert result.exit_code == 0, result.output
    assert "piped-pass-99" not in result.output
    with AuditedSession(db) as session:
        assert auth.authenticate(session, username="bob", password="piped-pass-99")


def test_cli_refuses_to_disable_the_last_admin(people, db: Engine):
    before = (_cli_user(db, "alice"), rows(db, "audit_event"))
    result = invoke("user", "disable", "alice")
    assert result.exit_code != 0
    assert "last active admin" in str(result.exception)
    assert (_cli_user(db, "alice"), rows(db, "audit_event")) == before


def runner_input(*args: str, stdin: str) -> Any:
    from typer.testing import CliRunner

    from command.cli import app

    return CliRunner().invoke(app, list(args), input=stdin)


def test_service_actor_is_recorded(session: Session, world: World):
    """The service records whoever the caller says acted (the CLI: system:cli)."""
    users.update_user(
        session, world.users["auditor"].id, users.UserChange(active=False), actor=SYSTEM.actor
    )
    session.commit()
    assert audit_rows(session)[-1].actor == "system:cli"
