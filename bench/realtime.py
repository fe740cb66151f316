"""Realtime hub benchmark: fan-out to 2,000 WebSocket clients and task-to-phone latency.

Run with ``uv run python -m bench.realtime`` (or ``make bench``); small runs for development:
``uv run python -m bench.realtime --clients 200 --phones 40 --seconds 5``. It

1. creates a committed throwaway database (``tests.support.live.make_live_db``) with
   ``--phones`` units, a responder user bound to each, and a few open incidents to
   dispatch to; starts the real server (``emergency serve``) in a subprocess;
2. starts TWO more processes (this module with ``--swarm``), asyncio swarms of
   ``--clients`` WebSocket clients (``websockets``) in all: one runs the ``clients - phones``
   big screens on ``situation`` (resuming from the current head, so no snapshot); the other
   the ``phones`` responders on their ``unit:<id>`` topics, which acknowledge every task,
   plus, as peers, a bare psycopg ``LISTEN emergency_events`` connection (the floor:
   commit -> NOTIFY arrival) and a naive REST poller (GET /api/incidents every second).
   The screens receive ~1,700 messages per situation event and saturate their event loop;
   in their own process they do not delay the phones' and the floor's receive timestamps;
3. measures, side by side:
   - connect: the time until every client has its ``welcome``;
   - fan-out: ``--events`` incidents created at ``--event-rate``/s through the service
     layer (in this process; the server only runs the hub); latency = receive time - the
     event's ``at`` (clock_timestamp() just before commit), over every (client, event);
   - task to phone: tasks dispatched at ``--rate``/s for ``--seconds`` s (round-robin over
     the phones' units; each unit is freed again by a plain UPDATE, which writes no event,
     so the event load is exactly what dispatching writes); latency = phone receive - ``at``;
     the big screens stay subscribed and receive the situation events dispatching writes;
   - the floor (NOTIFY arrival - ``created_at`` of the same events) and the hub's added
     latency; CPU seconds of the server, the two swarms and PostgreSQL in each phase;
4. prints a table, writes bench/results/realtime.json; exits 1 if events were lost (a
   client that never got an event it was subscribed to), 2 without PostGIS. Targets
   (fan-out p99 < 250 ms, task to phone p99 < 100 ms) are reported, never asserted.

Server, swarms and PostgreSQL share this machine's cores: read the CPU columns with the
latencies (a saturated swarm shows up as latency it adds itself).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.timing import stop_process

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "realtime.json"
FANOUT_TARGET_P99_MS = 250.0
PHONE_TARGET_P99_MS = 100.0
DRAIN_TIMEOUT_S = 60.0
CONNECT_CONCURRENCY = 64
HZ = os.sysconf("SC_CLK_TCK")
PROFILE_WRAPPER = """
import cProfile, runpy, signal, sys
out, script = sys.argv[1], sys.argv[2]
prof = cProfile.Profile()
def dump(*_):
    prof.disable()
    prof.dump_stats(out)
    sys.exit(0)
signal.signal(signal.SIGTERM, dump)
sys.argv = sys.argv[2:]
prof.enable()
try:
    runpy.run_path(script, run_name="__main__")
finally:
    dump()
"""

# The hub writes event frames with a fixed key order (realtime.store.frame): read the
# envelope with a regex instead of decoding every payload in the swarm.
EVENT_RE = re.compile(
    r'^\{"type":"event","topic":"([^"]+)","seq":(\d+),"event":"([^"]+)","at":"([^"]+)"'
)
# The same envelope inside a {"type":"batch","messages":[...]} (clients say "batch": true).
BATCHED_RE = re.compile(
    r'\{"type":"event","topic":"([^"]+)","seq":(\d+),"event":"([^"]+)","at":"([^"]+)"'
)


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (each client is a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def stats_ms(values: list[float]) -> dict[str, float | int]:
    from bench.timing import percentile

    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


# =====================================================================================
# The swarm (second process)
# =====================================================================================


@dataclass
class Client:
    index: int
    token: str
    topic: str
    phone: bool
    resume: int
    last: int = 0  # highest seq received on the topic
    seqs: array.array[int] = field(default_factory=lambda: array.array("q"))
    lat: array.array[float] = field(default_factory=lambda: array.array("d"))
    skipped: list[tuple[int, int]] = field(default_factory=list)  # covered by a resync
    duplicates: int = 0
    reconnects: int = 0
    connect_s: float = 0.0
    welcomed: bool = False


class Swarm:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.clients: list[Client] = []
        self.at_cache: dict[str, float] = {}
        self.errors: dict[str, int] = {}
        self.closes: dict[str, int] = {}
        self.notifies: list[tuple[int, float]] = []
        self.polled: dict[int, float] = {}
        self.poll_ms: list[float] = []
        self.welcomed = 0
        self.all_welcomed = asyncio.Event()
        self.stopping = False
        self.peers = bool(cfg.get("peers", True))  # the LISTEN peer and the REST poller
        sit_head = int(cfg["situation_head"])
        for i, token in enumerate(cfg["screen_tokens"]):
            self.clients.append(Client(i, token, "situation", False, sit_head, sit_head))
        for unit_id, token in cfg["phones"]:
            n = len(self.clients)
            self.clients.append(Client(n, token, f"unit:{unit_id}", True, 0, 0))

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def at_ts(self, at: str) -> float:
        ts = self.at_cache.get(at)
        if ts is None:
            ts = datetime.fromisoformat(at).timestamp()
            self.at_cache[at] = ts
        return ts

    async def run_client(self, c: Client, sem: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        url = self.cfg["ws_url"]
        compression = "deflate" if self.cfg["deflate"] else None
        while not self.stopping:
            t0 = time.perf_counter()
            try:
                async with sem:
                    ws = await connect(
                        url,
                        compression=compression,
                        open_timeout=60,
                        ping_interval=None,  # the server pings at the application level
                        max_size=64 * 1024 * 1024,
                        close_timeout=2,
                    )
                    hello = {
                        "type": "hello",
                        "token": c.token,
                        "subscribe": [c.topic],
                        "resume": {c.topic: c.last} if not c.phone or c.last else {},
                        "batch": self.cfg.get("batch", True),
                    }
                    await ws.send(json.dumps(hello))
                    while True:
                        raw = await asyncio.wait_for(ws.recv(), 60)
                        msg = json.loads(raw)
                        if msg.get("type") == "welcome":
                            break
                        if msg.get("type") == "error":
                            raise RuntimeError(f"refused: {msg}")
            except Exception as exc:
                self.count(self.errors, f"connect: {type(exc).__name__}: {str(exc)[:80]}")
                await asyncio.sleep(1.0)
                continue
            if not c.welcomed:
                c.welcomed = True
                c.connect_s = time.perf_counter() - t0
                self.welcomed += 1
                if self.welcomed == len(self.clients):
                    self.all_welcomed.set()
            try:
                await self.receive(c, ws)
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                self.count(self.closes, str(rcvd.code) if rcvd else "no close frame")
            except Exception as exc:
                self.count(self.errors, f"receive: {type(exc).__name__}: {str(exc)[:80]}")
            finally:
                await ws.close()
            if not self.stopping:
                c.reconnects += 1

    async def receive(self, c: Client, ws: Any) -> None:
        async for raw in ws:
            now = time.time()
            m = EVENT_RE.match(raw) if isinstance(raw, str) else None
            batched = (
                list(BATCHED_RE.finditer(raw))
                if m is None and isinstance(raw, str) and raw.startswith('{"type":"batch"')
                else []
            )
            if m is not None or batched:
                for found in [m] if m is not None else batched:
                    assert found is not None
                    seq = int(found.group(2))
                    if seq <= c.last:
                        c.duplicates += 1
                    else:
                        c.seqs.append(seq)
                        c.lat.append(now - self.at_ts(found.group(4)))
                        c.last = seq
                if c.phone:
                    await ws.send(f'{{"type":"ack","topic":"{c.topic}","seq":{c.last}}}')
                continue
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "ping":
                await ws.send('{"type":"pong"}')
            elif kind == "error":
                self.count(self.errors, f"server error: {msg.get('code')}")
                if "resume" in msg:  # too_slow: resume from where we were
                    pass
            elif kind == "resync":
                self.count(self.errors, "resync (snapshot instead of replay)")
                seq = int(msg.get("seq", 0))
                if seq > c.last:
                    c.skipped.append((c.last + 1, seq))
                    c.last = seq

    async def listen(self) -> None:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(self.cfg["dsn"], autocommit=True)
        async with conn:
            await conn.execute("LISTEN emergency_events")
            self.listening.set()
            async for n in conn.notifies():
                self.notifies.append((int(n.payload), time.time()))

    async def poll(self) -> None:
        """The naive peer: GET /api/incidents?status=reported every second."""
        import httpx2 as httpx

        headers = {"Authorization": f"Bearer {self.cfg['poll_token']}"}
        async with httpx.AsyncClient(base_url=self.cfg["base"], headers=headers) as client:
            while True:
                t0 = time.perf_counter()
                try:
                    r = await client.get(
                        "/api/incidents", params={"status": "reported", "limit": 1000}
                    )
                    now = time.time()
                    self.poll_ms.append((time.perf_counter() - t0) * 1000)
                    for f in r.json()["features"]:
                        self.polled.setdefault(int(f["id"]), now)
                except Exception as exc:
                    self.count(self.errors, f"poll: {type(exc).__name__}")
                await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t0)))

    def reached(self, heads: dict[str, int]) -> bool:
        sit = heads.get("situation", 0)
        return all(c.last >= (heads.get(c.topic, 0) if c.phone else sit) for c in self.clients)

    async def drain(self, heads: dict[str, int], limit_s: float) -> float:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < limit_s:
            if self.reached(heads):
                break
            await asyncio.sleep(0.05)
        return time.perf_counter() - t0

    def summary(self, ranges: dict[str, list[int]], heads: dict[str, int]) -> dict[str, Any]:
        """Latencies over (client, event) pairs per phase, and who missed what."""
        out: dict[str, Any] = {}
        screens = [c for c in self.clients if not c.phone]
        phones = [c for c in self.clients if c.phone]
        for name, (lo, hi) in ranges.items():
            lats: list[float] = []
            complete = 0
            missing = 0
            resynced = 0
            expected = hi - lo + 1
            for c in screens:
                got = 0
                for s, v in zip(c.seqs, c.lat, strict=True):
                    if lo <= s <= hi:
                        lats.append(v)
                        got += 1
                skipped = sum(max(0, min(b, hi) - max(a, lo) + 1) for a, b in c.skipped)
                complete += got == expected
                missing += expected - got - skipped
                resynced += skipped
            out[f"situation_{name}"] = {
                **stats_ms(lats),
                "events": max(0, expected),
                "clients": len(screens),
                "clients_complete": complete,
                "missing_pairs": missing,
                "resynced_pairs": resynced,
            }
        lats = []
        complete = missing = 0
        for c in phones:
            lats.extend(c.lat)
            head = heads.get(c.topic, 0)
            skipped = sum(b - a + 1 for a, b in c.skipped)
            complete += len(c.seqs) == head
            missing += head - len(c.seqs) - skipped
        out["phones"] = {
            **stats_ms(lats),
            "events": sum(heads.get(c.topic, 0) for c in phones),
            "clients": len(phones),
            "clients_complete": complete,
            "missing_pairs": missing,
        }
        connect = [c.connect_s for c in self.clients if c.welcomed]
        out["connect_each"] = stats_ms(connect)
        out["connect_s"] = connect  # the driver merges the two swarms' connect times
        out["duplicates"] = sum(c.duplicates for c in self.clients)
        out["reconnects"] = sum(c.reconnects for c in self.clients)
        out["errors"] = self.errors
        out["closes"] = self.closes
        out["notifies"] = self.notifies
        out["polled"] = {str(k): v for k, v in self.polled.items()}
        out["poll_request"] = {
            "n": len(self.poll_ms),
            "median_ms": round(sorted(self.poll_ms)[len(self.poll_ms) // 2], 2)
            if self.poll_ms
            else None,
        }
        out["at_parsed"] = len(self.at_cache)
        return out

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        self.listening = asyncio.Event()
        bg = []
        if self.peers:
            bg = [asyncio.create_task(self.listen()), asyncio.create_task(self.poll())]
            await asyncio.wait_for(self.listening.wait(), 30)
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(self.run_client(c, sem)) for c in self.clients]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_welcomed.wait(), 600)
        connect_s = time.perf_counter() - t0
        reply({"ready": self.welcomed, "connect_s": connect_s, "errors": self.errors})
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            cmd, _, arg = line.strip().partition(" ")
            body = json.loads(arg) if arg else {}
            if cmd == "DRAIN":
                waited = await self.drain(body["heads"], body["timeout"])
                reply({"drained": self.reached(body["heads"]), "waited_s": waited})
            elif cmd == "STOP":
                self.stopping = True
                result = self.summary(body["ranges"], body["heads"])
                Path(body["out"]).write_text(json.dumps(result), encoding="utf-8")  # noqa: ASYNC240
                reply({"stopped": True})
                break
        for t in [*tasks, *bg]:
            t.cancel()
        await asyncio.gather(*tasks, *bg, return_exceptions=True)


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def swarm_main(config_path: str) -> int:
    raise_nofile()
    cfg = json.loads(Path(config_path).read_text(encoding="utf-8"))
    asyncio.run(Swarm(cfg).main())
    return 0


# =====================================================================================
# The driver (this process): database, server, load generation, statistics
# =====================================================================================


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def postgres_cpu_s() -> dict[int, float]:
    """CPU seconds per postgres process on the machine (shared with other users)."""
    total: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        total[int(entry.name)] = proc_cpu_s(int(entry.name))
    return total


def machine_busy_s() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) of the whole machine, from /proc/stat."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + vals[4]
    total = sum(vals[:8])
    return (total - idle) / HZ, total / HZ


def find_server_pid(port: int) -> int | None:
    """The `emergency serve --port PORT` process (not a `uv run` wrapper)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if b"serve" in argv and str(port).encode() in argv and comm != "uv":
            found.append(int(entry.name))
    return max(found) if found else None


@dataclass
class CpuMark:
    wall: float
    driver: float
    server: float
    screens: float  # the screens' swarm process
    phones: float  # the phones' swarm process (with the LISTEN peer and the REST poller)
    postgres: dict[int, float]
    machine_busy: float
    machine_total: float


class Cpu:
    def __init__(self, server_pid: int | None, screens_pid: int, phones_pid: int) -> None:
        self.server_pid = server_pid
        self.screens_pid = screens_pid
        self.phones_pid = phones_pid

    def mark(self) -> CpuMark:
        busy, total = machine_busy_s()
        me = resource.getrusage(resource.RUSAGE_SELF)
        return CpuMark(
            time.perf_counter(),
            me.ru_utime + me.ru_stime,
            proc_cpu_s(self.server_pid) if self.server_pid else 0.0,
            proc_cpu_s(self.screens_pid),
            proc_cpu_s(self.phones_pid),
            postgres_cpu_s(),
            busy,
            total,
        )

    @staticmethod
    def between(a: CpuMark, b: CpuMark) -> dict[str, float]:
        wall = max(b.wall - a.wall, 1e-9)
        cores = os.cpu_count() or 1
        # Backends that exited in between are missed; new ones count from zero.
        pg = sum(cpu - a.postgres.get(pid, 0.0) for pid, cpu in b.postgres.items())
        screens = b.screens - a.screens
        phones = b.phones - a.phones
        return {
            "wall_s": round(wall, 2),
            "driver_cpu_s": round(b.driver - a.driver, 2),
            "driver_util": round((b.driver - a.driver) / wall, 2),
            "server_cpu_s": round(b.server - a.server, 2),
            "server_util": round((b.server - a.server) / wall, 2),
            # Both swarm processes together, then each.
            "swarm_cpu_s": round(screens + phones, 2),
            "swarm_util": round((screens + phones) / wall, 2),
            "swarm_screens_cpu_s": round(screens, 2),
            "swarm_screens_util": round(screens / wall, 2),
            "swarm_phones_cpu_s": round(phones, 2),
            "swarm_phones_util": round(phones / wall, 2),
            "postgres_cpu_s": round(pg, 2),
            "postgres_util": round(pg / wall, 2),
            "machine_util": round(
                (b.machine_busy - a.machine_busy)
                / max(b.machine_total - a.machine_total, 1e-9)
                * cores,
                2,
            ),
        }


class SwarmProcess:
    def __init__(self, cfg: dict[str, Any], workdir: Path, name: str = "swarm") -> None:
        self.name = name
        path = workdir / f"{name}.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        self.stderr = (workdir / f"{name}.err").open("w+b")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "bench.realtime", "--swarm", str(path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def send(self, cmd: str, body: dict[str, Any] | None = None) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{cmd} {json.dumps(body or {})}\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.flush()
            self.stderr.seek(0)
            err = self.stderr.read()[-4000:].decode(errors="replace")
            raise RuntimeError(f"the {self.name} exited ({self.proc.poll()}):\n{err}")
        return dict(json.loads(line))

    def close(self) -> None:
        stop_process(self.proc)
        self.stderr.close()


def merge_counts(*tables: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in tables:
        for key, n in table.items():
            out[key] = out.get(key, 0) + n
    return out


class Swarms:
    """The two swarm processes: the screens, and the phones with the two peers.

    Both speak the same line protocol (a reply per command); every command goes to both
    before either reply is read, so they wait (connect, drain) side by side, and the
    replies and summaries are merged into what a single swarm would have answered.
    """

    def __init__(self, cfg: dict[str, Any], workdir: Path) -> None:
        self.workdir = workdir
        self.screens = SwarmProcess({**cfg, "phones": [], "peers": False}, workdir, "swarm-screens")
        try:
            self.phones = SwarmProcess(
                {**cfg, "screen_tokens": [], "peers": True}, workdir, "swarm-phones"
            )
        except BaseException:
            self.screens.close()
            raise
        self.procs = (self.screens, self.phones)

    def send(self, cmd: str, body: dict[str, Any] | None = None) -> None:
        for p in self.procs:
            p.send(cmd, body)

    def ready(self) -> dict[str, Any]:
        a, b = (p.read() for p in self.procs)
        return {
            "ready": a["ready"] + b["ready"],
            "connect_s": max(a["connect_s"], b["connect_s"]),
            "errors": merge_counts(a["errors"], b["errors"]),
        }

    def drain(self, heads: dict[str, int], timeout: float) -> dict[str, Any]:
        self.send("DRAIN", {"heads": heads, "timeout": timeout})
        a, b = (p.read() for p in self.procs)
        return {
            "drained": a["drained"] and b["drained"],
            "waited_s": max(a["waited_s"], b["waited_s"]),
        }

    def stop(self, ranges: dict[str, list[int]], heads: dict[str, int]) -> dict[str, Any]:
        for p in self.procs:
            out = self.workdir / f"{p.name}-result.json"
            p.send("STOP", {"ranges": ranges, "heads": heads, "out": str(out)})
        for p in self.procs:
            p.read()  # the summary is written; the swarm is stopped by close()
        scr, pho = (
            json.loads((self.workdir / f"{p.name}-result.json").read_text(encoding="utf-8"))
            for p in self.procs
        )
        return {
            **{k: v for k, v in scr.items() if k.startswith("situation_")},
            "phones": pho["phones"],
            "connect_each": stats_ms(scr["connect_s"] + pho["connect_s"]),
            "duplicates": scr["duplicates"] + pho["duplicates"],
            "reconnects": scr["reconnects"] + pho["reconnects"],
            "errors": merge_counts(scr["errors"], pho["errors"]),
            "closes": merge_counts(scr["closes"], pho["closes"]),
            "notifies": pho["notifies"],
            "polled": pho["polled"],
            "poll_request": pho["poll_request"],
            "at_parsed": scr["at_parsed"] + pho["at_parsed"],
        }

    def close(self) -> None:
        for p in self.procs:
            p.close()


def heads(conn: Any, topics: list[str]) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT topic, last_seq FROM topic_seq WHERE topic = ANY(%s)", (topics,))
        found = {str(t): int(s) for t, s in cur.fetchall()}
    return {t: found.get(t, 0) for t in topics}


def paced(n: int, rate: float, work: Any, workers: int) -> tuple[float, list[float], int]:
    """Run ``work(i)`` for i < n, started at ``rate`` per second on ``workers`` threads.

    Returns the achieved rate (completed / time from first start to last completion),
    the per-call durations in seconds, and how many calls failed.
    """
    durations: list[float] = []
    failed = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal failed
        t = time.perf_counter()
        try:
            work(i)
        except Exception as exc:
            with lock:
                failed += 1
            print(f"  call {i} failed: {exc}", file=sys.stderr)
        with lock:
            durations.append(time.perf_counter() - t)

    futures: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, i))
        for f in futures:
            f.result()
        elapsed = time.perf_counter() - t0
    return (n - failed) / elapsed, durations, failed


def run_benchmark(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], bool]:
    import psycopg
    from shapely.geometry import Point
    from sqlalchemy import select, text

    from bench.http_api import psycopg_url
    from bench.timing import machine
    from command.auth.models import User
    from command.incidents.service import create_incident
    from command.tasks import service as tasks
    from core.security import Principal
    from tests.support.db import drop_database
    from tests.support.live import SECRET, make_live_db
    from tests.support.servers import running_server, server_command

    command = server_command
    if args.profile_server:
        # cProfile the server's main thread (its event loop, where the hub runs). uvicorn
        # re-raises SIGTERM after its graceful shutdown, so the wrapper dumps the profile
        # from its own SIGTERM handler (the one uvicorn restores before re-raising).

        def profiled(port: int) -> list[str]:
            argv = server_command(port)
            if not argv[0].endswith("emergency"):
                raise RuntimeError("--profile-server needs the .venv's emergency script")
            return [sys.executable, "-c", PROFILE_WRAPPER, str(args.profile_server), *argv]

        command = profiled
    print("database: migrating and adding units ...", file=sys.stderr)
    db = make_live_db("emergency_bench_rt")
    ok = True
    try:
        screens = args.clients - args.phones
        t = time.perf_counter()
        unit_ids: list[int] = []
        while len(unit_ids) < args.phones:
            unit_ids += db.add_units(min(500, args.phones - len(unit_ids)), ttl_s=4 * 3600)
        units_s = time.perf_counter() - t
        with db.sessions() as s:
            disp = s.scalars(select(User).where(User.username == "dispatcher")).one()
            principal = Principal(kind="user", id=disp.id, name=disp.username, role="dispatcher")
            # Open incidents to dispatch to (written before anyone connects).
            targets = []
            for i in range(args.targets):
                inc = create_incident(
                    s,
                    props={"title": f"Bench target {i}", "type": "medical", "severity": "severe"},
                    geom=Point(24.94 + i * 1e-4, 60.17),
                    principal=principal,
                )
                s.flush()
                targets.append(inc.id)
            s.commit()
        raw = psycopg.connect(psycopg_url(db.url), autocommit=True)
        host = machine(raw)
        phone_topics = [f"unit:{u}" for u in unit_ids]
        viewers = ["dispatcher", "commander", "auditor", "planner"]
        cfg = {
            "dsn": psycopg_url(db.url),
            "deflate": args.deflate,
            "batch": args.batch_messages,
            "situation_head": heads(raw, ["situation"])["situation"],
            "screen_tokens": [db.token(viewers[i % len(viewers)]) for i in range(screens)],
            "phones": [[u, db.token(db.responder(u))] for u in unit_ids],
            "poll_token": db.token("dispatcher"),
        }
        with running_server(db.url, SECRET, command=command) as base:
            port = int(base.rsplit(":", 1)[1])
            server_pid = find_server_pid(port)
            cfg["base"] = base
            cfg["ws_url"] = base.replace("http://", "ws://", 1) + "/ws"
            swarm = Swarms(cfg, workdir)
            cpu = Cpu(server_pid, swarm.screens.proc.pid, swarm.phones.proc.pid)
            try:
                m0 = cpu.mark()
                print(f"connecting {args.clients} clients ...", file=sys.stderr)
                ready = swarm.ready()
                m1 = cpu.mark()
                if ready["ready"] != args.clients:
                    ok = False
                    print(f"only {ready['ready']} clients connected", file=sys.stderr)
                time.sleep(args.settle)

                # --- phase 1: fan-out of situation events --------------------------------
                print(
                    f"fan-out: {args.events} incidents at {args.event_rate}/s ...",
                    file=sys.stderr,
                )
                h0 = heads(raw, ["situation"])["situation"]
                m2 = cpu.mark()

                def create(i: int) -> None:
                    with db.sessions() as s:
                        create_incident(
                            s,
                            props={"title": f"Bench fan-out {i}", "type": "fire"},
                            geom=Point(24.95 + i * 1e-4, 60.18),
                            principal=principal,
                        )
                        s.commit()

                fan_rate, fan_durations, fan_failed = paced(args.events, args.event_rate, create, 2)
                m3 = cpu.mark()
                h1 = heads(raw, ["situation"])["situation"]
                drain1 = swarm.drain({"situation": h1}, args.drain)
                m4 = cpu.mark()

                # --- phase 2: tasks to phones ---------------------------------------------
                n_calls = max(1, int(args.rate * args.seconds / args.batch))
                n_tasks = n_calls * args.batch
                print(
                    f"task to phone: {n_tasks} tasks at {args.rate}/s "
                    f"({args.batch} units per dispatch) ...",
                    file=sys.stderr,
                )
                free_tasks = text(
                    "UPDATE task SET status = 'cancelled', cancelled_at = now() "
                    "WHERE id = ANY(:tasks)"
                )
                free_units = text("UPDATE unit SET status = 'available' WHERE id = ANY(:units)")

                def dispatch(i: int) -> None:
                    units = sorted(
                        {unit_ids[(i * args.batch + k) % len(unit_ids)] for k in range(args.batch)}
                    )
                    with db.sessions() as s:
                        made = tasks.dispatch(
                            s, targets[i % len(targets)], units, principal=principal
                        )
                        s.commit()
                        # Free the units again without writing an event (the load stays
                        # exactly what dispatching writes).
                        s.execute(free_tasks, {"tasks": [t.id for t in made]})
                        s.execute(free_units, {"units": units})
                        s.commit()

                m5 = cpu.mark()
                call_rate, durations, failed = paced(
                    n_calls, args.rate / args.batch, dispatch, args.writers
                )
                rate = call_rate * args.batch
                m6 = cpu.mark()
                final = heads(raw, ["situation", *phone_topics])
                drain2 = swarm.drain(final, args.drain)
                m7 = cpu.mark()
                sw = swarm.stop(
                    {"fanout": [h0 + 1, h1], "dispatch": [h1 + 1, final["situation"]]}, final
                )
            finally:
                swarm.close()

        # --- the floor and the naive peer, from the event table --------------------------
        ids = [i for i, _ in sw["notifies"]]
        with raw.cursor() as cur:
            cur.execute(
                "SELECT id, topic, seq, type, extract(epoch FROM created_at), "
                "(payload->>'id')::bigint FROM event WHERE id = ANY(%s)",
                (ids,),
            )
            events = {int(r[0]): r[1:] for r in cur.fetchall()}
            cur.execute(
                "SELECT (payload->>'id')::bigint, extract(epoch FROM created_at) FROM event "
                "WHERE topic = 'situation' AND type = 'incident.created' AND seq BETWEEN %s AND %s",
                (h0 + 1, h1),
            )
            created = {int(i): float(at) for i, at in cur.fetchall()}
        raw.close()
        floor_fan: list[float] = []
        floor_sit2: list[float] = []
        floor_phone: list[float] = []
        for event_id, arrived in sw["notifies"]:
            row = events.get(event_id)
            if row is None:
                continue
            topic, seq, _type, at, _ = row
            lag = arrived - float(at)
            if topic == "situation" and h0 < seq <= h1:
                floor_fan.append(lag)
            elif topic == "situation" and seq > h1:
                floor_sit2.append(lag)
            elif topic.startswith("unit:"):
                floor_phone.append(lag)
        polled = [sw["polled"][str(i)] - at for i, at in created.items() if str(i) in sw["polled"]]
        poll_missing = sum(1 for i in created if str(i) not in sw["polled"])
    finally:
        db.engine.dispose()
        drop_database(db.url)

    fan = sw["situation_fanout"]
    sit2 = sw["situation_dispatch"]
    phones = sw["phones"]
    lost = fan.get("missing_pairs", 0) + sit2.get("missing_pairs", 0) + phones["missing_pairs"]
    if lost or fan_failed or failed or not drain1["drained"] or not drain2["drained"]:
        ok = False

    def vs_floor(hub: dict[str, Any], floor: list[float]) -> dict[str, Any]:
        f = stats_ms(floor)
        row: dict[str, Any] = {"hub": hub, "floor": f}
        if hub.get("n") and f.get("n"):
            for q in ("p50_ms", "p95_ms", "p99_ms"):
                row[f"added_{q}"] = round(hub[q] - f[q], 2)
                row[f"ratio_{q[:3]}"] = round(hub[q] / f[q], 1) if f[q] > 0 else None
        return row

    from bench.timing import percentile

    result = {
        "benchmark": "realtime",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "ok": ok,
        "machine": {
            **host,
            "loadavg_at_end": os.getloadavg(),
            "nofile": raise_nofile(),
        },
        "setup": {
            "clients": args.clients,
            "screens": screens,
            "phones": args.phones,
            "deflate": args.deflate,
            "batch": args.batch_messages,
            "targets": args.targets,
            "units_created_s": round(units_s, 2),
            "server": "emergency serve (uvicorn, one process) in a subprocess",
            "swarm": "two asyncio processes, websockets client: the screens; the phones "
            "+ LISTEN peer + REST poller",
            "writer": "service layer in the bench process (create_incident, tasks.dispatch)",
            "latency": "receive time.time() - event 'at' (clock_timestamp() before commit)",
        },
        "connect": {
            "clients": ready["ready"],
            "all_s": round(ready["connect_s"], 2),
            "each": sw["connect_each"],
            "cpu": Cpu.between(m0, m1),
        },
        "fanout": {
            "events": args.events,
            "rate_asked": args.event_rate,
            "rate_achieved": round(fan_rate, 2),
            "write_ms_p50": round(percentile(fan_durations, 50) * 1000, 2),
            "clients_complete": fan.get("clients_complete"),
            "clients": fan.get("clients"),
            "missing_pairs": fan.get("missing_pairs"),
            "resynced_pairs": fan.get("resynced_pairs"),
            "drain_s": round(drain1["waited_s"], 2),
            "target_p99_ms": FANOUT_TARGET_P99_MS,
            "target_met": bool(fan.get("n")) and fan["p99_ms"] < FANOUT_TARGET_P99_MS,
            "cpu": Cpu.between(m2, m3),
            "cpu_incl_drain": Cpu.between(m2, m4),
            **vs_floor(fan, floor_fan),
            "naive_poll_1s": {
                **stats_ms(polled),
                "missed": poll_missing,
                "request": sw["poll_request"],
            },
        },
        "task_to_phone": {
            "tasks": n_tasks,
            "rate_asked": args.rate,
            "rate_achieved": round(rate, 2),
            "units_per_dispatch": args.batch,
            "dispatch_ms_p50": round(percentile(durations, 50) * 1000, 2),
            "dispatch_ms_p99": round(percentile(durations, 99) * 1000, 2),
            "failed": failed,
            "phones_complete": phones["clients_complete"],
            "phones": phones["clients"],
            "missing_pairs": phones["missing_pairs"],
            "drain_s": round(drain2["waited_s"], 2),
            "target_p99_ms": PHONE_TARGET_P99_MS,
            "target_met": bool(phones.get("n")) and phones["p99_ms"] < PHONE_TARGET_P99_MS,
            "cpu": Cpu.between(m5, m6),
            "cpu_incl_drain": Cpu.between(m5, m7),
            **vs_floor(phones, floor_phone),
            "situation_during": {
                **vs_floor(sit2, floor_sit2),
                "events": sit2.get("events"),
                "clients_complete": sit2.get("clients_complete"),
                "missing_pairs": sit2.get("missing_pairs"),
                "resynced_pairs": sit2.get("resynced_pairs"),
            },
        },
        "swarm": {
            "duplicates": sw["duplicates"],
            "reconnects": sw["reconnects"],
            "errors": sw["errors"],
            "closes": sw["closes"],
        },
    }
    return result, ok


def render(r: dict[str, Any]) -> str:
    m, s = r["machine"], r["setup"]
    fan, task = r["fanout"], r["task_to_phone"]
    sit = task["situation_during"]
    lines = [
        f"Realtime hub benchmark ({r['when']}): {m['cpus']} CPUs, {m['postgresql']}, "
        f"Python {m['python']}",
        f"{s['clients']} clients ({s['screens']} screens on situation, {s['phones']} phones on "
        f"unit:<id>), permessage-deflate {'on' if s['deflate'] else 'off'}; screens and phones "
        "(+ floor, poller) run in separate swarm processes; server, swarms and PostgreSQL share "
        "the machine",
        f"connect: all {r['connect']['clients']} welcomed in {r['connect']['all_s']:.2f} s "
        f"(each: p50 {r['connect']['each'].get('p50_ms')} ms, p99 "
        f"{r['connect']['each'].get('p99_ms')} ms)",
        "",
    ]
    header = (
        f"{'measurement':<40} {'n':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'complete':>11}  note"
    )
    lines += [header, "-" * len(header)]

    def row(name: str, st: dict[str, Any], complete: str = "", note: str = "") -> None:
        if not st.get("n"):
            lines.append(f"{name:<40} {0:>8}")
            return
        lines.append(
            f"{name:<40} {st['n']:>8} {st['p50_ms']:>8.1f} {st['p95_ms']:>8.1f} "
            f"{st['p99_ms']:>8.1f} {st['max_ms']:>8.1f} {complete:>11}  {note}"
        )

    def target(section: dict[str, Any]) -> str:
        met = "MET" if section["target_met"] else "NOT met"
        return f"target p99 < {section['target_p99_ms']:g} ms: {met}"

    row(
        f"fan-out: {fan['events']} incidents -> screens+phones"[:40],
        fan["hub"],
        f"{fan['clients_complete']}/{fan['clients']}",
        target(fan),
    )
    row("  floor: LISTEN/NOTIFY, same events", fan["floor"], "", "commit -> NOTIFY arrival")
    row(
        "  naive peer: REST poll every 1 s",
        fan["naive_poll_1s"],
        f"missed {fan['naive_poll_1s']['missed']}",
    )
    row(
        f"task to phone: {task['tasks']} tasks",
        task["hub"],
        f"{task['phones_complete']}/{task['phones']}",
        target(task),
    )
    row("  floor: LISTEN/NOTIFY, same events", task["floor"])
    row(
        "  situation events meanwhile (screens)",
        sit["hub"],
        f"{sit['clients_complete']}/{fan['clients']}",
        f"{sit['events']} events; {sit['missing_pairs']} pairs lost, "
        f"{sit['resynced_pairs']} via resync",
    )
    row("  floor: LISTEN/NOTIFY, same events", sit["floor"])
    lines.append("")
    for label, sec in (("fan-out", fan), ("task to phone", task)):
        if "added_p50_ms" in sec:
            lines.append(
                f"hub added latency, {label}: p50 +{sec['added_p50_ms']} ms "
                f"({sec['ratio_p50']}x floor), p99 +{sec['added_p99_ms']} ms "
                f"({sec['ratio_p99']}x floor)"
            )
    lines.append(
        f"task rate: asked {task['rate_asked']}/s, achieved {task['rate_achieved']}/s "
        f"({task['units_per_dispatch']} per dispatch; dispatch+commit p50 "
        f"{task['dispatch_ms_p50']} ms, p99 {task['dispatch_ms_p99']} ms, "
        f"{task['failed']} failed); fan-out writes at {fan['rate_achieved']}/s"
    )
    lines.append("")
    lines.append(
        f"{'CPU (util = cores busy)':<26} {'wall s':>7} {'server':>7} {'swarm':>7} "
        f"{'=screens':>8} {'+phones':>8} {'writer':>7} {'postgres':>9} {'machine':>8}"
    )
    for label, c in (
        ("connect", r["connect"]["cpu"]),
        ("fan-out", fan["cpu"]),
        ("task to phone", task["cpu"]),
        ("task to phone + drain", task["cpu_incl_drain"]),
    ):
        lines.append(
            f"{label:<26} {c['wall_s']:>7.1f} {c['server_util']:>7.2f} {c['swarm_util']:>7.2f} "
            f"{c['swarm_screens_util']:>8.2f} {c['swarm_phones_util']:>8.2f} "
            f"{c['driver_util']:>7.2f} {c['postgres_util']:>9.2f} {c['machine_util']:>8.2f}"
        )
    sw = r["swarm"]
    lines += [
        "",
        f"swarm: {sw['duplicates']} duplicate events, {sw['reconnects']} reconnects, "
        f"closes {sw['closes'] or '-'}, errors {sw['errors'] or '-'}",
        f"result: {'OK' if r['ok'] else 'ERRORS (events lost or calls failed)'}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.realtime", description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=2000, help="WebSocket clients in all")
    p.add_argument("--phones", type=int, default=300, help="of which phones on unit:<id>")
    p.add_argument("--rate", type=float, default=50.0, help="tasks dispatched per second")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to dispatch")
    p.add_argument("--batch", type=int, default=1, help="units (tasks) per dispatch call")
    p.add_argument("--writers", type=int, default=4, help="writer threads in this process")
    p.add_argument("--events", type=int, default=40, help="fan-out: incidents created")
    p.add_argument("--event-rate", type=float, default=4.0, help="fan-out: incidents per second")
    p.add_argument("--targets", type=int, default=25, help="open incidents tasks go to")
    p.add_argument(
        "--drain", type=float, default=DRAIN_TIMEOUT_S, help="max s to wait for stragglers"
    )
    p.add_argument("--settle", type=float, default=2.0, help="seconds idle after connecting")
    p.add_argument(
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="clients do not offer permessage-deflate (browsers do)",
    )
    p.add_argument(
        "--no-batch-messages",
        dest="batch_messages",
        action="store_false",
        help='clients do not ask for {"type":"batch"} messages (one event per message)',
    )
    p.add_argument(
        "--profile-server", type=Path, help="run the server under cProfile, writing here"
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    p.add_argument("--swarm", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.swarm and not 0 < args.phones < args.clients:
        p.error("need 0 < --phones < --clients")
    if not args.swarm and not 1 <= args.batch <= args.phones:
        p.error("need 1 <= --batch <= --phones")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.swarm:
        return swarm_main(args.swarm)
    raise_nofile()
    from tests.support.db import create_database, drop_database

    try:  # the same check bench.http_api makes: is there a PostGIS to run against?
        drop_database(create_database("emergency_bench_probe"))
    except Exception as exc:
        print(f"no PostGIS to benchmark against: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as tmp:
        try:
            result, ok = run_benchmark(args, Path(tmp))
        except Exception as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
    print(render(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"\nwritten to {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
