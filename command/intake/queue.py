"""Group commit for alert intake: alerts that arrive together are taken in together.

A warning system posts in bursts (a storm front, a cascade of updates). Taking each alert
in its own transaction costs a commit, a hold of the audit chain's lock and an outbox
statement per alert; at a few hundred alerts a second those fixed costs, not the alerts,
fill the machine. So posts join a queue and are taken in in batches: one transaction per
batch, in arrival order (each alert sees the ones before it, exactly as if they had come
one by one), one audit-chain segment and one outbox statement per topic at its commit.
A batch is whatever has queued while the previous one ran, so under light load every
batch is one alert and nothing waits for a timer.

If a batch fails (an alert that breaks a rule of the database, a deadlock with another
process), it is rolled back whole and its alerts are taken in again one by one, each in
its own transaction: one bad alert fails only itself.

Admission: at most ``max_waiting`` alerts wait per process; beyond that, and for an alert
not started within ``timeout_s``, the answer is :class:`Busy` (HTTP 503 + Retry-After)
and nothing is stored, so the sender retries instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from command.auth.service import SignedRequest
from core.security import Principal

Answer = tuple[dict[str, Any], bool]  # (the answer, created)


class Busy(Exception):
    """The intake is full or this alert waited too long for a turn; nothing was stored."""


@dataclass
class Item:
    """One posted alert waiting to be taken in."""

    body: bytes
    content_type: str
    caller: Principal | SignedRequest  # a signature is checked with the batch
    deadline: float  # monotonic: not started by then -> Busy
    future: asyncio.Future[Answer] = field(repr=False)


# Takes a batch in; returns per item its answer or the exception to raise for it.
TakeIn = Callable[[Sequence[Item]], list[Answer | BaseException]]


class AlertQueue:
    """Per-process queue of posted alerts, drained in batches by one task at a time.

    The draining task exists only while there is work (no long-lived task bound to an
    event loop): the post that finds nobody draining starts it, and it ends when the
    queue is empty."""

    def __init__(
        self, take_in: TakeIn, *, max_batch: int, max_waiting: int, timeout_s: float
    ) -> None:
        self.take_in = take_in
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.timeout_s = timeout_s
        self._waiting: list[Item] = []
        self._draining = False
        self._current: list[Item] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(
        self, body: bytes, content_type: str, caller: Principal | SignedRequest
    ) -> Answer:
        """Queue one alert and wait for its answer; raises what intake raised for it."""
        if len(self._waiting) >= self.max_waiting:
            raise Busy("intake queue full")
        loop = asyncio.get_running_loop()
        item = Item(body, content_type, caller, time.monotonic() + self.timeout_s,
                    loop.create_future())  # fmt: skip
        self._waiting.append(item)
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await item.future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                now = time.monotonic()
                live = []
                for item in batch:
                    if item.future.done():  # the poster went away before its turn
                        continue
                    if now > item.deadline:
                        item.future.set_exception(Busy("waited too long for a turn"))
                        continue
                    live.append(item)
                if not live:
                    continue
                self._current = live
                try:
                    results = await run_in_threadpool(self.take_in, live)
                except BaseException as exc:  # every waiter must hear of it
                    results = [exc] * len(live)
                for item, result in zip(live, results, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(result, BaseException):
                        item.future.set_exception(result)
                    else:
                        item.future.set_result(result)
                self._current = []
        finally:
            self._draining = False
            # Only if this task itself was cancelled (the server stopping): nobody hangs.
            for item in (*self._current, *self._waiting):
                if not item.future.done():
                    item.future.set_exception(Busy("intake stopped"))
            self._current = []
            self._waiting.clear()
