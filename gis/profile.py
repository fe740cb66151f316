"""Driving profiles: which road classes are used and at what speed."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

DEFAULT_PROFILE = Path(__file__).resolve().parent / "profiles" / "emergency.yaml"
_MPH = 1.609344


@dataclass(frozen=True)
class Profile:
    """Speeds by OSM ``highway`` class, in km/h, and the access rules of a vehicle."""

    name: str
    speeds_kph: dict[str, float]
    maxspeed_factor: float = 1.0
    blocked_access: tuple[str, ...] = ("no",)
    respect_oneway: bool = True
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A short hash of everything that changes the compiled graph."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def speed_kph(self, highway: str, maxspeed: str | None) -> float:
        """Travel speed on a way of class ``highway`` with an optional maxspeed tag."""
        speed = self.speeds_kph[highway]
        limit = parse_maxspeed(maxspeed)
        if limit is not None:
            speed = min(speed, limit * self.maxspeed_factor)
        return speed


def load_profile(path: Path | str | None = None) -> Profile:
    """Read a profile YAML (the emergency-vehicle default when ``path`` is None)."""
    data = yaml.safe_load(Path(path or DEFAULT_PROFILE).read_text(encoding="utf-8"))
    speeds = {str(k): float(v) for k, v in data["speeds_kph"].items()}
    if not speeds or min(speeds.values()) <= 0:
        raise ValueError("profile speeds_kph must be positive numbers")
    return Profile(
        name=str(data.get("name", "custom")),
        speeds_kph=speeds,
        maxspeed_factor=float(data.get("maxspeed_factor", 1.0)),
        blocked_access=tuple(str(v) for v in data.get("blocked_access", ["no"])),
        respect_oneway=bool(data.get("respect_oneway", True)),
    )


_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?\s*$")


def parse_maxspeed(value: str | None) -> float | None:
    """km/h from an OSM maxspeed value (``50``, ``30 mph``); None for words or junk."""
    if not value:
        return None
    match = _NUMBER.match(value.split(";")[0])
    if not match:
        return None
    speed = float(match.group(1))
    if match.group(2) == "mph":
        speed *= _MPH
    return speed if speed > 0 else None
