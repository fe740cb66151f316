"""Sealing: staged changes become linked audit rows and sequenced events, after commit.

Writers stage each change (:mod:`core.changes`) in ``pending_change``, in the transaction
that makes it, and take no lock that another writer waits for. A seal pass then, under one
advisory lock, takes the staged rows it can see (committed ones only), links them onto the
audit chain in that order, gives their events the next seqs of their topics, deletes them
from the stage and NOTIFYs the events' ids, all in one transaction. So:

- the chain and each topic's seqs are in the order changes were found committed, with no
  gaps and no reordering (only the sealer writes them, one pass at a time);
- a writer's open transaction never delays another writer's commit (its staged rows are
  invisible until it commits; nobody waits for them);
- commits can share a disk flush (group commit) instead of queueing behind a lock held
  through each other's flushes.

In the server a :class:`Sealer` thread runs the passes: woken by each commit that staged
something (the committing thread waits for the next pass, so what a request changed is
sealed when it answers), and every ``poll_s`` for rows other processes left behind. Without
one (the CLI, tests on one connection) a transaction seals in its own commit.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    String,
    Text,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, mapped_column

from core import audit
from core.db import Base
from core.metrics import registry
from core.outbox import NOTIFY_CHANNEL

log = logging.getLogger("emergency.sealer")
PASS_S = Histogram(
    "audit_seal_pass_seconds",
    "One seal pass: lock, link, write, commit",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
    registry=registry,
)
PASS_ROWS = Histogram(
    "audit_seal_pass_rows",
    "Staged changes sealed by one pass",
    buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 512, 5000),
    registry=registry,
)
WAIT_S = Histogram(
    "audit_seal_wait_seconds",
    "A committed request's wait for the pass that seals its changes",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=registry,
)
FAILED = Counter("audit_seal_failures_total", "Seal passes that failed", registry=registry)
_LOCK_KEY = 0x7365616C  # "seal": one pass at a time, across processes (audit_seal_take)


class PendingChange(Base):
    """A change staged by its transaction, waiting to be sealed (then deleted)."""

    __tablename__ = "pending_change"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(80))
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(80))
    # The audit row's canonical JSON (audit.body): what its link is made over. None for
    # an event that is not audited (telemetry such as the live map's positions).
    body: Mapped[str | None] = mapped_column(Text)
    topics: Mapped[list[str]] = mapped_column(ARRAY(String(80)))
    # The events' payload when it is not the row's ``after`` (None: it is).
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))


# One statement moves a pass's rows: out of the stage, onto the chain (ids in the pass's
# order), into each topic's events (seqs reserved on topic_seq, in the same order), and a
# NOTIFY of the events' id range, delivered when the pass commits.
_SEAL_SQL = text(
    """
    WITH batch AS (
        SELECT b.pid, b.prev_hash, b.hash, b.n
        FROM unnest(:ids, :prevs, :hashes) WITH ORDINALITY AS b(pid, prev_hash, hash, n)
    ), gone AS (
        DELETE FROM pending_change p USING batch b WHERE p.id = b.pid
        RETURNING p.at, p.actor, p.action, p.entity, p.entity_id, CAST(p.body AS jsonb) AS doc,
                  p.topics, p.payload, b.prev_hash, b.hash, b.n
    ), chained AS (
        INSERT INTO audit_event
            (at, actor, action, entity, entity_id, before, after, prev_hash, hash, key_id)
        SELECT at, actor, action, entity, entity_id, doc -> 'before', doc -> 'after',
               prev_hash, hash, :key_id
        FROM gone WHERE hash IS NOT NULL ORDER BY n
        RETURNING id
    ), ev AS (
        SELECT g.n, t.topic, t.k, g.action AS type, coalesce(g.payload, g.doc -> 'after') AS payload
        FROM gone g CROSS JOIN LATERAL unnest(g.topics) WITH ORDINALITY AS t(topic, k)
    ), counts AS (
        SELECT topic, count(*) AS c FROM ev GROUP BY topic
    ), reserved AS (
        INSERT INTO topic_seq AS s (topic, last_seq)
        SELECT topic, c FROM counts ORDER BY topic
        ON CONFLICT (topic) DO UPDATE SET last_seq = s.last_seq + excluded.last_seq
        RETURNING s.topic, s.last_seq
    ), added AS (
        INSERT INTO event (topic, seq, type, payload, created_at)
        SELECT ev.topic,
               r.last_seq - c.c + row_number() OVER (PARTITION BY ev.topic ORDER BY ev.n, ev.k),
               ev.type, ev.payload, clock_timestamp()
        FROM ev JOIN counts c USING (topic) JOIN reserved r USING (topic)
        ORDER BY ev.n, ev.k
        RETURNING id
    ), span AS (
        SELECT min(id) AS lo, max(id) AS hi, count(*) AS events FROM added
    )
    SELECT (SELECT count(*) FROM chained) AS rows, span.events,
           CASE WHEN span.events > 0
                THEN pg_notify(:channel, span.lo || '-' || span.hi) END AS notified
    FROM span
    """
).bindparams(
    bindparam("ids", type_=ARRAY(BigInteger())),
    bindparam("prevs", type_=ARRAY(Text())),
    bindparam("hashes", type_=ARRAY(Text())),
)


@dataclass(frozen=True)
class Sealed:
    rows: int
    events: int


# Waits for the seal lock, then reads the chain, its head and the staged rows (migration
# 0007): one round trip.
_TAKE_SQL = text("SELECT o_chain, o_head, o_id, o_body FROM audit_seal_take(:limit)")


def seal(conn: Connection, keyring: audit.Keyring, *, limit: int = 5000) -> Sealed:
    """One pass in ``conn``'s transaction (the caller commits): up to ``limit`` staged
    rows, oldest first, linked with ``keyring.current``. Waits for a pass of another
    process to end first."""
    staged = conn.execute(_TAKE_SQL, {"limit": limit}).all()
    if not staged:
        return Sealed(0, 0)
    chain_id = uuid.UUID(str(staged[0][0]))
    prev = staged[0][1] or audit.GENESIS
    key = keyring.current
    ids: list[int] = []
    prevs: list[str | None] = []
    hashes: list[str | None] = []
    audited = 0
    for _chain, _head, row_id, row_body in staged:
        ids.append(row_id)
        if row_body is None:  # an event only: not on the chain
            prevs.append(None)
            hashes.append(None)
            continue
        digest = key.link(chain_id, prev, row_body)
        audited += 1
        prevs.append(prev)
        hashes.append(digest)
        prev = digest
    params = {
        "ids": ids,
        "prevs": prevs,
        "hashes": hashes,
        "key_id": key.id,
        "channel": NOTIFY_CHANNEL,
    }
    rows, events, _ = conn.execute(_SEAL_SQL, params).one()
    if rows != audited:  # only sealers delete staged rows, and they hold the lock
        raise RuntimeError(f"sealed {rows} of {audited} staged audit rows")
    return Sealed(int(rows), int(events or 0))


def pending(conn: Connection) -> tuple[int, float | None]:
    """How many staged rows wait, and the age in seconds of the oldest."""
    n, oldest = conn.execute(
        select(func.count(), func.extract("epoch", func.now() - func.min(PendingChange.at)))
    ).one()
    return int(n), None if oldest is None else max(0.0, float(oldest))


class Sealer:
    """Seal passes for one process, one at a time, over ``engine`` (its own: committing
    writers wait for a pass while holding their pool connections, so the sealer must not
    need one from that pool; :meth:`stop` disposes of it).

    Group sealing, as group commit: a writer that has committed calls :meth:`seal` and
    waits for a pass that begins after its call; such a pass finds its rows committed (or
    sealed already by another process's pass, which it waits for). If no pass is running
    the writer runs one itself, on its own thread (no hand-off to another thread and back);
    writers that come meanwhile wait, and one of them runs the next pass for all of them.
    A thread of the sealer's own only polls, every ``poll_s``, for rows left by a process
    that died between its commit and its pass."""

    def __init__(
        self,
        engine: Engine,
        keyring: audit.Keyring,
        *,
        poll_s: float = 1.0,
        batch: int = 5000,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.poll_s = poll_s
        self.batch = batch
        self._cond = threading.Condition()
        self._requested = 0  # tickets handed out
        self._done = 0  # every ticket up to this one has had its pass
        self._running = False  # a pass is running (in some thread of this process)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="audit-sealer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.engine.dispose()

    def seal(self, timeout_s: float = 10.0) -> bool:
        """Return once a pass that began after this call has ended (True), or after
        ``timeout_s`` (False: the rows are committed; a later pass seals them)."""
        started = time.monotonic()
        try:
            return self._seal(started + timeout_s)
        finally:
            WAIT_S.observe(time.monotonic() - started)

    def _seal(self, deadline: float) -> bool:
        with self._cond:
            self._requested += 1
            ticket = self._requested
            while self._done < ticket:
                if not self._running:  # nobody is sealing: lead the next pass
                    self._running = True
                    target = self._requested
                    break
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    return False
                self._cond.wait(left)
            else:
                return True
        return self._lead(target)

    def _lead(self, target: int) -> bool:
        """Seal for every ticket up to ``target`` (this thread holds ``_running``)."""
        ok = False
        try:
            self._drain()
            ok = True
        except Exception as exc:  # the database may be away: a later pass retries
            FAILED.inc()
            log.warning("seal pass failed (%s); a later pass retries", str(exc)[:200] or repr(exc))
        finally:
            with self._cond:
                self._running = False
                if ok:
                    self._done = max(self._done, target)
                self._cond.notify_all()
        return ok

    def _poll(self) -> None:
        """The background pass: every ``poll_s`` (staged rows nobody waits for)."""
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._stopping, self.poll_s):
                    return
                busy = self._running
            if not busy:  # not through seal(): nobody waits, WAIT_S is requests' waits
                self._seal(time.monotonic() + self.poll_s)

    def _drain(self) -> None:
        while True:
            started = time.perf_counter()
            with self.engine.begin() as conn:
                done = seal(conn, self.keyring, limit=self.batch)
            PASS_S.observe(time.perf_counter() - started)
            PASS_ROWS.observe(done.rows)
            if done.rows < self.batch:
                return
