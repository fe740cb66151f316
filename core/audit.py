"""The hash-chained audit log: append in the caller's transaction, verify the chain.

Each row's hash is SHA-256 over the previous row's hash and the row's own canonical JSON,
so changing, deleting or reordering any row breaks every link after it. Writers take a
transaction-scoped advisory lock before reading the chain's head, which orders them: the
chain is a single sequence even with many app processes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import bulk
from core.db import Base
from core.types import utcnow

GENESIS = "0" * 64
_LOCK_KEY = 0x61756469  # "audi": the advisory lock that serialises chain writers


class AuditEvent(Base):
    """Append-only, hash-chained record of every change (triggers refuse UPDATE/DELETE)."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(80))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(80))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


def _canonical(value: Any) -> Any:
    """JSON-safe copy (datetimes as ISO text) so the hash is stable after a round trip."""
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def canonical_text(value: Any) -> str:
    """A JSON-safe value as the chain hashes it: keys sorted, compact, UTF-8 as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encode(value: Any) -> str:
    """Any value's canonical text as the chain stores it: ``canonical_text(_canonical(value))``
    (datetimes and other non-JSON values as ``str``), in one pass when every mapping key is a
    string (then the round trip changes nothing the text shows), else through the round
    trip (``{1: ..}`` becomes ``{"1": ..}`` and sorts as text)."""
    if value is None:
        return "null"
    if _string_keys(value):
        return json.dumps(
            value, default=str, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    return canonical_text(_canonical(value))


def _string_keys(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return False
                if isinstance(child, dict | list | tuple):
                    stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(child for child in item if isinstance(child, dict | list | tuple))
    return True


def row_hash(
    prev_hash: str,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    before: Any,
    after: Any,
) -> str:
    """SHA-256 hex of ``prev_hash`` and the row's fields in canonical JSON."""
    body = _body(at, actor, action, entity, entity_id, canonical_text(before),
                 canonical_text(after))  # fmt: skip
    return _link(prev_hash, body)


def _body(
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    before_text: str,
    after_text: str,
) -> str:
    """The row's canonical JSON from its parts, before/after already encoded: exactly
    ``canonical_text`` of the whole row (keys in sorted order), without encoding them twice."""
    t = canonical_text
    return (
        f'{{"action":{t(action)},"actor":{t(actor)},"after":{after_text},'
        f'"at":{t(at.astimezone(UTC).isoformat())},"before":{before_text},'
        f'"entity":{t(entity)},"entity_id":{t(entity_id)}}}'
    )


def _link(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: object | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit row, chained to the current head, in the caller's transaction."""
    (digest,) = record_many(session, [Entry(actor, action, entity, entity_id, before, after)])
    row = session.scalar(select(AuditEvent).where(AuditEvent.hash == digest))
    assert row is not None
    return row


@dataclass(frozen=True)
class Entry:
    """One audit row to append (see :func:`record_many`)."""

    actor: str
    action: str
    entity: str
    entity_id: object | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class Encoded:
    """One audit row to append, its before/after already as :func:`encode` gives them."""

    actor: str
    action: str
    entity: str
    entity_id: object | None
    before_text: str
    after_text: str


def record_many(session: Session, entries: list[Entry]) -> list[str]:
    """Append ``entries`` in order, chained (see :func:`record_encoded`); their hashes."""
    return record_encoded(
        session,
        [Encoded(e.actor, e.action, e.entity, e.entity_id, encode(e.before), encode(e.after))
         for e in entries],
    )  # fmt: skip


def record_encoded(session: Session, entries: list[Encoded]) -> list[str]:
    """Append ``entries`` in order, chained, with one lock, one head read and one INSERT:
    a transaction's whole chain segment costs three round trips, not three per row.
    Returns the rows' hashes.

    Everything but the chaining (JSON, row bodies) is done before the lock is taken: the
    lock orders every writer of the system, so only the SHA-256 links are computed under it."""
    if not entries:
        return []
    at = utcnow()
    rows: list[dict[str, Any]] = []
    bodies: list[str] = []
    for e in entries:
        entity_id = None if e.entity_id is None else str(e.entity_id)
        bodies.append(_body(at, e.actor, e.action, e.entity, entity_id, e.before_text,
                            e.after_text))  # fmt: skip
        rows.append(
            {"at": at, "actor": e.actor, "action": e.action, "entity": e.entity,
             "entity_id": entity_id, "before": bulk.RawJSON(e.before_text),
             "after": bulk.RawJSON(e.after_text)}
        )  # fmt: skip
    session.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    prev = prev or GENESIS
    for row, body in zip(rows, bodies, strict=True):
        row["prev_hash"], row["hash"] = prev, _link(prev, body)
        prev = row["hash"]
    # One INSERT; identity ids follow the rows' order, so the chain order is the id order.
    bulk.insert(session.connection(), _TABLE, rows)
    return [r["hash"] for r in rows]


_TABLE: Table = AuditEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain check: rows read, and the first bad row if any."""

    checked: int
    first_bad_id: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def _rows(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        rows = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > last_id)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()


def verify(session: Session) -> VerifyResult:
    """Walk the chain in id order; report the first row whose link or hash is wrong."""
    prev = GENESIS
    checked = 0
    for row in _rows(session):
        if row.prev_hash != prev:
            return VerifyResult(checked, row.id, "prev_hash does not match the previous row")
        expected = row_hash(
            prev,
            at=row.at,
            actor=row.actor,
            action=row.action,
            entity=row.entity,
            entity_id=row.entity_id,
            before=row.before,
            after=row.after,
        )
        if row.hash != expected:
            return VerifyResult(checked, row.id, "row content does not match its hash")
        prev = row.hash
        checked += 1
    return VerifyResult(checked)
