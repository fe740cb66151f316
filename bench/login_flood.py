"""Login flood: 2,000 wrong passwords against the real server, throttled and not.

Run with ``uv run python -m bench.login_flood [--attempts N] [--workers W]``. It

1. creates a throwaway database with one user;
2. starts ``emergency serve --workers W`` (default 2) and, per scenario, sends the wrong
   logins from ``--concurrency`` (16) keep-alive connections while a reader does a normal read
   (``GET /api/incidents?limit=20`` with a token) every 50 ms;
3. reports per scenario: the answers by status (each 401 is one argon2 check; a 429 or 503
   is refused before any), the server processes' CPU (% of one core) over the flood, the
   reader's latency before and during the flood (p50 / p95) and the server processes' peak
   memory, and writes ``bench/results/login_flood_c<concurrency>.json``.

Scenarios: ``unthrottled`` (the limits and the bound on checks in flight raised out of
reach: the code as it was), ``one_user`` (defaults: 10 failures per username in 15 min)
and ``spray`` (a different username each time, from one address: the per-address limit).
Client, server and PostgreSQL share this machine's cores: figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg

from bench.http_api import psycopg_url
from bench.timing import machine, percentile
from command.auth import service as auth
from command.migrate import upgrade
from core.db import make_engine, make_sessionmaker, session_scope
from tests.support.db import create_database, drop_database
from tests.support.servers import running_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "login_flood_c{concurrency}.json"
USERNAME, PASSWORD = "bench_user", "bench-password-2026"
CONCURRENCY = 16  # default; 1 is "in a row"
READ_EVERY_S = 0.05
QUIET_S = 5.0  # reads before the flood: the baseline
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

UNTHROTTLED = {
    "EMERGENCY_LOGIN_MAX_FAILURES": "10000",
    "EMERGENCY_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
    "EMERGENCY_LOGIN_MAX_CONCURRENT": "64",
    "EMERGENCY_LOGIN_MAX_WAITING": "10000",
    "EMERGENCY_LOGIN_WAIT_S": "60",
}


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (the server's worker processes)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def peak_rss_mb(pids: list[int]) -> float:
    """The sum of the processes' peak resident memory (VmHWM), MiB."""
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


def server_pid(port: int) -> int:
    """The process listening on ``port`` (the uvicorn parent or a worker's parent)."""
    wanted = f":{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[1].endswith(wanted) and parts[3] == "0A":  # LISTEN
            inodes.add(parts[9])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                link = os.readlink(f"/proc/{entry}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return _root_of(int(entry))
        except OSError:
            continue
    raise RuntimeError(f"no process listens on {port}")


def _root_of(pid: int) -> int:
    """The topmost ancestor of ``pid`` that is still a server process (`emergency`)."""
    while True:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        cmdline = Path(f"/proc/{ppid}/cmdline").read_bytes()
        if b"emergency" not in cmdline and b"uvicorn" not in cmdline:
            return pid
        pid = ppid


def _read_loop(base: str, token: str, ready: Any, stop: Any, out: Any) -> None:
    """A normal read every READ_EVERY_S over one keep-alive connection, in a process of
    its own (in the flooding process, the flood's threads would hold its GIL)."""
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    latencies: list[tuple[float, float]] = []
    ready.set()
    while not stop.is_set():
        t0 = time.perf_counter()
        r = client.get("/api/incidents?limit=20")
        if r.status_code == 200:
            latencies.append((time.monotonic(), (time.perf_counter() - t0) * 1e3))
        stop.wait(READ_EVERY_S)
    out.put(latencies)


class Reader:
    """The reading process; ``between`` gives its latencies (ms) in a time span."""

    def __init__(self, base: str, token: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stop, self._ready, self._out = ctx.Event(), ctx.Event(), ctx.Queue()
        args = (base, token, self._ready, self.stop, self._out)
        self._proc = ctx.Process(target=_read_loop, args=args)
        self.latencies_ms: list[tuple[float, float]] = []

    def start(self) -> None:
        """Start reading; returns once the first read is about to be made."""
        self._proc.start()
        if not self._ready.wait(120):
            raise RuntimeError("the reader did not start")

    def join(self) -> None:
        self.latencies_ms = self._out.get(timeout=60)
        self._proc.join(timeout=30)

    def between(self, start: float, end: float) -> list[float]:
        return [ms for at, ms in self.latencies_ms if start <= at <= end]


def flood(base: str, attempts: int, spray: bool, concurrency: int) -> tuple[Counter[int], float]:
    """``attempts`` wrong logins from ``concurrency`` connections; statuses, wall seconds."""
    local = threading.local()

    def one(n: int) -> int:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, timeout=120)
        name = f"sprayed-{n}" if spray else USERNAME
        r = local.client.post("/api/auth/token", json={"username": name, "password": f"x{n}"})
        return int(r.status_code)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = Counter(pool.map(one, range(attempts)))
    return statuses, time.perf_counter() - t0


def scenario(
    url: str, secret: str, name: str, attempts: int, workers: int, concurrency: int
) -> dict[str, Any]:
    env = {"EMERGENCY_WORKERS": str(workers)}
    if name == "unthrottled":
        env.update(UNTHROTTLED)
    with running_server(url, secret, extra_env=env) as base:
        pids = _tree(server_pid(int(base.rsplit(":", 1)[1])))
        token = httpx.post(
            f"{base}/api/auth/token", json={"username": USERNAME, "password": PASSWORD}
        ).json()["access_token"]
        reader = Reader(base, token)
        reader.start()
        time.sleep(QUIET_S)
        quiet_end = time.monotonic()
        cpu0 = cpu_s(pids)
        statuses, wall_s = flood(base, attempts, name == "spray", concurrency)
        cpu = cpu_s(pids) - cpu0
        rss_mb = peak_rss_mb(pids)
        flood_end = time.monotonic()
        reader.stop.set()
        reader.join()
        quiet = reader.between(quiet_end - QUIET_S, quiet_end)
        busy = reader.between(quiet_end, flood_end)
    with session_scope(make_sessionmaker(make_engine(url))) as session:
        from sqlalchemy import text

        session.execute(text("DELETE FROM login_throttle"))

    def stats(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        return {
            "n": len(values),
            "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(percentile(values, 95), 1),
        }

    return {
        "scenario": name,
        "attempts": attempts,
        "workers": workers,
        "concurrency": concurrency,
        "server_cpu_s": round(cpu, 1),
        "server_peak_rss_mb": round(rss_mb),
        "statuses": dict(sorted(statuses.items())),
        "argon2_checks": statuses.get(401, 0),
        "wall_s": round(wall_s, 2),
        "server_cpu_pct_of_one_core": round(100 * cpu / wall_s, 1),
        "read_before": stats(quiet),
        "read_during": stats(busy),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=2000)
    parser.add_argument("--unthrottled-attempts", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--scenarios", default="unthrottled,one_user,spray", help="comma-separated")
    args = parser.parse_args()
    url = create_database("emergency_bench_login")
    secret = secrets.token_urlsafe(48)
    results = []
    try:
        upgrade(url)
        with psycopg.connect(psycopg_url(url)) as conn:
            where = machine(conn)
        with session_scope(make_sessionmaker(make_engine(url))) as session:
            auth.add_user(session, username=USERNAME, password=PASSWORD, role="dispatcher")
        for name in args.scenarios.split(","):
            n = args.attempts
            if name == "unthrottled" and args.unthrottled_attempts:
                n = args.unthrottled_attempts
            result = scenario(url, secret, name, n, args.workers, args.concurrency)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        drop_database(url)
    out = Path(str(RESULTS).format(concurrency=args.concurrency))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": where, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
