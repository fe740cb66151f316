"""The mapping file of a GIS road layer (``emergency load-roads FILE --mapping ROADS.yaml``).

It says which column holds each line's class, speed, name, one-way flag and travel time, the
layer's coordinate system, how far apart line ends may be and still join, and which profile
gives each class its speed::

    crs: EPSG:4547             # default: the file's own
    fields: {class: 道路等级, speed: 速度, name: 名称, oneway: 单行}   # all optional but class
    speed_unit: kph            # kph | mps | mph
    oneway: column             # drawn: every line one-way as drawn; column: yes/no/-1
    oneway_values: {2: yes, 3: -1, 1: no}   # column values meaning yes / -1 / no
    snap_tolerance_m: 1.0
    profile: china             # emergency | china | a profile YAML; default: both, in turn
    skip_classes: [人行道]     # lines of these classes are left out

Unknown keys and bad values raise ValueError naming the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gis.profile import BUILTIN_PROFILES, Profile, load_profile

SPEED_UNITS_KPH = {"kph": 1.0, "mps": 3.6, "mph": 1.609344}
FIELD_KEYS = ("class", "speed", "name", "oneway", "travel_time")
MAPPING_KEYS = (
    "crs",
    "layer",
    "fields",
    "speed_unit",
    "oneway",
    "oneway_values",
    "snap_tolerance_m",
    "profile",
    "skip_classes",
)
MAX_SNAP_TOLERANCE_M = 500.0


@dataclass(frozen=True)
class RoadMapping:
    """How a line layer's columns make roads (parsed from the mapping YAML).

    ``oneway`` is ``both`` (every line two-way), ``drawn`` (every line one-way in the
    direction it is drawn) or ``column`` (``oneway_field`` says yes/no/-1 per line).
    ``profile`` is None (classes looked up in the OSM emergency profile, then the Chinese
    one), ``emergency``, ``china`` or the absolute path of a profile YAML.
    """

    class_field: str
    speed_field: str | None = None
    name_field: str | None = None
    oneway_field: str | None = None
    travel_time_field: str | None = None
    crs: str | None = None
    layer: str | None = None
    speed_unit: str = "kph"
    oneway: str = "both"
    oneway_values: dict[str, str] = field(default_factory=dict)
    snap_tolerance_m: float = 1.0
    profile: str | None = None
    skip_classes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The mapping in its YAML form; :func:`parse_mapping` reads it back unchanged."""
        columns = {
            "class": self.class_field,
            "speed": self.speed_field,
            "name": self.name_field,
            "oneway": self.oneway_field,
            "travel_time": self.travel_time_field,
        }
        out: dict[str, Any] = {
            "crs": self.crs,
            "layer": self.layer,
            "fields": {k: v for k, v in columns.items() if v is not None},
            "speed_unit": self.speed_unit,
            "oneway": None if self.oneway == "both" else self.oneway,
            "oneway_values": dict(self.oneway_values),
            "snap_tolerance_m": self.snap_tolerance_m,
            "profile": self.profile,
            "skip_classes": list(self.skip_classes),
        }
        return {k: v for k, v in out.items() if v not in (None, [], {})}

    @property
    def key(self) -> str:
        """A short hash of the mapping (a changed mapping builds a new graph)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def profiles(self) -> tuple[Profile, ...]:
        """The profiles classes are looked up in, in order."""
        if self.profile is None:
            return (
                load_profile(BUILTIN_PROFILES["emergency"]),
                load_profile(BUILTIN_PROFILES["china"]),
            )
        return (load_profile(BUILTIN_PROFILES.get(self.profile, self.profile)),)


def load_mapping(path: Path | str) -> RoadMapping:
    """Read and check a road mapping YAML (a profile path in it is relative to the file)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the road mapping {path.name}: {exc}") from exc
    return parse_mapping(data, base_dir=path.parent)


def parse_mapping(data: Any, *, base_dir: Path | None = None) -> RoadMapping:
    """A :class:`RoadMapping` from the mapping's YAML data; ValueError naming the key for
    an unknown key or a bad value."""
    if not isinstance(data, dict):
        raise ValueError("the road mapping must be a YAML mapping (crs, fields, ...)")
    _no_unknown(data, MAPPING_KEYS, "")
    columns = data.get("fields")
    if not isinstance(columns, dict):
        raise ValueError("fields: a mapping of class, speed, name, oneway, travel_time to columns")
    _no_unknown(columns, FIELD_KEYS, "fields.")
    names = {key: _text(columns.get(key), f"fields.{key}") for key in FIELD_KEYS}
    if names["class"] is None:
        raise ValueError("fields.class is required: the column holding the road class")
    unit = data.get("speed_unit", "kph")
    if unit not in SPEED_UNITS_KPH:
        raise ValueError(f"speed_unit: {unit!r} is not one of kph, mps, mph")
    oneway = _oneway_mode(data.get("oneway"), names["oneway"])
    values = _oneway_values(data.get("oneway_values") or {}, oneway)
    tolerance = data.get("snap_tolerance_m", 1.0)
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 <= tolerance <= MAX_SNAP_TOLERANCE_M
    ):
        raise ValueError(
            f"snap_tolerance_m: {tolerance!r} is not a number of metres from 0 to "
            f"{MAX_SNAP_TOLERANCE_M:g}"
        )
    skip = data.get("skip_classes") or []
    if not isinstance(skip, list):
        raise ValueError("skip_classes: a list of class values to leave out")
    return RoadMapping(
        class_field=names["class"],
        speed_field=names["speed"],
        name_field=names["name"],
        oneway_field=names["oneway"],
        travel_time_field=names["travel_time"],
        crs=_crs(data.get("crs")),
        layer=_text(data.get("layer"), "layer"),
        speed_unit=unit,
        oneway=oneway,
        oneway_values=values,
        snap_tolerance_m=float(tolerance),
        profile=_profile(data.get("profile"), base_dir),
        skip_classes=tuple(str(v) for v in skip),
    )


def _no_unknown(data: dict[Any, Any], known: tuple[str, ...], prefix: str) -> None:
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        raise ValueError(
            f"unknown key {prefix}{unknown[0]} in the road mapping (known: {', '.join(known)})"
        )


def _text(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: {value!r} is not a column name")
    return value


def _oneway_mode(value: Any, column: str | None) -> str:
    if value is None:
        return "both" if column is None else "column"
    if value == "drawn":
        if column is not None:
            raise ValueError(
                "oneway: drawn makes every line one-way as drawn; drop fields.oneway "
                "or say oneway: column"
            )
        return "drawn"
    if value == "column":
        if column is None:
            raise ValueError("oneway: column needs fields.oneway, the column saying yes/no/-1")
        return "column"
    raise ValueError(f"oneway: {value!r} is not drawn or column")


def _oneway_values(values: Any, mode: str) -> dict[str, str]:
    if not isinstance(values, dict):
        raise ValueError("oneway_values: a mapping of column value to yes, no or -1")
    if values and mode != "column":
        raise ValueError("oneway_values needs a oneway column (fields.oneway)")
    out = {}
    for raw, meaning in values.items():
        # YAML 1.1 reads yes/no as booleans: take them as the words they were written as.
        word = ("yes" if meaning else "no") if isinstance(meaning, bool) else str(meaning)
        if word not in ("yes", "no", "-1"):
            raise ValueError(f"oneway_values: {raw!r}: {meaning!r} is not yes, no or -1")
        out[value_key(raw)] = word
    return out


def _crs(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("wgs84", "gcj02", "bd09"):
        return text.lower()
    from pyproj import CRS  # only when a mapping names a CRS

    try:
        CRS.from_user_input(text)
    except Exception as exc:  # pyproj raises its own CRSError for anything it cannot parse
        raise ValueError(f"crs: {text!r} is not a coordinate system pyproj knows") from exc
    return text


def _profile(value: Any, base_dir: Path | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"profile: {value!r} is not emergency, china or a profile file")
    if value in BUILTIN_PROFILES:
        return value
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ValueError(f"profile: {value!r} is not emergency, china or an existing file")
    try:
        load_profile(path)
    except (ValueError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ValueError(f"profile: {path.name}: {exc}") from exc
    return str(path.resolve())


def value_key(value: Any) -> str:
    """A column value as the text it is compared by (``1.0`` and ``1`` are the same)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().casefold()


def network_key(mapping: RoadMapping, profiles: tuple[Profile, ...]) -> str:
    """The key of a graph built with ``mapping``: the mapping and every profile it reads."""
    blob = "|".join([mapping.key, *(p.key for p in profiles)]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
