"""One call per change: its audit row and outbox events, staged when the transaction commits.

Changes are collected on the session and staged in ``pending_change`` in a ``before_commit``
hook, in the order they were recorded, in the same transaction as the change (so a change
and its record commit or vanish together). The sealer (:mod:`core.sealer`) then links them
onto the audit chain and gives their events seqs. Staging takes no lock another writer
waits for: writers never queue behind each other's commits.

The hooks are on :class:`core.db.AuditedSession` (what :func:`core.db.make_sessionmaker`
makes), never on every :class:`Session` of the process: a library's or a test's plain
session is left alone, and recording a change on one is refused (TypeError) rather than
silently dropped at its commit.

Who seals depends on the session: sessions of a server carry its :class:`Sealer` in their
``info`` (:data:`SEALER`), and a commit waits (at most ``SEAL_WAIT_S``) for the pass that
seals what it staged, so a request's changes are on the chain and on the bus when it
answers. Sessions without one (the CLI, tests) seal in their own commit, with
``info[KEYRING]`` or the configured key.
"""

from __future__ import annotations

import functools
import logging
import weakref
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.orm import Session, SessionTransaction

from core import audit, bulk, sealer
from core.config import Settings, get_settings
from core.db import AuditedSession
from core.types import utcnow

SITUATION = "situation"
SEALER = "emergency.sealer"  # session.info: the server's Sealer
KEYRING = "emergency.audit_keyring"  # session.info: the keys to seal with, without a Sealer
SEAL_WAIT_S = 5.0
_PENDING = "emergency.pending_changes"
_STAGED = "emergency.staged"
log = logging.getLogger("emergency.changes")


def record_change(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    topics: tuple[str, ...] = (SITUATION,),
    payload: dict[str, Any] | None = None,
) -> None:
    """Audit ``action`` on ``entity`` and publish it as event ``action`` on ``topics``.

    Both are staged when ``session`` commits, in the same transaction as the change.
    ``payload`` defaults to ``after`` (or ``before`` for deletions): what a live map needs
    to redraw the thing without another request.

    The values are encoded now, once, in the chain's canonical form (later changes to the
    objects cannot alter what is written); the audit row's ``after`` doubles as the
    events' payload unless ``payload`` is given."""
    before_text, after_text = audit.encode(before), audit.encode(after)
    if payload is not None:
        payload_text: str | None = audit.encode(payload)
    elif after is not None:
        payload_text = None  # the sealer takes the row's after
    else:
        payload_text = before_text if before is not None else "{}"
    at = utcnow()
    ident = None if entity_id is None else str(entity_id)
    row = {
        "at": at,
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": ident,
        "body": audit.body(at, actor, action, entity, ident, before_text, after_text),
        "topics": list(topics),
        "payload": None if payload_text is None else bulk.RawJSON(payload_text),
    }
    if not isinstance(session, AuditedSession):
        # Nothing would stage or seal it: the change would be lost at commit.
        raise TypeError("record changes on an AuditedSession (core.db.make_sessionmaker)")
    session.connection()  # in a transaction now: a rollback forgets the change
    session.info.setdefault(_PENDING, []).append(row)  # a pending_change row


def publish_event(
    session: Session,
    *,
    action: str,
    entity: str,
    payload: dict[str, Any],
    topics: tuple[str, ...] = (SITUATION,),
    actor: str = "system:live",
) -> None:
    """Publish event ``action`` on ``topics`` without an audit row: for telemetry that is
    not a decision (the live map's positions), staged and sequenced like every event."""
    if not isinstance(session, AuditedSession):
        raise TypeError("publish events on an AuditedSession (core.db.make_sessionmaker)")
    row = {
        "at": utcnow(),
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": None,
        "body": None,  # not audited: the sealer gives it seqs and no chain link
        "topics": list(topics),
        "payload": bulk.RawJSON(audit.encode(payload)),
    }
    session.connection()
    session.info.setdefault(_PENDING, []).append(row)


_TABLE: Table = sealer.PendingChange.__table__  # type: ignore[assignment]


def write_pending(session: Session) -> int:
    """Stage the collected changes now (one INSERT); returns how many."""
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if pending:
        bulk.insert(session.connection(), _TABLE, pending)
    return len(pending)


@functools.lru_cache(maxsize=8)
def _keyring(secret: str, audit_key: str | None, retired: tuple[str, ...]) -> audit.Keyring:
    return audit.Keyring.from_secrets(audit_key or secret, retired)


def keyring(settings: Settings | None = None) -> audit.Keyring:
    """The audit keys of ``settings`` (default: the process's configuration)."""
    settings = settings or get_settings()
    return _keyring(settings.secret_key, settings.audit_key, settings.audit_retired_keys)


def _stage_before_commit(session: Session) -> None:
    if not session.info.get(_PENDING):
        return
    session.flush()  # row changes (and their lock waits) first
    write_pending(session)
    if session.info.get(SEALER) is not None:
        session.info[_STAGED] = True
    else:
        sealer.seal(session.connection(), session.info.get(KEYRING) or keyring())


def _wait_for_seal(session: Session) -> None:
    if not session.info.pop(_STAGED, False):
        return
    worker: sealer.Sealer = session.info[SEALER]
    if not worker.seal(SEAL_WAIT_S):
        log.warning("changes committed but not sealed within %.1f s", SEAL_WAIT_S)


# How many changes were recorded when each open savepoint began.
_SAVEPOINTS: weakref.WeakKeyDictionary[SessionTransaction, int] = weakref.WeakKeyDictionary()


def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:  # a rollback to it forgets only what was recorded after it
        _SAVEPOINTS[transaction] = len(session.info.get(_PENDING, ()))


def _forget_on_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:
        kept = _SAVEPOINTS.get(previous, 0)
        del session.info.get(_PENDING, [])[kept:]
        return
    session.info.pop(_PENDING, None)
    session.info.pop(_STAGED, None)


_HOOKS = (
    ("before_commit", _stage_before_commit),
    ("after_commit", _wait_for_seal),
    ("after_transaction_create", _mark_savepoint),
    ("after_soft_rollback", _forget_on_rollback),
)


def _hook(target: type[Session]) -> None:
    """Stage and seal the changes recorded on sessions of ``target`` when they commit."""
    for name, fn in _HOOKS:
        if not event.contains(target, name, fn):
            event.listen(target, name, fn)


_hook(AuditedSession)
