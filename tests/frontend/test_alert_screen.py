"""Warning-system alerts on the big screen, in real Chromium against a live server.

Signed CAP alerts are posted over HTTP as the warning system would. The screen lists them
(the ones before it opened from ``GET /api/alerts``, later ones live), with their warnings
on a click; the incidents with no usable location are marked for review and kept off the
map; the road-closing zone is drawn hatched; a click on it shows the pre-positioning
proposal (a proposal: nothing on the card dispatches); the sender's Cancel takes the zone
off the map, and so does its expiry. Skips without Chromium or PostGIS, fails when
CI=true. Screenshots go to tests/screenshots/ (looked at by a person).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest
import shapely

from command.auth import service as auth
from command.zones.prepositions import staging_point
from core.db import make_engine, make_sessionmaker, session_scope
from tests.support.browser import BIG_SCREEN, CENTRE, Api, eventually, login_form, shot, source_ids
from tests.support.cap import alert_xml, ref, square
from tests.support.world import point

pytestmark = pytest.mark.browser

SECRET_KEY = secrets.token_urlsafe(48)
TIMEZONE = "Asia/Shanghai"  # the browser's: times on the screen are local
BAD_POLYGON = "120.0,24.9 121.0,24.9 121.0,25.0 120.0,24.9"  # latitude 120: out of range
GEOCODE_ONLY = "GEOCODE-ONLY"
FLOOD_AT = (CENTRE[0] - 0.001, CENTRE[1] + 0.0005)
STORM_AT = (CENTRE[0] + 0.0045, CENTRE[1] - 0.004)


@pytest.fixture(scope="module")
def live_secret_key() -> str:
    """A secret key we know: API keys are sealed with it (see the conftest's live_server)."""
    return SECRET_KEY


@pytest.fixture(scope="module")
def warning_system(demo_database: tuple[str, Any], live_server: str) -> Callable[..., Any]:
    """Post a CAP alert as the warning system: API key, timestamp and HMAC signature."""
    engine = make_engine(demo_database[0], pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            key, secret = auth.add_api_key(session, name="warning-system", secret_key=SECRET_KEY)
            key_id = key.key_id
    finally:
        engine.dispose()

    def post(body: str, content_type: str = "application/cap+xml") -> dict[str, Any]:
        raw = body.encode()
        stamp = str(int(time.time()))
        headers = {
            "X-Api-Key": key_id,
            "X-Timestamp": stamp,
            "X-Signature": auth.sign(secret, stamp, raw),
            "Content-Type": content_type,
        }
        response = httpx.post(f"{live_server}/api/alerts", content=raw, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return post


def flood_alert(identifier: str, sent: datetime) -> str:
    """Three areas: a polygon out of range (a warning), a good one, a geocode only."""
    areas = [BAD_POLYGON, square(*FLOOD_AT, half=0.0015), GEOCODE_ONLY]
    xml = alert_xml(
        identifier, sent=sent, event="暴雨洪涝", severity="Severe", areas=areas, blocks_roads=True
    )
    geocode = "<geocode><valueName>GB</valueName><value>440106</value></geocode>"
    return xml.replace(f"<polygon>{GEOCODE_ONLY}</polygon>", geocode)


def local_time(sent: str) -> str:
    """How the screen shows `sent` in zh-CN: month/day hour:minute, local time."""
    return datetime.fromisoformat(sent).astimezone(ZoneInfo(TIMEZONE)).strftime("%m/%d %H:%M")


def rendered(page: Any, layer: str, fid: int) -> bool:
    return bool(
        page.evaluate(
            "([layer, id]) => window.__map.queryRenderedFeatures({layers: [layer]})"
            ".some(f => f.id === id)",
            [layer, fid],
        )
    )


def click_map_at(page: Any, lon: float, lat: float) -> None:
    """A real mouse click on the map canvas at a longitude and latitude."""
    x, y = page.evaluate(
        "([lon, lat]) => { const p = window.__map.project([lon, lat]); return [p.x, p.y]; }",
        [lon, lat],
    )
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def settled(page: Any) -> None:
    page.wait_for_function(
        "window.__map.loaded() && window.__map.areTilesLoaded() && !window.__map.isMoving()"
    )


def test_alerts_warnings_review_and_proposal_on_the_big_screen(
    open_page, live_server, warning_system
):
    commander = Api(live_server, "commander")
    # A boat crew and a shelter with room, both outside where the flood zone will be (the
    # boat where the units will be asked to stage).
    half = 0.0015
    flood_box = shapely.box(FLOOD_AT[0] - half, FLOOD_AT[1] - half,
                            FLOOD_AT[0] + half, FLOOD_AT[1] + half)  # fmt: skip
    staging = staging_point(flood_box)
    boat = commander.post(
        "/api/units",
        {
            "type": "Feature",
            "geometry": point(staging.x, staging.y),
            "properties": {"callsign": "W-9", "name": "Boat W-9", "kind": "vehicle",
                           "type": "boat", "capabilities": ["water_rescue"], "crew": 3},
        },
        status=201,
    )  # fmt: skip
    hall = commander.post(
        "/api/shelters",
        {
            "type": "Feature",
            # beyond the staging point, away from the zone
            "geometry": point(staging.x + (staging.x - FLOOD_AT[0]) / 2, staging.y + 0.001),
            "properties": {"name": "体育馆 Sports hall", "capacity": 400, "occupancy": 20},
        },
        status=201,
    )
    # An alert from before the screen opened: listed from GET /api/alerts.
    sent = datetime.now(UTC).replace(microsecond=0)
    storm = warning_system(
        alert_xml(
            "ST-1",
            sent=sent,
            event="雷雨大风",
            severity="Moderate",
            urgency="Expected",
            areas=[square(*STORM_AT, half=0.0012)],
        )
    )
    (storm_zone,) = storm["zone_ids"]

    page = open_page("/screen", BIG_SCREEN, timezone_id=TIMEZONE)
    page.wait_for_selector("#login-overlay:not([hidden])")
    login_form(page, "dispatcher")
    page.wait_for_function("window.__live.state === 'live' && window.__live.alertsLoaded")
    first = page.locator(f"#alerts li[data-alert-id='{storm['alert_id']}']")
    first.wait_for()
    assert first.locator(".tag").first.inner_text() == "新发布"
    assert first.locator(".badge").count() == 0  # no warnings, no badge
    assert "雷雨大风" in first.locator(".a-title").inner_text()

    # The flood alert arrives while the screen is open: live, on the situation topic.
    flood = warning_system(flood_alert("FL-1", sent))
    assert flood["warnings"] and len(flood["incident_ids"]) == 3
    (zone_id,) = flood["zone_ids"]
    item = page.locator(f"#alerts li[data-alert-id='{flood['alert_id']}']")
    item.wait_for()
    assert page.locator("#alerts li.alert").first.get_attribute("data-alert-id") == str(
        flood["alert_id"]
    )
    page.locator("#feed li[data-event='alert.received']").first.wait_for()
    assert item.locator(".tag").first.inner_text() == "新发布"
    assert "暴雨洪涝" in item.locator(".a-title").inner_text()
    assert item.locator(".sender").inner_text() == "warning@city.gov.cn"
    assert item.locator("time").inner_text() == local_time(flood["sent"])
    zone = commander.get(f"/api/warning-zones/{zone_id}")
    assert zone["properties"]["blocks_roads"] is True
    assert item.get_attribute("data-severity") == zone["properties"]["severity"]

    # The warnings: counted on the badge, read on a click.
    badge = item.locator(".badge")
    assert badge.get_attribute("data-count") == str(len(flood["warnings"]))
    assert badge.inner_text() == f"⚠ {len(flood['warnings'])}"
    assert item.locator(".a-warnings").count() == 0
    item.click()
    shown = item.locator(".a-warnings li")
    shown.first.wait_for()
    assert shown.count() == len(flood["warnings"])
    for n, warning in enumerate(flood["warnings"]):
        assert shown.nth(n).locator("code").inner_text() == warning["field"]
        assert warning["message"] in shown.nth(n).inner_text()
    assert any("out of range" in w["message"] for w in flood["warnings"])

    # The two areas with no usable shape: incidents with no location, waiting for review.
    incidents = {i: commander.get(f"/api/incidents/{i}") for i in flood["incident_ids"]}
    unplaced = [i for i, f in incidents.items() if f["geometry"] is None]
    (placed,) = [i for i, f in incidents.items() if f["geometry"] is not None]
    assert len(unplaced) == 2
    for incident_id in unplaced:
        assert incidents[incident_id]["properties"]["needs_review"] is True
        row = page.locator(f"#review li[data-incident-id='{incident_id}']")
        row.wait_for()
        assert row.locator(".review-mark").inner_text() == "待核实"
        assert row.locator(".tag.noloc").inner_text() == "无位置"
    geocoded = next(
        i for i in unplaced if "GB 440106" in incidents[i]["properties"]["review_reason"]
    )
    row = page.locator(f"#review li[data-incident-id='{geocoded}']")
    assert "GB 440106" in row.locator(".r-reason").inner_text()
    assert "GB 440106" in (row.locator(".review-mark").get_attribute("title") or "")
    row.click()
    page.wait_for_selector(f"#review li.open[data-incident-id='{geocoded}']")
    assert page.locator("#feed li[data-event='incident.created'][data-review='1']").count() == 2

    # On the map: the located incident (at its area's middle), never the unplaced ones;
    # the flood zone hatched with a red edge, the storm zone dashed as before.
    page.wait_for_function("window.__live.mapLoaded")
    eventually(lambda: zone_id in source_ids(page, "zones"), "the flood zone on the map")
    incident_ids = source_ids(page, "incidents")
    assert placed in incident_ids and not set(unplaced) & set(incident_ids)
    between = [(FLOOD_AT[0] + STORM_AT[0]) / 2, (FLOOD_AT[1] + STORM_AT[1]) / 2]
    page.evaluate("(c) => window.__map.jumpTo({center: c, zoom: 15.3})", between)
    settled(page)
    eventually(lambda: rendered(page, "zones-hatch", zone_id), "the hatched flood zone")
    assert rendered(page, "zones-blocked-line", zone_id)
    assert not rendered(page, "zones-line", zone_id)
    legend = page.locator("#legend").inner_text()
    assert "道路封闭" in legend and "预警区域" in legend
    eventually(lambda: rendered(page, "zones-line", storm_zone), "the dashed storm zone")
    assert not rendered(page, "zones-blocked-line", storm_zone)
    shot(page, "screen-alerts-review-zh-CN-1920x1080.png")

    # A click on the zone: the proposal, from /api/warning-zones/{id}/suggestions.
    click_map_at(page, FLOOD_AT[0] - 0.0008, FLOOD_AT[1] - 0.0008)
    page.wait_for_selector(f"#proposal[data-zone-id='{zone_id}']")
    page.wait_for_function("window.__live.proposal && !window.__live.proposal.loading")
    assert page.evaluate("window.__live.proposal.error") is None
    expected = commander.get(f"/api/warning-zones/{zone_id}/suggestions")
    card = page.locator("#proposal")
    assert card.locator("h2").inner_text() == "预置建议"
    assert "建议，非指令" in card.locator(".not-order").inner_text()
    units = card.locator(".p-units li[data-unit-id]")
    assert units.count() >= 1
    assert [int(u) for u in units.evaluate_all("els => els.map(e => e.dataset.unitId)")] == [
        u["unit_id"] for u in expected["units"]
    ]
    assert boat["id"] in [u["unit_id"] for u in expected["units"]]
    first_unit = expected["units"][0]
    assert units.first.locator("b").inner_text() == first_unit["callsign"]
    eta = max(1, round(first_unit["eta_s"] / 60))
    assert units.first.locator(".eta").inner_text() == f"{eta} 分钟"
    assert units.first.locator(".why").inner_text()
    shelters = card.locator(".p-shelters li[data-shelter-id]")
    assert shelters.count() >= 1
    assert hall["id"] in [s["shelter_id"] for s in expected["shelters"]]
    hall_row = card.locator(f".p-shelters li[data-shelter-id='{hall['id']}']")
    assert "体育馆" in hall_row.inner_text()
    assert hall_row.locator(".room").inner_text() == "余位 380"
    assert card.locator("button").count() == 1  # closing it is all one can do here
    assert card.locator("button").get_attribute("aria-label") == "关闭"
    drawn = page.evaluate(
        "async () => (await window.__map.getSource('proposal').getData()).features"
    )
    staging = [f for f in drawn if f["properties"]["kind"] == "staging"]
    routes = [f for f in drawn if f["geometry"]["type"] == "LineString"]
    assert [f["geometry"]["coordinates"] for f in staging] == [expected["staging"]["coordinates"]]
    assert len(routes) == sum(1 for u in expected["units"] if u["route"]) >= 1
    assert page.locator(".staging-label").inner_text() == "集结点（建议）"
    # The alert's detail offers the same proposal as a button.
    assert item.locator(f"button.zone-btn[data-zone-id='{zone_id}']").count() == 1

    settled(page)
    shot(page, "screen-alerts-zh-CN-1920x1080.png")
    page.click("#lang")
    assert card.locator("h2").inner_text() == "Pre-positioning proposal"
    assert "Proposal, not an order" in card.locator(".not-order").inner_text()
    assert item.locator(".tag").first.inner_text() == "Alert"
    assert page.locator(f"#review li[data-incident-id='{geocoded}'] .review-mark").inner_text() == (
        "needs review"
    )
    assert "Roads closed" in page.locator("#legend").inner_text()
    settled(page)
    shot(page, "screen-alerts-en-1920x1080.png")

    # The sender cancels: the zone leaves the map, the proposal closes with it.
    cancel = {
        "identifier": "FL-2",
        "sender": "warning@city.gov.cn",
        "sent": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "status": "Actual",
        "msgType": "Cancel",
        "scope": "Public",
        "references": ref("FL-1", sent),
    }
    cancelled = warning_system(json.dumps(cancel), "application/json")
    assert cancelled["ended_zone_ids"] == [zone_id]
    page.locator(f"#alerts li[data-alert-id='{cancelled['alert_id']}']").wait_for()
    eventually(lambda: zone_id not in source_ids(page, "zones"), "the flood zone to leave")
    page.wait_for_selector("#proposal", state="hidden")
    assert page.evaluate("window.__live.proposal") is None
    assert storm_zone in source_ids(page, "zones")
    gone = page.locator(f"#alerts li[data-alert-id='{cancelled['alert_id']}']")
    assert gone.locator(".tag").first.inner_text() == "Cancel"
    assert "暴雨洪涝" in gone.locator(".a-title").inner_text()  # the thread's headline
    for incident_id in cancelled["cancelled_incident_ids"]:
        page.wait_for_selector(f"#review li[data-incident-id='{incident_id}']", state="detached")
    settled(page)
    assert not rendered(page, "zones-fill", zone_id)
    shot(page, "screen-alerts-cancelled-en-1920x1080.png")

    # A zone whose time is up leaves the map when its `expires` passes.
    now = datetime.now(UTC).replace(microsecond=0)
    brief = warning_system(
        alert_xml("ST-2", sent=now, event="雷雨大风", severity="Moderate", urgency="Expected",
                  expires=now + timedelta(seconds=6), areas=[square(*FLOOD_AT, half=0.001)])
    )  # fmt: skip
    (brief_zone,) = brief["zone_ids"]
    eventually(lambda: brief_zone in source_ids(page, "zones"), "the short-lived zone")
    eventually(
        lambda: brief_zone not in source_ids(page, "zones"), "the zone to expire", timeout_s=20
    )
    assert storm_zone in source_ids(page, "zones")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert page.js_errors == []
