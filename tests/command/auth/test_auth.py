"""Auth contract: bearer tokens for people, HMAC-signed API keys for machines."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from command.auth import service as auth
from command.auth.models import ApiKey
from core.config import Settings
from core.errors import Unauthenticated
from tests.support.world import PASSWORD, World, point


def _assert_unauthenticated(r: Any) -> dict[str, Any]:
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["error"] == "unauthenticated"
    assert isinstance(body["message"], str) and body["message"]
    assert r.headers.get("www-authenticate") == "Bearer"
    return body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _signed(key_id: str, secret: str, body: bytes, *, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    return {
        "X-Api-Key": key_id,
        "X-Timestamp": stamp,
        "X-Signature": auth.sign(secret, stamp, body),
    }


@pytest.fixture
def api_key(session: Session, settings: Settings) -> tuple[ApiKey, str]:
    key, secret = auth.add_api_key(session, name="warning-system", secret_key=settings.secret_key)
    session.commit()
    return key, secret


# --- people: login ------------------------------------------------------------------


def test_login_returns_a_bearer_token_that_works(client, world: World, settings: Settings):
    r = client.post("/api/auth/token", json={"username": "dispatcher", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.token_ttl_s
    me = client.get("/api/me", headers=_bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json() == {
        "kind": "user",
        "name": "dispatcher",
        "role": "dispatcher",
        "unit_id": None,
    }


def test_responder_token_carries_its_unit(client, world: World):
    r = client.post("/api/auth/token", json={"username": "responder", "password": PASSWORD})
    assert r.status_code == 200, r.text
    me = client.get("/api/me", headers=_bearer(r.json()["access_token"])).json()
    assert me["role"] == "responder"
    assert me["unit_id"] == world.unit_a.id


def test_wrong_password_and_unknown_user_look_the_same(client, world: World):
    wrong = client.post("/api/auth/token", json={"username": "dispatcher", "password": "nope"})
    unknown = client.post("/api/auth/token", json={"username": "nobody", "password": PASSWORD})
    a = _assert_unauthenticated(wrong)
    b = _assert_unauthenticated(unknown)
    assert a == b
    assert "access_token" not in a


def test_deactivated_user_cannot_log_in(client, world: World, session: Session):
    world.users["planner"].active = False
    session.commit()
    r = client.post("/api/auth/token", json={"username": "planner", "password": PASSWORD})
    _assert_unauthenticated(r)


# --- people: bearer tokens ----------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "Basic ZGlzcGF0Y2hlcjpwdw=="},
        {"Authorization": "Token abc"},
    ],
    ids=["missing", "empty", "blank", "garbage", "three-parts", "basic", "other-scheme"],
)
def test_missing_or_garbage_token_is_401(client, world: World, headers: dict[str, str]):
    _assert_unauthenticated(client.get("/api/me", headers=headers))


def test_expired_token_is_401(client, world: World, settings: Settings):
    token = auth.issue_token(world.users["commander"], secret=settings.secret_key, ttl_s=-60)
    _assert_unauthenticated(client.get("/api/me", headers=_bearer(token)))


def test_hand_made_expired_token_is_401(client, world: World, settings: Settings):
    past = datetime.now(UTC) - timedelta(hours=2)
    claims = {
        "sub": str(world.users["commander"].id),
        "role": "commander",
        "iat": past,
        "exp": past + timedelta(minutes=5),
    }
    token = jwt.encode(claims, settings.secret_key, algorithm="HS256")
    _assert_unauthenticated(client.get("/api/me", headers=_bearer(token)))


def test_token_signed_with_another_secret_is_401(client, world: World):
    token = auth.issue_token(world.users["admin"], secret="another-secret-" + "x" * 40, ttl_s=600)
    _assert_unauthenticated(client.get("/api/me", headers=_bearer(token)))


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "admin"},  # no sub
        {"sub": "not-a-number", "role": "admin"},
        {"sub": "999999999", "role": "admin"},  # no such user
    ],
    ids=["no-sub", "non-numeric-sub", "unknown-user"],
)
def test_token_with_bad_claims_is_401(client, world: World, settings: Settings, claims):
    full = {**claims, "exp": datetime.now(UTC) + timedelta(minutes=5)}
    token = jwt.encode(full, settings.secret_key, algorithm="HS256")
    _assert_unauthenticated(client.get("/api/me", headers=_bearer(token)))


def test_token_without_expiry_is_401(client, world: World, settings: Settings):
    token = jwt.encode(
        {"sub": str(world.users["admin"].id), "role": "admin"},
        settings.secret_key,
        algorithm="HS256",
    )
    _assert_unauthenticated(client.get("/api/me", headers=_bearer(token)))


def test_unsigned_token_is_401(client, world: World):
    claims = {
        "sub": str(world.users["admin"].id),
        "exp": datetime.now(UTC) + timedelta(minutes=5),
    }
    token = jwt.encode(claims, None, algorithm="none")
    _assert_unauthenticated(client.get("/api/me", headers=_bearer(token)))


def test_deactivated_user_is_401_even_with_a_valid_token(client, world: World, session: Session):
    headers = world.h("dispatcher")
    assert client.get("/api/me", headers=headers).status_code == 200
    world.users["dispatcher"].active = False
    session.commit()
    _assert_unauthenticated(client.get("/api/me", headers=headers))


def test_role_is_reread_from_the_database(client, world: World, session: Session):
    headers = world.h("planner")  # token claims role=planner
    world.users["planner"].role = "auditor"
    session.commit()
    assert client.get("/api/me", headers=headers).json()["role"] == "auditor"


# --- machines: API keys -------------------------------------------------------------


def test_api_key_authenticates_as_machine(client, api_key: tuple[ApiKey, str]):
    key, secret = api_key
    r = client.get("/api/me", headers=_signed(key.key_id, secret, b""))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "kind": "apikey",
        "name": "warning-system",
        "role": "machine",
        "unit_id": None,
    }


def test_api_key_secret_is_stored_encrypted(session: Session, api_key: tuple[ApiKey, str]):
    key, secret = api_key
    stored = session.scalar(select(ApiKey.secret_encrypted).where(ApiKey.key_id == key.key_id))
    assert stored is not None and len(stored) > 0
    raw = bytes(stored)
    assert secret.encode() not in raw
    assert secret.encode().hex().encode() not in raw
    assert key.key_id.startswith("ak_")
    assert secret not in key.key_id


def test_api_key_cannot_be_checked_with_another_server_secret(
    session: Session, api_key: tuple[ApiKey, str]
):
    key, secret = api_key
    stamp = str(int(time.time()))
    with pytest.raises(Unauthenticated):
        auth.principal_from_api_key(
            session,
            key_id=key.key_id,
            timestamp=stamp,
            signature=auth.sign(secret, stamp, b""),
            body=b"",
            secret_key="some-other-server-secret-" + "y" * 30,
            skew_s=300,
        )


def test_sign_matches_the_documented_formula():
    expected = hmac.new(b"s3cret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert auth.sign("s3cret", "1700000000", b"{}") == "sha256=" + expected


def _tamper(headers: dict[str, str], **changes: str) -> dict[str, str]:
    return {**headers, **changes}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h, key, secret: _tamper(h, **{"X-Signature": "sha256=" + "0" * 64}),
        lambda h, key, secret: _tamper(h, **{"X-Signature": h["X-Signature"].upper()}),
        lambda h, key, secret: _tamper(h, **{"X-Signature": ""}),
        lambda h, key, secret: {k: v for k, v in h.items() if k != "X-Signature"},
        lambda h, key, secret: _signed(key.key_id, "wrong-secret", b""),
        lambda h, key, secret: _signed(key.key_id, secret, b"", ts=int(time.time()) - 10000),
        lambda h, key, secret: _signed(key.key_id, secret, b"", ts=int(time.time()) + 10000),
        lambda h, key, secret: _tamper(h, **{"X-Timestamp": "yesterday"}),
        lambda h, key, secret: {k: v for k, v in h.items() if k != "X-Timestamp"},
        lambda h, key, secret: _signed("ak_0000000000000000", secret, b""),
    ],
    ids=[
        "zero-signature",
        "uppercased-signature",
        "empty-signature",
        "no-signature",
        "wrong-secret",
        "stale-timestamp",
        "future-timestamp",
        "non-numeric-timestamp",
        "no-timestamp",
        "unknown-key",
    ],
)
def test_bad_api_key_requests_are_401(client, api_key: tuple[ApiKey, str], mutate):
    key, secret = api_key
    good = _signed(key.key_id, secret, b"")
    _assert_unauthenticated(client.get("/api/me", headers=mutate(good, key, secret)))


def test_disabled_api_key_is_401(client, session: Session, api_key: tuple[ApiKey, str]):
    key, secret = api_key
    assert client.get("/api/me", headers=_signed(key.key_id, secret, b"")).status_code == 200
    key.active = False
    session.commit()
    body = _assert_unauthenticated(client.get("/api/me", headers=_signed(key.key_id, secret, b"")))
    assert "disabled" in body["message"] or "unknown" in body["message"]


def test_signature_covers_the_raw_body(client, count, api_key: tuple[ApiKey, str]):
    key, secret = api_key
    feature = {
        "type": "Feature",
        "geometry": point(24.95, 60.17),
        "properties": {"title": "Flood", "type": "flood"},
    }
    raw = json.dumps(feature).encode()
    content_type = {"Content-Type": "application/json"}
    before = (count("incident"), count("audit_event"), count("event"))

    # Correctly signed: authenticated as a machine, which may not write incidents.
    ok = client.post(
        "/api/incidents", content=raw, headers={**_signed(key.key_id, secret, raw), **content_type}
    )
    assert ok.status_code == 403, ok.text
    assert ok.json()["error"] == "forbidden"

    # Signed over another body (same length even): refused before anything else.
    other = raw.replace(b"Flood", b"Flaod")
    assert len(other) == len(raw)
    bad = client.post(
        "/api/incidents",
        content=raw,
        headers={**_signed(key.key_id, secret, other), **content_type},
    )
    _assert_unauthenticated(bad)

    # Signed over an empty body but sent with one.
    empty = client.post(
        "/api/incidents", content=raw, headers={**_signed(key.key_id, secret, b""), **content_type}
    )
    _assert_unauthenticated(empty)

    assert (count("incident"), count("audit_event"), count("event")) == before


def test_api_key_headers_win_over_a_bearer_token(client, world: World, api_key):
    """A request with a (bad) API key is judged by the key, not by a valid bearer token."""
    key, _secret = api_key
    headers = {**world.h("admin"), **_signed(key.key_id, "wrong-secret", b"")}
    _assert_unauthenticated(client.get("/api/me", headers=headers))
