"""Failed logins counted per username and per client address in the database (table
``login_throttle``), so every server process shares the counts: see :mod:`command.auth.login`.

Each statement takes the rows it touches in one order (address, then user: the primary
key's), so two logins that share a row never deadlock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from command.client_address import address_key
from core.changes import record_change
from core.config import Settings
from core.errors import TooManyRequests

USER, ADDRESS = "user", "address"

# Row state as of :now. A row whose lockout ended, or whose window passed without one,
# starts afresh.
_EXPIRED = (
    "((t.locked_until IS NOT NULL AND t.locked_until <= :now)"
    " OR (t.locked_until IS NULL AND t.window_started_at <= :stale_before))"
)
_LIMIT = "(CASE t.scope WHEN 'user' THEN :max_user ELSE :max_address END)"
_KEYS = "(t.scope, t.key) IN (('address', :address), ('user', :username))"
_LOCK_IN_ORDER = f"""WITH old AS (
    SELECT t.scope, t.key, t.failures FROM login_throttle AS t
    WHERE {_KEYS} ORDER BY t.scope FOR UPDATE
)"""  # noqa: S608 - constant fragments; values are bound

_RESERVE = text(f"""
INSERT INTO login_throttle AS t (scope, key, window_started_at, failures, pending)
VALUES ('address', :address, :now, 0, 1), ('user', :username, :now, 0, 1)
ON CONFLICT (scope, key) DO UPDATE SET
    window_started_at = CASE WHEN {_EXPIRED} THEN :now ELSE t.window_started_at END,
    failures = CASE WHEN {_EXPIRED} THEN 0 ELSE t.failures END,
    pending = CASE WHEN {_EXPIRED} THEN 1 ELSE t.pending + 1 END,
    locked_until = CASE WHEN {_EXPIRED} THEN NULL ELSE t.locked_until END
WHERE {_EXPIRED} OR (t.locked_until IS NULL AND t.failures + t.pending < {_LIMIT})
RETURNING t.scope
""")  # noqa: S608 - constant fragments; values are bound

_STATE = text(f"""
SELECT t.scope, t.failures, t.pending, t.locked_until FROM login_throttle AS t WHERE {_KEYS}
""")  # noqa: S608 - constant fragments; values are bound

_FAILED = text(f"""
{_LOCK_IN_ORDER}
UPDATE login_throttle AS t SET
    pending = GREATEST(t.pending - 1, 0),
    failures = t.failures + 1,
    locked_until = CASE WHEN t.locked_until IS NULL AND t.failures + 1 >= {_LIMIT}
                        THEN :lock_until ELSE t.locked_until END
FROM old WHERE t.scope = old.scope AND t.key = old.key
RETURNING t.scope, t.failures, t.locked_until, t.failures = {_LIMIT} AS locked_now
""")  # noqa: S608 - constant fragments; values are bound

_SUCCEEDED = text(f"""
{_LOCK_IN_ORDER}
UPDATE login_throttle AS t SET
    pending = GREATEST(t.pending - 1, 0),
    failures = CASE WHEN t.scope = 'user' THEN 0 ELSE t.failures END
FROM old WHERE t.scope = old.scope AND t.key = old.key
RETURNING t.scope, old.failures AS failures_before
""")  # noqa: S608 - constant fragments; values are bound

_RELEASE = text(f"""
{_LOCK_IN_ORDER}
UPDATE login_throttle AS t SET pending = GREATEST(t.pending - 1, 0)
FROM old WHERE t.scope = old.scope AND t.key = old.key
""")  # noqa: S608 - constant fragments; values are bound

_PRUNE = text("""
DELETE FROM login_throttle
WHERE window_started_at <= :stale_before AND (locked_until IS NULL OR locked_until <= :now)
""")


@dataclass(frozen=True)
class Attempt:
    """One login attempt: who it claims to be, from where, and when."""

    username: str
    address: str
    now: datetime

    def params(self, settings: Settings) -> dict[str, Any]:
        window = timedelta(seconds=settings.login_window_s)
        return {
            "username": self.username,
            "address": address_key(self.address),
            "now": self.now,
            "stale_before": self.now - window,
            "lock_until": self.now + window,
            "max_user": settings.login_max_failures,
            "max_address": settings.login_max_failures_per_address,
        }


def reserve(session: Session, attempt: Attempt, settings: Settings) -> None:
    """Take this attempt's place in both counts (the caller commits), or raise
    TooManyRequests (nothing taken) when either is locked or full."""
    granted = session.execute(_RESERVE, attempt.params(settings)).scalars().all()
    if len(granted) == 2:
        return
    session.rollback()
    raise refusal(session, attempt, settings)


class LockedOut(TooManyRequests):
    """Logins for ``scope``'s key are locked until ``until``: the same answer whether or
    not the username exists (its failures are counted all the same)."""

    def __init__(self, scope: str, until: datetime, now: datetime) -> None:
        wait_s = max(1, math.ceil((until - now).total_seconds()))
        which = "this username" if scope == USER else "this address"
        super().__init__(
            f"too many failed logins for {which}: locked for {wait_s} s more "
            "(until then even the right password is refused)",
            retry_after_s=wait_s,
        )
        self.scope, self.until = scope, until


def refusal(session: Session, attempt: Attempt, settings: Settings) -> TooManyRequests:
    """Why ``attempt`` may not try now, and for how long."""
    locks = [
        (row.locked_until, row.scope)
        for row in session.execute(_STATE, attempt.params(settings))
        if row.locked_until is not None and row.locked_until > attempt.now
    ]
    if locks:
        until, scope = max(locks)
        return LockedOut(scope, until, attempt.now)
    # not locked: the limit is taken by checks still in flight
    return TooManyRequests(
        "too many logins for this username or address are being checked; retry in 1 s",
        retry_after_s=1,
    )


def failed(session: Session, attempt: Attempt, settings: Settings) -> list[tuple[str, datetime]]:
    """Count a failure in both rows; audit the window's first one and any lockout.
    Returns the lockouts this failure started: (scope, until)."""
    params = attempt.params(settings)
    started = []
    for row in session.execute(_FAILED, params):
        key = attempt.username if row.scope == USER else params["address"]
        if row.scope == USER and row.failures == 1:
            _audit(session, attempt, "login.failed", row.scope, key, failures=1)
        if row.locked_now:
            lockout = {"failures": row.failures, "locked_until": row.locked_until.isoformat()}
            _audit(session, attempt, "login.locked", row.scope, key, **lockout)
            started.append((row.scope, row.locked_until))
    return started


def succeeded(session: Session, attempt: Attempt, settings: Settings) -> None:
    """Give back the reservation and clear the username's failures (audited if any)."""
    for row in session.execute(_SUCCEEDED, attempt.params(settings)):
        if row.scope == USER and row.failures_before > 0:
            failures = row.failures_before
            _audit(session, attempt, "login.succeeded", USER, attempt.username, failures=failures)


def release(session: Session, attempt: Attempt, settings: Settings) -> None:
    """Give back the reservation of an attempt that was never decided (busy, an error)."""
    session.execute(_RELEASE, attempt.params(settings))


def prune(session: Session, *, now: datetime, window_s: int) -> int:
    """Forget rows whose window (and any lockout) is over: they would start afresh."""
    result = session.execute(
        _PRUNE, {"now": now, "stale_before": now - timedelta(seconds=window_s)}
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _audit(
    session: Session, attempt: Attempt, action: str, scope: str, key: str, **counts: Any
) -> None:
    record_change(
        session,
        actor=f"client:{attempt.address}"[:160],
        action=action,
        entity="login_user" if scope == USER else "login_address",
        entity_id=key[:80],
        before=None,
        after={"username": attempt.username, "address": attempt.address, **counts},
        topics=(),
    )
