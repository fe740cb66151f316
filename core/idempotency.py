"""Idempotency keys: a retried request (same actor, same key) has no second effect.

A phone on a bad connection cannot tell a lost request from a lost answer, so it retries
with the key it used the first time. The first request reserves the key with ``INSERT ..
ON CONFLICT DO NOTHING`` in its own transaction: a concurrent retry waits on that insert
and then finds the stored outcome. A request that fails is rolled back with its
reservation, so a retry runs again (and fails again, or succeeds now).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import DateTime, String, delete, func, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base
from core.errors import Conflict, InvalidInput
from core.types import utcnow

T = TypeVar("T")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{8,100}$")


class IdempotencyKey(Base):
    __tablename__ = "idempotency_key"

    actor: Mapped[str] = mapped_column(String(160), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[Any] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


def fingerprint(*parts: Any) -> str:
    """A stable digest of what the request asked for (to refuse a reused key)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise InvalidInput(
            "idempotency key must be 8-100 characters of letters, digits and . _ : -"
        )
    return key


def claim(session: Session, *, actor: str, key: str, digest: str) -> IdempotencyKey | None:
    """Reserve ``key`` for this request, or return the outcome of its first use.

    Returns None when the caller should do the work (then call :func:`remember` in the
    same transaction). Raises Conflict when the key was used for a different request.
    """
    check_key(key)
    inserted = session.execute(
        insert(IdempotencyKey)
        .values(actor=actor, key=key, fingerprint=digest)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).first()
    if inserted is not None:
        return None
    stored = session.get(IdempotencyKey, (actor, key), populate_existing=True)
    assert stored is not None  # the conflicting row is committed (ON CONFLICT waited for it)
    if stored.fingerprint != digest:
        raise Conflict(f"idempotency key {key!r} was already used for a different request")
    return stored


def remember(session: Session, *, actor: str, key: str, response: Any) -> None:
    """Store the outcome of the request that claimed ``key``."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.actor == actor, IdempotencyKey.key == key)
        .values(response=json.loads(json.dumps(response, default=str)))
    )


def once(session: Session, *, actor: str, key: str | None, digest: str, work: Callable[[], T]) -> T:
    """Run ``work`` and commit, unless ``key`` was used before: then return its outcome.

    Without a key, ``work`` simply runs and commits. ``work``'s result must be JSON-able.
    """
    if key is None:
        result = work()
        session.commit()
        return result
    stored = claim(session, actor=actor, key=key, digest=digest)
    if stored is not None:
        session.rollback()
        return cast(T, stored.response)
    result = work()
    remember(session, actor=actor, key=key, response=result)
    session.commit()
    return result


def prune(session: Session, *, older_than_s: float) -> int:
    """Forget keys older than ``older_than_s`` seconds; returns how many."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
