"""Machine signatures, version 2: `X-Signature-Version: 2` signs timestamp, method, path
(with its query string) and body, so two requests with the same body in the same second
no longer share a signature. Version 1 (no header) stays accepted."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from command.auth import service as auth
from command.auth.models import ApiKey
from core.config import Settings
from tests.support.cap import alert_xml


@pytest.fixture
def api_key(session: Session, settings: Settings) -> tuple[ApiKey, str]:
    key, secret = auth.add_api_key(session, name="warning-system", secret_key=settings.secret_key)
    session.commit()
    return key, secret


def v2(
    key: ApiKey, secret: str, method: str, target: str, body: bytes = b"", *, ts: str | None = None
) -> dict[str, str]:
    stamp = ts or str(int(time.time()))
    return {
        "X-Api-Key": key.key_id,
        "X-Timestamp": stamp,
        "X-Signature-Version": "2",
        "X-Signature": auth.sign_v2(secret, stamp, method, target, body),
    }


def v1(key: ApiKey, secret: str, body: bytes = b"", *, ts: str | None = None) -> dict[str, str]:
    stamp = ts or str(int(time.time()))
    return {
        "X-Api-Key": key.key_id,
        "X-Timestamp": stamp,
        "X-Signature": auth.sign(secret, stamp, body),
    }


def _refused(r: Any, words: str) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthenticated"
    assert words in r.json()["message"]


def nonces(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM api_nonce")).scalar_one())


def test_sign_v2_matches_the_documented_formula():
    secret, stamp, body = "s3cret", "1700000000", b'{"a":1}'
    message = b"1700000000.POST./api/alerts?x=1." + body
    expected = "sha256=" + hmac.new(b"s3cret", message, hashlib.sha256).hexdigest()
    assert auth.sign_v2(secret, stamp, "post", "/api/alerts?x=1", body) == expected
    assert auth.sign_v2(secret, stamp, "POST", "/api/alerts", body) != expected
    assert auth.sign(secret, stamp, body) != expected  # v1 signs timestamp.body only


def test_request_target_is_the_path_as_sent_with_its_query():
    scope = {"path": "/api/x y", "raw_path": b"/api/x%20y", "query_string": b"a=%41&b=1"}
    assert auth.request_target(scope) == "/api/x%20y?a=%41&b=1"
    assert auth.request_target({**scope, "query_string": b""}) == "/api/x%20y"
    # a server that gives no raw_path: the decoded path, percent-encoded again
    assert auth.request_target({"path": "/api/x y", "query_string": b""}) == "/api/x%20y"


def test_v2_is_accepted(client, api_key):
    key, secret = api_key
    r = client.get("/api/me", headers=v2(key, secret, "GET", "/api/me"))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "kind": "apikey",
        "name": "warning-system",
        "role": "machine",
        "unit_id": None,
    }
    target = "/api/me?probe=1&x=%41"
    r = client.get(target, headers=v2(key, secret, "GET", target))
    assert r.status_code == 200, r.text


def _signed_in(r: Any) -> None:
    """The signature was accepted: the machine got past authentication (a machine may
    not read incidents: 403 from the role check, not 401)."""
    assert r.status_code == 403, r.text
    assert r.json()["message"] == "role 'machine' may not read"


@pytest.mark.parametrize(
    ("signed_method", "signed_target", "why"),
    [
        ("POST", "/api/me", "another method"),
        ("GET", "/api/incidents", "another path"),
        ("GET", "/api/me?x=1", "a query string not sent"),
        ("GET", "/API/me", "the path's case"),
    ],
)
def test_v2_with_a_wrong_method_or_path_is_refused(
    client, api_key, session, signed_method, signed_target, why
):
    key, secret = api_key
    before = nonces(session)
    r = client.get("/api/me", headers=v2(key, secret, signed_method, signed_target))
    _refused(r, "bad signature")
    assert nonces(session) == before, f"{why}: a refused signature is not stored"


def test_v2_covers_the_body(client, api_key):
    key, secret = api_key
    headers = v2(key, secret, "GET", "/api/me", b"one body")
    _refused(client.request("GET", "/api/me", content=b"another", headers=headers), "bad signature")


def test_v1_is_still_accepted_without_the_header_and_with_version_1(client, api_key):
    key, secret = api_key
    # One clock read: each request its own second (the same second twice is a replay, which
    # a second boundary between two reads of the clock used to make of this test).
    now = int(time.time())
    assert client.get("/api/me", headers=v1(key, secret, ts=str(now))).status_code == 200
    explicit = {**v1(key, secret, ts=str(now - 1)), "X-Signature-Version": "1"}
    assert client.get("/api/me", headers=explicit).status_code == 200
    # a v1 signature sent as v2 does not verify (and vice versa)
    as_v2 = {**v1(key, secret, ts=str(now - 2)), "X-Signature-Version": "2"}
    _refused(client.get("/api/me", headers=as_v2), "bad signature")
    as_v1 = v2(key, secret, "GET", "/api/me", ts=str(now - 3))
    del as_v1["X-Signature-Version"]
    _refused(client.get("/api/me", headers=as_v1), "bad signature")


@pytest.mark.parametrize("version", ["3", "", "2.0", "v2"])
def test_an_unknown_version_is_refused(client, api_key, session, version):
    key, secret = api_key
    before = nonces(session)
    headers = {**v2(key, secret, "GET", "/api/me"), "X-Signature-Version": version}
    _refused(client.get("/api/me", headers=headers), "X-Signature-Version")
    assert nonces(session) == before


def test_same_body_to_two_paths_in_one_second(client, api_key):
    """The collision of version 1, and its fix: version 2 signs the path too."""
    key, secret = api_key
    stamp = str(int(time.time()))
    # v1: the second request carries the same signature, so it is taken for a replay
    assert client.get("/api/me", headers=v1(key, secret, ts=stamp)).status_code == 200
    _refused(client.get("/api/incidents", headers=v1(key, secret, ts=stamp)), "replayed")
    # v2: both are accepted
    stamp = str(int(time.time()) - 1)
    first = client.get("/api/me", headers=v2(key, secret, "GET", "/api/me", ts=stamp))
    second = client.get(
        "/api/incidents", headers=v2(key, secret, "GET", "/api/incidents", ts=stamp)
    )
    assert first.status_code == 200, first.text
    _signed_in(second)
    # and a true replay is still refused under v2
    again = client.get("/api/me", headers=v2(key, secret, "GET", "/api/me", ts=stamp))
    _refused(again, "replayed")


def test_v2_on_the_alert_intake_batch_check(client, api_key, session):
    """Alerts are checked in batches (command/alert_queue.py): v1 and v2 both pass there,
    v2 with a wrong path does not, and the same body to two targets in one second is two
    signatures (the second post is the same alert: answered as a duplicate, not refused)."""
    key, secret = api_key
    raw = alert_xml("SIG-V2-1").encode()
    stamp = str(int(time.time()))
    cap = {"Content-Type": "application/cap+xml"}
    wrong = {**v2(key, secret, "POST", "/api/alert", raw, ts=stamp), **cap}
    _refused(client.post("/api/alerts", content=raw, headers=wrong), "bad signature")
    first = client.post(
        "/api/alerts",
        content=raw,
        headers={**v2(key, secret, "POST", "/api/alerts", raw, ts=stamp), **cap},
    )
    assert first.status_code == 201, first.text
    target = "/api/alerts?via=relay"
    second = client.post(
        target, content=raw, headers={**v2(key, secret, "POST", target, raw, ts=stamp), **cap}
    )
    assert second.status_code == 200, second.text
    assert second.json()["duplicate"] is True
    raw1 = alert_xml("SIG-V1-1").encode()
    old = client.post("/api/alerts", content=raw1, headers={**v1(key, secret, raw1), **cap})
    assert old.status_code == 201, old.text
    assert int(session.execute(text("SELECT count(*) FROM alert")).scalar_one()) == 2
