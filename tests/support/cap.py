"""CAP 1.2 alerts as the warning system writes them (``alert_xml``, ``square``, ``ref``),
the warning system's principal, and the shared CAP files (``CAP_DIR``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.security import Principal

CAP_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "cap"
WARNING_SYSTEM = Principal(kind="apikey", id=1, name="warning-system", role="machine")
CENTRE = (24.9442949, 60.1716313)  # the demo city (Helsinki)


def square(lon: float, lat: float, half: float = 0.002) -> str:
    """A CAP polygon (lat,lon pairs, closed) around a point."""
    ring = [(lat - half, lon - half), (lat - half, lon + half), (lat + half, lon + half),
            (lat + half, lon - half), (lat - half, lon - half)]  # fmt: skip
    return " ".join(f"{a},{b}" for a, b in ring)


def alert_xml(
    identifier: str,
    *,
    sent: datetime | None = None,
    status: str = "Actual",
    msg_type: str = "Alert",
    references: str | None = None,
    event: str = "Flash Flood",
    category: str = "Met",
    severity: str = "Severe",
    urgency: str = "Immediate",
    areas: list[str] | None = None,
    expires: datetime | None = None,
    blocks_roads: bool = False,
    language: str = "zh-CN",
) -> str:
    sent = sent or datetime.now(UTC).replace(microsecond=0)
    expires = expires or sent + timedelta(hours=6)
    refs = f"<references>{references}</references>" if references else ""
    param = ("<parameter><valueName>blocks_roads</valueName><value>true</value></parameter>"
             if blocks_roads else "")  # fmt: skip
    area_xml = "".join(
        f"<area><areaDesc>区域{n}</areaDesc><polygon>{poly}</polygon></area>"
        for n, poly in enumerate(areas if areas is not None else [square(*CENTRE)], start=1)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>warning@city.gov.cn</sender>
  <sent>{sent.isoformat()}</sent><status>{status}</status><msgType>{msg_type}</msgType>
  <scope>Public</scope>{refs}
  <info><language>{language}</language><category>{category}</category><event>{event}</event>
    <urgency>{urgency}</urgency><severity>{severity}</severity><certainty>Observed</certainty>
    <expires>{expires.isoformat()}</expires><headline>{event} 预警</headline>
    <description>河水上涨</description><instruction>远离低洼地区</instruction>
    {param}{area_xml}</info>
</alert>"""


def ref(identifier: str, sent: datetime) -> str:
    return f"warning@city.gov.cn,{identifier},{sent.isoformat()}"
