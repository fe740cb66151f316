"""The tests' secret key and password, the small city the ``world`` fixture builds
(``World``), and GeoJSON helpers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from command.auth.models import User
from resources.models import Station, Unit

# tests/conftest.py puts it in EMERGENCY_SECRET_KEY: sessions outside an app (fixtures,
# the CLI) seal audit rows with it, and the test apps use it as their own secret.
TEST_SECRET = secrets.token_urlsafe(48)
PASSWORD = "correct-horse-battery"


@dataclass
class World:
    """A small city: two stations, units, one user per role, and their auth headers."""

    station: Station
    unit_a: Unit
    unit_b: Unit
    users: dict[str, User]
    headers: dict[str, dict[str, str]]

    def h(self, role: str) -> dict[str, str]:
        return self.headers[role]


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}
