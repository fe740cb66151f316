"""The mapping file of ``emergency import``: which column fills which field.

```yaml
crs: EPSG:4547                  # default: the file's own; also EPSG:4490, gcj02, bd09
layer: shelters                 # a GeoPackage's layer (default: its first)
fields:                         # FIELD: COLUMN, or a template over columns
  external_id: 编号
  name: 名称
  capacity: 容纳人数
  address: "{区} {地址}"
defaults: {status: open}        # for a field the row leaves empty
values:                         # FIELD: {CELL: VALUE}; "*" for any other cell
  hazards: {地震: earthquake, 洪涝: flood, "*": other}
lon: 经度                        # CSV only (default: lon/lng/longitude/x/经度)
lat: 纬度
```

Pure: no database. Fields are the resource's API fields plus ``external_id`` (the upsert
key; a unit without one is matched by callsign) and, for units, ``home_station`` (a
station's external id) and, for stock, ``warehouse`` (a warehouse's external id).
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.errors import InvalidInput

MAPPING_KEYS = ("crs", "layer", "fields", "defaults", "values", "lon", "lat")
MAX_MAPPING_BYTES = 256 * 1024


@dataclass(frozen=True)
class ImportMapping:
    """A parsed mapping; an empty one maps each field from the column of its own name."""

    crs: str | None = None
    layer: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    lon: str | None = None
    lat: str | None = None

    def check_fields(self, allowed: tuple[str, ...], kind: str) -> None:
        """Refuse fields the kind does not have, naming the ones it does."""
        for section in ("fields", "defaults", "values"):
            for name in getattr(self, section):
                if name not in allowed:
                    raise InvalidInput(
                        f"mapping {section}: {kind} have no field {name!r} "
                        f"(fields: {', '.join(allowed)})"
                    )

    def sources(self, allowed: tuple[str, ...], columns: list[str]) -> dict[str, Source]:
        """Each field's source: the mapped column or template, else a column of the field's
        own name when the file has one. Refuses a mapping that names a missing column."""
        out: dict[str, Source] = {}
        for name in allowed:
            given = self.fields.get(name)
            if given is None:
                if name in columns:
                    out[name] = Source(column=name)
                continue
            if given in columns:
                out[name] = Source(column=given)
            elif "{" in given:
                out[name] = Source(template=given, uses=_template_columns(given, name, columns))
            else:
                raise InvalidInput(
                    f"mapping fields: {name} comes from column {given!r}, which the file "
                    f"does not have (columns: {', '.join(columns) or 'none'})"
                )
        return out


@dataclass(frozen=True)
class Source:
    """Where one field's value comes from: a column, or a template over columns."""

    column: str | None = None
    template: str | None = None
    uses: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,) if self.column is not None else self.uses

    def value(self, row: Mapping[str, Any]) -> Any:
        if self.column is not None:
            return row.get(self.column)
        assert self.template is not None
        cells = {c: _text(row.get(c)) for c in self.uses}
        text = self.template.format_map(cells).strip()
        return text or None


def _text(value: Any) -> str:
    """A cell as text in a template: empty for a missing one (None, NaN, NaT)."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # a numpy scalar
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "NaT":
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _template_columns(template: str, name: str, columns: list[str]) -> tuple[str, ...]:
    try:
        used = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise InvalidInput(f"mapping fields: {name}: bad template {template!r}: {exc}") from exc
    for column in used:
        if column not in columns:
            raise InvalidInput(
                f"mapping fields: {name}: template {template!r} names column {column!r}, which "
                f"the file does not have (columns: {', '.join(columns) or 'none'})"
            )
    return tuple(dict.fromkeys(used))


def parse_mapping(data: Any) -> ImportMapping:
    """An :class:`ImportMapping` from the YAML's data, or InvalidInput naming the key."""
    if data is None:
        return ImportMapping()
    if not isinstance(data, dict):
        raise InvalidInput("the mapping must be a YAML mapping (key: value)")
    unknown = sorted(set(map(str, data)) - set(MAPPING_KEYS))
    if unknown:
        raise InvalidInput(f"mapping: unknown key {unknown[0]!r} (keys: {', '.join(MAPPING_KEYS)})")
    fields = _str_map(data.get("fields"), "fields")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InvalidInput("mapping defaults: must be FIELD: VALUE pairs")
    values = data.get("values") or {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise InvalidInput("mapping values: must be FIELD: {CELL: VALUE} maps")
    scalars = {}
    for key in ("crs", "layer", "lon", "lat"):
        value = data.get(key)
        if value is not None and not isinstance(value, str | int):
            raise InvalidInput(f"mapping {key}: must be text")
        scalars[key] = None if value is None else str(value)
    return ImportMapping(
        fields=fields,
        defaults={str(k): v for k, v in defaults.items()},
        values={str(f): {_cell_key(c): v for c, v in m.items()} for f, m in values.items()},
        **scalars,
    )


def _cell_key(cell: Any) -> str:
    return _text(cell).strip()


def _str_map(value: Any, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInput(f"mapping {key}: must be FIELD: COLUMN pairs (text)")
    return {str(k): v for k, v in value.items()}


def load_mapping(path: Path | None) -> ImportMapping:
    """Read a mapping YAML file (None: the empty mapping)."""
    if path is None:
        return ImportMapping()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the mapping {path}: {exc.strerror or exc}") from exc
    return mapping_from_text(raw)


def mapping_from_text(raw: bytes) -> ImportMapping:
    if len(raw) > MAX_MAPPING_BYTES:
        raise InvalidInput(f"the mapping is over {MAX_MAPPING_BYTES} bytes")
    try:
        data = yaml.safe_load(raw.decode("utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the mapping is not valid YAML: {exc}") from exc
    return parse_mapping(data)
