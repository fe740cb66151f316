"""CAP 1.2 / 1.1 alerts (OASIS Common Alerting Protocol; GB/T 35965.1 follows it) and their
JSON form, parsed into plain values with no database and no web.

Two kinds of fault get two answers:

* the message cannot be trusted or read (not XML, a DTD or entity, a wrong namespace, an
  unknown encoding, a required alert or info field missing or malformed): :class:`CapRefused`
  names every such field and nothing is stored;
* a fault in an optional part (an element CAP does not know, a broken or out-of-range polygon,
  a bad circle, an unparsable optional time, an empty geocode): the alert is accepted, the part
  is skipped and a :class:`Warning` says what and where.

XML is parsed by defusedxml over expat with DTDs, entities and external references forbidden,
so nothing is ever resolved or fetched; size and depth are bounded before a tree is kept."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import shapely
from shapely import Geometry, MultiPolygon, Point, Polygon, make_valid

from command.intake.cap_read import (
    CAP12,
    MAX_TEXT,
    CapRefused,
    json_to_element,
    local_name,
    media_type,
    read_xml,
)

# The refusals are part of the parser's interface: callers catch them from here.
from command.intake.cap_read import Unreadable as Unreadable
from command.intake.cap_read import UnsupportedMedia as UnsupportedMedia
from gis.geodesy import circle_polygon

NAMESPACES = {
    "urn:oasis:names:tc:emergency:cap:1.2": "1.2",
    "urn:oasis:names:tc:emergency:cap:1.1": "1.1",
}

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPES = ("Public", "Restricted", "Private")

CATEGORIES = ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env",
              "Transport", "Infra", "CBRNE", "Other")  # fmt: skip

URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")

RESPONSE_TYPES = ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess",
                  "AllClear", "None")  # fmt: skip

MAX_POINTS = 10_000  # vertices in one polygon
MAX_SHAPES = 100  # polygons and circles in one area
MIN_RADIUS_M = 1.0  # a smaller circle is its centre point
MAX_RADIUS_KM = 5_000.0
_CAP_CHARS = re.compile(r"^[^\s,<&]+$")  # identifier, sender: no spaces, commas, < or &

_ALERT_FIELDS = ("identifier", "sender", "sent", "status", "msgType", "source", "scope",
                 "restriction", "addresses", "code", "note", "references", "incidents",
                 "info")  # fmt: skip

_INFO_FIELDS = ("language", "category", "event", "responseType", "urgency", "severity",
                "certainty", "audience", "eventCode", "effective", "onset", "expires",
                "senderName", "headline", "description", "instruction", "web", "contact",
                "parameter", "resource", "area")  # fmt: skip

_AREA_FIELDS = ("areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling")
_RESOURCE_FIELDS = ("resourceDesc", "mimeType", "size", "uri", "derefUri", "digest")


@dataclass(frozen=True)
class Warning:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass(frozen=True)
class Reference:
    sender: str
    identifier: str
    sent: datetime


@dataclass
class Area:
    desc: str
    shape: Geometry | None  # Polygon / MultiPolygon of its polygons and circles, or a Point
    polygons: list[str] = field(default_factory=list)  # as written (lat,lon pairs)
    circles: list[str] = field(default_factory=list)
    geocodes: list[dict[str, str]] = field(default_factory=list)
    altitude: float | None = None
    ceiling: float | None = None

    @property
    def is_zone(self) -> bool:
        return self.shape is not None and self.shape.geom_type in ("Polygon", "MultiPolygon")


@dataclass
class Info:
    language: str
    categories: list[str]
    event: str
    urgency: str
    severity: str
    certainty: str
    response_types: list[str] = field(default_factory=list)
    audience: str | None = None
    event_codes: list[dict[str, str]] = field(default_factory=list)
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: list[dict[str, str]] = field(default_factory=list)
    resources: list[dict[str, str]] = field(default_factory=list)
    areas: list[Area] = field(default_factory=list)


@dataclass
class ParsedAlert:
    version: str
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str
    source: str | None = None
    restriction: str | None = None
    addresses: str | None = None
    codes: list[str] = field(default_factory=list)
    note: str | None = None
    references_text: str | None = None
    references: list[Reference] = field(default_factory=list)
    incidents_text: str | None = None
    infos: list[Info] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, datetime]:
        return self.sender, self.identifier, self.sent

    def parameter(self, name: str) -> str | None:
        """The first info parameter called ``name`` (case-insensitive), if any."""
        for info in self.infos:
            for p in info.parameters:
                if p["valueName"].strip().lower() == name.lower():
                    return p["value"].strip()
        return None


class _Reader:
    """Walks one CAP element tree, collecting refusals (required parts) and warnings."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.problems: list[tuple[str, str]] = []
        self.warnings: list[Warning] = []

    def warn(self, where: str, message: str) -> None:
        if len(self.warnings) < 200:
            self.warnings.append(Warning(where, message))

    def children(
        self, elem: ET.Element, known: tuple[str, ...], where: str
    ) -> dict[str, list[ET.Element]]:
        found: dict[str, list[ET.Element]] = {}
        for child in elem:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            ns, name = local_name(child.tag)
            if ns != self.ns:
                if ns in NAMESPACES or ns == "":
                    self.warn(
                        f"{where}.{name}",
                        "element from another CAP version or no namespace; ignored",
                    )
                continue  # other namespaces (an XML signature) are allowed by the schema
            if name not in known:
                self.warn(f"{where}.{name}", "element CAP does not define; ignored")
                continue
            found.setdefault(name, []).append(child)
        return found

    @staticmethod
    def text(elem: ET.Element | None) -> str | None:
        if elem is None:
            return None
        value = (elem.text or "").strip()
        return value or None

    def one(self, found: dict[str, list[ET.Element]], name: str, where: str) -> str | None:
        elems = found.get(name, [])
        if len(elems) > 1:
            self.warn(f"{where}.{name}", f"given {len(elems)} times; the first is used")
        return self.text(elems[0]) if elems else None

    def required(self, found: dict[str, list[ET.Element]], name: str, where: str) -> str | None:
        value = self.one(found, name, where)
        if value is None:
            self.problems.append((f"{where}.{name}", "required and missing or empty"))
        return value

    def enum(self, value: str | None, allowed: tuple[str, ...], where: str) -> str | None:
        if value is None:
            return None
        if value in allowed:
            return value
        folded = {a.lower(): a for a in allowed}
        if value.lower() in folded:
            self.warn(where, f"{value!r} should be written {folded[value.lower()]!r}")
            return folded[value.lower()]
        self.problems.append((where, f"{value!r} is not one of {', '.join(allowed)}"))
        return None

    def time(self, value: str | None, where: str, *, required: bool) -> datetime | None:
        if value is None:
            return None
        parsed = parse_time(value)
        if parsed is None:
            message = (
                f"{value[:40]!r} is not a date-time with a UTC offset (2024-05-01T10:00:00+08:00)"
            )
            if required:
                self.problems.append((where, message))
            else:
                self.warn(where, message + "; ignored")
        return parsed


def parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def parse_alert(root: ET.Element) -> ParsedAlert:
    """Validate one CAP ``alert`` element; :class:`CapRefused` lists every required fault."""
    ns, name = local_name(root.tag)
    if name != "alert":
        raise CapRefused([("alert", f"the root element is <{name}>, not a CAP <alert>")])
    if ns not in NAMESPACES:
        shown = ns or "none"
        raise CapRefused(
            [("alert.xmlns", f"namespace {shown!r} is not CAP 1.2 or 1.1 ({CAP12})")],
            code="wrong_namespace",
        )
    r = _Reader(ns)
    found = r.children(root, _ALERT_FIELDS, "alert")
    identifier = r.required(found, "identifier", "alert")
    sender = r.required(found, "sender", "alert")
    for what, value in (("identifier", identifier), ("sender", sender)):
        if value is not None and not _CAP_CHARS.match(value):
            r.problems.append((f"alert.{what}", "must not contain spaces, commas, < or &"))
        if value is not None and len(value) > 300:
            r.problems.append((f"alert.{what}", "longer than 300 characters"))
    sent = r.time(r.required(found, "sent", "alert"), "alert.sent", required=True)
    status = r.enum(r.required(found, "status", "alert"), STATUSES, "alert.status")
    msg_type = r.enum(r.required(found, "msgType", "alert"), MSG_TYPES, "alert.msgType")
    scope = r.enum(r.required(found, "scope", "alert"), SCOPES, "alert.scope")
    alert = ParsedAlert(
        version=NAMESPACES[ns],
        identifier=identifier or "",
        sender=sender or "",
        sent=sent or datetime.min,
        status=status or "",
        msg_type=msg_type or "",
        scope=scope or "",
        source=r.one(found, "source", "alert"),
        restriction=r.one(found, "restriction", "alert"),
        addresses=r.one(found, "addresses", "alert"),
        codes=[t for t in (r.text(e) for e in found.get("code", [])) if t],
        note=r.one(found, "note", "alert"),
        incidents_text=r.one(found, "incidents", "alert"),
    )
    refs = found.get("references", [])
    if refs:
        alert.references_text = r.text(refs[0])
        if alert.references_text is None:
            r.warn("alert.references", "empty; ignored")
        else:
            alert.references = _references(alert.references_text, r)
    if msg_type in ("Update", "Cancel") and not alert.references:
        r.warn("alert.references", f"a {msg_type} should name the alerts it refers to")
    for i, info_elem in enumerate(found.get("info", []), start=1):
        info = _info(info_elem, f"alert.info[{i}]", r)
        if info is not None:
            alert.infos.append(info)
    if r.problems:
        raise CapRefused(r.problems)
    alert.warnings = r.warnings
    return alert


def _references(text: str, r: _Reader) -> list[Reference]:
    out: list[Reference] = []
    for token in text.split():
        parts = token.split(",")
        sent = parse_time(parts[2]) if len(parts) == 3 else None
        if len(parts) != 3 or not parts[0] or not parts[1] or sent is None:
            r.warn("alert.references", f"{token[:80]!r} is not sender,identifier,sent; skipped")
            continue
        out.append(Reference(parts[0], parts[1], sent))
    return out


def _info(elem: ET.Element, where: str, r: _Reader) -> Info | None:
    found = r.children(elem, _INFO_FIELDS, where)
    before = len(r.problems)
    categories: list[str] = []
    for c in found.get("category", []):
        value = r.enum(r.text(c), CATEGORIES, f"{where}.category")
        if value is not None:
            categories.append(value)
    if not found.get("category"):
        r.problems.append((f"{where}.category", "required and missing"))
    elif not categories and len(r.problems) == before:
        r.problems.append((f"{where}.category", "required and empty"))
    event = r.required(found, "event", where)
    urgency = r.enum(r.required(found, "urgency", where), URGENCIES, f"{where}.urgency")
    severity = r.enum(r.required(found, "severity", where), SEVERITIES, f"{where}.severity")
    certainty_raw = r.required(found, "certainty", where)
    if certainty_raw == "Very Likely":  # CAP 1.0 value, still sent by some 1.1 feeds
        r.warn(f"{where}.certainty", "'Very Likely' is CAP 1.0; read as 'Likely'")
        certainty_raw = "Likely"
    certainty = r.enum(certainty_raw, CERTAINTIES, f"{where}.certainty")
    if len(r.problems) > before:
        return None
    assert event is not None
    assert urgency is not None
    assert severity is not None
    assert certainty is not None
    info = Info(
        language=r.one(found, "language", where) or "en-US",
        categories=categories,
        event=event[:300],
        urgency=urgency,
        severity=severity,
        certainty=certainty,
        audience=r.one(found, "audience", where),
        effective=r.time(r.one(found, "effective", where), f"{where}.effective", required=False),
        onset=r.time(r.one(found, "onset", where), f"{where}.onset", required=False),
        expires=r.time(r.one(found, "expires", where), f"{where}.expires", required=False),
        sender_name=r.one(found, "senderName", where),
        headline=r.one(found, "headline", where),
        description=r.one(found, "description", where),
        instruction=r.one(found, "instruction", where),
        web=r.one(found, "web", where),
        contact=r.one(found, "contact", where),
    )
    for rt in found.get("responseType", []):
        value = r.text(rt)
        if value in RESPONSE_TYPES:
            info.response_types.append(value)
        elif value is not None:
            r.warn(f"{where}.responseType", f"{value[:40]!r} is not a CAP response type; ignored")
    info.event_codes = _pairs(found.get("eventCode", []), f"{where}.eventCode", r)
    info.parameters = _pairs(found.get("parameter", []), f"{where}.parameter", r)
    for j, res in enumerate(found.get("resource", []), start=1):
        parts = r.children(res, _RESOURCE_FIELDS, f"{where}.resource[{j}]")
        info.resources.append({k: r.text(v[0]) or "" for k, v in parts.items()})
    for j, area_elem in enumerate(found.get("area", []), start=1):
        info.areas.append(_area(area_elem, f"{where}.area[{j}]", r))
    return info


def _pairs(elems: list[ET.Element], where: str, r: _Reader) -> list[dict[str, str]]:
    out = []
    for elem in elems:
        found = r.children(elem, ("valueName", "value"), where)
        name = r.one(found, "valueName", where)
        value = r.one(found, "value", where)
        if name is None or value is None:
            r.warn(where, "valueName or value missing or empty; skipped")
            continue
        out.append({"valueName": name[:200], "value": value[:2000]})
    return out


def _area(elem: ET.Element, where: str, r: _Reader) -> Area:
    found = r.children(elem, _AREA_FIELDS, where)
    desc = r.one(found, "areaDesc", where)
    if desc is None:
        r.warn(f"{where}.areaDesc", "required and missing; the area is kept without a name")
    area = Area(desc=(desc or "")[:1000], shape=None)
    polygons: list[Polygon] = []
    points: list[Point] = []
    for k, p in enumerate(found.get("polygon", []), start=1):
        text = r.text(p)
        if text is None:
            r.warn(f"{where}.polygon[{k}]", "empty; ignored")
            continue
        area.polygons.append(text[:MAX_TEXT])
        poly = parse_polygon(text, f"{where}.polygon[{k}]", r)
        if poly is not None:
            polygons.extend(poly)
    for k, c in enumerate(found.get("circle", []), start=1):
        text = r.text(c)
        if text is None:
            r.warn(f"{where}.circle[{k}]", "empty; ignored")
            continue
        area.circles.append(text[:200])
        shape = parse_circle(text, f"{where}.circle[{k}]", r)
        if isinstance(shape, Point):
            points.append(shape)
        elif shape is not None:
            polygons.extend(getattr(shape, "geoms", [shape]))
    area.geocodes = _pairs(found.get("geocode", []), f"{where}.geocode", r)
    for name in ("altitude", "ceiling"):
        value = r.one(found, name, where)
        if value is not None:
            try:
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError
                setattr(area, name, number)
            except ValueError:
                r.warn(f"{where}.{name}", f"{value[:40]!r} is not a number; ignored")
    if len(polygons) > MAX_SHAPES:
        r.warn(where, f"{len(polygons)} shapes; the first {MAX_SHAPES} are used")
        polygons = polygons[:MAX_SHAPES]
    if polygons:
        # union_all, not make_valid of a MultiPolygon: overlapping circles are common and
        # make_valid over them grows faster than cubically.
        merged = polygons[0] if len(polygons) == 1 else shapely.union_all(polygons)
        area.shape = _polygonal(merged)
    elif points:
        area.shape = points[0]
        if len(points) > 1:
            r.warn(where, "several zero-radius circles; the first point is used")
    if area.shape is None and (area.polygons or area.circles):
        r.warn(where, "no usable geometry in this area")
    return area


def _pairs_of(text: str) -> Iterator[tuple[float, float]]:
    for token in text.replace("\n", " ").split():
        lat_s, sep, lon_s = token.strip(",").partition(",")
        if not sep:
            raise ValueError(f"{token[:40]!r} is not lat,lon")
        yield float(lat_s), float(lon_s)


def _check_range(lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError("coordinates must be finite")
    if not -90 <= lat <= 90:
        raise ValueError(f"latitude {lat} out of range [-90, 90] (CAP writes lat,lon)")
    if not -180 <= lon <= 180:
        raise ValueError(f"longitude {lon} out of range [-180, 180]")


def _polygonal(geom: Geometry) -> Polygon | MultiPolygon | None:
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return None if geom.is_empty else geom
    if geom.geom_type == "GeometryCollection":
        polys = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        flat: list[Polygon] = []
        for g in polys:
            flat.extend(g.geoms if g.geom_type == "MultiPolygon" else [g])
        if flat:
            return flat[0] if len(flat) == 1 else MultiPolygon(flat)
    return None


def parse_polygon(text: str, where: str, r: _Reader) -> list[Polygon] | None:
    """A CAP polygon (``lat,lon`` pairs, at least 4, first = last) as lon/lat polygons;
    a fault is a warning and None, an unclosed or self-crossing ring is repaired."""
    try:
        pairs = list(_pairs_of(text))
        if len(pairs) > MAX_POINTS:
            raise ValueError(f"more than {MAX_POINTS} points")
        for lat, lon in pairs:
            _check_range(lat, lon)
    except ValueError as exc:
        r.warn(where, f"{exc}; the polygon is skipped")
        return None
    if len(pairs) < 4 or len(set(pairs)) < 3:
        r.warn(where, f"{len(pairs)} points; a CAP polygon needs at least 4 (closed); skipped")
        return None
    if pairs[0] != pairs[-1]:
        r.warn(where, "not closed (first point differs from last); closed it")
        pairs.append(pairs[0])
    poly = Polygon([(lon, lat) for lat, lon in pairs])
    if not poly.is_valid:
        # "structure" rebuilds the area from the rings in linear-ish time; the default
        # "linework" method takes seconds on a few hundred crossing segments.
        fixed = _polygonal(make_valid(poly, method="structure", keep_collapsed=False))
        if fixed is None or fixed.area == 0:
            r.warn(where, "the ring encloses no area; skipped")
            return None
        r.warn(where, "the ring crosses itself; repaired")
        return list(fixed.geoms) if isinstance(fixed, MultiPolygon) else [fixed]
    if poly.area == 0:
        r.warn(where, "the ring encloses no area; skipped")
        return None
    return [poly]


def parse_circle(text: str, where: str, r: _Reader) -> Polygon | Point | None:
    """``lat,lon radius_km``: a geodesic 64-gon, or a point when the radius is 0."""
    try:
        centre, _, radius_s = text.strip().rpartition(" ")
        lat, lon = next(_pairs_of(centre))
        _check_range(lat, lon)
        radius_km = float(radius_s)
        if not math.isfinite(radius_km) or radius_km < 0:
            raise ValueError(f"radius {radius_s!r} must be a number of km >= 0")
        if radius_km > MAX_RADIUS_KM:
            raise ValueError(f"radius {radius_km} km is over {MAX_RADIUS_KM:.0f} km")
    except (ValueError, StopIteration) as exc:
        message = str(exc) if isinstance(exc, ValueError) else "expected 'lat,lon radius_km'"
        r.warn(where, f"{message}; the circle is skipped")
        return None
    if radius_km * 1000.0 < MIN_RADIUS_M:
        return Point(lon, lat)
    return circle_polygon(lon, lat, radius_km * 1000.0)


def parse(body: bytes, content_type: str | None) -> ParsedAlert:
    """Parse and validate a posted alert (XML or JSON by Content-Type)."""
    kind = media_type(content_type)
    root = read_xml(body) if kind == "xml" else json_to_element(body)
    return parse_alert(root)
