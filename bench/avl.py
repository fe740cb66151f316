"""AVL benchmark: vehicle positions at fleet scale (issue 18), every path side by side.

Run with ``uv run python -m bench.avl`` (or ``make bench``); a smoke run in about a minute:
``uv run python -m bench.avl --quick``. It

1. creates a throwaway PostGIS database (migrated), a station, units in disjoint ranges (one
   range per path, so each path's rows are counted on their own), a dispatcher (bearer
   token) and OsmAnd trackers bound to their units;
2. starts the real server (``emergency serve --workers 2``) in a subprocess, and the old
   path's (below), and then, one after the other, measures:
   - the floor: a plain psycopg multi-row INSERT of the same kind of rows into
     ``unit_position``, 1,000 rows a statement, 4 connections, each statement committed
     (parameters built before the clock starts: the figure is PostgreSQL's);
   - batch ingest: 4 gateways POSTing ``/api/positions`` with 1,000 fixes a request, first
     as fast as they are answered (the rate), then paced at 5,000 positions/s (the p99 the
     issue asks for at that rate: sent as fast as answered, 4 gateways keep 4,000 fixes in
     flight, so each batch takes 4,000 / rate seconds whatever the server); meanwhile a big screen
     (a WebSocket client on ``situation``) receives the live map's ``unit.positions`` and
     the lag of each entry is taken (receive time - the fix's ``recorded_at``, which is its
     send time);
   - single positions: 32 clients POSTing ``/api/units/{id}/position``, taking turns (3
     rounds each, who goes first flips) with today's path: the pre-change code
     (``bench/avl_legacy.py``, a kept copy of de89ea9's ``report_position``) on a second
     server (the same app plus that route, the same options), 32 clients too;
   - OsmAnd: 64 trackers GETting ``/api/avl/osmand?id=...``;
3. counts, after each path, the rows in the track for that path's units against the fixes
   the server accepted (its 202 / 200 answers): zero lost;
4. prints a table (positions/s, latency per request p50 / p99, accepted, in the track,
   lost, targets), the ratios (batch vs floor, single vs the old path), the CPU each
   part used (server, PostgreSQL, PostgreSQL connections that ended meanwhile, generator,
   anything else) and the connections PostgreSQL had to open a second, and writes
   bench/results/avl.json.

The load comes from separate processes (``--load``, ``--watch``): asyncio with keep-alive
connections and prebuilt HTTP/1.1 requests over raw streams, so the generator costs little
of the 2 cores it shares with the server and PostgreSQL. Every fix has ``recorded_at`` =
the moment it is built and sent; each unit sends at most one fix a second and moves like a
vehicle (5-30 m/s, turning gently, inside a 20 x 20 km city), so no fix is an impossible
jump and none is a duplicate. Targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "avl.json"

# Targets from issue 18 ("Speed").
BATCH_TARGET_PER_S = 5000.0
BATCH_TARGET_P99_MS = 200.0
SINGLE_TARGET_PER_S = 600.0
SINGLE_TARGET_P99_MS = 200.0
OSMAND_TARGET_PER_S = 1000.0
LAG_TARGET_P99_MS = 1000.0

BATCH_SIZE = 1000
GATEWAYS = 4
FLOOR_CONNECTIONS = 4
SINGLE_CLIENTS = 32
ROUNDS = 3  # the single endpoint and the old path take turns, this many rounds each
OSMAND_CLIENTS = 64
PACED_RATE = 5000.0
MIN_GAP_S = 1.0  # a unit sends at most one fix a second
CITY = (-83.10, 39.87, -82.87, 40.05)  # ~20 x 20 km around Columbus, Ohio (w, s, e, n)
SEED = 20_261_206
KNOT_MPS = 1852.0 / 3600.0
HTTP_TIMEOUT_S = 60.0
LAG_SETTLE_S = 2.0  # after the batch phase, for the last live-map updates to arrive


def iso(t: float) -> str:
    """A unix time as ISO 8601 with its UTC offset (microseconds kept)."""
    return datetime.fromtimestamp(t, UTC).isoformat()


def percentile(values: list[float], q: float) -> float:
    from bench.timing import percentile as pct

    return pct(values, q)


def latency_stats(seconds: list[float]) -> dict[str, Any]:
    """p50 / p95 / p99 / max of durations in seconds, as milliseconds."""
    if not seconds:
        return {"n": 0}
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p95_ms": round(percentile(seconds, 95) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


# =====================================================================================
# The fleet: units moving through the city, each at most one fix a second
# =====================================================================================


class Fleet:
    """Where each unit is and when it last sent a fix. ``take(n, now)`` hands out the ``n``
    units that have waited longest (all of them at least ``MIN_GAP_S``), moved on to
    ``now``; the queue stays in the order of their last fix."""

    def __init__(self, unit_ids: list[int], seed: int, box: tuple[float, ...] = CITY) -> None:
        rng = random.Random(seed)
        self.rng = rng
        self.ids = list(unit_ids)
        w, s, e, n = box
        self.box = box
        self.lon = [rng.uniform(w, e) for _ in self.ids]
        self.lat = [rng.uniform(s, n) for _ in self.ids]
        self.heading = [rng.uniform(0, 360) for _ in self.ids]
        self.speed = [rng.uniform(10, 30) for _ in self.ids]
        self.last = [0.0] * len(self.ids)  # time of the unit's last fix; 0: none yet
        self.queue: deque[int] = deque(range(len(self.ids)))
        mid = math.radians((s + n) / 2)
        self.deg_lon_per_m = 1 / (111_320.0 * math.cos(mid))
        self.deg_lat_per_m = 1 / 110_574.0
        self.waits = 0  # times a client found no unit due (the fleet was the limit)

    def due_in(self, n: int, now: float) -> float:
        """Seconds until ``n`` units are due (0: now; inf: the fleet has fewer)."""
        if n > len(self.queue):
            return math.inf
        return max(0.0, self.last[self.queue[n - 1]] + MIN_GAP_S - now)

    def take(self, n: int, now: float) -> list[int]:
        """The ``n`` longest-waiting units, moved to where they are at ``now`` (none
        unless ``n`` are due)."""
        if self.due_in(n, now) > 0:
            return []
        out = [self.queue.popleft() for _ in range(n)]
        for i in out:
            self.move(i, now)
        self.queue.extend(out)
        return out

    def move(self, i: int, now: float) -> None:
        rng = self.rng
        dt = now - self.last[i] if self.last[i] else 1.0
        h = (self.heading[i] + rng.gauss(0, 8)) % 360.0
        v = min(30.0, max(5.0, self.speed[i] + rng.gauss(0, 0.8)))
        d = v * dt
        lon = self.lon[i] + d * math.sin(math.radians(h)) * self.deg_lon_per_m
        lat = self.lat[i] + d * math.cos(math.radians(h)) * self.deg_lat_per_m
        w, s, e, n = self.box
        if not w <= lon <= e or not s <= lat <= n:  # the city's edge: stay, turn round
            lon, lat, h = self.lon[i], self.lat[i], (h + 180.0) % 360.0
        self.lon[i], self.lat[i], self.heading[i], self.speed[i] = lon, lat, h, v
        self.last[i] = now

    def fix_json(self, i: int, at: str) -> str:
        """One fix as the batch body's JSON object."""
        heading = round(self.heading[i], 1) % 360.0
        return (
            f'{{"unit_id":{self.ids[i]},"lon":{self.lon[i]:.7f},"lat":{self.lat[i]:.7f},'
            f'"recorded_at":"{at}","speed_mps":{self.speed[i]:.2f},'
            f'"heading_deg":{heading:.1f},"accuracy_m":5.0}}'
        )


# =====================================================================================
# A minimal HTTP/1.1 client over asyncio streams (keep-alive, prebuilt requests)
# =====================================================================================


class Http:
    """One keep-alive connection; ``call(request)`` writes raw request bytes and returns
    (status, body). Reconnects when the server closes."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.connects += 1

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def call(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        low = head.lower()
        at = low.find(b"\r\ncontent-length:")
        if at >= 0:
            end = low.index(b"\r\n", at + 2)
            length = int(low[at + 17 : end])
            body = await self.reader.readexactly(length) if length else b""
        elif b"\r\ntransfer-encoding: chunked" in low:
            body = await self._chunked()
        else:
            body = await self.reader.read()
            await self.close()
            return status, body
        if b"\r\nconnection: close" in low:
            await self.close()
        return status, body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def post_head(path: str, host: str, token: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
        "content-type: application/json\r\ncontent-length: "
    )


def with_body(head: str, body: str) -> bytes:
    data = body.encode()
    return head.encode() + str(len(data)).encode() + b"\r\n\r\n" + data


# =====================================================================================
# The load process (``--load CONFIG``): one path, one or more stages
# =====================================================================================


class Tally:
    """What one stage's requests got back."""

    def __init__(self) -> None:
        self.latency: list[float] = []
        self.requests = 0
        self.fixes_sent = 0
        self.accepted = 0  # durable in the track (duplicates included)
        self.duplicates = 0
        self.flagged = 0
        self.refused = 0
        self.errors: dict[str, int] = {}
        self.error_samples: list[str] = []
        self.first = math.inf
        self.last = 0.0

    def error(self, key: str, sample: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1
        if len(self.error_samples) < 5:
            self.error_samples.append(sample[:300])


def judge(kind: str, status: int, body: bytes, n: int, tally: Tally) -> None:
    """Count one answer: accepted, duplicates, flagged, refused or an error."""
    if kind == "batch":
        if status != 202:
            tally.error(f"HTTP {status}", body.decode(errors="replace"))
            return
        out = json.loads(body)
        tally.accepted += int(out["accepted"])
        tally.duplicates += int(out.get("duplicates", 0))
        tally.flagged += len(out.get("flagged", ()))
        tally.refused += len(out.get("refused", ()))
        if out.get("refused") and len(tally.error_samples) < 5:
            tally.error_samples.append(json.dumps(out["refused"][:3]))
    elif kind in ("single", "legacy"):
        if status != 202:
            tally.error(f"HTTP {status}", body.decode(errors="replace"))
            return
        out = json.loads(body)
        tally.accepted += 1
        tally.duplicates += bool(out.get("duplicate"))
        tally.flagged += out.get("flag") is not None
    else:  # osmand
        if status != 200:
            tally.error(f"HTTP {status}", body.decode(errors="replace"))
            return
        tally.accepted += n


class Load:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.kind: str = cfg["kind"]
        self.host = f"127.0.0.1:{cfg['port']}"
        self.fleet = Fleet(cfg["units"], cfg["seed"])
        self.devices: list[str] = cfg.get("devices", [])
        token = cfg.get("token", "")
        if self.kind == "batch":
            self.head = post_head("/api/positions", self.host, token)
        elif self.kind == "single":
            self.heads = [
                post_head(f"/api/units/{u}/position", self.host, token) for u in cfg["units"]
            ]
        elif self.kind == "legacy":
            self.heads = [
                post_head(f"/bench/legacy/units/{u}/position", self.host, token)
                for u in cfg["units"]
            ]

    def per_request(self) -> int:
        return BATCH_SIZE if self.kind == "batch" else 1

    def build(self, idx: list[int], now: float) -> bytes:
        f = self.fleet
        if self.kind == "batch":
            at = iso(now)
            fixes = ",".join(f.fix_json(i, at) for i in idx)
            return with_body(self.head, f'{{"positions":[{fixes}]}}')
        i = idx[0]
        if self.kind in ("single", "legacy"):
            heading = round(f.heading[i], 1) % 360.0
            body = (
                f'{{"lon":{f.lon[i]:.7f},"lat":{f.lat[i]:.7f},"recorded_at":"{iso(now)}",'
                f'"speed_mps":{f.speed[i]:.2f},"heading_deg":{heading:.1f},"accuracy_m":5.0}}'
            )
            return with_body(self.heads[i], body)
        # OsmAnd / Traccar client: a GET with the fix in the query; speed in knots,
        # timestamp in unix seconds (the fleet moved the unit to that whole second).
        query = (
            f"id={self.devices[i]}&lat={f.lat[i]:.7f}&lon={f.lon[i]:.7f}&timestamp={int(now)}"
            f"&speed={f.speed[i] / KNOT_MPS:.2f}&bearing={round(f.heading[i], 1) % 360.0:.1f}"
            f"&altitude=230.0&accuracy=5.0&batt=87"
        )
        return f"GET /api/avl/osmand?{query} HTTP/1.1\r\nhost: {self.host}\r\n\r\n".encode()

    async def client(
        self, k: int, clients: int, end: float, rate: float | None, tally: Tally
    ) -> None:
        conn = Http("127.0.0.1", int(self.cfg["port"]))
        await conn.open()
        n = self.per_request()
        # Paced: each client sends a request every `interval` s, the clients staggered.
        interval = clients * n / rate if rate else 0.0
        next_at = time.time() + interval * k / clients
        try:
            while True:
                now = time.time()
                if now >= end:
                    break
                if interval:
                    if next_at > now:
                        await asyncio.sleep(next_at - now)
                    next_at = max(next_at + interval, time.time() - interval)
                now = time.time()
                if self.kind == "osmand":
                    now = float(int(now))  # whole seconds, as the protocol sends them
                idx = self.fleet.take(n, now)
                if not idx:
                    self.fleet.waits += 1
                    await asyncio.sleep(min(0.05, max(0.001, self.fleet.due_in(n, now))))
                    continue
                request = self.build(idx, now)
                t0 = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(conn.call(request), HTTP_TIMEOUT_S)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    tally.error(type(exc).__name__, str(exc))
                    await conn.close()
                    continue
                done = time.perf_counter()
                tally.latency.append(done - t0)
                tally.requests += 1
                tally.fixes_sent += len(idx)
                tally.first = min(tally.first, t0)
                tally.last = max(tally.last, done)
                judge(self.kind, status, body, len(idx), tally)
        finally:
            await conn.close()

    async def stage(self, stage: dict[str, Any]) -> dict[str, Any]:
        clients = int(stage["clients"])
        rate = stage.get("rate")
        tally = Tally()
        waits0 = self.fleet.waits
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0 = time.time()
        t0 = time.perf_counter()
        end = wall0 + float(stage["seconds"])
        await asyncio.gather(*(self.client(k, clients, end, rate, tally) for k in range(clients)))
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        busy = max(tally.last - tally.first, 1e-9) if tally.requests else elapsed
        cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        return {
            "name": stage["name"],
            "clients": clients,
            "rate_asked": rate,
            "seconds": round(elapsed, 2),
            "wall_start": wall0,
            "wall_end": time.time(),
            "requests": tally.requests,
            "fixes_per_request": self.per_request(),
            "fixes_sent": tally.fixes_sent,
            "accepted": tally.accepted,
            "duplicates": tally.duplicates,
            "flagged": tally.flagged,
            "refused": tally.refused,
            "errors": tally.errors,
            "error_samples": tally.error_samples,
            "positions_per_s": round(tally.accepted / busy, 1),
            "requests_per_s": round(tally.requests / busy, 1),
            "latency": latency_stats(tally.latency),
            "busy_s": busy,
            "latency_s": [round(v, 6) for v in tally.latency],  # merged by the driver
            "fleet_waits": self.fleet.waits - waits0,
            "generator_cpu_s": round(cpu_s, 2),
            "generator_util": round(cpu_s / max(elapsed, 1e-9), 2),
        }

    async def run(self) -> dict[str, Any]:
        """The stages one after the other, each when the driver says go (a line on stdin);
        a line on stdout when ready and after each stage (the driver takes its CPU marks
        there, and runs other paths' stages in between)."""
        loop = asyncio.get_running_loop()
        stages = []
        print(json.dumps({"ready": True}), flush=True)
        for stage in self.cfg["stages"]:
            await loop.run_in_executor(None, sys.stdin.readline)
            stages.append(await self.stage(stage))
            print(json.dumps({"done": stage["name"]}), flush=True)
        return {"stages": stages}


def load_main(config: str) -> int:
    cfg = json.loads(Path(config).read_text(encoding="utf-8"))
    raise_nofile()
    result = asyncio.run(Load(cfg).run())
    Path(cfg["out"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# =====================================================================================
# The live map watcher (``--watch CONFIG``): a big screen on `situation`
# =====================================================================================


class Watcher:
    """Receives ``unit.positions`` events and notes, for every entry, when it arrived,
    the fix's ``recorded_at`` and the event's ``at`` (when it was written)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.recv: list[float] = []
        self.recorded: list[float] = []
        self.written: list[float] = []
        self.units: list[int] = []
        self.events = 0
        self.other_events: dict[str, int] = {}
        self.errors: list[str] = []
        self.at_cache: dict[str, float] = {}

    def ts(self, text: str) -> float:
        t = self.at_cache.get(text)
        if t is None:
            t = datetime.fromisoformat(text).timestamp()
            if len(self.at_cache) < 100_000:
                self.at_cache[text] = t
        return t

    def take(self, event: dict[str, Any], now: float) -> None:
        name = event.get("event")
        if name != "unit.positions":
            self.other_events[str(name)] = self.other_events.get(str(name), 0) + 1
            return
        self.events += 1
        at = self.ts(event["at"]) if event.get("at") else math.nan
        for p in event.get("data", {}).get("positions", ()):
            self.recv.append(now)
            self.recorded.append(self.ts(p["recorded_at"]))
            self.written.append(at)
            self.units.append(int(p["unit_id"]))

    async def receive(self, ws: Any) -> None:
        async for raw in ws:
            now = time.time()
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "event":
                self.take(msg, now)
            elif kind == "batch":
                for m in msg.get("messages", ()):
                    if m.get("type") == "event":
                        self.take(m, now)
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
            elif kind in ("error", "resync"):
                self.errors.append(json.dumps(msg)[:300])

    def summary(self, windows: dict[str, list[float]]) -> dict[str, Any]:
        """Lag stats per window of ``recorded_at`` (the fixes each stage sent)."""
        out: dict[str, Any] = {
            "events": self.events,
            "entries": len(self.recv),
            "other_events": self.other_events,
            "errors": self.errors,
        }
        for name, (lo, hi) in windows.items():
            lag, publish, units = [], [], set()
            for r, rec, w, u in zip(
                self.recv, self.recorded, self.written, self.units, strict=True
            ):
                if lo <= rec <= hi:
                    lag.append(r - rec)
                    if not math.isnan(w):
                        publish.append(w - rec)
                    units.add(u)
            out[name] = {
                "lag": latency_stats(lag),
                "written_after_fix": latency_stats(publish),
                "units_seen": len(units),
            }
        return out

    async def main(self) -> None:
        from websockets.asyncio.client import connect

        loop = asyncio.get_running_loop()
        ws = await connect(
            self.cfg["ws_url"],
            compression=None,
            open_timeout=60,
            ping_interval=None,
            max_size=None,
            close_timeout=2,
        )
        hello = {
            "type": "hello",
            "token": self.cfg["token"],
            "subscribe": ["situation"],
            "resume": {"situation": int(self.cfg["head"])},
            "batch": True,
        }
        await ws.send(json.dumps(hello))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if msg.get("type") == "welcome":
                break
            if msg.get("type") == "error":
                raise RuntimeError(f"refused: {msg}")
        task = asyncio.create_task(self.receive(ws))
        print(json.dumps({"ready": True}), flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        with contextlib.suppress(Exception):
            await ws.close()
        order = json.loads(line) if line.strip() else {"windows": {}, "out": None}
        if order.get("out"):
            result = self.summary(order["windows"])
            Path(order["out"]).write_text(json.dumps(result), encoding="utf-8")  # noqa: ASYNC240
        print(json.dumps({"stopped": True}), flush=True)


def watch_main(config: str) -> int:
    cfg = json.loads(Path(config).read_text(encoding="utf-8"))
    asyncio.run(Watcher(cfg).main())
    return 0


# =====================================================================================
# The driver: database, servers, the floor, processes, counting, CPU
# =====================================================================================


def postgres_cpu(database: str) -> dict[str, Any]:
    """CPU seconds of PostgreSQL's processes, from /proc: ``ours``, per process, the
    backends of ``database`` and the server's own processes (WAL writer, checkpointer,
    ...), not other databases' backends (other tests may share the server); ``all``, per
    process, every one; ``reaped``, what the postmaster's exited children used (of any
    database): a connection opened and closed between two marks shows only there."""
    from bench.realtime import HZ

    ours: dict[int, float] = {}
    every: dict[int, float] = {}
    reaped = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            stat = (entry / "stat").read_text()
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = stat[stat.rindex(")") + 2 :].split()
            parent = Path(f"/proc/{fields[1]}/comm").read_text().strip()
        except OSError:
            continue
        pid = int(entry.name)
        every[pid] = (int(fields[11]) + int(fields[12])) / HZ
        if parent != "postgres":  # the postmaster
            reaped = (int(fields[13]) + int(fields[14])) / HZ
        backend = "(" in title or "[local]" in title
        if not backend or f" {database} " in title:
            ours[pid] = every[pid]
    return {"ours": ours, "all": every, "reaped": reaped}


class Cpu:
    """CPU seconds of the server (its process tree), PostgreSQL (``database``'s backends
    and the server's processes), this process, the watcher and the whole machine between
    two marks. A load process measures itself (it has exited by the second mark)."""

    def __init__(self, database: str, conn: Any = None) -> None:
        self.database = database
        self.conn = conn  # to read how many connections the database has had
        self.servers: list[int] = []  # the servers' first processes
        self.others: list[int] = []  # the live map watcher

    def sessions(self) -> int:
        """Connections made to the database so far (pg_stat_database.sessions)."""
        if self.conn is None:
            return 0
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def mark(self) -> dict[str, Any]:
        from bench.realtime import machine_busy_s, proc_cpu_s
        from bench.timing import proc_tree

        busy, total = machine_busy_s()
        me = resource.getrusage(resource.RUSAGE_SELF)
        server = {pid: proc_cpu_s(pid) for root in self.servers for pid in proc_tree(root)}
        return {
            "wall": time.perf_counter(),
            "driver": me.ru_utime + me.ru_stime,
            "server": server,
            "others": {pid: proc_cpu_s(pid) for pid in self.others},
            **{f"postgres_{k}": v for k, v in postgres_cpu(self.database).items()},
            "sessions": self.sessions(),
            "busy": busy,
            "total": total,
        }

    def server_util(self, seconds: float = 0.5) -> float:
        """Cores the server process tree keeps busy over ``seconds``."""
        a = self.mark()
        time.sleep(seconds)
        return Cpu.between(a, self.mark())["server_util"]

    def settle(self, limit_s: float = 60.0) -> float:
        """Wait until the servers are idle (every worker started: the health check is
        answered by the first one up); returns the seconds waited."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < limit_s and self.server_util() > 0.1:
            pass
        return time.perf_counter() - t0

    @staticmethod
    def between(
        a: dict[str, Any], b: dict[str, Any], generator_cpu_s: float = 0.0
    ) -> dict[str, float]:
        """Cores busy between the marks, per part; ``generator_cpu_s``: what the load
        process said it used. ``postgres_exited``: connections that ended in between (of
        any database); ``others`` = the machine's busy cores not accounted for."""
        wall = max(b["wall"] - a["wall"], 1e-9)

        def delta(key: str) -> float:
            return float(sum(v - a[key].get(pid, 0.0) for pid, v in b[key].items()))

        # Processes that exited in between: what the postmaster reaped, less what they had
        # used before the first mark.
        gone = set(a["postgres_all"]) - set(b["postgres_all"])
        exited = b["postgres_reaped"] - a["postgres_reaped"]
        exited = max(0.0, exited - sum(a["postgres_all"][pid] for pid in gone))
        cores = os.cpu_count() or 1
        parts = {
            "server": delta("server"),
            "postgres": delta("postgres_ours"),
            "generator": generator_cpu_s + delta("others"),
            "driver": b["driver"] - a["driver"],
            "postgres_exited": exited,
        }
        out = {"wall_s": round(wall, 2)}
        out["connections"] = b["sessions"] - a["sessions"]
        out["connections_per_s"] = round(out["connections"] / wall, 1)
        for name, cpu_s in parts.items():
            out[f"{name}_cpu_s"] = round(cpu_s, 2)
            out[f"{name}_util"] = round(cpu_s / wall, 2)
        machine = (b["busy"] - a["busy"]) / max(b["total"] - a["total"], 1e-9) * cores
        out["machine_util"] = round(machine, 2)
        out["others_util"] = round(max(0.0, machine - sum(parts.values()) / wall), 2)
        return out


def psycopg_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def seed_units(conn: Any, total: int) -> list[int]:
    """A station and ``total`` available units with no position yet; their ids in order."""
    lon, lat = (CITY[0] + CITY[2]) / 2, (CITY[1] + CITY[3]) / 2
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO station (name, kind, geom) VALUES ('AVL bench station', 'fire', "
            "ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
            (lon, lat),
        )
        station = cur.fetchone()[0]
        with cur.copy(
            "COPY unit (callsign, name, kind, type, capabilities, crew, home_station_id, status) "
            "FROM STDIN"
        ) as copy:
            for i in range(total):
                copy.write_row(
                    (
                        f"AVL{i:06d}",
                        f"AVL bench unit {i}",
                        "vehicle",
                        "ambulance",
                        ["medical_bls"],
                        2,
                        station,
                        "available",
                    )
                )
        cur.execute("SELECT id FROM unit WHERE callsign LIKE 'AVL%%' ORDER BY callsign")
        ids = [int(r[0]) for r in cur.fetchall()]
    conn.commit()
    with conn.cursor() as cur:
        conn.autocommit = True
        cur.execute("ANALYZE unit")
        conn.autocommit = False
    return ids


def add_devices(url: str, callsigns: list[str]) -> list[str]:
    """One OsmAnd tracker per unit, registered as ``emergency device add --unit CALLSIGN``
    does (a drawn secret id); the ids the trackers send, in the order of ``callsigns``."""
    from core.db import make_engine, make_sessionmaker, session_scope
    from core.security import SYSTEM
    from resources.avl import devices

    engine = make_engine(url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            return [
                devices.add_device(session, unit_callsign=c, principal=SYSTEM)[1] for c in callsigns
            ]
    finally:
        engine.dispose()


def track_rows(conn: Any, unit_ids: list[int]) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM unit_position WHERE unit_id = ANY(%s)", (unit_ids,))
        return int(cur.fetchone()[0])


def stale_units(conn: Any, unit_ids: list[int]) -> int:
    """Units whose position is not their newest good (unflagged) fix in the track."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM unit u JOIN (SELECT unit_id, max(recorded_at) AS newest "
            "FROM unit_position WHERE unit_id = ANY(%s) AND flag IS NULL GROUP BY unit_id) t "
            "ON t.unit_id = u.id WHERE u.position_at IS DISTINCT FROM t.newest",
            (unit_ids,),
        )
        return int(cur.fetchone()[0])


def zero_lost(conn: Any, unit_ids: list[int], stored: int) -> dict[str, Any]:
    """The rows in the track for ``unit_ids`` against the fixes the server said it stored
    (accepted minus duplicates); counted at once, and again 2 s later if they differ."""
    rows = track_rows(conn, unit_ids)
    out: dict[str, Any] = {"stored_per_server": stored, "in_track": rows}
    if rows != stored:
        time.sleep(2.0)
        rows = track_rows(conn, unit_ids)
        out["in_track_after_2s"] = rows
    out["lost"] = max(0, stored - rows)
    out["extra"] = max(0, rows - stored)
    return out


# --- the floor: plain psycopg multi-row INSERT ---------------------------------------


FLOOR_PREBUILT = 8  # parameter lists per connection, reused (only the time changes)


def floor_sql(n: int) -> str:
    """The multi-row INSERT of ``n`` fixes: $1 is the time they share (as in a gateway's
    batch), then six values a row (unit, lon, lat, speed, heading, accuracy)."""
    rows = []
    for r in range(n):
        p = 2 + 6 * r
        rows.append(
            f"(${p}, $1, ST_SetSRID(ST_MakePoint(${p + 1}, ${p + 2}), 4326), ${p + 3}, "
            f"${p + 4}, ${p + 5}, 'batch')"
        )
    columns = "unit_id, recorded_at, geom, speed_mps, heading_deg, accuracy_m, source"
    return f"INSERT INTO unit_position ({columns}) VALUES {', '.join(rows)}"  # noqa: S608


def run_floor(dsn: str, unit_ids: list[int], seconds: float, cpu: Cpu) -> dict[str, Any]:
    """``FLOOR_CONNECTIONS`` threads, each with its own connection and share of the units,
    inserting ``BATCH_SIZE`` rows a statement (each its own transaction) for ``seconds``.
    The rows are the ones the gateways send, their parameters built before the clock
    starts (``FLOOR_PREBUILT`` lists, reused) so that the figure is PostgreSQL's, not this
    process's: only the time they share changes, a virtual second further each statement
    (starting 30 min ago), so every row is a new fix."""
    import psycopg

    sql = floor_sql(BATCH_SIZE)
    share = len(unit_ids) // FLOOR_CONNECTIONS
    if share < BATCH_SIZE:
        raise ValueError(f"the floor needs {BATCH_SIZE} units per connection")
    latencies: list[float] = []
    counts = [0] * FLOOR_CONNECTIONS
    errors: list[str] = []
    lock = threading.Lock()
    start = time.time() - 1800.0
    barrier = threading.Barrier(FLOOR_CONNECTIONS + 1)
    finished = threading.Barrier(FLOOR_CONNECTIONS + 1)  # the CPU mark, then disconnect
    marked = threading.Event()
    stop_at = [math.inf]

    def worker(k: int) -> None:
        fleet = Fleet(unit_ids[k * share : (k + 1) * share], SEED + 100 + k)
        prebuilt: list[list[Any]] = []
        for j in range(FLOOR_PREBUILT):
            idx = fleet.take(BATCH_SIZE, start + j * MIN_GAP_S)
            params: list[Any] = []
            for i in idx:
                params += (
                    fleet.ids[i],
                    round(fleet.lon[i], 7),
                    round(fleet.lat[i], 7),
                    round(fleet.speed[i], 2),
                    round(fleet.heading[i], 1) % 360.0,
                    5.0,
                )
            prebuilt.append(params)
        mine: list[float] = []
        try:
            with (
                psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.RawCursor) as conn,
                conn.cursor() as cur,
            ):
                barrier.wait()
                n = 0
                while time.perf_counter() < stop_at[0]:
                    at = datetime.fromtimestamp(start + n * MIN_GAP_S, UTC)
                    params = [at, *prebuilt[n % FLOOR_PREBUILT]]
                    t0 = time.perf_counter()
                    cur.execute(sql, params)
                    mine.append(time.perf_counter() - t0)
                    counts[k] += BATCH_SIZE
                    n += 1
                finished.wait()
                marked.wait(60)
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
            barrier.abort()
            finished.abort()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(FLOOR_CONNECTIONS)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    a = cpu.mark()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    with contextlib.suppress(threading.BrokenBarrierError):
        finished.wait()
    elapsed = time.perf_counter() - t0
    b = cpu.mark()  # before the connections close: their backends' CPU is counted
    marked.set()
    for t in threads:
        t.join()
    total = sum(counts)
    return {
        "name": "floor",
        "clients": FLOOR_CONNECTIONS,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "fixes_per_request": BATCH_SIZE,
        "fixes_sent": total,
        "accepted": total,
        "duplicates": 0,
        "flagged": 0,
        "refused": 0,
        "errors": {"exception": len(errors)} if errors else {},
        "error_samples": errors[:5],
        "positions_per_s": round(total / elapsed, 1),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency": latency_stats(latencies),
        "fleet_waits": 0,
        "cpu": Cpu.between(a, b),
    }


# --- the generator processes ---------------------------------------------------------


class Child:
    """A ``python -m bench.avl --load|--watch CONFIG`` process."""

    def __init__(self, mode: str, cfg: dict[str, Any], workdir: Path, name: str) -> None:
        self.name = name
        path = workdir / f"{name}.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        self.err = (workdir / f"{name}.err").open("w+b")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "bench.avl", mode, str(path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self) -> str:
        self.err.flush()
        self.err.seek(0)
        return self.err.read()[-3000:].decode(errors="replace")

    def readline(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} exited ({self.proc.poll()}):\n{self.stderr_tail()}")
        return dict(json.loads(line))

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> None:
        if self.proc.wait(timeout=timeout) != 0:
            raise RuntimeError(
                f"{self.name} failed ({self.proc.returncode}):\n{self.stderr_tail()}"
            )

    def close(self) -> None:
        from bench.timing import stop_process

        stop_process(self.proc)
        self.err.close()


class LoadProcess:
    """A load process (``--load``) for one path: started and ready at once, then one
    stage each time :meth:`stage` is called (the CPU of the machine taken around it),
    so that stages of two paths can take turns."""

    def __init__(self, cpu: Cpu, workdir: Path, name: str, cfg: dict[str, Any]) -> None:
        self.cpu = cpu
        self.out = workdir / f"{name}-result.json"
        self.cfg = {**cfg, "out": str(self.out), "seed": SEED + len(name)}
        self.marks: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.child = Child("--load", self.cfg, workdir, name)
        try:
            self.child.readline()  # ready
        except BaseException:
            self.child.close()
            raise

    def stage(self) -> None:
        a = self.cpu.mark()
        self.child.send({"go": True})
        self.child.readline()  # done
        self.marks.append((a, self.cpu.mark()))

    def result(self, timeout: float) -> list[dict[str, Any]]:
        """The stages' figures, each with the CPU used while it ran."""
        try:
            self.child.wait(timeout)
        finally:
            self.child.close()
        stages: list[dict[str, Any]] = json.loads(self.out.read_text(encoding="utf-8"))["stages"]
        for stage, (a, b) in zip(stages, self.marks, strict=True):
            stage["cpu"] = Cpu.between(a, b, float(stage["generator_cpu_s"]))
        return stages


def run_load(
    cpu: Cpu, workdir: Path, name: str, cfg: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    """Run one load process's stages one after the other; their figures."""
    proc = LoadProcess(cpu, workdir, name, cfg)
    for _ in cfg["stages"]:
        proc.stage()
    return proc.result(timeout)


def merge_rounds(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a path's rounds: counts summed, rates over the time busy in all of
    them, latency percentiles over every request, CPU over their wall time."""
    first = stages[0]
    row = {k: v for k, v in first.items() if k not in ("latency_s", "cpu")}
    for key in ("requests", "fixes_sent", "accepted", "duplicates", "flagged", "refused"):
        row[key] = sum(int(s[key]) for s in stages)
    for key in ("seconds", "generator_cpu_s"):
        row[key] = round(sum(float(s[key]) for s in stages), 2)
    row["fleet_waits"] = sum(int(s["fleet_waits"]) for s in stages)
    errors: dict[str, int] = {}
    for s in stages:
        for k, n in s["errors"].items():
            errors[k] = errors.get(k, 0) + n
    row["errors"] = errors
    row["error_samples"] = [e for s in stages for e in s["error_samples"]][:5]
    busy = sum(float(s["busy_s"]) for s in stages)
    row["busy_s"] = busy
    row["positions_per_s"] = round(row["accepted"] / busy, 1) if busy else 0.0
    row["requests_per_s"] = round(row["requests"] / busy, 1) if busy else 0.0
    row["latency"] = latency_stats([v for s in stages for v in s["latency_s"]])
    row["rounds"] = [
        {"positions_per_s": s["positions_per_s"], "p99_ms": s["latency"].get("p99_ms")}
        for s in stages
    ]
    wall = sum(float(s["cpu"]["wall_s"]) for s in stages)
    cpu: dict[str, float] = {"wall_s": round(wall, 2)}
    cpu["connections"] = sum(int(s["cpu"]["connections"]) for s in stages)
    cpu["connections_per_s"] = round(cpu["connections"] / max(wall, 1e-9), 1)
    for part in ("server", "postgres", "postgres_exited", "generator", "driver"):
        cpu_s = sum(float(s["cpu"][f"{part}_cpu_s"]) for s in stages)
        cpu[f"{part}_cpu_s"] = round(cpu_s, 2)
        cpu[f"{part}_util"] = round(cpu_s / max(wall, 1e-9), 2)
    for key in ("machine_util", "others_util"):
        weighted = sum(float(s["cpu"][key]) * float(s["cpu"]["wall_s"]) for s in stages)
        cpu[key] = round(weighted / max(wall, 1e-9), 2)
    row["cpu"] = cpu
    return row


@contextlib.contextmanager
def watching(
    cpu: Cpu, workdir: Path, ws_url: str, token: str, head: int
) -> Iterator[Callable[[dict[str, list[float]]], dict[str, Any]]]:
    """A big screen on `situation` for the duration; yields ``stop(windows)`` which ends
    it and returns the lag figures per window of ``recorded_at``."""
    child = Child("--watch", {"ws_url": ws_url, "token": token, "head": head}, workdir, "watch")
    out = workdir / "watch-result.json"
    stopped: dict[str, Any] = {}

    def stop(windows: dict[str, list[float]]) -> dict[str, Any]:
        if not stopped:
            child.send({"windows": windows, "out": str(out)})
            child.readline()
            stopped.update(json.loads(out.read_text(encoding="utf-8")))
        return stopped

    try:
        child.readline()  # ready: welcomed
        cpu.others.append(child.pid)
        yield stop
    finally:
        if child.pid in cpu.others:
            cpu.others.remove(child.pid)
        child.close()


# --- the run -----------------------------------------------------------------------


def situation_head(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT last_seq FROM topic_seq WHERE topic = 'situation'")
        row = cur.fetchone()
    return int(row[0]) if row else 0


def sizes(args: argparse.Namespace) -> dict[str, int]:
    """Units per path. The batch's fleet is sized so that one fix a second per unit
    allows more than the target (the fleet, not the server, would otherwise be the limit)."""
    if args.quick:
        return {"floor": 4000, "batch": 3000, "single": 600, "osmand": 300, "legacy": 300}
    return {
        "floor": 10_000,
        "batch": args.units,
        "single": 5000,
        "osmand": 3000,
        "legacy": 2000,
    }


def run_benchmark(url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import psycopg
    from sqlalchemy.engine import make_url

    from bench.timing import machine
    from command.auth import service as auth
    from core.db import make_engine, make_sessionmaker, session_scope
    from tests.support.servers import running_server, server_command

    seconds = float(args.seconds)
    dsn = psycopg_url(url)
    per_path = sizes(args)
    raw = psycopg.connect(dsn)
    t_setup = time.perf_counter()
    ids = seed_units(raw, sum(per_path.values()))
    print(f"  {len(ids):,} units in {time.perf_counter() - t_setup:.1f} s", file=sys.stderr)
    ranges: dict[str, list[int]] = {}
    at = 0
    for path, n in per_path.items():
        ranges[path] = ids[at : at + n]
        at += n
    secret_key = secrets.token_urlsafe(36)
    engine = make_engine(url, pool_size=1)
    with session_scope(make_sessionmaker(engine)) as session:
        user = auth.add_user(
            session,
            username="avl_gateway",
            password=secrets.token_urlsafe(18),
            role="dispatcher",
        )
        token = auth.issue_token(user, secret=secret_key, ttl_s=6 * 3600)
    engine.dispose()
    t0 = time.perf_counter()
    callsign = {u: f"AVL{i:06d}" for i, u in enumerate(ids)}
    devices = add_devices(url, [callsign[u] for u in ranges["osmand"]])
    devices_s = time.perf_counter() - t0
    print(f"  {len(devices):,} trackers registered in {devices_s:.1f} s", file=sys.stderr)
    raw.autocommit = True
    host = machine(raw)
    cpu = Cpu(make_url(url).database or "", raw)
    rows: dict[str, dict[str, Any]] = {}
    lag: dict[str, Any] = {}
    load_timeout = seconds * 2 + 120
    settled: dict[str, float] = {}

    def command(port: int) -> list[str]:
        return [*server_command(port), "--workers", str(args.workers)]

    def legacy_command(port: int) -> list[str]:
        argv = [sys.executable, "-m", "bench.avl_legacy", "--host", "127.0.0.1"]
        return [*argv, "--port", str(port), "--workers", str(args.workers)]

    def started(proc: subprocess.Popen[bytes]) -> None:
        cpu.servers.append(proc.pid)

    def finish(name: str, row: dict[str, Any], units: list[int]) -> None:
        stored = int(row["accepted"]) - int(row["duplicates"])
        row["zero_lost"] = zero_lost(raw, units, stored)
        rows[name] = row
        print(
            f"  {name}: {row['positions_per_s']:,.0f} positions/s, p99 "
            f"{row['latency'].get('p99_ms')} ms, lost {row['zero_lost']['lost']}",
            file=sys.stderr,
        )

    try:
        # Both servers from the start: the old path's takes turns with the new single
        # endpoint (idle, each costs next to nothing).
        with (
            running_server(url, secret_key, command=command, started=started) as base,
            running_server(url, secret_key, command=legacy_command, started=started) as old,
        ):
            port, old_port = (int(b.rsplit(":", 1)[1]) for b in (base, old))
            settled["servers"] = round(cpu.settle(), 1)
            if "floor" in args.paths:
                print("floor: psycopg multi-row INSERT ...", file=sys.stderr)
                finish("floor", run_floor(dsn, ranges["floor"], seconds, cpu), ranges["floor"])
            if "batch" in args.paths:
                print("batch: POST /api/positions, 4 gateways ...", file=sys.stderr)
                ws_url = base.replace("http://", "ws://", 1) + "/ws"
                with watching(cpu, workdir, ws_url, token, situation_head(raw)) as stop_watch:
                    paced = min(PACED_RATE, 0.8 * len(ranges["batch"]) / MIN_GAP_S)
                    stages = [
                        {"name": "batch", "clients": GATEWAYS, "seconds": seconds},
                        {"name": "batch_paced", "clients": GATEWAYS, "seconds": seconds},
                    ]
                    stages[1]["rate"] = paced
                    cfg = {"kind": "batch", "port": port, "token": token}
                    batch = run_load(
                        cpu,
                        workdir,
                        "batch",
                        {**cfg, "units": ranges["batch"], "stages": stages},
                        load_timeout,
                    )
                    time.sleep(LAG_SETTLE_S)
                    watched = stop_watch(
                        {s["name"]: [s["wall_start"], s["wall_end"]] for s in batch}
                    )
                stale = stale_units(raw, ranges["batch"])
                stored = sum(int(s["accepted"]) - int(s["duplicates"]) for s in batch)
                both = zero_lost(raw, ranges["batch"], stored)
                for stage in batch:
                    stage.pop("latency_s")
                    stage["zero_lost"] = both  # one fleet for both stages: counted together
                    stage["stale_units"] = stale
                    rows[stage["name"]] = stage
                lag = {
                    "max": watched.get("batch"),
                    "paced": watched.get("batch_paced"),
                    **{k: watched.get(k) for k in ("events", "entries", "other_events", "errors")},
                }
            # The new single endpoint and the old path take turns, round by round (who
            # goes first flips), so the machine's drift and noise hit both alike.
            ports = {"single": port, "legacy": old_port}
            turns = [name for name in ("single", "legacy") if name in args.paths]
            if turns:
                print(
                    f"single vs old path: 32 clients, {ROUNDS} rounds each, taking turns ...",
                    file=sys.stderr,
                )
                procs: dict[str, LoadProcess] = {}
                try:
                    for name in turns:
                        stage = {
                            "name": name,
                            "clients": SINGLE_CLIENTS,
                            "seconds": seconds / ROUNDS,
                        }
                        cfg = {"kind": name, "port": ports[name], "token": token}
                        procs[name] = LoadProcess(
                            cpu,
                            workdir,
                            name,
                            {**cfg, "units": ranges[name], "stages": [stage] * ROUNDS},
                        )
                    for r in range(ROUNDS):
                        for name in turns if r % 2 == 0 else turns[::-1]:
                            procs[name].stage()
                    results = {name: procs.pop(name).result(load_timeout) for name in turns}
                finally:
                    for proc in procs.values():
                        proc.child.close()
                for name in turns:
                    finish(name, merge_rounds(results[name]), ranges[name])
            if "osmand" in args.paths:
                print("osmand: GET /api/avl/osmand, 64 trackers ...", file=sys.stderr)
                cfg = {"kind": "osmand", "port": port, "devices": devices}
                stage = {"name": "osmand", "clients": OSMAND_CLIENTS, "seconds": seconds}
                (osmand,) = run_load(
                    cpu,
                    workdir,
                    "osmand",
                    {**cfg, "units": ranges["osmand"], "stages": [stage]},
                    load_timeout,
                )
                osmand.pop("latency_s")
                finish("osmand", osmand, ranges["osmand"])
        cpu.servers.clear()
    finally:
        raw.close()

    return summarize(args, host, per_path, {"devices_s": devices_s, "settle_s": settled}, rows, lag)


def summarize(
    args: argparse.Namespace,
    host: dict[str, Any],
    per_path: dict[str, int],
    timings: dict[str, Any],
    rows: dict[str, dict[str, Any]],
    lag: dict[str, Any],
) -> dict[str, Any]:
    def rate(name: str) -> float:
        return float(rows[name]["positions_per_s"]) if name in rows else math.nan

    def p99(name: str) -> float:
        return float(rows.get(name, {}).get("latency", {}).get("p99_ms", math.inf))

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 2) if b and math.isfinite(a) and math.isfinite(b) else None

    paced_lag = (lag.get("paced") or {}).get("lag", {})
    targets = {
        # Closed loop, 4 gateways keep 4,000 fixes in flight: at 5,000/s that is 0.8 s a
        # batch by Little's law, so the p99 is judged where the issue sets it, at 5,000/s
        # (the paced stage); the rate where the gateways send as fast as answered.
        "batch": {
            "positions_per_s": BATCH_TARGET_PER_S,
            "met": rate("batch") >= BATCH_TARGET_PER_S,
        },
        "batch_p99_at_5000": {
            "p99_ms": BATCH_TARGET_P99_MS,
            "met": rate("batch_paced") >= 0.95 * PACED_RATE
            and p99("batch_paced") < BATCH_TARGET_P99_MS,
        },
        "single": {
            "positions_per_s": SINGLE_TARGET_PER_S,
            "p99_ms": SINGLE_TARGET_P99_MS,
            "met": rate("single") >= SINGLE_TARGET_PER_S and p99("single") < SINGLE_TARGET_P99_MS,
        },
        "osmand": {"positions_per_s": OSMAND_TARGET_PER_S, "met": rate("osmand") >= 1000.0},
        "live_map_lag": {
            "p99_ms": LAG_TARGET_P99_MS,
            "met": bool(paced_lag.get("n")) and paced_lag["p99_ms"] < LAG_TARGET_P99_MS,
        },
        "zero_lost": {
            "met": all(r.get("zero_lost", {}).get("lost", 1) == 0 for r in rows.values())
        },
    }
    lost = sum(int(r.get("zero_lost", {}).get("lost", 0)) for r in rows.values())
    errors = sum(sum(r.get("errors", {}).values()) for r in rows.values())
    return {
        "benchmark": "avl",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "ok": lost == 0 and errors == 0,
        "machine": {**host, "loadavg_at_end": os.getloadavg()},
        "setup": {
            "seconds_per_stage": args.seconds,
            "server": f"emergency serve --workers {args.workers} (subprocess); the old path: "
            f"bench.avl_legacy:create_app, the same uvicorn options and --workers "
            f"{args.workers}, up at the same time (idle but for its turns)",
            "paths": args.paths,
            "single_vs_old_path": f"{ROUNDS} rounds each of {args.seconds / ROUNDS:g} s, "
            "taking turns (who goes first flips)",
            "generator": "separate processes: asyncio, keep-alive connections, prebuilt "
            "HTTP/1.1 requests over raw streams; the live map watcher is a websockets client "
            "in its own process",
            "auth": "a dispatcher's bearer token (batch, single, old path); OsmAnd: a "
            "tracker id per unit",
            "units": per_path,
            "devices_registered_s": round(timings["devices_s"], 2),
            "servers_settled_s": timings["settle_s"],
            "fixes": "recorded_at = send time; a unit at most one fix a second, moving at "
            "5-30 m/s inside a 20 x 20 km city; the floor's times are virtual (a second "
            "apart per unit)",
            "batch_size": BATCH_SIZE,
            "gateways": GATEWAYS,
            "single_clients": SINGLE_CLIENTS,
            "osmand_clients": OSMAND_CLIENTS,
            "paced_rate": PACED_RATE,
        },
        "rows": rows,
        "live_map": lag,
        "ratios": {
            "batch_vs_floor": ratio(rate("batch"), rate("floor")),
            "batch_paced_vs_floor": ratio(rate("batch_paced"), rate("floor")),
            "single_vs_old_path": ratio(rate("single"), rate("legacy")),
            "osmand_vs_old_path": ratio(rate("osmand"), rate("legacy")),
            "batch_vs_single": ratio(rate("batch"), rate("single")),
        },
        "targets": targets,
    }


PATHS = ("floor", "batch", "single", "osmand", "legacy")
LABELS = {
    "floor": "floor: psycopg INSERT 1,000 rows, 4 conns",
    "batch": "POST /api/positions x1,000, 4 gateways",
    "batch_paced": "  same, paced at 5,000/s (+ live map)",
    "single": "POST /api/units/{id}/position, 32 cl.",
    "legacy": "  old path (de89ea9 copy), in turns",
    "osmand": "GET /api/avl/osmand, 64 trackers",
}


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    s = r["setup"]
    lines = [
        f"AVL benchmark ({r['when']}{', quick' if r['quick'] else ''}): {m['cpus']} CPUs, "
        f"{m['postgresql']}, PostGIS {m['postgis']}, Python {m['python']}",
        f"{s['server']}; {s['seconds_per_stage']:g} s per path; load from separate processes",
        "",
    ]
    header = (
        f"{'path':<42} {'pos/s':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'stored':>8} {'in track':>8} {'lost':>5} {'err':>4} {'srv':>5} {'pg':>5} "
        f"{'pg-x':>5} {'gen':>5} {'other':>5} {'conn/s':>6}"
    )
    lines += [header, "-" * len(header)]
    for name, label in LABELS.items():
        row = r["rows"].get(name)
        if row is None:
            lines.append(f"{label:<42} (not run)")
            continue
        lat, zl, c = row["latency"], row.get("zero_lost", {}), row.get("cpu", {})
        errs = sum(row.get("errors", {}).values()) + int(row.get("refused", 0))
        lines.append(
            f"{label:<42} {row['positions_per_s']:>8,.0f} {row['requests_per_s']:>7,.0f} "
            f"{lat.get('p50_ms', 0):>8.1f} {lat.get('p99_ms', 0):>8.1f} "
            f"{zl.get('stored_per_server', 0):>8,} "
            f"{zl.get('in_track_after_2s', zl.get('in_track', 0)):>8,} {zl.get('lost', 0):>5} "
            f"{errs:>4} {c.get('server_util', 0):>5.2f} {c.get('postgres_util', 0):>5.2f} "
            f"{c.get('postgres_exited_util', 0):>5.2f} "
            f"{c.get('generator_util', 0) + c.get('driver_util', 0):>5.2f} "
            f"{c.get('others_util', 0):>5.2f} {c.get('connections_per_s', 0):>6.1f}"
        )
    lines.append(
        "(stored = accepted - duplicates in the server's answers; in track = rows counted "
        "afterwards; srv/pg/pg-x/gen/other = cores busy: server, PostgreSQL (backends of this "
        "database that stayed), PostgreSQL connections that ended meanwhile (of any "
        "database), load generator (with the live map watcher and, for the floor, this "
        "process), anything else on the machine; conn/s = new connections to this "
        "database a second; the two batch rows share one fleet and one count)"
    )
    lm = r["live_map"]
    lines.append("")
    for key, title in (("max", "at the batch's full rate"), ("paced", "at 5,000/s")):
        if not lm:
            break
        sec = lm.get(key) or {}
        lg, wr = sec.get("lag", {}), sec.get("written_after_fix", {})
        if lg.get("n"):
            lines.append(
                f"live map lag {title}: p50 {lg['p50_ms']:.0f} ms, p99 {lg['p99_ms']:.0f} ms, "
                f"max {lg['max_ms']:.0f} ms over {lg['n']:,} entries ({sec['units_seen']:,} "
                f"units); event written p50 {wr.get('p50_ms', 0):.0f} ms after the fix"
            )
        else:
            lines.append(f"live map lag {title}: no unit.positions received")
    if lm.get("errors"):
        lines.append(f"  watcher errors: {lm['errors'][:3]}")
    ra = r["ratios"]

    def x(key: str) -> str:
        return "-" if ra.get(key) is None else f"{ra[key]}x"

    lines += [
        "",
        f"ratios: batch / floor {x('batch_vs_floor')}, paced batch / floor "
        f"{x('batch_paced_vs_floor')}, single / old path {x('single_vs_old_path')}, "
        f"OsmAnd / old path {x('osmand_vs_old_path')}, batch / single {x('batch_vs_single')}",
    ]
    t = r["targets"]
    ran = r["rows"]

    def met(key: str, *needs: str) -> str:
        if not all(n in ran for n in needs):
            return "not run"
        return "MET" if t[key]["met"] else "NOT met"

    stale = ran.get("batch", {}).get("stale_units")
    lines += [
        f"targets: batch >= 5,000/s {met('batch', 'batch')}, its p99 < 200 ms at 5,000/s "
        f"{met('batch_p99_at_5000', 'batch_paced')}; single >= 600/s and p99 < 200 ms "
        f"{met('single', 'single')}; OsmAnd >= 1,000/s {met('osmand', 'osmand')}; live map "
        f"p99 < 1 s {met('live_map_lag', 'batch_paced')}; zero lost {met('zero_lost')}",
    ]
    if stale is not None:
        lines.append(f"batch units whose position is not their newest fix after the run: {stale}")
    for name, row in r["rows"].items():
        if row.get("errors") or row.get("error_samples"):
            lines.append(f"{name}: errors {row.get('errors')} {row.get('error_samples', [])[:2]}")
        if row.get("fleet_waits"):
            lines.append(
                f"{name}: the fleet was the limit {row['fleet_waits']} times (no unit due)"
            )
    lines.append(f"result: {'OK' if r['ok'] else 'ERRORS (lost fixes or failed requests)'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.avl", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=15.0, help="seconds per path (and stage)")
    p.add_argument(
        "--units",
        type=int,
        default=20_000,
        help="units in the gateways' fleet (one fix a second each: the most it can send)",
    )
    p.add_argument("--workers", type=int, default=2, help="server processes")
    p.add_argument("--quick", action="store_true", help="a smoke run: 3 s a path, small fleets")
    p.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    p.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"which to measure, comma-separated (default: all of {','.join(PATHS)})",
    )
    p.add_argument("--load", help=argparse.SUPPRESS)
    p.add_argument("--watch", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.paths = [x.strip() for x in args.paths.split(",") if x.strip()]
    if unknown := set(args.paths) - set(PATHS):
        p.error(f"unknown paths: {', '.join(sorted(unknown))}")
    if args.quick:
        args.seconds = min(args.seconds, 3.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load:
        return load_main(args.load)
    if args.watch:
        return watch_main(args.watch)
    raise_nofile()
    from bench.fresh import on_fresh_database

    with tempfile.TemporaryDirectory(prefix="bench-avl-") as tmp:
        result = on_fresh_database(lambda url: run_benchmark(url, args, Path(tmp)))
    if result is None:
        return 2
    print(render(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"\nwritten to {shown}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
