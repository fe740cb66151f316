"""The failover scenario: two ``emergency serve`` processes on one database, phones and big
screens connected to both through failover proxies, a dispatcher sending 500 dispatches,
and one process SIGKILLed halfway (``run_failover``). tests/realtime/test_failover.py
asserts on it; bench/failover.py times it against the same run without a kill.

Clients reach the servers only through :class:`tests.support.proxy.FailoverProxy`, two
"sites" with opposite backend orders ([A, B] and [B, A]), so half the clients live on each
process and the clients of a dead process reconnect, through the same URL, to the other:
the production shape (one address, a balancer in front). The clients
(tests/support/reconnecting.py) do what the real ones do (frontend/static/live.js and responder.js): reconnect with a short backoff,
hello with ``resume`` (the last seq applied per topic), apply each seq once, ack the
unit's own topic (again for a re-sent event), and send a task step again with the same
idempotency key until its answer arrives. The dispatcher sends an Idempotency-Key with
every POST and retries a request cut off by the dying server with that key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
from sqlalchemy import func, select, text

from command.tasks.models import Task
from core.outbox import Event
from realtime.store import TopicAck
from tests.support.live import SECRET, LiveDb, incident_feature, topic_heads
from tests.support.proxy import FailoverProxy
from tests.support.reconnecting import Client, Phone
from tests.support.servers import running_server

TASK_EVENTS = ("task.assigned", "task.acknowledged", "task.on_scene", "task.done")
# Quick re-sends of unacknowledged tasks, as the other realtime tests use.
SERVER_ENV = {"EMERGENCY_WS_ACK_TIMEOUT_S": "1"}


@dataclass
class Scenario:
    """What to run: ``kill_at`` is the dispatch count after which process A is SIGKILLed
    (None: no kill, the peer run)."""

    dispatches: int = 500
    units: int = 40
    screens: int = 4
    per_request: int = 5  # units per dispatch request (one incident each)
    dispatchers: int = 2  # concurrent dispatcher workers
    kill_at: int | None = 250


@dataclass
class Dispatcher:
    """Incidents and dispatches over HTTP through a proxy; every POST carries an
    Idempotency-Key and is retried with it when the answer is lost."""

    db: LiveDb
    http: httpx.AsyncClient
    phones: list[Phone]
    scenario: Scenario
    dispatched: int = 0
    claimed: int = 0  # dispatched, or in a request on its way
    incidents: int = 0
    retries: int = 0
    refused: list[str] = field(default_factory=list)
    kill: Callable[[int], None] | None = None  # called once with the count at kill_at
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # keys' prefix

    async def post(self, path: str, body: dict[str, Any], key: str) -> Any:
        headers = {**self.db.headers("dispatcher"), "Idempotency-Key": key}
        for _ in range(100):
            try:
                r = await self.http.post(path, json=body, headers=headers)
            except httpx.TransportError:  # cut off: committed or not, the same key again
                self.retries += 1
                await asyncio.sleep(0.1)
                continue
            if r.status_code in (502, 503, 504):
                self.retries += 1
                await asyncio.sleep(0.1)
                continue
            return r
        raise AssertionError(f"{path} kept failing")

    async def worker(self) -> None:
        s = self.scenario
        while self.claimed < s.dispatches:
            wanted = min(s.per_request, s.dispatches - self.claimed)
            free = [p for p in self.phones if p.free][:wanted]
            if len(free) < wanted:
                await asyncio.sleep(0.02)
                continue
            self.claimed += wanted  # the other workers see these as taken at once
            for p in free:
                p.free = False
            self.incidents += 1
            n = self.incidents
            r = await self.post(
                "/api/incidents", incident_feature(f"failover {n}"), f"incident:{self.run}:{n}"
            )
            assert r.status_code == 201, r.text
            r = await self.post(
                f"/api/incidents/{r.json()['id']}/dispatch",
                {"unit_ids": [p.unit_id for p in free]},
                f"dispatch:{self.run}:{n}",
            )
            if r.status_code != 201:
                self.refused.append(r.text)
                self.claimed -= wanted
                for p in free:
                    p.free = True
                continue
            before = self.dispatched
            self.dispatched += len(r.json())
            crossed = s.kill_at is not None and before < s.kill_at <= self.dispatched
            if crossed and self.kill is not None:
                self.kill(self.dispatched)


def _acked(db: LiveDb) -> dict[str, int]:
    with db.sessions() as s:
        return {t: int(n) for t, n in s.execute(select(TopicAck.topic, TopicAck.seq))}


async def _drive(
    db: LiveDb, scenario: Scenario, sites: list[str], proc_a: subprocess.Popen[bytes]
) -> dict[str, Any]:
    units = db.add_units(scenario.units)
    phones = [Phone(sites[i % 2], u, db.token(db.responder(u))) for i, u in enumerate(units)]
    screens = [
        Client(f"screen {i}", sites[i % 2], db.token("commander"), ["situation"])
        for i in range(scenario.screens)
    ]
    clients: list[Client] = [*phones, *screens]
    runners = [asyncio.create_task(c.run()) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.live.wait() for c in clients)), 60)
    out: dict[str, Any] = {}
    heads_read: list[asyncio.Task[dict[str, int]]] = []

    def kill(dispatched: int) -> None:
        os.kill(proc_a.pid, signal.SIGKILL)  # in the middle of traffic, no quiet first
        out.update(kill_at=time.monotonic(), dispatched_at_kill=dispatched)
        # The heads the clients of A must reach, read at once (B goes on committing).
        heads_read.append(asyncio.create_task(asyncio.to_thread(topic_heads, db.sessions)))

    async with httpx.AsyncClient(base_url=sites[0], timeout=30) as http:
        dispatcher = Dispatcher(db, http, phones, scenario, kill=kill)
        started = time.monotonic()
        workers = [dispatcher.worker() for _ in range(scenario.dispatchers)]
        await asyncio.wait_for(asyncio.gather(*workers), 600)
        ended = time.monotonic()
        if heads_read:
            out["heads_at_kill"] = await heads_read[0]
        deadline = time.monotonic() + 180
        while sum(len(p.finished) for p in phones) < scenario.dispatches:
            assert time.monotonic() < deadline, "tasks not all done in time"
            await asyncio.sleep(0.1)
        heads = await asyncio.to_thread(topic_heads, db.sessions)
        while True:  # every client at its head, every unit topic acked to its head
            acked = await asyncio.to_thread(_acked, db)
            behind = [c.name for c in clients for t in c.topics if c.last.get(t, 0) < heads[t]]
            behind += [p.name for p in phones if acked.get(p.topic, 0) < heads[p.topic]]
            if not behind:
                break
            assert time.monotonic() < deadline, f"behind: {behind[:5]}"
            await asyncio.sleep(0.1)
    for c in clients:
        c.stopping = True
    await asyncio.wait_for(asyncio.gather(*runners), 30)
    out.update(
        phones=phones,
        screens=screens,
        dispatcher=dispatcher,
        started=started,
        ended=ended,
        heads=heads,
        acked=acked,
    )
    return out


def run_failover(db: LiveDb, scenario: Scenario) -> dict[str, Any]:
    """Run ``scenario`` on ``db`` (units are added to it); check everything the issue asks
    (AssertionError naming the first miss) and return the figures."""
    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        a = stack.enter_context(
            running_server(db.url, SECRET, extra_env=SERVER_ENV, started=procs.append)
        )
        b = stack.enter_context(running_server(db.url, SECRET, extra_env=SERVER_ENV))
        hosts = [("127.0.0.1", int(base.rsplit(":", 1)[1])) for base in (a, b)]
        site_1 = stack.enter_context(FailoverProxy(hosts))
        site_2 = stack.enter_context(FailoverProxy(hosts[::-1]))
        run = asyncio.run(_drive(db, scenario, [site_1.url, site_2.url], procs[0]))
    check(db, scenario, run)
    return figures(scenario, run)


def check(db: LiveDb, scenario: Scenario, run: dict[str, Any]) -> None:
    """Exact values: no task lost or doubled, no gap, every task delivered and acked."""
    phones: list[Phone] = run["phones"]
    screens: list[Client] = run["screens"]
    dispatcher: Dispatcher = run["dispatcher"]
    heads, acked = run["heads"], run["acked"]
    n = scenario.dispatches
    assert dispatcher.refused == [], dispatcher.refused[:3]
    assert dispatcher.dispatched == n
    for c in [*phones, *screens]:
        assert c.gaps == [] and c.errors == [], (c.name, c.gaps[:3], c.errors[:3])
    with db.sessions() as s:
        by_unit: dict[int, set[int]] = {}
        for task_id, unit_id in s.execute(select(Task.id, Task.unit_id)):
            by_unit.setdefault(unit_id, set()).add(task_id)
        pairs = s.execute(
            select(func.count()).select_from(
                select(Task.incident_id, Task.unit_id)
                .group_by(Task.incident_id, Task.unit_id)
                .having(func.count() > 1)
                .subquery()
            )
        ).scalar_one()
        assert pairs == 0  # no (incident, unit) with two tasks: no dispatch took effect twice
        statuses = dict(s.execute(select(Task.status, func.count()).group_by(Task.status)).all())
        assert statuses == {"done": n}, statuses
        assert s.scalar(select(func.count()).where(Task.acknowledged_at.is_(None))) == 0
        incidents = s.execute(text("SELECT count(*) FROM incident")).scalar_one()
        assert incidents == dispatcher.incidents  # no incident reported twice by a retry
        per_type = dict(
            s.execute(
                select(Event.type, func.count())
                .where(Event.topic == "situation", Event.type.in_(TASK_EVENTS))
                .group_by(Event.type)
            ).all()
        )
        assert per_type == {t: n for t in TASK_EVENTS}, per_type  # one per task and kind
        bad = s.execute(
            text("SELECT topic FROM event GROUP BY topic HAVING count(*) <> max(seq)")
        ).all()
        assert bad == []
    for p in phones:
        head = heads[p.topic]
        assert p.applied[p.topic] == list(range(1, head + 1)), (p.name, head)
        assert sorted(p.assigned) == sorted(by_unit.get(p.unit_id, set())), p.name
        assert sorted(p.finished) == sorted(p.assigned), p.name
        assert acked[p.topic] == head, p.name
    for c in screens:
        start = c.resynced["situation"]
        assert c.applied["situation"] == list(range(start + 1, heads["situation"] + 1)), c.name


def _resumed_after(
    c: Client, kill_at: float, heads_at_kill: dict[str, int]
) -> tuple[float, float, float] | None:
    """Seconds from the kill until ``c`` saw its socket end, had a welcome from the
    survivor, and had every topic up to its head at the kill (and its welcome); None for a
    client that never lost its socket."""
    closed = [t for t in c.closes if t >= kill_at]
    if not closed:
        return None
    welcome = min(t for t in c.welcomes if t >= kill_at)
    caught_up = max(
        c.arrived[t].get(heads_at_kill.get(t, 0), kill_at)
        if c.last.get(t, 0) >= heads_at_kill.get(t, 0)
        else float("inf")
        for t in c.topics
    )
    return closed[0] - kill_at, welcome - kill_at, max(welcome, caught_up) - kill_at


def figures(scenario: Scenario, run: dict[str, Any]) -> dict[str, Any]:
    phones: list[Phone] = run["phones"]
    screens: list[Client] = run["screens"]
    dispatcher: Dispatcher = run["dispatcher"]
    clients: list[Client] = [*phones, *screens]
    started, ended = run["started"], run["ended"]
    out: dict[str, Any] = {
        "dispatches": dispatcher.dispatched,
        "units": scenario.units,
        "screens": scenario.screens,
        "killed": scenario.kill_at is not None,
        "tasks_lost": 0,  # check() passed: every task delivered, worked and acked
        "duplicate_effects": 0,
        "sequence_gaps": sum(len(c.gaps) for c in clients),
        "duplicate_deliveries_dropped": sum(c.duplicates for c in clients),
        "dispatcher_retries": dispatcher.retries,
        "phone_step_retries": sum(p.retries for p in phones),
        "wall_s": round(ended - started, 2),
        "dispatches_per_s": round(dispatcher.dispatched / (ended - started), 1),
    }
    out["reconnects"] = sum(len(c.closes) for c in clients)
    if scenario.kill_at is None:
        return out
    kill_at, at_kill = run["kill_at"], run["dispatched_at_kill"]
    times = [
        r for c in clients if (r := _resumed_after(c, kill_at, run["heads_at_kill"])) is not None
    ]
    closed, welcomed, resumed = ([t[i] for t in times] for i in range(3))
    out.update(
        clients_of_killed=len(times),
        clients_total=len(clients),
        closed_median_s=_median(closed),
        welcome_median_s=_median(welcomed),
        resume_median_s=_median(resumed),
        resume_max_s=round(max(resumed), 3) if resumed else None,
        dispatches_per_s_before=round(at_kill / (kill_at - started), 1),
        dispatches_per_s_after=round((dispatcher.dispatched - at_kill) / (ended - kill_at), 1),
    )
    return out


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None
