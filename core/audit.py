"""The audit chain: its rows, their canonical form and keyed links, and how it is verified.

Every change is first written, in the transaction that makes it, to a staging table
(:mod:`core.changes`); after commit the sealer (:mod:`core.sealer`) moves staged rows into
``audit_event`` in the order it finds them committed and links each to the one before:

    hash = HMAC-SHA256(key, chain_id | prev_hash | body)

where ``body`` is the row's canonical JSON (:func:`body`) and ``key`` is derived from the
server's secret and never stored in the database (:class:`Keyring`). Changing, deleting or
reordering a row breaks its link or the next one; recomputing the links needs the key. Rows
written before links were keyed (``key_id`` NULL) carry plain SHA-256 links and are accepted
only before the first keyed row. Rows cut from the end leave an intact chain: the signed
checkpoints kept outside the database (:mod:`core.checkpoint`) catch that.

The canonical form is what PostgreSQL gives back: ``jsonb`` keeps numbers as decimal text
(``-0.0`` comes back ``0.0``, ``1e+16`` as the integer ``10000000000000000``), so a value is
normalised the same way before it is hashed (:func:`normalize`), and a row read back hashes
to what was written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, String, Uuid, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base

GENESIS = "0" * 64  # the prev_hash of a chain's first row


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
    # Which key made the link (None: a plain SHA-256 link, written before links were keyed).
    key_id: Mapped[str | None] = mapped_column(String(32))


class AuditChain(Base):
    """The chain's identity: one row, made with the database (so it survives a backup and
    restore), named in every link and checkpoint."""

    __tablename__ = "audit_chain"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Rows up to this id were written before links were keyed (None: none were).
    legacy_until_id: Mapped[int | None] = mapped_column(BigInteger)


# --- the canonical form -----------------------------------------------------------


def canonical_text(value: Any) -> str:
    """A normalised JSON value as the chain hashes it: keys sorted, compact, UTF-8 as is."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def normalize(value: Any) -> Any:
    """``value`` as PostgreSQL's ``jsonb`` gives it back (through psycopg's ``json.loads``).

    Mappings get text keys (as ``json.dumps`` writes them), tuples become lists, other
    non-JSON values their ``str`` (datetimes, decimals). Floats: ``-0.0`` is ``0.0`` (numeric
    has no negative zero) and one Python writes with a positive exponent (``1.5e+16``:
    every float of 1e16 and up) comes back as the integer of that decimal text. NaN and
    infinities have no JSON form and are refused (ValueError)."""
    if isinstance(value, str) or value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dict):
        return {_key(k): normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return str(value)


def _float(value: float) -> float | int:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} has no JSON form")
    if value == 0.0:
        return 0.0
    if abs(value) >= 1e16:  # repr uses an exponent: numeric keeps the digits as written
        return int(Decimal(repr(value)))
    return value


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)  # what json.dumps makes of a non-text key
    return str(key)


def _normal(value: Any) -> bool:
    """Whether ``value`` is already normal (every key text, no float to change, no tuple
    or other non-JSON value): then its text needs no copy of it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif not _plain(item):
            return False
    return True


def _plain(value: Any) -> bool:
    if isinstance(value, float):
        negative_zero = value == 0.0 and math.copysign(1.0, value) < 0
        return math.isfinite(value) and abs(value) < 1e16 and not negative_zero
    return value is None or isinstance(value, str | int)


def encode(value: Any) -> str:
    """Any value's canonical text: ``canonical_text(normalize(value))``, without the copy
    when it is already normal (the common case: one ``json.dumps``)."""
    if value is None:
        return "null"
    return canonical_text(value if _normal(value) else normalize(value))


def body(
    at: datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | None,
    before_text: str,
    after_text: str,
) -> str:
    """A row's canonical JSON from its parts, before/after already encoded: exactly
    ``canonical_text`` of the whole row (keys in sorted order), without encoding them twice."""
    t = canonical_text
    return (
        f'{{"action":{t(action)},"actor":{t(actor)},"after":{after_text},'
        f'"at":{t(at.astimezone(UTC).isoformat())},"before":{before_text},'
        f'"entity":{t(entity)},"entity_id":{t(entity_id)}}}'
    )


def row_body(row: AuditEvent) -> str:
    """The body of a stored row, as it was when it was linked."""
    return body(
        row.at,
        row.actor,
        row.action,
        row.entity,
        row.entity_id,
        encode(row.before),
        encode(row.after),
    )


# --- keys and links -----------------------------------------------------------------


@dataclass(frozen=True)
class AuditKey:
    """A link key: derived from a secret, never stored; ``id`` names it in rows."""

    id: str
    secret: bytes = field(repr=False)

    @classmethod
    def derive(cls, secret: str) -> AuditKey:
        key = hmac.new(secret.encode(), b"emergency.audit-chain.v1", hashlib.sha256).digest()
        key_id = "k" + hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:15]
        return cls(key_id, key)

    def link(self, chain_id: uuid.UUID, prev_hash: str, row_body: str) -> str:
        message = f"{chain_id}|{prev_hash}|{row_body}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def sign(self, text: str) -> str:
        """A detached signature of ``text`` (checkpoints)."""
        return hmac.new(self.secret, b"checkpoint|" + text.encode(), hashlib.sha256).hexdigest()


def legacy_link(prev_hash: str, row_body: str) -> str:
    """A link of a row written before links were keyed: plain SHA-256."""
    return hashlib.sha256(f"{prev_hash}|{row_body}".encode()).hexdigest()


@dataclass(frozen=True)
class Keyring:
    """The key new links are made with, and every key this server can check."""

    current: AuditKey
    retired: tuple[AuditKey, ...] = ()

    @classmethod
    def from_secrets(cls, secret: str, retired: Iterable[str] = ()) -> Keyring:
        return cls(AuditKey.derive(secret), tuple(AuditKey.derive(s) for s in retired))

    def get(self, key_id: str) -> AuditKey | None:
        return next((k for k in (self.current, *self.retired) if k.id == key_id), None)


def chain(session: Session) -> AuditChain:
    """The database's chain identity (made by the migration)."""
    row: AuditChain | None = session.scalar(select(AuditChain))
    if row is None:
        raise RuntimeError("audit_chain is empty: run `emergency migrate`")
    return row


# --- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class BadRow:
    id: int
    reason: str


@dataclass
class Walk:
    """What walking the chain found."""

    checked: int = 0
    last_id: int | None = None
    last_hash: str | None = None
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    legacy: int = 0

    def flag(self, row_id: int, reason: str, *, keep: int) -> None:
        self.bad_count += 1
        if len(self.bad) < keep:
            self.bad.append(BadRow(row_id, reason))


def rows(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    """Every row in id order, read in batches (loaded rows are let go between batches)."""
    last_id = 0
    while True:
        found = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.id > last_id)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
        )
        if not found:
            return
        yield from found
        last_id = found[-1].id
        session.expunge_all()


def walk(session: Session, keyring: Keyring, *, keep: int = 1000) -> Walk:
    """Check every link in id order; every bad row is counted (the first ``keep`` named).

    A row is bad when its ``prev_hash`` is not the previous row's hash (a row before it
    was removed or changed, or rows were reordered), when its hash is not its content's
    link (it was edited), when its key is unknown, or when it is an unkeyed row where
    only keyed rows may be."""
    meta = chain(session)
    found = Walk()
    prev = GENESIS
    keyed_seen = False
    for row in rows(session):
        found.checked += 1
        if row.prev_hash != prev:
            found.flag(row.id, "prev_hash is not the previous row's hash", keep=keep)
        expected = _expected(row, meta, keyring, keyed_seen)
        if isinstance(expected, BadRow):
            found.flag(row.id, expected.reason, keep=keep)
        elif row.hash != expected:
            found.flag(row.id, "row content does not match its hash", keep=keep)
        keyed_seen = keyed_seen or row.key_id is not None
        found.legacy += row.key_id is None
        prev = row.hash
        found.last_id, found.last_hash = row.id, row.hash
    return found


def _expected(
    row: AuditEvent, meta: AuditChain, keyring: Keyring, keyed_seen: bool
) -> str | BadRow:
    if row.key_id is None:
        if keyed_seen or meta.legacy_until_id is None or row.id > meta.legacy_until_id:
            return BadRow(row.id, "unkeyed link where only keyed links may be")
        return legacy_link(row.prev_hash, row_body(row))
    key = keyring.get(row.key_id)
    if key is None:
        return BadRow(row.id, f"linked with key {row.key_id}, which this server does not have")
    return key.link(meta.id, row.prev_hash, row_body(row))


def head(session: Session) -> tuple[int, str] | None:
    """The newest row's id and hash."""
    found = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    return None if found is None else (int(found[0]), str(found[1]))
