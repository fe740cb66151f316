"""Warning-system intake benchmark: signed CAP alerts posted to ``POST /api/alerts``.

Run with ``uv run python -m bench.alerts [--seconds N] [--rate R]`` (or ``make bench``);
``--seconds 10`` is a quick check; ``--workers K`` spreads the load over K processes and
``--peer-max N`` runs the peer on the first N messages only (the peer is serial, so the
full set takes minutes). The target (from the issue): 200 alerts/s sustained for 60 s
through HTTP with signature checking, p99 under 150 ms, 0 lost, 0 duplicated. It

1. creates two throwaway PostGIS databases (one for the server, one for the in-process
   peer), migrates both, seeds each with the same stations and units and an API key
   (``command.auth.add_api_key``, encrypted with a fresh ``EMERGENCY_SECRET_KEY``);
2. generates realistic CAP 1.2 XML alerts (tests/support/alert_traffic.py, which the batch
   intake tests replay too) in the demo city (data/demo/city.yaml): 1-3
   areas each, polygons (``lat,lon`` pairs, closed) and circles, some with an English
   translation, some closing roads; of the measured posts ~80% are new Alerts, ~10%
   Updates and ~5% Cancels of an alert of this run (``references`` = the thread's
   ``sender,identifier,sent``; always of a message scheduled >= 2 s earlier), and ~5%
   re-posts of an earlier message (a retry: byte-identical body, signed again);
3. starts the real server (``emergency serve``, realtime hub on, as in production) and
   ``--workers`` load processes (this module with ``--load``; asyncio + uvloop, a raw HTTP/1.1
   keep-alive pool each). They send a few warm-up alerts one by one, then post open-loop:
   message i is due at t0 + i/rate whatever happened to earlier ones, and its latency is
   measured from that due time (no coordinated omission). Every request is signed
   (``X-Api-Key``, ``X-Timestamp``, ``X-Signature`` via ``command.auth.sign``); the
   timestamp is the due second, so a re-post (due >= 2 s after its original) is a new
   (timestamp, body) pair and never a replayed signature;
4. verifies in the database: one ``alert`` row per distinct (sender, identifier, sent)
   sent (0 lost, none unexpected); per alert exactly one 201 and any other post of it a
   200 ``duplicate: true`` equal to the first answer (0 duplicated); the incidents and
   zones of all answers exist and none was created twice; exactly one ``alert.received``
   event and audit row per stored alert; the audit hash chain verifies;
5. the peer, measured in the same run on the second database: the same messages, in
   order, serially in this process (``command.cap.parse`` + ``command.alerts.intake`` +
   commit, a session per alert as the server uses), plus the signature check
   (``command.auth.principal_from_api_key``) timed separately; its answers are compared
   with the server's;
6. with ``autovacuum = off`` on the server (CI configurations), runs ANALYZE every 10 s
   in its stead (``--no-analyze``: don't), for the load and, between messages, the peer;
7. prints a table (rate achieved, p50/p95/p99/max from the due time, statuses, lost,
   duplicated, peer figures and the HTTP/peer ratio, CPU of the server, PostgreSQL and
   the load processes, PostgreSQL wait events sampled during the load, the server's own
   request timing from /metrics), writes bench/results/alerts.json and drops the
   databases and stops every process whatever happened.

Exit status: 0 if nothing was lost or duplicated and every check passed (the p99 target is
reported, not asserted), 1 otherwise, 2 without PostGIS. Load, server and PostgreSQL
share this machine's cores: read the CPU line with the latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import re
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.timing import proc_tree, stop_process
from tests.support.alert_traffic import ANSWER_LISTS, Message, city_bbox, generate, shape_of

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "alerts.json"

TARGET_RATE = 200.0
TARGET_P99_MS = 150.0
SEED = 20_261_122
HTTP_TIMEOUT_S = 30.0
IDLE_CLOSE_S = 2.5  # the load closes a connection idle this long (server keep-alive: 5 s)
# Connections per load process. A server that meets the target has ~30 posts in flight;
# past its capacity, posts wait here for a connection (latency still counts from the due
# time; one that waits the whole timeout was never sent). 2,000 lets the server's own
# admission answer 503 instead, but the client then burns ~0.6 of this machine's 2 cores
# and idle connections race uvicorn's keep-alive close (ReadError).
CONNECTIONS = 256
# Server processes: one per core (each process's Python runs on one core at a time).
SERVER_WORKERS = max(1, min(2, os.cpu_count() or 1))
N_STATIONS = 12
N_UNITS = 300
CONTENT_TYPE = "application/cap+xml"
HELSINKI = timezone(timedelta(hours=2))  # sent times as the (EET) warning centre writes them
ANALYZE_EVERY_S = 10.0  # the autovacuum stand-in's period (see Analyzer)
ANALYZE = "ANALYZE alert, alert_info, alert_area, incident, warning_zone, audit_event, event"

# =====================================================================================
# The load processes (this module with --load)
# =====================================================================================


def signed_headers(key_id: str, secret: str, timestamp: int, raw: bytes) -> dict[str, str]:
    from command.auth.service import sign

    stamp = str(timestamp)
    return {
        "X-Api-Key": key_id,
        "X-Timestamp": stamp,
        "X-Signature": sign(secret, stamp, raw),
        "Content-Type": CONTENT_TYPE,
    }


class Pool:
    """A minimal HTTP/1.1 keep-alive client for the load (asyncio streams, requests built
    as bytes): a general client (httpx) costs ~5 ms of CPU per post, which at 200/s would
    take half of this machine's two cores from the server it measures. Up to ``size``
    connections; a post waits for a free one (that wait counts in its latency)."""

    def __init__(self, base: str, size: int) -> None:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.host, self.port, self.size = host, int(port), size
        # free connections, with when each was last used
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0
        self.waiters: list[asyncio.Future[None]] = []

    async def _conn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while not self.free and self.opened >= self.size:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter
        while self.free:
            reader, writer, used = self.free.pop()
            # The server closes a connection idle for its keep-alive (uvicorn: 5 s); one
            # idle half that long is closed here instead, before a post is written to it.
            if time.monotonic() - used < IDLE_CLOSE_S and not reader.at_eof():
                return reader, writer
            writer.close()
            self.opened -= 1
        self.opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except BaseException:
            self.opened -= 1
            raise

    def _release(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if conn is None:
            self.opened -= 1
        else:
            self.free.append((*conn, time.monotonic()))
        while self.waiters:
            waiter = self.waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body); raises TimeoutError (never sent: "PoolTimeout"; sent: "ReadTimeout")
        or OSError/IncompleteReadError (transport)."""
        try:
            conn = await asyncio.wait_for(self._conn(), HTTP_TIMEOUT_S)
        except TimeoutError:
            raise PoolTimeout from None
        reader, writer = conn
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n"
            f"{head}\r\n"
        ).encode() + body
        keep: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            writer.write(request)
            status, answer, close = await asyncio.wait_for(self._response(reader), HTTP_TIMEOUT_S)
            if not close:
                keep = conn
            return status, answer
        finally:
            if keep is None:
                writer.close()
            self._release(keep)

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        line = await reader.readline()
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        status = int(line.split()[1])
        length, close = 0, False
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        return status, await reader.readexactly(length), close

    async def aclose(self) -> None:
        for _reader, writer, _used in self.free:
            writer.close()
        self.free.clear()


class PoolTimeout(TimeoutError):
    """No connection was free within the timeout: the post never left the client."""


def _answer(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace")


async def run_load(cfg: dict[str, Any]) -> list[list[Any]]:
    """Warm up, say ``ready``, wait for ``go <t0>``, post every message when it is due."""
    results: list[list[Any]] = []
    client = Pool(cfg["base"], int(cfg["connections"]))

    async def post(index: int, due: float, timestamp: int, raw: bytes) -> None:
        headers = signed_headers(cfg["key_id"], cfg["secret"], timestamp, raw)
        start = time.time()
        try:
            code, body = await client.post("/api/alerts", raw, headers)
            status: Any = code
            answer = _answer(body)
        except PoolTimeout:
            status, answer = "timeout: PoolTimeout", None
        except TimeoutError:
            status, answer = "timeout: ReadTimeout", None
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            status, answer = f"transport: {type(exc).__name__}", str(exc)[:200]
        results.append([index, due, start, time.time(), status, answer])

    try:
        for index, body in cfg["warmup"]:
            now = time.time()
            await post(index, now, int(now), body.encode())
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        t0 = float(line.split()[1])
        tasks = []
        for index, offset, body in cfg["messages"]:
            due = t0 + offset
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            # The due second signs it: a re-post, due >= MIN_GAP_S after its original,
            # has another timestamp, so another signature (a retry, not a replay).
            task = asyncio.create_task(post(index, due, int(due), body.encode()))
            tasks.append(task)
        await asyncio.gather(*tasks)
    finally:
        await client.aclose()
    return results


def load_main(config_path: str) -> int:
    cfg = json.loads(Path(config_path).read_text(encoding="utf-8"))
    import uvloop

    results = uvloop.run(run_load(cfg))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {"results": results, "cpu_s": usage.ru_utime + usage.ru_stime}
    Path(cfg["out"]).write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    print("done", flush=True)
    return 0


class LoadProcess:
    def __init__(self, cfg: dict[str, Any], workdir: Path, name: str) -> None:
        self.name = name
        self.out = workdir / f"{name}-result.json"
        path = workdir / f"{name}.json"
        path.write_text(json.dumps({**cfg, "out": str(self.out)}), encoding="utf-8")
        self.stderr = (workdir / f"{name}.err").open("w+b")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "bench.alerts", "--load", str(path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != word:
            self.stderr.flush()
            self.stderr.seek(0)
            err = self.stderr.read()[-4000:].decode(errors="replace")
            raise RuntimeError(f"{self.name} said {line!r}, exit {self.proc.poll()}:\n{err}")

    def go(self, t0: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"go {t0!r}\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        return dict(json.loads(self.out.read_text(encoding="utf-8")))

    def close(self) -> None:
        stop_process(self.proc)
        self.stderr.close()


# =====================================================================================
# Observing the server and PostgreSQL while the load runs
# =====================================================================================


class WaitSampler:
    """Samples pg_stat_activity of the bench database every ``every`` s in a thread: how
    many backends are active and what they wait on (CPU = nothing), and who holds the audit
    chain's advisory lock (core/audit.py), doing what: ``idle in transaction`` means the
    lock holder is waiting for the app (Python) to send its next statement."""

    def __init__(self, dsn: str, every: float = 0.1) -> None:
        self.dsn = dsn
        self.every = every
        self.samples = 0
        self.waits: Counter[str] = Counter()
        self.holder: Counter[str] = Counter()
        self.max_active = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-waits", daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        from core.sealer import _LOCK_KEY

        with psycopg.connect(self.dsn, autocommit=True) as conn, conn.cursor() as cur:
            period = min(1.0, self.every)
            while not self._stop.wait(period):
                period = min(period * 2, self.every)
                cur.execute(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), count(*) "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state = 'active' "
                    "AND backend_type = 'client backend' GROUP BY 1"
                )
                rows = cur.fetchall()
                # A bigint advisory key below 2^32 shows as classid 0, objid = the key.
                cur.execute(
                    "SELECT a.state, coalesce(a.wait_event_type || ':' || a.wait_event, 'CPU') "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 "
                    "AND l.objid = %s AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())",
                    (_LOCK_KEY,),
                )
                held = cur.fetchone()
                self.samples += 1
                self.max_active = max(self.max_active, sum(int(n) for _, n in rows))
                for what, n in rows:
                    self.waits[str(what)] += int(n)
                if held is None:
                    self.holder["not held"] += 1
                elif held[0] == "active":
                    self.holder[f"active, {held[1]}"] += 1
                else:
                    self.holder[str(held[0])] += 1

    def summary(self) -> dict[str, Any]:
        n = max(self.samples, 1)
        mean = {k: round(v / n, 2) for k, v in self.waits.most_common()}
        return {
            "samples": self.samples,
            "every_s": self.every,
            "mean_active_backends": round(sum(self.waits.values()) / n, 2),
            "max_active_backends": self.max_active,
            "mean_backends_by_wait": mean,
            "audit_lock_held_share": round(1 - self.holder["not held"] / n, 3),
            "audit_lock_holder": {k: round(v / n, 3) for k, v in self.holder.most_common()},
        }


class Analyzer:
    """ANALYZE the database every ``every`` s in a thread: what autovacuum does in a real
    deployment. Used when the server runs with ``autovacuum = off`` (as CI configurations
    do): the intake's tables start empty and are never analysed otherwise, so plans made
    while they were tiny (including the cached foreign-key checks) scan whole tables and
    every alert gets slower as the history grows (measured here: the in-process intake's
    p50 went from 14 to 46 ms over 10,000 alerts; with ANALYZE every 1,000 it stayed at 14).
    Autovacuum analyses a table after 10% of it (+50 rows) changed, so often while it is
    small: the first rounds here come after 1, 2, 4 and 8 s, then every ``every`` s (with a
    flat 10 s period, the first 10 s ran foreign-key checks as whole-table scans: 6,400
    scans reading 5 M rows of ``alert`` in a 15 s run)."""

    def __init__(self, dsn: str, every: float) -> None:
        self.dsn = dsn
        self.every = every
        self.runs = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="analyze", daemon=True)

    def __enter__(self) -> Analyzer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            period = min(1.0, self.every)
            while not self._stop.wait(period):
                period = min(period * 2, self.every)
                t = time.perf_counter()
                conn.execute(ANALYZE)
                self.seconds += time.perf_counter() - t
                self.runs += 1


def tree_cpu_s(root: int | None) -> float:
    """CPU seconds of ``root`` and every process below it (``emergency serve --workers N``
    runs its workers as children)."""
    from bench.realtime import proc_cpu_s

    if root is None:
        return 0.0
    return sum(proc_cpu_s(pid) for pid in proc_tree(root))


_METRIC = re.compile(r"^http_request_duration_seconds_(bucket|sum|count)\{(.*)\} (\S+)$")
_BATCH = re.compile(r"^(alert_batch_size_(?:count|sum)) (\S+)$")


def scrape(base: str) -> dict[str, float]:
    """The server's own timing of POST /api/alerts (prometheus histogram) right now."""
    import httpx2 as httpx

    out: dict[str, float] = {}
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for line in text.splitlines():
        m = _METRIC.match(line)
        batch = _BATCH.match(line)
        if batch:
            out[batch.group(1)] = float(batch.group(2))
        if not m or 'route="/api/alerts"' not in m.group(2) or 'method="POST"' not in m.group(2):
            continue
        le = re.search(r'le="([^"]+)"', m.group(2))
        out[f"le {le.group(1)}" if le else m.group(1)] = float(m.group(3))
    return out


def server_timing(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """Between two scrapes: requests, mean seconds in the app, and the histogram's
    bucket bound holding p50/p99 (the app's time, from the Metrics middleware)."""
    n = b.get("count", 0.0) - a.get("count", 0.0)
    if n <= 0:
        return {"n": 0}
    buckets = sorted(
        ((float(k[3:]), b[k] - a.get(k, 0.0)) for k in b if k.startswith("le ")),
        key=lambda t: t[0],
    )

    def bound(q: float) -> str:
        for le, cum in buckets:
            if cum >= q * n:
                return f"<= {le * 1000:g} ms" if math.isfinite(le) else "> the last bucket"
        return "?"

    within = {f"<= {le * 1000:g} ms": round(cum / n, 4) for le, cum in buckets if le <= 0.25}
    batches = b.get("alert_batch_size_count", 0.0) - a.get("alert_batch_size_count", 0.0)
    alerts_in = b.get("alert_batch_size_sum", 0.0) - a.get("alert_batch_size_sum", 0.0)
    return {
        "n": int(n),
        "batches": int(batches),
        "mean_batch": round(alerts_in / batches, 1) if batches else None,
        "mean_ms": round((b.get("sum", 0.0) - a.get("sum", 0.0)) / n * 1000, 2),
        "p50": bound(0.50),
        "p99": bound(0.99),
        "share_within": within,
    }


# =====================================================================================
# Database set-up and verification
# =====================================================================================


def seed_units(dsn: str, rng: random.Random) -> int:
    """Stations and available units in the city (bulk, no audit), as a live city has."""
    import psycopg

    city = city_bbox()
    now = datetime.now(UTC)
    kinds = (("fire_engine", "vehicle", ["fire_suppression", "rescue"]),
             ("ambulance", "vehicle", ["medical_bls", "medical_als"]),
             ("police_car", "vehicle", ["traffic_control", "security"]),
             ("rescue_team", "team", ["rescue", "water_rescue"]))  # fmt: skip
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:

        def point() -> tuple[float, float]:
            return rng.uniform(city.west, city.east), rng.uniform(city.south, city.north)

        cur.executemany(
            "INSERT INTO station (external_id, name, kind, geom) "
            "VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            [
                (f"alert-bench-st-{i}", f"Station {i}", ("fire", "ambulance", "police")[i % 3],
                 *point())
                for i in range(N_STATIONS)
            ],
        )  # fmt: skip
        cur.execute("SELECT id FROM station ORDER BY id")
        stations = [int(r[0]) for r in cur.fetchall()]
        units = []
        for i in range(N_UNITS):
            type_, kind, caps = kinds[i % len(kinds)]
            units.append(
                (f"AB{i:04d}", f"{type_} {i}", kind, type_, caps, 4, rng.choice(stations),
                 *point(), now)
            )  # fmt: skip
        cur.executemany(
            "INSERT INTO unit (callsign, name, kind, type, capabilities, crew, "
            "home_station_id, status, geom, position_at) VALUES (%s, %s, %s, %s, %s, %s, %s, "
            "'available', ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s)",
            units,
        )
        conn.commit()
        conn.autocommit = True
        cur.execute("ANALYZE")
    return N_UNITS


def make_key(url: str, secret_key: str) -> tuple[str, int, str]:
    """An API key for the warning system: (key id, its row id, the plain secret)."""
    from command.auth import service as auth
    from core.db import make_engine, make_sessionmaker, session_scope

    engine = make_engine(url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            key, secret = auth.add_api_key(session, name="warning-system", secret_key=secret_key)
            return key.key_id, int(key.id), secret
    finally:
        engine.dispose()


def wait_quiet(dsn: str, limit_s: float = 60.0) -> float:
    """Wait until no client backend of the database is inside a statement (a request the
    client gave up on may still be running); returns the seconds waited."""
    import psycopg

    t = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        while time.perf_counter() - t < limit_s:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle' "
                "AND backend_type = 'client backend'"
            )
            row = cur.fetchone()
            if row is None or int(row[0]) == 0:
                break
            time.sleep(0.2)
    return time.perf_counter() - t


@dataclass
class Verdict:
    checks: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0

    def fail(self, message: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(message)


def verify(url: str, messages: list[Message], posts: dict[int, tuple[Any, Any]]) -> Verdict:
    """Compare what was sent and answered with what the database holds."""
    import psycopg

    from bench.http_api import psycopg_url
    from core.audit_verify import verify as verify_chain
    from core.changes import keyring
    from core.db import make_engine, make_sessionmaker

    v = Verdict()
    by_key: dict[tuple[str, str, str], list[int]] = {}
    for m in messages:
        by_key.setdefault(m.key, []).append(m.index)
    # Per alert: exactly one 201; every other post of it a 200 duplicate of that answer.
    created: dict[tuple[str, str, str], dict[str, Any]] = {}
    unanswered = 0
    for key, indexes in by_key.items():
        answers = [posts.get(i, ("not sent", None)) for i in indexes]
        firsts = [a for s, a in answers if s == 201]
        if len(firsts) > 1:
            v.duplicated += 1
            v.fail(f"{key[1]}: created {len(firsts)} times")
        if firsts:
            created[key] = firsts[0]
        for s, a in answers:
            if s == 201:
                continue
            if s != 200:
                unanswered += 1
                continue
            if not firsts:
                if all(s2 in (200, 201) for s2, _ in answers):
                    v.fail(f"{key[1]}: answered 200 but never 201")
            elif a != {**firsts[0], "duplicate": True}:
                v.duplicated += 1
                v.fail(f"{key[1]}: the re-post's answer differs from the first")
    v.checks["distinct_alerts_sent"] = len(by_key)
    v.checks["posts_without_2xx"] = unanswered
    dsn = psycopg_url(url)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, sender, identifier, sent FROM alert")
        rows = cur.fetchall()
        stored = {(str(s), str(i), sent): int(aid) for aid, s, i, sent in rows}
        v.checks["alert_rows"] = len(rows)
        if len(stored) != len(rows):
            v.duplicated += len(rows) - len(stored)
            v.fail("two alert rows with one (sender, identifier, sent)")
        wanted = {(s, i, datetime.fromisoformat(t)): key for key in by_key for s, i, t in [key]}
        v.lost = sum(1 for k in wanted if k not in stored)
        unexpected = [k for k in stored if k not in wanted]
        v.checks["lost_alerts"] = v.lost
        # Why each one is missing, by the best answer any post of it got: a 2xx (the
        # server's fault), 503 busy (refused: the sender was told to retry), sent but no
        # answer in time (uvicorn drops a request whose client has gone before its body
        # is read), or never sent (waited for a connection in the client's pool).
        why: Counter[str] = Counter()
        for k, key in wanted.items():
            if k in stored:
                continue
            got = {str(posts.get(i, ("not sent", None))[0]) for i in by_key[key]}
            if got & {"200", "201"}:
                why["after_2xx"] += 1
            elif "503" in got:
                why["refused_503_busy"] += 1
            elif got & {"timeout: ReadTimeout", "timeout: WriteTimeout"} or any(
                g.startswith("transport: ") for g in got
            ):
                why["sent_no_answer"] += 1  # timed out, or the connection dropped
            elif got <= {"timeout: PoolTimeout", "timeout: ConnectTimeout", "not sent"}:
                why["never_sent_client_queue"] += 1
            else:
                why["other: " + ",".join(sorted(got))[:60]] += 1
        v.checks["not_stored_why"] = dict(why)
        v.checks["unexpected_alert_rows"] = len(unexpected)
        if v.lost:
            v.fail(f"{v.lost} alert(s) sent but not stored")
        if unexpected:
            v.fail(f"{len(unexpected)} alert row(s) nobody sent")
        for k, key in wanted.items():
            if key in created and stored.get(k) != created[key]["alert_id"]:
                v.fail(f"{key[1]}: answered alert_id {created[key]['alert_id']}, stored "
                       f"{stored.get(k)}")  # fmt: skip
        # Incidents and zones: every one an answer names exists; none created twice.
        cur.execute("SELECT id, status FROM incident")
        incidents = {int(i): str(s) for i, s in cur.fetchall()}
        cur.execute("SELECT id, status FROM warning_zone")
        zones = {int(i): str(s) for i, s in cur.fetchall()}
        made_inc = [i for a in created.values() for i in a["incident_ids"]]
        made_zone = [i for a in created.values() for i in a["zone_ids"]]
        twice = (len(made_inc) - len(set(made_inc))) + (len(made_zone) - len(set(made_zone)))
        if twice:
            v.duplicated += twice
            v.fail(f"{twice} incident(s)/zone(s) named as created by two alerts")
        v.checks["incidents"] = {"rows": len(incidents), "created_in_answers": len(made_inc)}
        v.checks["zones"] = {"rows": len(zones), "created_in_answers": len(made_zone)}
        if set(made_inc) != set(incidents):
            v.fail(f"incident rows {len(incidents)} != incidents answered {len(set(made_inc))}")
        if set(made_zone) != set(zones):
            v.fail(f"zone rows {len(zones)} != zones answered {len(set(made_zone))}")
        missing = 0
        for a in created.values():
            for name in ANSWER_LISTS:
                table = zones if "zone" in name else incidents
                missing += sum(1 for i in a[name] if i not in table)
        v.checks["answered_ids_missing"] = missing
        if missing:
            v.fail(f"{missing} incident/zone id(s) in answers do not exist")
        # The outbox and the audit log: one alert.received per stored alert.
        cur.execute(
            "SELECT (payload->>'alert_id')::bigint, count(*) FROM event "
            "WHERE type = 'alert.received' GROUP BY 1"
        )
        per_alert = {int(a): int(n) for a, n in cur.fetchall()}
        ids = set(stored.values())
        bad = sum(1 for a in ids if per_alert.get(a) != 1) + len(set(per_alert) - ids)
        v.checks["alert_received_events"] = sum(per_alert.values())
        v.checks["alerts_without_exactly_one_event"] = bad
        if bad:
            v.fail(f"{bad} alert(s) without exactly one alert.received event")
        cur.execute("SELECT type, count(*) FROM event GROUP BY 1 ORDER BY 2 DESC")
        v.checks["events_by_type"] = {str(t): int(n) for t, n in cur.fetchall()}
        cur.execute(
            "SELECT count(*), count(DISTINCT entity_id) FROM audit_event "
            "WHERE action = 'alert.received'"
        )
        n_audit, n_audit_ids = cur.fetchone() or (0, 0)
        v.checks["alert_received_audit_rows"] = int(n_audit)
        if int(n_audit) != len(ids) or int(n_audit_ids) != len(ids):
            v.fail(f"{n_audit} alert.received audit rows for {len(ids)} alerts")
        cur.execute("SELECT count(*) FROM audit_event")
        v.checks["audit_rows"] = int((cur.fetchone() or (0,))[0])
        # Whole-table scans so far (these grow with the history the intake looks through).
        cur.execute(
            "SELECT relname, seq_scan, seq_tup_read, idx_scan FROM pg_stat_user_tables "
            "ORDER BY seq_tup_read DESC LIMIT 5"
        )
        v.checks["seq_scans"] = {
            str(t): {"seq_scan": int(s), "seq_tup_read": int(r), "idx_scan": int(i or 0)}
            for t, s, r, i in cur.fetchall()
        }
        cur.execute("SELECT count(*) FROM api_nonce")
        v.checks["nonces"] = int((cur.fetchone() or (0,))[0])
        # States: what the answers say they ended or cancelled is ended or cancelled.
        wrong = sum(1 for a in created.values() for z in a["ended_zone_ids"]
                    if zones.get(z) != "ended")  # fmt: skip
        wrong += sum(1 for a in created.values() for i in a["cancelled_incident_ids"]
                     if incidents.get(i) != "cancelled")  # fmt: skip
        v.checks["states_not_as_answered"] = wrong
        if wrong:
            v.fail(f"{wrong} zone(s)/incident(s) not ended/cancelled as answered")
    engine = make_engine(url, pool_size=1)
    try:
        t = time.perf_counter()
        with make_sessionmaker(engine)() as session:
            chain = verify_chain(session, keyring(), checkpoint_dir=None)
        v.checks["audit_chain"] = {
            "ok": chain.ok,
            "checked": chain.walk.checked,
            "verify_s": round(time.perf_counter() - t, 2),
        }
        if not chain.ok:
            first = chain.as_dict()
            v.fail(f"audit chain broken at {first['first_bad_id']}: {first['reason']}")
    finally:
        engine.dispose()
    return v


# =====================================================================================
# The peer: the same messages in this process, serially, no HTTP
# =====================================================================================


def run_peer(
    url: str,
    messages: list[Message],
    key: tuple[str, int, str],
    secret_key: str,
    analyze_every: int = 0,
) -> dict[str, Any]:
    """Each message: the signature check, then parse + intake + commit, each in its own
    session as the server does. Also timed from the statements (engine events, no change
    to the app): how long the audit chain's advisory lock is held (from the statement
    that takes it to the end of the commit, which releases it) and the COMMIT itself."""
    from sqlalchemy import event

    from command.auth import service as auth
    from command.auth.service import sign
    from command.intake import cap
    from command.intake import service as intake
    from core.db import make_engine, make_sessionmaker
    from core.security import Principal

    key_id, key_row, secret = key
    principal = Principal(kind="apikey", id=key_row, name="warning-system", role="machine")
    engine = make_engine(url, pool_size=2)
    factory = make_sessionmaker(engine)
    intake_ms: list[float] = []
    auth_ms: list[float] = []
    held_ms: list[float] = []
    commit_ms: list[float] = []
    statements: list[int] = []
    under_lock: list[int] = []
    answers: dict[int, tuple[int, dict[str, Any]]] = {}
    used: dict[str, set[int]] = {}  # body digest -> timestamps signed with (no replays)
    mark: dict[str, int] = {}

    def after_execute(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        mark["n"] = mark.get("n", 0) + 1
        if "locked" in mark:
            mark["under"] += 1
        elif "pg_advisory_xact_lock" in statement:
            mark["locked"] = time.perf_counter_ns()
            mark["under"] = 0

    def before_commit(_c: Any) -> None:
        mark["commit"] = time.perf_counter_ns()

    event.listen(engine, "after_cursor_execute", after_execute)
    event.listen(engine, "commit", before_commit)
    analyze_s = 0.0
    t_all = time.perf_counter()
    try:
        for n, m in enumerate(messages):
            if analyze_every and n and n % analyze_every == 0:  # not timed: autovacuum's
                t = time.perf_counter_ns()
                with engine.connect() as conn:
                    conn.exec_driver_sql(ANALYZE)
                    conn.commit()
                analyze_s += (time.perf_counter_ns() - t) / 1e9
            raw = m.body.encode()
            digest = hashlib.sha256(raw).hexdigest()
            stamp = int(time.time())
            while stamp in used.setdefault(digest, set()):
                stamp -= 1  # a re-post within the same second: sign it a second earlier
            used[digest].add(stamp)
            signature = sign(secret, str(stamp), raw)
            t = time.perf_counter_ns()
            with factory() as session:
                auth.principal_from_api_key(
                    session, key_id=key_id, timestamp=str(stamp), signature=signature,
                    body=raw, secret_key=secret_key, skew_s=300,
                )  # fmt: skip
            t1 = time.perf_counter_ns()
            mark.clear()
            with factory() as session:
                parsed = cap.parse(raw, CONTENT_TYPE)
                answer, created = intake.intake(
                    session, parsed, raw=raw, content_type=CONTENT_TYPE, principal=principal
                )
                session.commit()
            t2 = time.perf_counter_ns()
            auth_ms.append((t1 - t) / 1e6)
            intake_ms.append((t2 - t1) / 1e6)
            statements.append(mark.get("n", 0))
            if "locked" in mark:
                held_ms.append((t2 - mark["locked"]) / 1e6)
                under_lock.append(mark["under"])
            if "commit" in mark:
                commit_ms.append((t2 - mark["commit"]) / 1e6)
            answers[m.index] = (201 if created else 200, answer)
    finally:
        event.remove(engine, "after_cursor_execute", after_execute)
        event.remove(engine, "commit", before_commit)
        engine.dispose()
    wall = time.perf_counter() - t_all - analyze_s
    return {
        "intake_ms": intake_ms,
        "auth_ms": auth_ms,
        "held_ms": held_ms,
        "commit_ms": commit_ms,
        "statements": statements,
        "under_lock": under_lock,
        "answers": answers,
        "wall_s": wall,
    }


# =====================================================================================
# The driver
# =====================================================================================


def stats(values: list[float]) -> dict[str, Any]:
    from bench.timing import percentile

    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p95_ms": round(percentile(values, 95), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
        "mean_ms": round(statistics.fmean(values), 2),
    }


def run_benchmark(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], bool]:
    import psycopg

    from bench.http_api import psycopg_url
    from bench.realtime import find_server_pid, machine_busy_s, postgres_cpu_s, proc_cpu_s
    from bench.timing import machine
    from command.migrate import upgrade
    from core.config import get_settings
    from tests.support.db import create_database, drop_database
    from tests.support.servers import running_server

    n = round(args.seconds * args.rate)
    secret_key = secrets.token_urlsafe(36)
    # What this process writes (keys, the peer's intake) is sealed onto the audit chain
    # with the configured key: the server's, so one verify checks every row.
    os.environ["EMERGENCY_SECRET_KEY"] = secret_key
    get_settings.cache_clear()
    urls: list[str] = []
    try:
        print("databases: migrating and seeding ...", file=sys.stderr)
        for prefix in ("emergency_bench_alerts", "emergency_bench_alerts_peer"):
            urls.append(create_database(prefix))
            upgrade(urls[-1])
            seed_units(psycopg_url(urls[-1]), random.Random(args.seed))
        url, peer_url = urls
        key = make_key(url, secret_key)
        peer_key = make_key(peer_url, secret_key)
        dsn = psycopg_url(url)
        with psycopg.connect(dsn, autocommit=True) as conn:
            host = machine(conn)
            row = conn.execute("SHOW autovacuum").fetchone()
        autovacuum = row is not None and row[0] == "on"
        analyze = args.analyze and not autovacuum

        procs: list[LoadProcess] = []
        print(f"server: starting; then {args.workers} load process(es) ...", file=sys.stderr)
        server_env = {"EMERGENCY_WORKERS": str(args.server_workers)}
        with running_server(url, secret_key, extra_env=server_env) as base:
            port = int(base.rsplit(":", 1)[1])
            server_pid = find_server_pid(port)
            # Sent times from now on (the load starts a few seconds from now).
            start = datetime.now(HELSINKI) + timedelta(seconds=5)
            messages = generate(n, args.rate, random.Random(args.seed), start)
            warmup = [m for m in messages if m.phase == "warmup"]
            measured = [m for m in messages if m.phase == "measured"]
            kinds = Counter(m.kind for m in measured)
            try:
                for w in range(args.workers):
                    cfg = {
                        "base": base,
                        "key_id": key[0],
                        "connections": args.connections,
                        "secret": key[2],
                        "warmup": [[m.index, m.body] for m in warmup[w :: args.workers]],
                        "messages": [[m.index, m.due, m.body] for m in measured[w :: args.workers]],
                    }
                    procs.append(LoadProcess(cfg, workdir, f"load-{w}"))
                for p in procs:
                    p.expect("ready")
                print(
                    f"load: {n} posts at {args.rate:g}/s for {args.seconds:g} s ...",
                    file=sys.stderr,
                )
                scrape0 = scrape(base)
                busy0, total0 = machine_busy_s()
                cpu0 = (
                    tree_cpu_s(server_pid),
                    postgres_cpu_s(),
                    [proc_cpu_s(p.proc.pid) for p in procs],
                )
                stand_in = Analyzer(dsn, ANALYZE_EVERY_S)
                with WaitSampler(dsn) as sampler, stand_in if analyze else nullcontext():
                    t0 = time.time() + 0.5
                    wall0 = time.perf_counter()
                    for p in procs:
                        p.go(t0)
                    for p in procs:
                        p.expect("done")
                    wall = time.perf_counter() - wall0
                busy1, total1 = machine_busy_s()
                pg1 = postgres_cpu_s()
                cpu = {
                    "wall_s": round(wall, 2),
                    "server_cpu_s": round(tree_cpu_s(server_pid) - cpu0[0], 2),
                    "postgres_cpu_s": round(
                        sum(c - cpu0[1].get(pid, 0.0) for pid, c in pg1.items()), 2
                    ),
                    "machine_busy_cores": round(
                        (busy1 - busy0) / max(total1 - total0, 1e-9) * (host["cpus"] or 1), 2
                    ),
                }
                scrape1 = scrape(base)
                loads = [p.result() for p in procs]
                # CPU of the load processes over the measured phase only (warm-up excluded).
                cpu["load_cpu_s"] = round(sum(r["cpu_s"] for r in loads) - sum(cpu0[2]), 2)
                for name in ("server", "postgres", "load"):
                    cpu[f"{name}_cores"] = round(cpu[f"{name}_cpu_s"] / max(wall, 1e-9), 2)
            finally:
                for p in procs:
                    p.close()
            quiet_s = wait_quiet(dsn)
        print("verifying ...", file=sys.stderr)
        posts: dict[int, tuple[Any, Any]] = {}
        timing: dict[int, tuple[float, float, float]] = {}
        for r in loads:
            for index, due, start, end, status, answer in r["results"]:
                posts[index] = (status, answer)
                timing[index] = (due, start, end)
        verdict = verify(url, messages, posts)
        print(f"peer: the same {len(messages)} messages in-process ...", file=sys.stderr)
        peer = run_peer(
            peer_url,
            messages[: args.peer_max or None],
            peer_key,
            secret_key,
            analyze_every=round(args.rate * ANALYZE_EVERY_S) if analyze else 0,
        )
    finally:
        for u in urls:
            drop_database(u)

    # --- figures ----------------------------------------------------------------------
    measured_ix = [m.index for m in measured]
    latency = [(timing[i][2] - timing[i][0]) * 1000 for i in measured_ix if i in timing]
    service = [(timing[i][2] - timing[i][1]) * 1000 for i in measured_ix if i in timing]
    lag = [(timing[i][1] - timing[i][0]) * 1000 for i in measured_ix if i in timing]
    statuses = Counter(str(posts.get(i, ("not sent", None))[0]) for i in measured_ix)
    ok = [i for i in measured_ix if posts.get(i, (None,))[0] in (200, 201)]
    latency_ok = [(timing[i][2] - timing[i][0]) * 1000 for i in ok]
    first_due = min(timing[i][0] for i in measured_ix)
    last_end = max(timing[i][2] for i in measured_ix)
    achieved = len(ok) / (last_end - first_due)
    errors = {
        str(posts[i][0]): str(posts[i][1])[:200] for i in measured_ix if i in posts
        if posts[i][0] not in (200, 201)
    }  # fmt: skip
    actions = Counter(
        f"{m.kind} -> {posts[m.index][1].get('action')}"
        + (" (duplicate)" if posts[m.index][1].get("duplicate") else "")
        for m in measured
        if isinstance(posts.get(m.index, (None, None))[1], dict) and posts[m.index][0] in (200, 201)
    )
    compared = [m.index for m in messages if m.index in posts and m.index in peer["answers"]]
    same = sum(1 for i in compared if shape_of(*posts[i]) == shape_of(*peer["answers"][i]))
    peer_stats = stats(peer["intake_ms"])
    auth_stats = stats(peer["auth_ms"])
    with_auth = [a + b for a, b in zip(peer["auth_ms"], peer["intake_ms"], strict=True)]
    both_stats = stats(with_auth)
    http_stats = stats(latency)
    p99 = http_stats.get("p99_ms", float("inf"))
    passed = verdict.lost == 0 and verdict.duplicated == 0 and not verdict.problems
    result = {
        "benchmark": "alerts",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "setup": {
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "posts": n,
            "warmup_posts": len(warmup),
            "kinds": dict(kinds),
            "load_processes": args.workers,
            "client": f"raw HTTP/1.1 keep-alive pool (uvloop) per process, up to "
            f"{args.connections} "
            "connections; open loop, latency from each post's due time",
            "server": "emergency serve (uvicorn, realtime hub on), "
            f"{args.server_workers} process(es) (EMERGENCY_WORKERS)",
            "units": N_UNITS,
            "autovacuum": autovacuum,
            "analyze": (
                f"ANALYZE every {ANALYZE_EVERY_S:g} s during the load (done {stand_in.runs} "
                f"times, {stand_in.seconds:.1f} s in all) and every "
                f"{round(args.rate * ANALYZE_EVERY_S)} messages in the peer, standing in for "
                "autovacuum (off on this server)"
                if analyze
                else "none by the benchmark"
                + ("" if autovacuum else " (autovacuum is off: tables never analysed)")
            ),
            "bodies_bytes": stats([len(m.body.encode()) for m in messages]),
        },
        "http": {
            "latency_from_due": http_stats,
            "latency_from_due_2xx_only": stats(latency_ok),
            "service_from_send": stats(service),
            "send_lag": stats(lag),
            "achieved_per_s": round(achieved, 1),
            "offered_per_s": args.rate,
            "statuses": dict(statuses),
            "errors_sample": dict(list(errors.items())[:10]),
            "actions": dict(actions.most_common()),
            "server_metrics": server_timing(scrape0, scrape1),
            "cpu": cpu,
            "pg_waits": sampler.summary(),
            "quiet_after_s": round(quiet_s, 2),
        },
        "verification": {
            "lost": verdict.lost,
            "duplicated": verdict.duplicated,
            "checks": verdict.checks,
            "problems": verdict.problems,
            "answers_like_peer": f"{same}/{len(compared)}",
        },
        "peer": {
            "what": "cap.parse + intake.intake + commit, serially in-process, no HTTP",
            "intake": peer_stats,
            "signature_check": auth_stats,
            "with_signature_check": both_stats,
            "audit_lock_held": stats(peer["held_ms"]),
            "commit_statement": stats(peer["commit_ms"]),
            "statements_per_alert": round(statistics.fmean(peer["statements"]), 1),
            "statements_under_audit_lock": round(statistics.fmean(peer["under_lock"] or [0]), 1),
            "lock_bound_capacity_per_s": round(
                1000 / statistics.fmean(peer["held_ms"]) if peer["held_ms"] else 0.0, 1
            ),
            "serial_capacity_per_s": round(len(peer["answers"]) / peer["wall_s"], 1),
            "wall_s": round(peer["wall_s"], 1),
        },
        "ratio_p50": round(http_stats["p50_ms"] / peer_stats["p50_ms"], 2),
        "ratio_p50_with_signature": round(http_stats["p50_ms"] / both_stats["p50_ms"], 2),
        "target": {
            "rate_per_s": TARGET_RATE,
            "p99_ms": TARGET_P99_MS,
            "rate_met": args.rate >= TARGET_RATE and achieved >= 0.98 * args.rate,
            "p99_met": p99 < TARGET_P99_MS,
            "lost": verdict.lost,
            "duplicated": verdict.duplicated,
            "met": passed and p99 < TARGET_P99_MS and achieved >= 0.98 * TARGET_RATE,
        },
    }
    return result, passed


def render(r: dict[str, Any]) -> str:
    m, s, h, v, p = r["machine"], r["setup"], r["http"], r["verification"], r["peer"]
    cpu, waits, sm = h["cpu"], h["pg_waits"], h["server_metrics"]
    multi = "" if s["server"].endswith(" 1 process(es) (EMERGENCY_WORKERS)") else ", one worker's"
    lines = [
        f"CAP alert intake benchmark ({r['when']}): {m['cpus']} CPUs, {m['postgresql']}, "
        f"PostGIS {m['postgis']}, Python {m['python']}",
        f"offered {s['rate_per_s']:g}/s for {s['seconds']:g} s: {s['posts']} signed posts "
        f"({', '.join(f'{k} {n}' for k, n in sorted(s['kinds'].items()))}) after "
        f"{s['warmup_posts']} warm-up; {s['load_processes']} load process(es); body "
        f"median {s['bodies_bytes']['p50_ms']:g} bytes",
        f"planner statistics: {s['analyze']}",
        "",
    ]
    header = f"{'':<44} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    lines += [header, "-" * len(header)]

    def row(name: str, st: dict[str, Any]) -> None:
        lines.append(
            f"{name:<44} {st['n']:>6} {st['p50_ms']:>8.1f} {st['p95_ms']:>8.1f} "
            f"{st['p99_ms']:>8.1f} {st['max_ms']:>8.1f}"
        )

    row("POST /api/alerts, from due time", h["latency_from_due"])
    if h["latency_from_due_2xx_only"]["n"]:
        row("  2xx answers only", h["latency_from_due_2xx_only"])
    row("  from actual send (service time)", h["service_from_send"])
    row("  send lag of the load process", h["send_lag"])
    row("peer: parse+intake+commit (serial)", p["intake"])
    row("peer: signature check (nonce+commit)", p["signature_check"])
    row("peer: both", p["with_signature_check"])
    row("peer: audit lock held (lock stmt -> commit)", p["audit_lock_held"])
    row("peer: COMMIT (WAL flush), inside the lock", p["commit_statement"])
    lines += [
        "",
        f"rate achieved {h['achieved_per_s']:g}/s (offered {h['offered_per_s']:g}/s); peer "
        f"serial capacity {p['serial_capacity_per_s']:g}/s (with signature check); "
        f"ratio HTTP p50 / peer p50 = {r['ratio_p50']:g}x "
        f"({r['ratio_p50_with_signature']:g}x against peer + signature check)",
        f"statuses: {', '.join(f'{k}: {n}' for k, n in sorted(h['statuses'].items()))}",
        f"actions: {', '.join(f'{k}: {n}' for k, n in h['actions'].items())}",
        f"lost (not stored) {v['lost']}"
        + (
            " ("
            + ", ".join(f"{k} {n}" for k, n in v["checks"].get("not_stored_why", {}).items())
            + ")"
            if v["lost"]
            else ""
        )
        + f", duplicated {v['duplicated']}; alert rows "
        f"{v['checks'].get('alert_rows')} = distinct alerts sent "
        f"{v['checks'].get('distinct_alerts_sent')}; incidents {v['checks'].get('incidents')}; "
        f"zones {v['checks'].get('zones')}; alert.received events "
        f"{v['checks'].get('alert_received_events')}; audit chain "
        f"{v['checks'].get('audit_chain')}; answers like the peer's {v['answers_like_peer']}",
        f"CPU over {cpu['wall_s']:g} s (cores busy): server {cpu['server_cores']:g}, "
        f"PostgreSQL {cpu['postgres_cores']:g}, load {cpu['load_cores']:g}, "
        f"machine {cpu['machine_busy_cores']:g} of {m['cpus']}",
        f"server's own time (Metrics middleware{multi}): mean {sm.get('mean_ms')} ms, "
        f"p50 {sm.get('p50')}, p99 {sm.get('p99')}; {sm.get('batches')} intake batches, "
        f"mean {sm.get('mean_batch')} alerts each (group commit)",
        f"PostgreSQL backends active (mean of {waits['samples']} samples): "
        f"{waits['mean_active_backends']:g}, max {waits['max_active_backends']}; by wait: "
        + ", ".join(f"{k} {n:g}" for k, n in list(waits["mean_backends_by_wait"].items())[:6]),
        f"audit advisory lock held in {waits['audit_lock_held_share']:.0%} of samples; its "
        "holder: "
        + ", ".join(
            f"{k} {n:.0%}" for k, n in waits["audit_lock_holder"].items() if k != "not held"
        ),
        f"peer: {p['statements_per_alert']:g} statements per alert, "
        f"{p['statements_under_audit_lock']:g} of them under the audit lock; one writer at a "
        f"time holds it for a mean {p['audit_lock_held'].get('mean_ms')} ms serially, so at "
        f"most ~{p['lock_bound_capacity_per_s']:g} alerts/s whatever the concurrency",
        "whole-table scans in the server's database (rows read): "
        + ", ".join(
            f"{t} {c['seq_scan']} scans ({c['seq_tup_read']:,})"
            for t, c in v["checks"].get("seq_scans", {}).items()
        ),
    ]
    if v["problems"]:
        lines.append("PROBLEMS: " + "; ".join(v["problems"][:10]))
    t = r["target"]
    lines.append(
        f"target {t['rate_per_s']:g}/s, p99 < {t['p99_ms']:g} ms, 0 lost, 0 duplicated: "
        + ("MET" if t["met"] else "MISSED")
        + f" (p99 {h['latency_from_due']['p99_ms']:g} ms, rate {h['achieved_per_s']:g}/s, "
        f"lost {t['lost']}, duplicated {t['duplicated']})"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.alerts", description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=TARGET_RATE, help="posts per second")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to post")
    p.add_argument("--workers", type=int, default=1, help="load processes")
    p.add_argument(
        "--server-workers",
        type=int,
        default=SERVER_WORKERS,
        help="server processes (EMERGENCY_WORKERS; default: one per core, at most 2)",
    )
    p.add_argument(
        "--connections", type=int, default=CONNECTIONS, help="connections per load process"
    )
    p.add_argument(
        "--peer-max", type=int, default=0, help="peer: only the first N messages (0: all)"
    )
    p.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="when autovacuum is off, do not ANALYZE every 10 s in its stead",
    )
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    p.add_argument("--load", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.load and (
        args.rate <= 0 or args.seconds <= 0 or args.workers < 1 or args.connections < 1
    ):
        p.error("need --rate > 0, --seconds > 0, --workers >= 1, --connections >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load:
        return load_main(args.load)
    from bench.realtime import raise_nofile
    from tests.support.db import create_database, drop_database

    try:  # the same check the other benchmarks make: is there a PostGIS to run against?
        drop_database(create_database("emergency_bench_probe"))
    except Exception as exc:
        print(f"no PostGIS to benchmark against: {exc}", file=sys.stderr)
        print("run ./scripts/setup.sh (or set DATABASE_URL)", file=sys.stderr)
        return 2
    raise_nofile()  # the server and the load processes inherit it (a socket per post)
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        try:
            result, ok = run_benchmark(args, Path(tmp))
        except Exception as exc:
            print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print(render(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"\nwritten to {shown}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
