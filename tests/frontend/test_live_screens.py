"""The two live screens in real Chromium, against a live server with the realtime hub.

``/screen`` (big-screen situation map) and ``/responder`` (the responder's phone PWA) on the
demo city, with the road network in PostGIS so the map draws our own vector tiles. The test
changes the world over REST and waits for the pages to show it; the responder's actions are
checked back over REST and in the event table. Skips on a laptop without Chromium or
PostGIS, fails when CI=true. Screenshots go to tests/screenshots/ (looked at by a person).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from core.db import make_engine
from tests.support.browser import (
    BIG_SCREEN,
    CENTRE,
    PHONE,
    Api,
    demo_units,
    eventually,
    login_form,
    shot,
    source_ids,
)

pytestmark = pytest.mark.browser


# --- helpers -----------------------------------------------------------------------


def new_incident(api: Api, title: str, lon: float, lat: float, **props: Any) -> dict[str, Any]:
    return api.incident(title, lon, lat, **props)


def available_unit(api: Api) -> dict[str, Any]:
    """An available unit that is not E101 (the demo responder's, kept for the phone test)."""
    units = api.get("/api/units?status=available&limit=10")["features"]
    return dict(next(u for u in units if u["properties"]["callsign"] != "E101"))


def event_seqs(database_url: str, topic: str, type_: str, entity_id: int) -> list[int]:
    """The seqs of events of ``type_`` on ``topic`` about entity ``entity_id``."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT seq FROM event WHERE topic = :topic AND type = :type"
                    " AND (payload->>'id')::bigint = :id ORDER BY seq"
                ),
                {"topic": topic, "type": type_, "id": entity_id},
            )
            return [int(r[0]) for r in rows]
    finally:
        engine.dispose()


def source_feature(page: Any, source: str, fid: int) -> Any:
    return page.evaluate(
        "async ([s, id]) => (await window.__map.getSource(s).getData())"
        ".features.find(f => f.id === id) || null",
        [source, fid],
    )


# --- the big screen ------------------------------------------------------------------


def test_screen_shows_the_live_situation(open_page, live_server, database_url):
    dispatcher = Api(live_server, "dispatcher")
    page = open_page("/screen", BIG_SCREEN)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.wait_for_selector("#login-overlay:not([hidden])")
    login_form(page, "dispatcher")
    page.wait_for_function(
        "window.__live.state === 'live' && Number.isInteger(window.__live.topics.situation)"
    )
    # The resync snapshot: every demo unit, counted on the panel and in the chart.
    page.wait_for_function(f"window.__live.counts.units_total === {demo_units()}")
    assert page.locator("#k-units").inner_text() == str(demo_units())
    chart_total = page.evaluate(
        "window.__chart.getOption().series[0].data.reduce((a, d) => a + d.value, 0)"
    )
    assert chart_total == demo_units()
    assert page.locator("#conn").get_attribute("data-state") == "live"
    assert page.locator("#conn-text").inner_text() == "实时"

    # MapLibre really rendered: a WebGL canvas, the style loaded, road tiles drawn.
    assert page.locator("#map canvas.maplibregl-canvas").count() == 1
    page.wait_for_function("window.__live.mapLoaded && window.__map.loaded()")
    page.wait_for_function(
        "window.__map.querySourceFeatures('roads', {sourceLayer: 'roads'}).length > 100"
    )
    assert len(source_ids(page, "units")) == demo_units()
    assert "OpenStreetMap contributors" in page.locator(".maplibregl-ctrl-attrib").inner_text()
    assert "© OpenStreetMap contributors" in page.locator("footer").inner_text()

    # A new incident over REST: on the map, in the feed, with the seq the server gave it.
    seq_before = page.evaluate("window.__live.topics.situation")
    open_before = page.evaluate("window.__live.counts.incidents_open")
    incident = new_incident(dispatcher, "仓库起火 Warehouse fire", *CENTRE)
    (seq,) = event_seqs(database_url, "situation", "incident.created", incident["id"])
    assert seq > seq_before
    item = page.locator(f"#feed li[data-seq='{seq}']")
    item.wait_for()
    assert item.get_attribute("data-event") == "incident.created"
    assert "仓库起火" in item.inner_text()
    assert page.locator("#feed li").first.get_attribute("data-seq") == str(seq)
    page.wait_for_function(f"window.__live.topics.situation >= {seq}")
    eventually(
        lambda: incident["id"] in source_ids(page, "incidents"), "the incident on the map source"
    )
    page.wait_for_function(
        "(id) => window.__map.queryRenderedFeatures({layers: ['incidents']})"
        ".some(f => f.id === id)",
        arg=incident["id"],
    )
    assert page.evaluate("window.__live.counts.incidents_open") == open_before + 1
    assert page.locator("#k-incidents").inner_text() == str(open_before + 1)

    # A unit taken out of service: counts and chart follow.
    units = page.evaluate("window.__live.counts.units")
    unit = available_unit(dispatcher)
    dispatcher.post(f"/api/units/{unit['id']}/status", {"status": "out_of_service"})
    page.wait_for_function(
        f"window.__live.counts.units.out_of_service === {units['out_of_service'] + 1}"
    )
    assert page.evaluate("window.__live.counts.units.available") == units["available"] - 1
    bars = page.evaluate("window.__chart.getOption().series[0].data.map(d => d.value)")
    assert bars[0] == units["available"] - 1  # available is the first bar
    assert bars[-1] == units["out_of_service"] + 1

    # A position report moves the unit's point.
    lon, lat = CENTRE[0] + 0.003, CENTRE[1] - 0.002
    dispatcher.post(
        f"/api/units/{unit['id']}/position",
        {"lon": lon, "lat": lat, "recorded_at": datetime.now(UTC).isoformat()},
        status=202,
    )

    def moved() -> bool:
        feature = source_feature(page, "units", unit["id"])
        return bool(feature) and feature["geometry"]["coordinates"] == pytest.approx([lon, lat])

    eventually(moved, "the unit's point to move")

    # A dispatch: an active, unacknowledged task (nobody's phone is listening).
    tasks_before = page.evaluate("window.__live.counts.tasks_active")
    other = available_unit(dispatcher)
    dispatcher.post(
        f"/api/incidents/{incident['id']}/dispatch", {"unit_ids": [other["id"]]}, status=201
    )
    page.wait_for_function(f"window.__live.counts.tasks_active === {tasks_before + 1}")
    assert page.evaluate("window.__live.counts.tasks_unacked") >= 1
    page.locator("#feed li[data-event='task.assigned']").wait_for()

    # A warning zone is drawn as an area.
    x, y = CENTRE
    ring = [[x - 0.004, y - 0.003], [x + 0.001, y - 0.003], [x + 0.001, y], [x - 0.004, y]]
    zone = dispatcher.post(
        "/api/warning-zones",
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
            "properties": {"name": "Flooded underpass", "kind": "flood", "severity": "severe"},
        },
        status=201,
    )
    page.wait_for_function(
        "(id) => window.__map.queryRenderedFeatures({layers: ['zones-fill']})"
        ".some(f => f.id === id)",
        arg=zone["id"],
    )
    assert page.evaluate("window.__live.counts.zones") == 1

    # Offline for a moment: what happened meanwhile is replayed from the last seq
    # (a resume, not a second snapshot), in order.
    page.context.set_offline(True)
    page.wait_for_function("window.__live.state === 'offline'")
    assert page.locator("#conn-text").inner_text() == "离线"
    missed = new_incident(dispatcher, "Missed while offline", CENTRE[0] - 0.002, CENTRE[1])
    (missed_seq,) = event_seqs(database_url, "situation", "incident.created", missed["id"])
    page.context.set_offline(False)
    page.locator(f"#feed li[data-seq='{missed_seq}']").wait_for()
    page.wait_for_function("window.__live.state === 'live'")
    page.wait_for_function(
        "(id) => window.__map.queryRenderedFeatures({layers: ['incidents']})"
        ".some(f => f.id === id)",
        arg=missed["id"],
    )
    assert page.locator("#feed li[data-event='resync']").count() == 1
    seqs = [
        int(s) for s in page.eval_on_selector_all("#feed li", "els => els.map(e => e.dataset.seq)")
    ]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)

    page.wait_for_function("window.__map.loaded() && window.__map.areTilesLoaded()")
    shot(page, "screen-zh-CN-1920x1080.png")
    page.click("#lang")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#conn-text").inner_text() == "Live"
    assert page.locator(".counts .kpi span").first.inner_text() == "Open incidents"
    assert "Incident created" in page.locator(f"#feed li[data-seq='{seq}']").inner_text()
    shot(page, "screen-en-1920x1080.png")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    # While the network was cut, a request the console makes on its own (the KPI panel's
    # refresh, a map tile) failed; Chromium logs that, and nothing else may be logged.
    assert [e for e in page.js_errors if "ERR_INTERNET_DISCONNECTED" not in e] == []


def test_screen_with_a_bad_token_asks_to_log_in(open_page):
    page = open_page("/", BIG_SCREEN)
    page.evaluate("sessionStorage.setItem('token', 'not-a-token')")
    page.goto("/screen")
    page.wait_for_selector("#login-overlay:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('token')") is None
    assert page.evaluate("window.__live.state") == "idle"


# --- the responder app ---------------------------------------------------------------


def test_responder_receives_acks_and_moves_a_task(open_page, live_server, database_url):
    dispatcher = Api(live_server, "dispatcher")
    admin = Api(live_server, "admin")
    page = open_page(
        "/responder",
        PHONE,
        geolocation={"latitude": CENTRE[1], "longitude": CENTRE[0]},
        permissions=["geolocation"],
        is_mobile=True,
        has_touch=True,
    )
    page.wait_for_selector("#login-panel:not([hidden])")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    shot(page, "responder-login-zh-CN-390x844.png")
    login_form(page, "responder")
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_function("window.__live.state === 'live'")
    me = page.evaluate("JSON.parse(localStorage.getItem('responder.me'))")
    unit_id = me["unit_id"]
    topic = f"unit:{unit_id}"
    assert page.locator("#unit-name").inner_text().startswith("E101")
    assert page.locator("#no-task").is_visible()

    # The shell is cached by the service worker.
    assert page.evaluate(
        "navigator.serviceWorker.ready.then(() => caches.open('responder-shell-v1'))"
        ".then(c => c.match('/responder')).then(r => !!r)"
    )

    # Dispatched over REST: the card shows it and the phone acknowledges it.
    incident = new_incident(
        dispatcher,
        "厨房起火",
        CENTRE[0] + 0.001,
        CENTRE[1] + 0.001,
        address="Mannerheimintie 1",
    )
    (task,) = dispatcher.post(
        f"/api/incidents/{incident['id']}/dispatch", {"unit_ids": [unit_id]}, status=201
    )
    card = page.locator(f"#task[data-task-id='{task['id']}']")
    card.wait_for()
    assert page.locator("#task-title").inner_text() == "厨房起火"
    assert page.locator("#task-type").inner_text() == "火灾"
    assert page.locator("#task-sev").inner_text() == "严重"
    assert page.locator("#task-address").inner_text() == "Mannerheimintie 1"
    assert page.locator("#task-coords").inner_text() == (
        f"{CENTRE[1] + 0.001:.5f}, {CENTRE[0] + 0.001:.5f}"
    )
    assert page.locator("#task-distance").inner_text().endswith(("m", "km"))
    eventually(
        lambda: dispatcher.get(f"/api/tasks/{task['id']}")["acknowledged_at"],
        "the phone to acknowledge the task",
    )
    (assigned_seq,) = event_seqs(database_url, topic, "task.assigned", task["id"])
    stored = page.evaluate(f"JSON.parse(localStorage.getItem('responder.state.{unit_id}'))")
    assert stored["seq"] >= assigned_seq
    assert str(task["id"]) in stored["tasks"]
    assert page.locator(".steps button.next").inner_text() == "接受"
    shot(page, "responder-task-zh-CN-390x844.png")

    def task_status(expected: str) -> Callable[[], bool]:
        return lambda: dispatcher.get(f"/api/tasks/{task['id']}")["status"] == expected

    page.get_by_role("button", name="接受").click()
    eventually(task_status("accepted"), "the task to be accepted")
    page.wait_for_selector(".steps button.next[data-step='en_route']")
    page.get_by_role("button", name="出发").click()
    eventually(task_status("en_route"), "the task to be en route")
    page.wait_for_function("window.__live.outbox === 0")

    # Offline: "arrive" waits in the outbox (in localStorage) ...
    page.context.set_offline(True)
    page.wait_for_function("window.__live.state === 'offline'")
    page.wait_for_selector(".steps button.next[data-step='on_scene']")
    page.get_by_role("button", name="到达").click()
    page.wait_for_selector("#outbox[data-count='1']")
    queued = page.evaluate(f"JSON.parse(localStorage.getItem('responder.outbox.{unit_id}'))")
    assert [item["msg"]["status"] for item in queued] == ["on_scene"]
    key = queued[0]["key"]
    assert page.locator("#net-text").inner_text() == "离线"
    assert page.locator("#task-status").inner_text() == "已到场 · 待发送"
    shot(page, "responder-offline-zh-CN-390x844.png")
    time.sleep(1.0)
    assert dispatcher.get(f"/api/tasks/{task['id']}")["status"] == "en_route"

    # ... and back online it is delivered once, with the key it was queued with.
    page.context.set_offline(False)
    eventually(task_status("on_scene"), "the queued arrival to be delivered")
    page.wait_for_function("window.__live.outbox === 0 && window.__live.state === 'live'")
    assert len(event_seqs(database_url, topic, "task.on_scene", task["id"])) == 1
    audit = admin.get(f"/api/audit?entity=task&entity_id={task['id']}&limit=100")["items"]
    actions = [row["action"] for row in audit]
    assert actions.count("task.on_scene") == 1
    assert actions.count("task.acknowledged") == 1
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            used = conn.execute(
                text("SELECT count(*) FROM idempotency_key WHERE key = :key"), {"key": key}
            ).scalar_one()
    finally:
        engine.dispose()
    assert used == 1

    # GPS on: the phone's position reaches the unit.
    lon, lat = CENTRE[0] + 0.0005, CENTRE[1] + 0.0007
    page.context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 8})
    page.check("#gps")

    def at_phone_position() -> bool:
        coords = dispatcher.get(f"/api/units/{unit_id}")["geometry"]["coordinates"]
        return bool(coords == pytest.approx([lon, lat], abs=1e-6))

    eventually(at_phone_position, "the unit to be at the phone's position")
    assert "8 m" in page.locator("#gps-info").inner_text()

    # Done: the card goes, the unit is free again.
    page.get_by_role("button", name="完成").click()
    eventually(task_status("done"), "the task to be done")
    page.wait_for_selector("#no-task:not([hidden])")
    page.click("#lang")
    assert page.locator("#no-task").inner_text() == "No task — standing by"
    assert page.locator("#net-text").inner_text() == "Online"
    shot(page, "responder-done-en-390x844.png")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert page.js_errors == []
