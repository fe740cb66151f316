"""The one Prometheus registry every package reports into (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

registry = CollectorRegistry()
