"""Prometheus metrics of the realtime hub and its bus (in the shared registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from core.metrics import registry

CONNECTIONS = Gauge(
    "emergency_ws_connections", "Open WebSocket connections", ["role"], registry=registry
)
REFUSED = Counter(
    "emergency_ws_refused_total",
    "WebSocket connections refused or closed by the hub",
    ["reason"],
    registry=registry,
)
EVENTS_IN = Counter(
    "emergency_bus_events_total", "Events the hub received from the bus", registry=registry
)
EVENTS_SENT = Counter(
    "emergency_ws_events_sent_total",
    "Events sent to clients (replays and re-sends included)",
    ["kind"],
    registry=registry,
)
LAG = Histogram(
    "emergency_ws_event_lag_seconds",
    "From the event's commit to its send on a socket (live events; per message, so a "
    "batch counts its oldest event)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=registry,
)
BUS_LISTENING = Gauge(
    "emergency_bus_listening",
    "1 while the LISTEN connection is up (0: catching up by polling only)",
    registry=registry,
)
BUS_RECONNECTS = Counter(
    "emergency_bus_reconnects_total", "LISTEN connection re-opens", registry=registry
)
BUS_GAPS = Counter(
    "emergency_bus_gaps_total",
    "Gaps in a topic's seq the hub filled from the event table",
    registry=registry,
)
UNACKED = Gauge(
    "emergency_tasks_unacknowledged",
    "Task assignments sent to units and not yet acknowledged by their phones",
    registry=registry,
)
UNACKED_AGE = Gauge(
    "emergency_tasks_unacknowledged_oldest_seconds",
    "Age of the oldest unacknowledged task assignment",
    registry=registry,
)
BUS_LAG = Histogram(
    "emergency_bus_lag_seconds",
    "From an event's commit to the hub's fan-out of it (the bus's share of the lag)",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=registry,
)
