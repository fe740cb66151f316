"""Group commit of position fixes: many requests' fixes, one transaction.

Every ingest path hands its checked fixes to the process's :class:`PositionWriter` and
waits for their :class:`~resources.avl.fixes.Outcome`. One thread takes whatever has
queued (up to ``position_flush_rows``) and, in one transaction:

1. resolves trackers' fixes to their units (unknown, revoked or not-allowed devices are
   refused);
2. reads the units' last good positions (an unknown unit's fixes are refused);
3. flags impossible jumps (:func:`resources.avl.fixes.judge`);
4. appends the fixes to the track with one multi-row ``INSERT ... ON CONFLICT DO
   NOTHING`` (the same unit and ``recorded_at`` again is a duplicate: not stored twice);
5. moves each unit to its newest good fix, only if that is newer than where it is (an
   out-of-order fix never moves a unit back; concurrent writers agree, the ``WHERE`` is
   re-checked on the locked row);
6. commits, then answers every waiting request.

So a 202 means **durable**: the fix is committed in PostgreSQL (synchronous commit) before
the answer is sent, and a server killed after answering has lost nothing it accepted.
While a group commits the next one gathers, so the commit is shared (group commit) and
a request waits at most about two flushes. If the database is away the waiting requests
get the error (503): nothing was accepted, and a retry is safe (duplicates are detected).
Positions are telemetry: no audit row, no event; the live map is told by
:mod:`resources.avl.live`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime
from ipaddress import ip_address, ip_network
from typing import Any

import psycopg.errors
from prometheus_client import Counter, Histogram
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import BigInteger, String

from core.metrics import registry
from resources.avl import track
from resources.avl.fixes import Fix, Last, Outcome, first_of_each, judge

log = logging.getLogger("emergency.avl")
FLUSH_S = Histogram(
    "avl_flush_seconds",
    "One group commit of position fixes",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=registry,
)
FIXES = Counter(
    "avl_fixes_total", "Position fixes by what became of them", ["status"], registry=registry
)
RETRIES = 3

_DEVICES = text(
    "SELECT token_hash, id, unit_id, kind, allow_from FROM device "
    "WHERE token_hash = ANY(:hashes) AND revoked_at IS NULL"
).bindparams(bindparam("hashes", type_=ARRAY(String())))
_UNITS = text(
    "SELECT id, ST_X(geom), ST_Y(geom), position_at FROM unit WHERE id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger())))
_INSERT = text(
    """
    INSERT INTO unit_position (unit_id, recorded_at, geom, speed_mps, heading_deg, accuracy_m,
                               altitude_m, battery_pct, source, flag, device_id)
    SELECT r.u, r.t, ST_SetSRID(ST_MakePoint(r.x, r.y), 4326), r.v, r.h, r.a, r.z, r.b, r.s,
           r.f, r.d
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        u bigint, t timestamptz, x float8, y float8, v float8, h float8, a float8, z float8,
        b float8, s text, f text, d bigint)
    ON CONFLICT (unit_id, recorded_at) DO NOTHING
    RETURNING unit_id, recorded_at, id
    """
)
_MOVE = text(
    """
    UPDATE unit SET geom = ST_SetSRID(ST_MakePoint(r.x, r.y), 4326), position_at = r.t,
                    position_speed_mps = r.v, position_heading_deg = r.h
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
         AS r(u bigint, t timestamptz, x float8, y float8, v float8, h float8)
    WHERE unit.id = r.u AND (unit.position_at IS NULL OR unit.position_at < r.t)
    """
)
_SEEN = text(
    "UPDATE device SET last_seen_at = now() WHERE id = ANY(:ids) "
    "AND (last_seen_at IS NULL OR last_seen_at < now() - interval '10 seconds')"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger())))

UNKNOWN_DEVICE = "unknown or revoked device"


@dataclass
class _Job:
    fixes: Sequence[Fix]
    future: Future[list[Outcome]]


class PositionWriter:
    """The process's group-committing writer of fixes (module doc)."""

    def __init__(
        self, sessions: sessionmaker[Session], *, max_rows: int, max_speed_mps: float
    ) -> None:
        self.sessions = sessions
        self.max_rows = max_rows
        self.max_speed_mps = max_speed_mps
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._days: set[date] = set()  # partitions known to exist

    # --- callers ---------------------------------------------------------------------
    def submit(self, fixes: Sequence[Fix]) -> Future[list[Outcome]]:
        """Queue fixes; the future resolves to their outcomes, in order, once committed."""
        future: Future[list[Outcome]] = Future()
        if not fixes:
            future.set_result([])
            return future
        self._ensure_running()
        self._queue.put(_Job(fixes, future))
        return future

    def store(self, fixes: Sequence[Fix], timeout_s: float = 30.0) -> list[Outcome]:
        """Queue fixes and wait for their outcomes (from a worker thread)."""
        return self.submit(fixes).result(timeout_s)

    async def store_async(self, fixes: Sequence[Fix]) -> list[Outcome]:
        """Queue fixes and await their outcomes (from the event loop)."""
        return await asyncio.wrap_future(self.submit(fixes))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout_s)

    # --- the flushing thread -----------------------------------------------------------
    def _ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="avl-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, rows, stop = [job], len(job.fixes), False
            while rows < self.max_rows:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
                rows += len(more.fixes)
            self._flush_jobs(jobs)
            if stop:
                return

    def _flush_jobs(self, jobs: list[_Job]) -> None:
        fixes = [fix for job in jobs for fix in job.fixes]
        try:
            with FLUSH_S.time():
                outcomes = self.flush(fixes)
        except Exception as exc:
            log.warning("position flush of %d fixes failed: %s", len(fixes), exc)
            for job in jobs:
                job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            job.future.set_result(outcomes[start : start + len(job.fixes)])
            start += len(job.fixes)
        for outcome in outcomes:
            FIXES.labels(outcome.status).inc()

    def flush(self, fixes: Sequence[Fix]) -> list[Outcome]:
        """Store ``fixes`` in one transaction now (retried on a deadlock or a missing
        partition); their outcomes, in order."""
        for attempt in range(RETRIES):
            self._make_partitions(fixes)
            try:
                with self.sessions() as session:
                    outcomes = _store(session.connection(), fixes, self.max_speed_mps)
                    session.commit()
                    return outcomes
            except DBAPIError as exc:
                cause = exc.orig
                if attempt + 1 < RETRIES and isinstance(cause, psycopg.errors.DeadlockDetected):
                    continue
                if attempt + 1 < RETRIES and _no_partition(cause):
                    self._days.clear()  # a partition was dropped under us: make it again
                    continue
                raise
        raise AssertionError("unreachable")

    def _make_partitions(self, fixes: Sequence[Fix]) -> None:
        days = {fix.recorded_at.date() for fix in fixes} - self._days
        if not days:
            return
        with self.sessions() as session:
            track.make_partitions(session, days)
            session.commit()
        self._days |= days


def writer_for(state: Any) -> PositionWriter:
    """The app's writer (on ``app.state.positions``), made on first use from the app's
    sessions and settings; the app stops it at shutdown."""
    found: PositionWriter | None = getattr(state, "positions", None)
    if found is None:
        settings = state.settings
        found = PositionWriter(
            state.sessionmaker,
            max_rows=settings.position_flush_rows,
            max_speed_mps=settings.position_max_speed_mps,
        )
        state.positions = found
    return found


def _no_partition(cause: BaseException | None) -> bool:
    return isinstance(cause, psycopg.errors.CheckViolation) and "no partition" in str(cause)


def _store(conn: Connection, fixes: Sequence[Fix], max_speed_mps: float) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(fixes)
    _resolve_devices(conn, fixes, outcomes)
    last = _last_positions(conn, fixes, outcomes)
    live = [i for i, o in enumerate(outcomes) if o is None]
    firsts, repeats = first_of_each(fixes[i] for i in live)
    for k in repeats:
        i = live[k]
        outcomes[i] = Outcome("duplicate", unit_id=fixes[i].unit_id)
    todo = [live[k] for k in firsts]
    batch = [fixes[i] for i in todo]
    judged = judge(batch, last, max_speed_mps)
    for fix, flag in zip(batch, judged.flags, strict=True):
        fix.flag = flag
    stored: dict[tuple[int, datetime], int] = {}
    rows = [_row(f) for f in batch]
    if rows:
        for unit_id, at, pid in conn.execute(_INSERT, {"rows": json.dumps(rows)}):
            stored[(unit_id, at)] = pid
    for i in todo:
        fix = fixes[i]
        pid = stored.get((fix.unit_id, fix.recorded_at))
        outcomes[i] = (
            Outcome("stored", position_id=pid, flag=fix.flag, unit_id=fix.unit_id)
            if pid is not None
            else Outcome("duplicate", unit_id=fix.unit_id)
        )
    # Each unit's newest good fix, if it was stored (not a duplicate), by unit id.
    moves = [
        rows[k]
        for k in sorted(judged.newest.values(), key=lambda k: batch[k].unit_id)
        if (batch[k].unit_id, batch[k].recorded_at) in stored
    ]
    if moves:
        conn.execute(_MOVE, {"rows": json.dumps(moves)})
    devices = sorted({f.device_id for f in batch if f.device_id is not None})
    if devices:
        conn.execute(_SEEN, {"ids": devices})
    return [o if o is not None else Outcome("refused", reason="not stored") for o in outcomes]


def _row(f: Fix) -> dict[str, Any]:
    """A fix as a row of the recordset the INSERT and the UPDATE read (short keys)."""
    return {
        "u": f.unit_id,
        "t": f.recorded_at.isoformat(),
        "x": f.lon,
        "y": f.lat,
        "v": f.speed_mps,
        "h": f.heading_deg,
        "a": f.accuracy_m,
        "z": f.altitude_m,
        "b": f.battery_pct,
        "s": f.source,
        "f": f.flag,
        "d": f.device_id,
    }


def _resolve_devices(
    conn: Connection, fixes: Sequence[Fix], outcomes: list[Outcome | None]
) -> None:
    hashes = sorted({f.device_hash for f in fixes if f.device_hash is not None})
    if not hashes:
        return
    found: dict[str, Any] = {row[0]: row for row in conn.execute(_DEVICES, {"hashes": hashes})}
    for i, fix in enumerate(fixes):
        if fix.device_hash is None:
            continue
        device = found.get(fix.device_hash)
        if device is None:
            outcomes[i] = Outcome("refused", reason=UNKNOWN_DEVICE)
            continue
        _, device_id, unit_id, kind, allow_from = device
        if kind == "hardware" and allow_from and not _allowed(fix.address, allow_from):
            outcomes[i] = Outcome("refused", reason="this device may not send from this address")
            continue
        fix.unit_id, fix.device_id = int(unit_id), int(device_id)


def _allowed(address: str | None, networks: Sequence[str]) -> bool:
    if address is None:
        return False
    try:
        ip = ip_address(address)
        return any(ip in ip_network(net, strict=False) for net in networks)
    except ValueError:
        return False


def _last_positions(
    conn: Connection, fixes: Sequence[Fix], outcomes: list[Outcome | None]
) -> dict[int, Last]:
    ids = sorted({f.unit_id for f, o in zip(fixes, outcomes, strict=True) if o is None})
    if not ids:
        return {}
    last: dict[int, Last] = {}
    known: set[int] = set()
    for unit_id, lon, lat, at in conn.execute(_UNITS, {"ids": ids}):
        known.add(unit_id)
        if at is not None and lon is not None:
            last[unit_id] = Last(lon, lat, at)
    for i, fix in enumerate(fixes):
        if outcomes[i] is None and fix.unit_id not in known:
            outcomes[i] = Outcome("refused", reason=f"unit {fix.unit_id} does not exist")
    return last
