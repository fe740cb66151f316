"""Who is calling: passwords, bearer tokens, API keys with HMAC, and the role table."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.orm import Session

from command.auth.models import ApiKey, ApiNonce, User
from core import bulk
from core.changes import record_change
from core.db import flush
from core.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from core.security import ROLES, SYSTEM, Principal

_hasher = PasswordHasher()
# A fixed hash to verify against when the user does not exist, so a login takes the
# same time whether or not the name is known.
_DUMMY_HASH = _hasher.hash("not-a-real-password")
JWT_ALGORITHM = "HS256"
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 200  # what POST /api/auth/token accepts


# --- people -------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password: str) -> None:
    """Refuse a password too short to resist guessing, or too long to log in with."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"password must have at most {MAX_PASSWORD_CHARS} characters")


def add_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    unit_id: int | None = None,
    actor: str = SYSTEM.actor,
) -> User:
    """Create a user; responders must name their unit."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if role == "responder" and unit_id is None:
        raise InvalidInput("a responder must be bound to a unit (--unit)")
    check_password(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"user {username!r} exists")
    user = User(
        username=username, password_hash=hash_password(password), role=role, unit_id=unit_id
    )
    session.add(user)
    flush(session)
    after = {"username": username, "role": role, "unit_id": unit_id}
    record_change(
        session,
        actor=actor,
        action="user.created",
        entity="user",
        entity_id=user.id,
        before=None,
        after=after,
        topics=(),
    )
    return user


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; with no hash (no such user), the
    same work is done against a dummy, so the answer takes as long either way."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(session: Session, *, username: str, password: str) -> User:
    """The active user with these credentials, or Unauthenticated (no throttling: the
    HTTP login goes through command/auth/login.py)."""
    user = session.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user else None, password):
        raise Unauthenticated("wrong username or password")
    if user is None or not user.active:
        raise Unauthenticated("wrong username or password")
    return user


def issue_token(user: User, *, secret: str, ttl_s: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "role": user.role,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "jti": secrets.token_hex(8),
        "tv": user.token_version or 0,  # unflushed new user: the server default, 0
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def principal_from_token(session: Session, token: str, *, secret: str) -> Principal:
    """Decode a bearer token and load its (still active) user; the role is re-read, and a
    token issued before the user's last password change or disable is refused."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]}
        )
        user_id = int(claims["sub"])
        # Tokens issued before token_version existed carry no `tv`: they were version 0.
        token_version = int(claims.get("tv", 0))
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthenticated("invalid or expired token") from None
    # Columns, not an ORM object: this runs for every request (the ORM load was a tenth of
    # an audited write's server time).
    user = session.execute(_USER_CHECK, {"id": user_id}).first()
    if user is None or not user.active or user.token_version != token_version:
        raise Unauthenticated("invalid or expired token")
    return Principal(
        kind="user", id=user.id, name=user.username, role=user.role, unit_id=user.unit_id
    )


_USER_CHECK = select(
    User.id, User.username, User.role, User.unit_id, User.active, User.token_version
).where(User.id == bindparam("id"))


def token_expiry(token: str) -> float:
    """When an already verified token expires (unix seconds)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"])


# --- machines -----------------------------------------------------------------------


_NONCES: Table = ApiNonce.__table__  # type: ignore[assignment]


@functools.lru_cache(maxsize=64)
def _secret(secret_key: str, secret_encrypted: bytes) -> str | None:
    """An API key's secret, decrypted (None if this server's secret cannot): kept, as it
    is asked for with every signed request; a key changed in the database is a new entry."""
    try:
        return _fernet(secret_key).decrypt(secret_encrypted).decode()
    except InvalidToken:
        return None


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"emergency.api_key|" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def add_api_key(
    session: Session, *, name: str, secret_key: str, actor: str = SYSTEM.actor
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plain secret (shown once, stored encrypted)."""
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        key_id="ak_" + secrets.token_hex(8),
        name=name,
        secret_encrypted=_fernet(secret_key).encrypt(secret.encode()),
    )
    session.add(key)
    flush(session)
    record_change(
        session,
        actor=actor,
        action="api_key.created",
        entity="api_key",
        entity_id=key.key_id,
        before=None,
        after={"key_id": key.key_id, "name": name},
        topics=(),
    )
    return key, secret


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Signature` value, version 1 (no `X-Signature-Version`, or ``1``):
    ``sha256=`` + hex HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign_v2(secret: str, timestamp: str, method: str, target: str, body: bytes) -> str:
    """The `X-Signature` value with `X-Signature-Version: 2`: ``sha256=`` + hex
    HMAC-SHA256(secret, timestamp + "." + METHOD + "." + target + "." + body), where
    ``target`` is the path as sent (percent-encoding untouched) and, if the URL has a
    query string, ``?`` and the query as sent. Two requests with the same body in the
    same second to different paths or with different methods sign differently."""
    head = f"{timestamp}.{method.upper()}.{target}.".encode("latin-1")
    return "sha256=" + hmac.new(secret.encode(), head + body, hashlib.sha256).hexdigest()


def request_target(scope: Mapping[str, Any]) -> str:
    """What version 2 signs as the path, from an ASGI request scope: the path as received
    (``raw_path``; a server that gives none: the path, percent-encoded again) and, if the
    query string is not empty, ``?`` and the query string as received."""
    raw = scope.get("raw_path") or urllib.parse.quote(scope["path"]).encode()
    query = scope.get("query_string") or b""
    target = bytes(raw).split(b"?", 1)[0]  # some servers leave the query in raw_path
    return (target + b"?" + query if query else target).decode("latin-1")


SIGNATURE_VERSIONS = ("1", "2")


@dataclass(frozen=True)
class SignedRequest:
    """A machine's request as signed: key id, ``X-Timestamp``, ``X-Signature``, raw body,
    and for version 2 (``X-Signature-Version``) the method and target it was sent to."""

    key_id: str
    timestamp: str
    signature: str
    body: bytes
    version: str = "1"
    method: str = ""
    target: str = ""

    def expected(self, secret: str) -> str:
        """The signature this request should carry."""
        if self.version == "2":
            return sign_v2(secret, self.timestamp, self.method, self.target, self.body)
        return sign(secret, self.timestamp, self.body)


def check_version(version: str) -> None:
    if version not in SIGNATURE_VERSIONS:
        raise Unauthenticated("X-Signature-Version must be 1 (or absent) or 2")


def check_timestamp(timestamp: str, *, skew_s: int, now: float | None = None) -> None:
    """Refuse a timestamp that is not unix seconds within ``skew_s`` of our clock."""
    try:
        ts = int(timestamp)
    except ValueError:
        raise Unauthenticated("X-Timestamp must be unix seconds") from None
    if abs((now if now is not None else time.time()) - ts) > skew_s:
        raise Unauthenticated("X-Timestamp is outside the allowed clock skew")


def check_signed(
    session: Session,
    requests: Sequence[SignedRequest],
    *,
    secret_key: str,
    skew_s: int,
    now: float | None = None,
) -> list[Principal | Unauthenticated]:
    """Check many signed requests at once (key, timestamp window, HMAC of the raw body,
    and with version 2 of method and target too, replay), in the caller's transaction:
    one key lookup and one nonce INSERT for all. Per request its machine principal, or
    the refusal.

    A signature is good once: it is kept (``api_nonce``) for the skew window, after which
    its timestamp refuses it anyway. The caller commits; a nonce rolled back with its
    transaction was never used (nothing it asked for happened either)."""
    out: list[Principal | Unauthenticated | None] = [None] * len(requests)
    wanted = sorted({r.key_id for r in requests})
    conn = session.connection()
    found: Iterable[Any] = (
        conn.execute(
            select(
                ApiKey.id, ApiKey.key_id, ApiKey.name, ApiKey.active, ApiKey.secret_encrypted
            ).where(ApiKey.key_id.in_(wanted))
        )
        if wanted
        else []
    )
    keys = {k.key_id: k for k in found}
    fresh: dict[str, int] = {}  # signature hex -> the request that may use it
    for n, r in enumerate(requests):
        try:
            check_version(r.version)
            check_timestamp(r.timestamp, skew_s=skew_s, now=now)
            key = keys.get(r.key_id)
            if key is None or not key.active:
                raise Unauthenticated("unknown or disabled API key")
            secret = _secret(secret_key, key.secret_encrypted)
            if secret is None:
                raise Unauthenticated("API key cannot be checked with this server's secret")
            if not hmac.compare_digest(r.expected(secret), r.signature):
                raise Unauthenticated("bad signature")
            digest = r.signature.removeprefix("sha256=")
            if digest in fresh:
                raise Unauthenticated(_REPLAYED)
            fresh[digest] = n
            out[n] = Principal(kind="apikey", id=key.id, name=key.name, role="machine")
        except Unauthenticated as exc:
            out[n] = exc
    if fresh:
        stored = {
            r.signature
            for r in bulk.insert(
                conn,
                _NONCES,
                [{"signature": d, "key_id": requests[n].key_id} for d, n in fresh.items()],
                returning=("signature",),
                on_conflict="pk_api_nonce",
            )
        }
        for digest, n in fresh.items():
            if digest not in stored:
                out[n] = Unauthenticated(_REPLAYED)
    return cast(list[Principal | Unauthenticated], out)


_REPLAYED = "replayed request: this signature was used already; sign again"


def principal_from_api_key(
    session: Session,
    *,
    key_id: str,
    timestamp: str,
    signature: str,
    body: bytes,
    secret_key: str,
    skew_s: int,
    now: float | None = None,
    version: str = "1",
    method: str = "",
    target: str = "",
) -> Principal:
    """Check key, timestamp window and HMAC of the raw body (version 2: and of method and
    target); the caller is a machine. The signature is spent (committed now, whatever the
    request then does)."""
    check_version(version)  # these two before touching the database
    check_timestamp(timestamp, skew_s=skew_s, now=now)
    signed = SignedRequest(key_id, timestamp, signature, body, version, method, target)
    (result,) = check_signed(session, [signed], secret_key=secret_key, skew_s=skew_s, now=now)
    session.commit()
    if isinstance(result, Unauthenticated):
        raise result
    return result


def prune_nonces(session: Session, *, skew_s: int) -> int:
    """Forget signatures older than the window (their timestamps are refused anyway)."""
    cutoff = datetime.now(UTC) - timedelta(seconds=skew_s + 60)
    result = session.execute(delete(ApiNonce).where(ApiNonce.seen_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user
