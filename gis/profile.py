"""Driving profiles: which road classes are used and at what speed.

Two profiles ship: ``emergency`` (OSM ``highway`` classes, read by the OSM loader) and
``china`` (the Chinese road classes of surveying and planning layers, 高速公路 ... 支路, each
with the OSM class it draws as, for GIS line layers). A profile may also name aliases of its
classes, a default speed for classes it does not know and the OSM class of each class.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = PROFILE_DIR / "emergency.yaml"
CHINA_PROFILE = PROFILE_DIR / "china.yaml"
BUILTIN_PROFILES = {"emergency": DEFAULT_PROFILE, "china": CHINA_PROFILE}
_MPH = 1.609344
# Fields added for GIS layers; left out of the key while empty, so an OSM profile's key
# (and the graph caches named after it) stays what it was before they existed.
_OPTIONAL_FIELDS = ("default_speed_kph", "osm_class", "aliases")
_SPACES = re.compile(r"[\s_\-]+")


def fold_class(value: str) -> str:
    """A class name compared loosely: case-folded, runs of spaces, ``_`` and ``-`` as one
    space (``Provincial_Road`` and ``provincial road`` are the same class)."""
    return _SPACES.sub(" ", value.strip().casefold()).strip()


@dataclass(frozen=True)
class Profile:
    """Speeds by road class, in km/h, and the access rules of a vehicle.

    ``speeds_kph`` is keyed by the class names the profile knows (OSM ``highway`` values for
    the OSM profiles). ``osm_class`` gives the OSM class a class is drawn as (tiles filter
    and style by OSM classes; a class absent there is its own OSM class). ``aliases`` maps
    other spellings to a class. ``default_speed_kph`` is the speed of a class the profile
    does not know (GIS layers only; the OSM loader leaves unknown classes out).
    """

    name: str
    speeds_kph: dict[str, float]
    maxspeed_factor: float = 1.0
    blocked_access: tuple[str, ...] = ("no",)
    respect_oneway: bool = True
    extra: dict[str, object] = field(default_factory=dict)
    default_speed_kph: float | None = None
    osm_class: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A short hash of everything that changes the compiled graph."""
        data: dict[str, Any] = asdict(self)
        for name in _OPTIONAL_FIELDS:
            if not data[name]:
                del data[name]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def fallback_speed_kph(self) -> float:
        """The speed of an unknown class: ``default_speed_kph``, else the OSM ``road``
        class (a road of unknown type), else the slowest class."""
        if self.default_speed_kph is not None:
            return self.default_speed_kph
        return self.speeds_kph.get("road", min(self.speeds_kph.values()))

    def speed_kph(self, highway: str, maxspeed: str | None) -> float:
        """Travel speed on a way of class ``highway`` with an optional maxspeed tag."""
        speed = self.speeds_kph[highway]
        limit = parse_maxspeed(maxspeed)
        if limit is not None:
            speed = min(speed, limit * self.maxspeed_factor)
        return speed

    def lookup(self, value: str) -> str | None:
        """The class ``value`` names (exactly, loosely or through an alias), or None."""
        if value in self.speeds_kph:
            return value
        folded = fold_class(value)
        for cls in self.speeds_kph:
            if fold_class(cls) == folded:
                return cls
        for alias, cls in self.aliases.items():
            if fold_class(alias) == folded:
                return cls
        return None

    def highway_of(self, cls: str) -> str:
        """The OSM ``highway`` class that ``cls`` is drawn as."""
        return self.osm_class.get(cls, cls)


def load_profile(path: Path | str | None = None) -> Profile:
    """Read a profile YAML (the emergency-vehicle default when ``path`` is None)."""
    source = Path(path or DEFAULT_PROFILE)
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("speeds_kph"), dict):
        raise ValueError(f"{source.name}: a profile needs speeds_kph, a map of class to km/h")
    speeds = {str(k): float(v) for k, v in data["speeds_kph"].items()}
    if not speeds or min(speeds.values()) <= 0:
        raise ValueError("profile speeds_kph must be positive numbers")
    default = data.get("default_speed_kph")
    if default is not None and (not isinstance(default, int | float) or default <= 0):
        raise ValueError("profile default_speed_kph must be a positive number")
    osm_class = {str(k): str(v) for k, v in (data.get("osm_class") or {}).items()}
    aliases = {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}
    for label, names in (("osm_class", osm_class), ("aliases", aliases.values())):
        unknown = sorted(set(names) - set(speeds))
        if unknown:
            raise ValueError(f"profile {label} names classes not in speeds_kph: {unknown}")
    return Profile(
        name=str(data.get("name", "custom")),
        speeds_kph=speeds,
        maxspeed_factor=float(data.get("maxspeed_factor", 1.0)),
        blocked_access=tuple(str(v) for v in data.get("blocked_access", ["no"])),
        respect_oneway=bool(data.get("respect_oneway", True)),
        default_speed_kph=None if default is None else float(default),
        osm_class=osm_class,
        aliases=aliases,
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
