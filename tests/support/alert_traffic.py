"""Realistic warning-system traffic: CAP 1.2 alerts in the demo city with updates,
cancels and re-posts of earlier ones (``generate``), and the shape of an intake answer
that does not depend on timing or ids (``shape_of``). The alerts benchmark
(bench/alerts.py) posts this traffic; the batch intake tests replay it."""

from __future__ import annotations

import bisect
import math
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

CITY = Path(__file__).resolve().parents[2] / "data" / "demo" / "city.yaml"
N_WARMUP = 40  # alerts posted one by one before the clock starts (not in the figures)
MIN_GAP_S = 2.0  # an Update, Cancel or re-post refers to a message due this much earlier
RETRY_WINDOW_S = 30.0  # a re-post repeats a message due at most this long before
SENDERS = ("warning@met.city.gov.cn", "alarm@fire.city.gov.cn", "notice@emergency.city.gov.cn")
# (Chinese event, English event, CAP category)
EVENTS = (
    ("暴雨红色预警", "Heavy rain red warning", "Met"),
    ("城市内涝预警", "Urban flooding warning", "Met"),
    ("雷暴大风黄色预警", "Thunderstorm and gale yellow warning", "Met"),
    ("台风蓝色预警", "Typhoon blue warning", "Met"),
    ("高温橙色预警", "Heat orange warning", "Met"),
    ("暴雪预警", "Heavy snow warning", "Met"),
    ("森林火险预警", "Wildfire danger warning", "Fire"),
    ("危化品泄漏", "Chemical leak", "CBRNE"),
    ("燃气泄漏", "Gas leak", "Safety"),
    ("山体滑坡预警", "Landslide warning", "Geo"),
    ("风暴潮预警", "Storm surge warning", "Met"),
    ("水库泄洪通知", "Reservoir release notice", "Env"),
)
DISTRICTS = ("中心区", "港口区", "老城区", "北岸", "南岸", "火车站", "市场广场", "公园", "码头")
URGENCIES = (("Immediate", 50), ("Expected", 40), ("Future", 10))
SEVERITIES = (("Extreme", 10), ("Severe", 45), ("Moderate", 35), ("Minor", 10))
CERTAINTIES = (("Observed", 50), ("Likely", 40), ("Possible", 10))
RESPONSES = ("Shelter", "Evacuate", "Prepare", "Avoid", "Monitor")
KINDS = (("Alert", 80), ("Update", 10), ("Cancel", 5), ("Repost", 5))


@dataclass
class Message:
    """One POST: a new alert (Alert/Update/Cancel) or a re-post of an earlier one."""

    index: int
    phase: str  # "warmup" | "measured"
    kind: str  # "Alert" | "Update" | "Cancel" | "Repost"
    due: float  # seconds after t0 (measured) or -1 (warm-up)
    key: tuple[str, str, str]  # (sender, identifier, sent) of the alert in the body
    body: str
    of: int | None = None  # the message re-posted, or the thread's first message


@dataclass
class Thread:
    root: int
    sender: str
    event: tuple[str, str, str]
    keys: list[tuple[str, str, str]]
    last_due: float
    n_areas: int
    cancelled: bool = False


@dataclass
class City:
    west: float
    south: float
    east: float
    north: float

    @property
    def mid_lat(self) -> float:
        return (self.south + self.north) / 2


def city_bbox() -> City:
    import yaml

    city = yaml.safe_load(CITY.read_text(encoding="utf-8"))
    west, south, east, north = (float(v) for v in city["bbox"])
    return City(west, south, east, north)


def weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([t[0] for t in table], weights=[t[1] for t in table])[0]


def polygon_text(rng: random.Random, lon: float, lat: float, radius_m: float) -> str:
    """A star-shaped (so simple) ring of 4-10 vertices around (lon, lat), as CAP writes it:
    ``lat,lon`` pairs, first = last."""
    n = rng.randint(4, 10)
    # One vertex per sector (no gap of half a turn), so the ring is simple.
    angles = [(k + rng.uniform(0.1, 0.9)) * 2 * math.pi / n for k in range(n)]
    dlat = 1 / 110_574
    dlon = 1 / (111_320 * math.cos(math.radians(lat)))
    ring = []
    for a in angles:
        r = radius_m * rng.uniform(0.6, 1.0)
        ring.append((lat + r * math.sin(a) * dlat, lon + r * math.cos(a) * dlon))
    ring.append(ring[0])
    return " ".join(f"{y:.6f},{x:.6f}" for y, x in ring)


def area_xml(rng: random.Random, city: City, n: int) -> str:
    """Area ``n`` of an info block: a polygon (60%) or a circle, somewhere in the city."""
    lon = rng.uniform(city.west, city.east)
    lat = rng.uniform(city.south, city.north)
    desc = f"{rng.choice(DISTRICTS)}{n}片区"
    if rng.random() < 0.6:
        shape = f"<polygon>{polygon_text(rng, lon, lat, rng.uniform(80, 600))}</polygon>"
    else:
        shape = f"<circle>{lat:.6f},{lon:.6f} {rng.uniform(0.1, 1.5):.2f}</circle>"
    geocode = (
        f"<geocode><valueName>district</valueName><value>HEL-{rng.randint(1, 40):02d}</value>"
        "</geocode>"
        if rng.random() < 0.3
        else ""
    )
    return f"<area><areaDesc>{desc}</areaDesc>{shape}{geocode}</area>"


def info_xml(
    rng: random.Random,
    *,
    language: str,
    event: str,
    category: str,
    sent: datetime,
    areas: list[str],
    blocks_roads: bool,
    cancelled: bool = False,
) -> str:
    expires = sent + timedelta(hours=rng.choice((3, 6, 12, 24)))
    param = (
        "<parameter><valueName>blocks_roads</valueName><value>true</value></parameter>"
        if blocks_roads
        else ""
    )
    zh = language.startswith("zh")
    if cancelled:
        headline = f"{event} 解除" if zh else f"{event} cancelled"
    else:
        headline = f"{event}" if zh else f"{event} in effect"
    description = "请注意防范，关注后续预警信息。" if zh else "Take precautions and follow updates."
    instruction = (
        "远离危险区域，听从现场指挥。" if zh else "Keep away from the area; follow officials."
    )
    return (
        f"<info><language>{language}</language><category>{category}</category>"
        f"<event>{event}</event><responseType>{rng.choice(RESPONSES)}</responseType>"
        f"<urgency>{weighted(rng, URGENCIES)}</urgency>"
        f"<severity>{weighted(rng, SEVERITIES)}</severity>"
        f"<certainty>{weighted(rng, CERTAINTIES)}</certainty>"
        f"<effective>{sent.isoformat()}</effective><expires>{expires.isoformat()}</expires>"
        f"<senderName>城市应急预警发布中心</senderName><headline>{headline}</headline>"
        f"<description>{description}</description><instruction>{instruction}</instruction>"
        f"{param}{''.join(areas)}</info>"
    )


def alert_xml(
    rng: random.Random,
    city: City,
    *,
    key: tuple[str, str, str],
    sent: datetime,
    msg_type: str,
    event: tuple[str, str, str],
    n_areas: int,
    references: list[tuple[str, str, str]],
) -> str:
    sender, identifier, sent_text = key
    refs = (
        f"<references>{' '.join(','.join(k) for k in references)}</references>"
        if references
        else ""
    )
    cancel = msg_type == "Cancel"
    areas = [] if cancel else [area_xml(rng, city, n) for n in range(1, n_areas + 1)]
    blocks = not cancel and rng.random() < 0.15
    infos = [
        info_xml(
            rng, language="zh-CN", event=event[0], category=event[2], sent=sent, areas=areas,
            blocks_roads=blocks, cancelled=cancel,
        )
    ]  # fmt: skip
    if rng.random() < 0.3:  # an English translation (stored, not acted on)
        infos.append(
            info_xml(
                rng, language="en-US", event=event[1], category=event[2], sent=sent,
                areas=areas, blocks_roads=blocks, cancelled=cancel,
            )
        )  # fmt: skip
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{identifier}</identifier><sender>{sender}</sender>"
        f"<sent>{sent_text}</sent><status>Actual</status><msgType>{msg_type}</msgType>"
        f"<scope>Public</scope>{refs}{''.join(infos)}</alert>"
    )


def generate(n: int, rate: float, rng: random.Random, start: datetime) -> list[Message]:
    """``N_WARMUP`` warm-up alerts, then ``n`` measured messages due at i / ``rate``."""
    city = city_bbox()
    tag = secrets.token_hex(3).upper()
    out: list[Message] = []
    threads: list[Thread] = []
    thread_dues: list[float] = []  # due time of each thread's first message (sorted)
    new_dues: list[float] = []  # due times of the measured new alerts (sorted)
    new_index: list[int] = []
    reposted: dict[int, float] = {}  # original's index -> due time of its last re-post
    serial = 0

    def new(kind: str, due: float, phase: str, thread: Thread | None) -> Message:
        nonlocal serial
        serial += 1
        sent = (start + timedelta(seconds=max(due, 0.0))).replace(microsecond=0)
        sender = thread.sender if thread else rng.choice(SENDERS)
        key = (sender, f"HEL-{tag}-{serial:06d}", sent.isoformat())
        event = thread.event if thread else rng.choice(EVENTS)
        if thread is None:
            n_areas = int(weighted(rng, (("1", 60), ("2", 30), ("3", 10))))
        else:  # an update keeps, adds or drops an area
            n_areas = max(1, min(3, thread.n_areas + rng.choice((-1, 0, 0, 1))))
        body = alert_xml(
            rng, city, key=key, sent=sent, msg_type="Alert" if thread is None else kind,
            event=event, n_areas=n_areas, references=thread.keys if thread else [],
        )  # fmt: skip
        msg = Message(len(out), phase, kind, due, key, body, thread.root if thread else None)
        if thread is None and phase == "measured":
            threads.append(Thread(msg.index, sender, event, [key], due, n_areas))
            thread_dues.append(due)
        elif thread is not None:
            thread.keys.append(key)
            thread.last_due = due
            thread.n_areas = n_areas
            thread.cancelled = kind == "Cancel"
        if phase == "measured":
            new_dues.append(due)
            new_index.append(msg.index)
        return msg

    for _ in range(N_WARMUP):
        out.append(new("Alert", -1.0, "warmup", None))
    for i in range(n):
        due = i / rate
        kind = weighted(rng, KINDS)
        if kind in ("Update", "Cancel"):
            # A thread started in the last minute whose latest message is >= MIN_GAP_S old.
            lo = bisect.bisect_left(thread_dues, due - 60.0)
            ready = [t for t in threads[lo:] if not t.cancelled and t.last_due <= due - MIN_GAP_S]
            if ready:
                out.append(new(kind, due, "measured", rng.choice(ready)))
                continue
        elif kind == "Repost":
            lo = bisect.bisect_left(new_dues, due - RETRY_WINDOW_S)
            hi = bisect.bisect_right(new_dues, due - MIN_GAP_S)
            original = out[new_index[rng.randrange(lo, hi)]] if hi > lo else None
            # Posts of one body at least 1 s apart: signed within the same second (the due
            # second signs), they would carry the same signature, refused as a replay (401).
            if original is not None and due - reposted.get(original.index, -math.inf) >= 1.0:
                reposted[original.index] = due
                out.append(
                    Message(len(out), "measured", "Repost", due, original.key, original.body,
                            original.index)
                )  # fmt: skip
                continue
        out.append(new("Alert", due, "measured", None))
    return out


# --- answers ------------------------------------------------------------------------

ANSWER_LISTS = ("incident_ids", "zone_ids", "updated_incident_ids", "updated_zone_ids",
                "cancelled_incident_ids", "ended_zone_ids", "review_incident_ids")  # fmt: skip


def shape_of(status: Any, answer: Any) -> tuple[Any, ...]:
    """What should not depend on timing or ids: status, action, how many of each."""
    if not isinstance(answer, dict):
        return (status,)
    return (status, answer.get("action"), answer.get("duplicate"),
            *(len(answer.get(k) or []) for k in ANSWER_LISTS))  # fmt: skip
