"""Garbage-collection pauses as a Prometheus histogram (a full collection stops the event
loop: with thousands of sockets open it is worth watching)."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

from core.metrics import registry

GC_PAUSE = Histogram(
    "python_gc_pause_seconds",
    "Garbage collection pauses, by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=registry,
)
_started: list[float] = [0.0]


def _callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        GC_PAUSE.labels(str(info.get("generation", "?"))).observe(time.perf_counter() - _started[0])


def watch() -> None:
    """Start observing pauses (once per process)."""
    if _callback not in gc.callbacks:
        gc.callbacks.append(_callback)
