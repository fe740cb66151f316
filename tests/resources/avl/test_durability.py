"""Positions against the real server (``emergency serve`` in a subprocess) on a database of
its own: a 202 means durable, so a server killed (SIGKILL) in the middle of a stream has
lost none of the fixes it answered for; and a tracker's id never reaches the access log.

Run with ``-s`` to see the figures (fixes acknowledged before the kill, lost, in flight).
"""

from __future__ import annotations

import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import BigInteger

from resources.avl.fixes import device_hash
from tests.support.db import drop_database
from tests.support.live import SECRET, LiveDb, make_live_db
from tests.support.servers import ROOT, running_server, server_command

pytestmark = [pytest.mark.db, pytest.mark.slow]

Key = tuple[int, datetime]  # a fix's identity in the track: (unit_id, recorded_at)
BATCH_CLIENTS = 3  # gateways posting /api/positions
SINGLE_CLIENTS = 2  # phones posting /api/units/{id}/position
UNITS_PER_GATEWAY = 8
BATCH = 100
KILL_AFTER = 3000  # acknowledged fixes (at least) before the kill
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture(scope="module")
def avl_db(database_url: str) -> Iterator[LiveDb]:
    """A committed database of this module's (a station, staff; units added per test)."""
    del database_url  # asked for so a missing PostGIS skips (or fails in CI) the same way
    db = make_live_db("emergency_avl_durable")
    try:
        yield db
    finally:
        db.engine.dispose()
        drop_database(db.url)


def logged_to(path: Path) -> Callable[[int], list[str]]:
    """`emergency serve` with its output (uvicorn's access log) in ``path``: the shell
    execs the server, so the process ``running_server`` starts is the server itself."""

    def command(port: int) -> list[str]:
        argv = server_command(port)
        return ["sh", "-c", f'exec "$0" "$@" >> {shlex.quote(str(path))} 2>&1', *argv]

    return command


def cli_command() -> list[str]:
    """The ``emergency`` CLI of this environment (what `uv run emergency` runs)."""
    exe = Path(sys.executable).parent / "emergency"
    return [str(exe)] if exe.exists() else [shutil.which("uv") or "uv", "run", "emergency"]


def stored_keys(db: LiveDb, unit_ids: list[int]) -> list[Key]:
    query = text(
        "SELECT unit_id, recorded_at FROM unit_position WHERE unit_id = ANY(:ids)"
    ).bindparams(bindparam("ids", type_=ARRAY(BigInteger())))
    with db.engine.connect() as conn:
        return [(int(u), at) for u, at in conn.execute(query, {"ids": unit_ids})]


def body_fix(key: Key, k: int) -> dict[str, Any]:
    unit_id, at = key
    # Within a few metres of each other: no fix is an impossible jump.
    return {
        "unit_id": unit_id,
        "lon": 24.94 + (k % 7) * 1e-5,
        "lat": 60.17 + (k % 5) * 1e-5,
        "recorded_at": at.isoformat(),
        "speed_mps": 5.0,
    }


@dataclass
class Ledger:
    """What the clients sent, what the server answered 202 for, and what went wrong."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: set[Key] = field(default_factory=set)
    acked: set[Key] = field(default_factory=set)
    unanswered: set[Key] = field(default_factory=set)  # sent, no answer (the kill)
    wrong: list[str] = field(default_factory=list)  # answers that were not a clean 202
    single_acked: int = 0
    batches_acked: int = 0

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def gateway(base: str, token: str, units: list[int], ledger: Ledger, stop: threading.Event) -> None:
    """Batches of ``BATCH`` fixes, round-robin over ``units``, until the server dies."""
    k = 0
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
        while not stop.is_set():
            keys = []
            for _ in range(BATCH):
                keys.append((units[k % len(units)], T0 + timedelta(milliseconds=10 * k)))
                k += 1
            body = {"positions": [body_fix(key, i) for i, key in enumerate(keys)]}
            with ledger.lock:
                ledger.sent.update(keys)
            try:
                r = c.post("/api/positions", json=body)
            except httpx.TransportError:
                with ledger.lock:
                    ledger.unanswered.update(keys)
                return
            got = r.json() if r.status_code == 202 else None
            with ledger.lock:
                if got == {"accepted": BATCH, "duplicates": 0, "flagged": [], "refused": []}:
                    ledger.acked.update(keys)
                    ledger.batches_acked += 1
                else:
                    ledger.wrong.append(f"{r.status_code} {r.text[:300]}")
                    return


def phone(base: str, token: str, unit_id: int, ledger: Ledger, stop: threading.Event) -> None:
    """One fix at a time for its own unit, until the server dies."""
    k = 0
    with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
        while not stop.is_set():
            key = (unit_id, T0 + timedelta(milliseconds=10 * k))
            fix = body_fix(key, k)
            del fix["unit_id"]
            k += 1
            with ledger.lock:
                ledger.sent.add(key)
            try:
                r = c.post(f"/api/units/{unit_id}/position", json=fix)
            except httpx.TransportError:
                with ledger.lock:
                    ledger.unanswered.add(key)
                return
            with ledger.lock:
                got = r.json() if r.status_code == 202 else {}
                if got.get("duplicate") is False and isinstance(got.get("position_id"), int):
                    ledger.acked.add(key)
                    ledger.single_acked += 1
                else:
                    ledger.wrong.append(f"{r.status_code} {r.text[:300]}")
                    return


def guarded(target: Callable[..., None], ledger: Ledger, *args: Any) -> Callable[[], None]:
    """``target(*args)`` for a thread: an unexpected exception is recorded, not lost."""

    def run() -> None:
        try:
            target(*args)
        except Exception as exc:
            with ledger.lock:
                ledger.wrong.append(f"{target.__name__}: {exc!r}")

    return run


def test_a_server_killed_mid_stream_has_lost_no_acknowledged_fix(
    avl_db: LiveDb, tmp_path: Path
) -> None:
    gateways = [avl_db.add_units(UNITS_PER_GATEWAY) for _ in range(BATCH_CLIENTS)]
    phones = avl_db.add_units(SINGLE_CLIENTS)
    ours = [u for units in gateways for u in units] + phones
    ledger = Ledger()
    stop = threading.Event()
    procs: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "server.log"
    with running_server(avl_db.url, SECRET, command=logged_to(log), started=procs.append) as base:
        (proc,) = procs
        threads = [
            threading.Thread(
                target=guarded(
                    gateway, ledger, base, avl_db.token("dispatcher"), units, ledger, stop
                ),
                name=f"gateway-{i}",
            )
            for i, units in enumerate(gateways)
        ] + [
            threading.Thread(
                target=guarded(
                    phone, ledger, base, avl_db.token(avl_db.responder(u)), u, ledger, stop
                ),
                name=f"phone-{u}",
            )
            for u in phones
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        while ledger.count() < KILL_AFTER and time.monotonic() - started < 60:
            if ledger.wrong:
                break
            time.sleep(0.01)
        # At a random moment of the writer's ~20 ms cycle: gathering, committing, answering.
        time.sleep(random.uniform(0.0, 0.06))
        with ledger.lock:
            in_flight_before = len(ledger.sent) - len(ledger.acked)
        proc.send_signal(signal.SIGKILL)  # mid-stream: requests are in flight
        killed_at = time.monotonic() - started
        stop.set()
        proc.wait(timeout=30)
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/healthz", timeout=2)
    assert proc.returncode == -signal.SIGKILL
    assert ledger.wrong == [], ledger.wrong[:5]

    stored = stored_keys(avl_db, ours)
    in_track = set(stored)
    lost = ledger.acked - in_track
    print(
        f"\nkilled after {killed_at:.1f} s: {len(ledger.acked)} fixes acknowledged "
        f"({ledger.batches_acked} batches of {BATCH}, {ledger.single_acked} single), "
        f"{in_flight_before} in flight at the kill, {len(ledger.unanswered)} never answered; "
        f"{len(stored)} in the track, {len(lost)} acknowledged fixes lost, "
        f"{len(in_track & ledger.unanswered)} unanswered fixes stored anyway"
    )
    assert len(ledger.acked) >= KILL_AFTER
    assert ledger.single_acked > 0 and ledger.batches_acked > 0
    assert ledger.unanswered, "the kill came between requests: nothing was in flight"
    assert lost == set()  # 0 lost: every 202 was durable
    assert len(stored) == len(in_track)  # each fix once
    assert in_track <= ledger.sent  # nothing the clients did not send
    assert ledger.sent == ledger.acked | ledger.unanswered
    assert in_track - ledger.acked <= ledger.unanswered

    # The clients' retry after the restart: the unanswered fixes again, every one
    # accepted, those the dead server had committed answered as duplicates.
    retry = sorted(ledger.unanswered)
    with (
        running_server(avl_db.url, SECRET, command=logged_to(log)) as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        accepted = duplicates = 0
        for start in range(0, len(retry), 1000):
            chunk = retry[start : start + 1000]
            r = c.post(
                "/api/positions",
                json={"positions": [body_fix(key, i) for i, key in enumerate(chunk)]},
                headers=avl_db.headers("dispatcher"),
            )
            assert r.status_code == 202, r.text
            got = r.json()
            assert got["refused"] == [] and got["flagged"] == [], got
            accepted += got["accepted"]
            duplicates += got["duplicates"]
    assert accepted == len(retry)
    assert duplicates == len(in_track & ledger.unanswered)
    after = stored_keys(avl_db, ours)
    assert len(after) == len(set(after)) and set(after) == ledger.sent


def test_a_trackers_id_never_reaches_the_access_log(avl_db: LiveDb, tmp_path: Path) -> None:
    (unit_id,) = avl_db.add_units(1)
    with avl_db.sessions() as s:
        callsign = s.execute(text("SELECT callsign FROM unit WHERE id = :u"), {"u": unit_id})
        callsign = callsign.scalar_one()
    env = {
        **os.environ,
        "DATABASE_URL": avl_db.url,
        "EMERGENCY_SECRET_KEY": SECRET,
        "EMERGENCY_ENV": "development",
    }
    env.pop("EMERGENCY_DATABASE_URL", None)
    emergency = cli_command()
    added = subprocess.run(  # noqa: S603 - fixed argv
        [*emergency, "device", "add", "--unit", callsign, "--name", "phone"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer = json.loads(added.stdout.strip().splitlines()[-1])
    secret = answer["device_id"]
    assert answer["unit"] == callsign and len(secret) >= 24
    unknown = "not-a-device-" + secret[::-1]

    log = tmp_path / "server.log"
    now = int(time.time())
    with (
        running_server(avl_db.url, SECRET, command=logged_to(log)) as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        r = c.get(
            "/api/avl/osmand",
            params={"id": secret, "lat": 60.17, "lon": 24.94, "timestamp": now - 20},
        )
        assert r.status_code == 200, r.text
        r = c.post(
            "/api/avl/osmand",
            params={"deviceid": secret, "lat": 60.1701, "lon": 24.9401, "timestamp": now - 10},
        )
        assert r.status_code == 200, r.text
        r = c.get(
            "/api/avl/osmand",
            params={"lat": 60.17, "lon": 24.94, "speed": 3, "id": unknown},
        )
        assert r.status_code == 403, r.text
        assert secret not in r.text and unknown not in r.text
    listed = subprocess.run(  # noqa: S603 - fixed argv
        [*emergency, "device", "list"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    output = log.read_text(encoding="utf-8", errors="replace")
    access = [line for line in output.splitlines() if "/api/avl/osmand" in line]
    print(f"\n{len(access)} access lines, e.g. {access[:1]}")
    assert len(access) == 3, output[-3000:]
    assert secret not in output and unknown not in output
    assert "GET /api/avl/osmand?id=***&lat=60.17&lon=24.94" in output
    assert "POST /api/avl/osmand?deviceid=***&lat=" in output
    assert '&id=*** HTTP/1.1" 403' in output
    assert secret not in listed.stdout and str(answer["id"]) in listed.stdout
    with avl_db.engine.connect() as conn:
        hashes = conn.execute(
            text("SELECT token_hash FROM device WHERE unit_id = :u"), {"u": unit_id}
        )
        assert hashes.scalars().all() == [device_hash(secret)]
        taken = conn.execute(
            text("SELECT source, device_id FROM unit_position WHERE unit_id = :u"), {"u": unit_id}
        ).all()
    assert taken == [("osmand", answer["id"]), ("osmand", answer["id"])]
