"""What a CAP alert asks us to watch, pure: its event and category to an incident type,
its severity, urgency and certainty to ours, its working-language info blocks, whether it
closes roads, and the distinct areas (targets) to act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from shapely import Geometry

from command.intake.cap import Area, Info, ParsedAlert

# An info block with no `expires` that is older than this when it arrives is history.
STALE_WITHOUT_EXPIRY = timedelta(hours=24)
ROAD_PARAMETERS = ("blocks_roads", "roadclosure", "road_closure", "impassable", "道路封闭")
TRUE = ("true", "yes", "1", "y", "是", "封闭")

# Event words first (the event says more than the category), then the category.
_EVENT_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tsunami", ("tsunami", "海啸")),
    ("earthquake", ("earthquake", "quake", "地震", "séisme")),
    ("flood", ("flood", "洪", "涝", "暴雨", "inondation", "reservoir", "dam ", "水库",
               "storm surge")),
    ("fire", ("fire", "火", "incendie", "bushfire", "wildfire")),
    ("landslide", ("landslide", "mudslide", "debris flow", "滑坡", "泥石流", "崩塌")),
    ("hazmat", ("hazmat", "chemical", "radiolog", "nuclear", "toxic", "泄漏", "危化", "gas leak")),
    ("typhoon", ("typhoon", "hurricane", "cyclone", "台风", "飓风")),
    ("storm", ("storm", "thunder", "wind", "tornado", "blizzard", "snow", "hail", "ice", "orage",
               "雷", "风", "雪", "冰雹", "weather", "météo")),
    ("heat", ("heat", "高温")),
    ("medical", ("epidemic", "outbreak", "pandemic", "疫情", "传染")),
    ("missing_person", ("abduction", "amber", "missing", "走失", "失踪")),
    ("public_security", ("terror", "shooter", "civil", "police", "security", "恐怖", "治安")),
)  # fmt: skip

# Latin words match at a word start ("flood" in "flooding", not "ice" in "police").
_EVENT_PATTERNS = tuple(
    (kind, re.compile("|".join(rf"\b{re.escape(w.strip())}" if w.isascii() else re.escape(w)
                               for w in words)))
    for kind, words in _EVENT_TYPES
)  # fmt: skip

_CATEGORY_TYPES = {
    "Fire": "fire", "Geo": "geological", "Met": "storm", "Safety": "public_safety",
    "Security": "public_security", "Rescue": "rescue", "Health": "medical", "Env": "environment",
    "Transport": "traffic", "Infra": "infrastructure", "CBRNE": "hazmat", "Other": "other",
}  # fmt: skip

_SEVERITY = {"Extreme": 3, "Severe": 2, "Moderate": 1, "Minor": 0, "Unknown": 1}
_LEVELS = ("minor", "moderate", "severe", "extreme")


def incident_type(categories: list[str], event: str) -> str:
    """Our incident type for a CAP info's categories and event text."""
    text = event.lower()
    for kind, pattern in _EVENT_PATTERNS:
        if pattern.search(text):
            return kind
    for category in categories:
        if category in _CATEGORY_TYPES:
            return _CATEGORY_TYPES[category]
    return "other"


def incident_severity(severity: str, urgency: str, certainty: str) -> str:
    """CAP severity, one level up when it is happening now (Immediate and Observed or
    Likely), one level down when it is over (Past); Unknown counts as moderate."""
    level = _SEVERITY.get(severity, 1)
    if urgency == "Immediate" and certainty in ("Observed", "Likely"):
        level += 1
    elif urgency == "Past":
        level -= 1
    return _LEVELS[max(0, min(3, level))]


def primary_infos(infos: list[Info]) -> list[Info]:
    """The info blocks in the working language: Chinese if any, else the first block's."""
    if not infos:
        return []
    chinese = [i for i in infos if i.language.lower().startswith("zh")]
    lang = (chinese or infos)[0].language.lower()
    return [i for i in infos if i.language.lower() == lang]


def blocks_roads(alert: ParsedAlert) -> bool:
    for name in ROAD_PARAMETERS:
        value = alert.parameter(name)
        if value is not None and value.strip().lower() in TRUE:
            return True
    return False


@dataclass
class Target:
    """One thing the alert asks us to watch: an info block's area (or the info itself)."""

    info: Info
    area: Area | None
    type: str
    severity: str

    @property
    def shape(self) -> Geometry | None:
        return None if self.area is None else self.area.shape

    @property
    def is_zone(self) -> bool:
        return self.area is not None and self.area.is_zone


def targets(alert: ParsedAlert, now: datetime) -> tuple[list[Target], list[dict[str, str]]]:
    """The distinct areas to act on (expired info blocks skipped), and warnings."""
    out: list[Target] = []
    warnings: list[dict[str, str]] = []
    seen: set[tuple[str, str, bytes | None]] = set()
    for n, info in enumerate(primary_infos(alert.infos), start=1):
        ends = info.expires or (info.effective or alert.sent) + STALE_WITHOUT_EXPIRY
        if ends <= now:
            why = "expired at" if info.expires else "has no expiry and was sent before"
            warnings.append(
                {"field": f"alert.info[{n}].expires",
                 "message": f"{why} {ends.isoformat()}: stored, nothing shown live"}
            )  # fmt: skip
            continue
        kind = incident_type(info.categories, info.event)
        level = incident_severity(info.severity, info.urgency, info.certainty)
        areas: list[Area | None] = list(info.areas) or [None]
        for area in areas:
            shape = None if area is None else area.shape
            key = (kind, area.desc if area else "", None if shape is None else shape.wkb)
            if key in seen:
                continue
            seen.add(key)
            out.append(Target(info, area, kind, level))
    return out, warnings
