"""Scenarios for the drill tests, on the tests' city (Helsinki, the ``road_engine`` fixture)."""

from __future__ import annotations

from typing import Any

# Inside the tests' extract of central Helsinki (24.935..24.953 E, 60.164..60.179 N).
CENTRE = (24.945, 60.169)
BOX = {
    "type": "Polygon",
    "coordinates": [
        [[24.937, 60.165], [24.952, 60.165], [24.952, 60.178], [24.937, 60.178], [24.937, 60.165]]
    ],
}


def scenario_dict(**changes: Any) -> dict[str, Any]:
    """A small valid scenario: three stations, five units, two call generators."""
    base: dict[str, Any] = {
        "name": "helsinki test",
        "start": "2026-07-01T08:30:00+03:00",
        "duration_s": 86_400,
        "seed": 7,
        "replications": 2,
        "policies": ["nearest"],
        "stations": [
            {"name": "W", "lon": 24.937, "lat": 60.171},
            {"name": "M", "lon": 24.945, "lat": 60.169},
            {"name": "E", "lon": 24.952, "lat": 60.177},
        ],
        "units": [
            {"callsign": "W1", "station": "W", "capabilities": ["als"]},
            {"callsign": "M1", "station": "M", "capabilities": ["als"]},
            {"callsign": "M2", "station": "M", "capabilities": ["fire"]},
            {"callsign": "E1", "station": "E", "capabilities": ["fire"]},
            {"callsign": "E2", "station": "E", "capabilities": ["als"]},
        ],
        "response_plans": {
            "fire": {"severe": [{"capability": "fire", "count": 2}]},
            "medical": {"moderate": [{"capability": "als", "count": 1}]},
        },
        "service": {"on_scene_s": {"dist": "exponential", "mean": 1200}},
        "generators": [
            {"type": "medical", "rate_per_h": 2.0, "polygon": BOX},
            {"type": "fire", "severity": "severe", "rate_per_h": 0.3, "points": [list(CENTRE)]},
        ],
    }
    base.update(changes)
    return base
