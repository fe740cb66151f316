"""Audited writes over HTTP: the sealed audit chain against the one-lock chain it replaced.

Both designs run side by side in one run, each its own real server (`emergency serve
--workers 2`) on a fresh database of its own: "before" is the code at ``--before`` (by default
the last commit with the one-lock chain, checked out from git into a temporary folder),
"after" is this checkout. Each is loaded for ``--seconds`` by each of ``--clients`` counts of
keep-alive clients (8 as the issue asks; 32 shows where each design stops scaling) creating
incidents (POST /api/incidents, every one an audited change with an event)
back to back; the rounds alternate (before, after, before, after, ...) so drift in the
machine hits both. Reported: writes per second, latency, how busy the machine's cores were,
and CPU per write in the server and in PostgreSQL. After the run every created incident is
counted and each chain is verified.

    uv run python -m bench.audit_writes [--seconds 30] [--rounds 3] [--clients 8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import secrets
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "audit_writes.json"
BEFORE_REV = "30dc6ac"  # main before sealing: one advisory lock from chain write to commit
PASSWORD = "bench-password-2026"


# --- the code under test ----------------------------------------------------------


@contextmanager
def checkout(rev: str | None) -> Iterator[Path]:
    """``rev`` of this repository in a temporary folder (None: this checkout)."""
    if rev is None:
        yield ROOT
        return
    archive = subprocess.run(  # noqa: S603 - fixed argv
        ["git", "archive", "--format=tar", rev],  # noqa: S607 - git from PATH
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


def run_code(code: Path, env: dict[str, str], *args: str, **kw: Any) -> Any:
    """``python -c`` with ``code`` first on the path (its packages over ours)."""
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", *args],
        cwd=code,
        env={**env, "PYTHONPATH": str(code)},
        check=True,
        **kw,
    )


def cli(code: Path, env: dict[str, str], *args: str) -> str:
    script = (
        "import sys; from command.cli import main; sys.argv = ['emergency', *sys.argv[1:]]; main()"
    )
    out = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", script, *args],
        cwd=code,
        env={**env, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
    )
    return f"{out.returncode}\n{out.stdout}{out.stderr}"


@dataclass
class Peer:
    name: str
    code: Path
    url: str
    env: dict[str, str]


def prepare(name: str, code: Path, url: str, secret_key: str) -> Peer:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "EMERGENCY_ENV": "development",
        "EMERGENCY_SECRET_KEY": secret_key,
        "EMERGENCY_DB_POOL_SIZE": "10",
    }
    env.pop("EMERGENCY_AUDIT_CHECKPOINT_DIR", None)
    run_code(code, env, f"from command.migrate import upgrade; upgrade({url!r})")
    added = cli(code, env, "user", "add", "bench", "--role", "dispatcher", "--password", PASSWORD)
    if not added.startswith("0"):
        raise RuntimeError(f"{name}: user add failed: {added}")
    return Peer(name, code, url, env)


@contextmanager
def serving(peer: Peer, workers: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The peer's own `emergency serve --workers N` (its code first on the path)."""
    from tests.support.servers import running_server

    script = (
        "import sys; from command.cli import main; "
        "sys.argv = ['emergency', 'serve', *sys.argv[1:]]; main()"
    )

    def command(port: int) -> list[str]:
        argv = [sys.executable, "-c", script, "--host", "127.0.0.1", "--port", str(port)]
        return [*argv, "--workers", str(workers)]

    procs: list[subprocess.Popen[bytes]] = []
    with running_server(
        peer.url,
        peer.env["EMERGENCY_SECRET_KEY"],
        extra_env={**peer.env, "PYTHONPATH": str(peer.code)},
        timeout_s=120,
        command=command,
        cwd=peer.code,
        started=procs.append,
    ) as base:
        yield base, procs[0]


# --- the load -------------------------------------------------------------------------


def _request(token: str, port: int, n: int, rng: random.Random) -> bytes:
    lon, lat = 24.935 + rng.uniform(-0.01, 0.01), 60.168 + rng.uniform(-0.005, 0.005)
    body = json.dumps(
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
            "properties": {"title": f"bench incident {n}", "type": "fire", "severity": "moderate"},
        }
    ).encode()
    head = (
        f"POST /api/incidents HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    port: int, token: str, until: float, seed: int, out: list[tuple[int, float]]
) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while time.monotonic() < until:
            n += 1
            started = time.perf_counter()
            writer.write(_request(token, port, seed * 1_000_000 + n, rng))
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            out.append((status, time.perf_counter() - started))
    finally:
        writer.close()


def load(port: int, token: str, clients: int, seconds: float, queue: Any) -> None:
    """A closed loop: ``clients`` connections, each sending its next request as soon as the
    last is answered (run in a process of its own)."""
    out: list[tuple[int, float]] = []
    until = time.monotonic() + seconds

    async def main() -> None:
        await asyncio.gather(*(_client(port, token, until, c + 1, out) for c in range(clients)))

    asyncio.run(main())
    queue.put(out)


# --- measuring ------------------------------------------------------------------------


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / hz, sum(fields) / hz


def login(base: str) -> str:
    import httpx2 as httpx

    answer = httpx.post(
        f"{base}/api/auth/token", json={"username": "bench", "password": PASSWORD}, timeout=30
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def one_round(peer: Peer, args: argparse.Namespace, clients: int) -> dict[str, Any]:
    from bench.alerts import tree_cpu_s
    from bench.realtime import postgres_cpu_s

    with serving(peer, args.workers) as (base, proc):
        token = login(base)
        port = int(base.rsplit(":", 1)[1])
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        worker = ctx.Process(target=load, args=(port, token, clients, 2.0, queue))
        worker.start()  # a short warm-up: connections, prepared statements, caches
        warmup = queue.get()
        worker.join()
        busy0, total0 = machine_busy()
        server0, pg0 = tree_cpu_s(proc.pid), sum(postgres_cpu_s().values())
        worker = ctx.Process(target=load, args=(port, token, clients, args.seconds, queue))
        started = time.perf_counter()
        worker.start()
        results = queue.get()
        worker.join()
        wall = time.perf_counter() - started
        busy1, total1 = machine_busy()
        server1, pg1 = tree_cpu_s(proc.pid), sum(postgres_cpu_s().values())
    ok = [t for status, t in results if status == 201]
    cores = (total1 - total0) / wall
    return {
        "warmup_writes": sum(1 for status, _ in warmup if status == 201),
        "writes": len(ok),
        "errors": len(results) - len(ok),
        "rate_per_s": len(ok) / args.seconds,
        "p50_ms": statistics.median(ok) * 1000 if ok else None,
        "p99_ms": sorted(ok)[int(0.99 * (len(ok) - 1))] * 1000 if ok else None,
        "machine_busy": (busy1 - busy0) / (total1 - total0),
        "cores": round(cores, 2),
        "server_cpu_ms_per_write": (server1 - server0) * 1000 / max(1, len(ok)),
        "postgres_cpu_ms_per_write": (pg1 - pg0) * 1000 / max(1, len(ok)),
    }


def check(peer: Peer, created: int) -> dict[str, Any]:
    """Every created incident stored once, and the chain verifies (with the peer's own
    `emergency audit verify`)."""
    import psycopg

    from bench.http_api import psycopg_url

    with psycopg.connect(psycopg_url(peer.url)) as conn:
        incidents = conn.execute("SELECT count(*) FROM incident").fetchone()[0]
        audited = conn.execute(
            "SELECT count(*) FROM audit_event WHERE action = 'incident.created'"
        ).fetchone()[0]
    verdict = cli(peer.code, peer.env, "audit", "verify")
    return {
        "incidents": incidents,
        "created_201": created,
        "audited": audited,
        "chain": verdict.splitlines()[1] if "\n" in verdict else verdict,
        "ok": incidents == created == audited and verdict.startswith("0"),
    }


def median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds if r[key] is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--clients",
        default="8,32",
        help="client counts, comma-separated (8: the issue's load; more shows where each "
        "design stops scaling)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--before", default=BEFORE_REV, help="git revision of the old design")
    args = parser.parse_args(argv)
    loads = [int(c) for c in str(args.clients).split(",")]

    from tests.support.db import create_database, drop_database

    secret_key = secrets.token_urlsafe(48)
    urls: list[str] = []
    report: dict[str, Any] = {"args": vars(args), "loads": {}}
    try:
        with checkout(args.before) as old:
            peers = []
            for name, code in (("before", old), ("after", ROOT)):
                urls.append(create_database(f"emergency_bench_audit_{name}"))
                peers.append(prepare(name, code, urls[-1], secret_key))
            rounds: dict[tuple[int, str], list[dict[str, Any]]] = {}
            for clients in loads:
                for r in range(args.rounds):
                    for peer in peers:
                        got = one_round(peer, args, clients)
                        rounds.setdefault((clients, peer.name), []).append(got)
                        print(
                            f"{clients} clients, round {r + 1}, {peer.name}: {json.dumps(got)}",
                            file=sys.stderr,
                        )
            checks = {
                peer.name: check(
                    peer,
                    sum(
                        r["writes"] + r["warmup_writes"]
                        for (_, name), rs in rounds.items()
                        if name == peer.name
                        for r in rs
                    ),
                )
                for peer in peers
            }
            for clients in loads:
                report["loads"][str(clients)] = {
                    peer.name: summary(rounds[(clients, peer.name)]) for peer in peers
                }
            report["checks"] = checks
    finally:
        for url in urls:
            drop_database(url)
    for peers_at in report["loads"].values():
        peers_at["ratio_rate"] = (
            peers_at["after"]["median_rate_per_s"] / peers_at["before"]["median_rate_per_s"]
        )
    print(render(report))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    return 0 if all(c["ok"] for c in report["checks"].values()) else 1


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rounds": rounds,
        **{
            f"median_{key}": median(rounds, key)
            for key in (
                "rate_per_s",
                "p50_ms",
                "p99_ms",
                "machine_busy",
                "server_cpu_ms_per_write",
                "postgres_cpu_ms_per_write",
            )
        },
    }


def render(report: dict[str, Any]) -> str:
    args = report["args"]
    lines = [
        f"audited incident creation over HTTP, --workers {args['workers']}, "
        f"{args['rounds']} rounds of {args['seconds']:.0f} s each, alternating (medians)",
        f"{'clients':>7} {'':7} {'writes/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'busy':>6} "
        f"{'server ms/write':>16} {'PG ms/write':>12}",
    ]
    for clients, peers in report["loads"].items():
        for name in ("before", "after"):
            p = peers[name]
            lines.append(
                f"{clients:>7} {name:7} {p['median_rate_per_s']:9.1f} {p['median_p50_ms']:8.1f} "
                f"{p['median_p99_ms']:8.1f} {p['median_machine_busy']:6.0%} "
                f"{p['median_server_cpu_ms_per_write']:16.2f} "
                f"{p['median_postgres_cpu_ms_per_write']:12.2f}"
            )
        lines.append(f"{'':>7} after / before: {peers['ratio_rate']:.2f}x the writes per second")
    for name, c in report["checks"].items():
        lines.append(
            f"{name}: {c['incidents']} incidents for {c['created_201']} answers 201, "
            f"{c['audited']} audited; {c['chain']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
