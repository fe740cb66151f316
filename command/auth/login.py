"""Logging in over HTTP: throttled per username and per client address, with the password
checks in flight bounded per process.

argon2 is slow on purpose. Unthrottled, 2,000 wrong passwords in a row were 2,000 checks:
the server sat at 190% CPU and other reads slowed from 5 ms to 107 ms. So:

- Failures are counted in the database (``login_throttle``), one row per username and one
  per client address, so every server process shares the counts. An attempt first
  reserves its place (``pending``) in both rows with one INSERT .. ON CONFLICT; one that
  finds a lockout, or the limit already taken by failures and checks in flight, is refused
  (429 + Retry-After) before any hashing. A burst therefore cannot slip past the limit
  while its hashes are being checked, in one process or many. A process keeps the
  lockouts it has seen, so a flood against one costs no database round trip either.
- Reaching the limit locks the username (or address) for a whole window from that
  failure; during it even the right password is refused. After it, the row starts afresh.
  A success clears its username's failures (not its address's: an attacker with an
  account of their own must not reset the count of the address they spray from).
- At most ``login_max_concurrent`` checks run at once per process; a login that cannot
  get a slot within ``login_wait_s``, or finds ``login_max_waiting`` already waiting, is
  answered 503 + Retry-After (its reservation is given back: busy is not a failure).
- The audit log gets the first failure of a username's window, each lockout (with the
  count), and a success that follows failures (with their count): a flood is a few rows,
  not one per attempt.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio
from fastapi import Request
from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from command.auth import service as auth
from command.auth.models import User
from command.auth.throttle import (
    ADDRESS,
    USER,
    Attempt,
    LockedOut,
    failed,
    prune,
    release,
    reserve,
    succeeded,
)
from command.client_address import address_key, client_address
from core.config import Settings
from core.errors import Busy, TooManyRequests, Unauthenticated
from core.metrics import registry

PRUNE_EVERY_S = 60.0
MAX_REMEMBERED_LOCKS = 10_000

CHECKS = Counter(
    "login_password_checks_total", "Password hashes checked (argon2) at login", registry=registry
)
REFUSED = Counter(
    "login_refused_total",
    "Logins refused before any password check (locked: throttled; busy: no free slot)",
    ["reason"],
    registry=registry,
)

Step = Callable[[Session, Attempt, Settings], None]


class Logins:
    """Per-process login service: the shared throttle, and a bound on password checks."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self._slots = anyio.Semaphore(settings.login_max_concurrent)
        self._waiting = 0
        self._pruned_at = 0.0
        # Lockouts this process has seen, so a flood against one is refused without a
        # database round trip (nothing lifts a lockout early: it can be kept till its end).
        self._locks: dict[tuple[str, str], datetime] = {}

    async def log_in(
        self, *, username: str, password: str, address: str, now: datetime | None = None
    ) -> str:
        """A bearer token for these credentials; Unauthenticated (401), TooManyRequests
        (429: throttled) or Busy (503: no free slot for the password check)."""
        attempt = Attempt(username, address, now or datetime.now(UTC))
        self._refuse_if_locked(attempt)
        stored_hash = await run_in_threadpool(self._reserve, attempt)
        try:
            async with self._slot():
                CHECKS.inc()
                ok = await run_in_threadpool(auth.verify_password, stored_hash, password)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self._in_transaction, release, attempt)
            raise
        return await run_in_threadpool(self._settle, attempt, stored_hash, ok)

    def _reserve(self, attempt: Attempt) -> str | None:
        with self.factory() as session:
            if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                self._pruned_at = time.monotonic()
                prune(session, now=attempt.now, window_s=self.settings.login_window_s)
            try:
                reserve(session, attempt, self.settings)
            except TooManyRequests as exc:
                REFUSED.labels("locked").inc()
                if isinstance(exc, LockedOut):
                    self._remember(attempt, [(exc.scope, exc.until)])
                raise
            stored = session.scalar(
                select(User.password_hash).where(User.username == attempt.username)
            )
            session.commit()
            return stored

    def _settle(self, attempt: Attempt, stored_hash: str | None, ok: bool) -> str:
        with self.factory() as session:
            user = session.scalar(select(User).where(User.username == attempt.username))
            # The hash must still be the one checked: a password changed meanwhile wins.
            good = ok and user is not None and user.active and user.password_hash == stored_hash
            if not good:
                locks = failed(session, attempt, self.settings)
                session.commit()
                self._remember(attempt, locks)
                raise Unauthenticated("wrong username or password")
            assert user is not None
            succeeded(session, attempt, self.settings)
            token = auth.issue_token(
                user, secret=self.settings.secret_key, ttl_s=self.settings.token_ttl_s
            )
            session.commit()
            return token

    def _keys(self, attempt: Attempt) -> dict[str, tuple[str, str]]:
        return {USER: (USER, attempt.username), ADDRESS: (ADDRESS, address_key(attempt.address))}

    def _refuse_if_locked(self, attempt: Attempt) -> None:
        for scope, key in self._keys(attempt).items():
            until = self._locks.get(key)
            if until is None:
                continue
            if until > attempt.now:
                REFUSED.labels("locked").inc()
                raise LockedOut(scope, until, attempt.now)
            self._locks.pop(key, None)

    def _remember(self, attempt: Attempt, locks: list[tuple[str, datetime]]) -> None:
        if len(self._locks) >= MAX_REMEMBERED_LOCKS:
            self._locks = {k: t for k, t in self._locks.items() if t > attempt.now}
            if len(self._locks) >= MAX_REMEMBERED_LOCKS:
                self._locks.clear()  # the database still has every one of them
        keys = self._keys(attempt)
        for scope, until in locks:
            self._locks[keys[scope]] = until

    def _in_transaction(self, step: Step, attempt: Attempt) -> None:
        with self.factory() as session:
            step(session, attempt, self.settings)
            session.commit()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the process's password-check slots, or Busy: waiting is bounded in both
        time and number, so a flood never builds a queue that grows without end."""
        if self._slots.value == 0 and self._waiting >= self.settings.login_max_waiting:
            raise self._busy()
        self._waiting += 1
        try:
            with anyio.move_on_after(self.settings.login_wait_s) as scope:
                await self._slots.acquire()
        finally:
            self._waiting -= 1
        if scope.cancelled_caught:
            raise self._busy()
        try:
            yield
        finally:
            self._slots.release()

    @staticmethod
    def _busy() -> Busy:
        REFUSED.labels("busy").inc()
        return Busy("too many logins being checked right now; retry in 1 s", retry_after_s=1)


async def get_logins(request: Request) -> Logins:
    """The app's login service (made on first use, in the serving event loop)."""
    logins: Logins | None = getattr(request.app.state, "logins", None)
    if logins is None:
        logins = Logins(request.app.state.sessionmaker, request.app.state.settings)
        request.app.state.logins = logins
    return logins


def request_address(request: Request, settings: Settings) -> str:
    """The client address of an HTTP request (see :func:`client_address`)."""
    peer = request.client.host if request.client else None
    return client_address(
        peer, request.headers.getlist("x-forwarded-for"), settings.trusted_proxies
    )
