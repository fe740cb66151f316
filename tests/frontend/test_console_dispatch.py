"""The console's queue and incident drawer on /screen, in real Chromium, driven only through
the DESIGN ``data-testid`` hooks: the queue's order, groups and filters; the drawer's
recommendation, routes and one-action dispatch; the task timeline following the responder;
two dispatchers racing for a unit; overdue timers; the alarm for a new severe incident.

The world is changed over REST as the demo users; what the page shows is checked against
what the server stored. Each test cancels the incidents it dispatched to, so the demo units
are free again for the next. Screenshots go to tests/screenshots/ (looked at by a person).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.browser import Api, eventually, shot, source_ids
from tests.support.console import (
    active_tasks,
    cancel,
    item,
    new_incident,
    open_drawer,
    open_screen,
    task_rows,
)
from tests.support.db import sql

pytestmark = pytest.mark.browser

OPEN = "reported,verified,dispatched,on_scene"
# --- helpers -----------------------------------------------------------------------


def queue_ids(page: Any) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all(
            "[data-testid=incident-queue] [data-testid=queue-item]",
            "els => els.map(e => e.dataset.incidentId)",
        )
    ]


def rec_ids(page: Any) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all(
            "[data-testid=incident-drawer] [data-testid=recommendation]",
            "els => els.map(e => e.dataset.unitId)",
        )
    ]


def unit_id(api: Api, callsign: str) -> int:
    units = api.get("/api/units?limit=500")["features"]
    return int(next(u["id"] for u in units if u["properties"]["callsign"] == callsign))


# --- the queue -----------------------------------------------------------------------


def test_queue_orders_by_severity_then_age_with_drills_apart(open_page, live_server):
    api = Api(live_server, "dispatcher")
    moderate = new_incident(
        api, "Q1 较早的中等事件", -0.003, 0.001, type="medical", severity="moderate"
    )
    time.sleep(0.05)
    extreme = new_incident(api, "Q2 特别严重火灾", 0.002, -0.001, severity="extreme")
    severe = new_incident(api, "Q3 严重火灾", 0.001, 0.001)
    later = new_incident(
        api, "Q4 较晚的中等事件", -0.002, -0.001, type="medical", severity="moderate"
    )
    drill = new_incident(api, "Q5 演练火灾", 0.003, 0.0015, severity="extreme", drill=True)
    page = open_screen(open_page)
    mine = {moderate["id"], extreme["id"], severe["id"], later["id"]}
    eventually(lambda: mine | {drill["id"]} <= set(queue_ids(page)), "the incidents in the queue")

    ids = queue_ids(page)
    assert [i for i in ids if i in mine] == [
        extreme["id"],
        severe["id"],
        moderate["id"],
        later["id"],
    ]
    # Each item shows its title; the drill one sits below every real one, in its group.
    assert "Q2 特别严重火灾" in item(page, extreme["id"]).inner_text()
    group = page.locator("[data-testid=incident-queue] li.queue-group")
    assert group.count() == 1
    real = [i for i, f in enumerate(ids) if f != drill["id"]]
    drill_at = ids.index(drill["id"])
    open_real = api.get(f"/api/incidents?status={OPEN}&drill=false&limit=1000")["features"]
    assert drill_at >= len(open_real) and max(real) < drill_at
    assert item(page, drill["id"]).locator(".q-drill").inner_text() == "演练"
    assert item(page, extreme["id"]).locator(".q-drill").count() == 0
    open_all = api.get(f"/api/incidents?status={OPEN}&limit=1000")["features"]
    assert page.locator("#queue-count").inner_text() == str(len(open_all))
    # Two timers per item; nothing dispatched yet, so the dispatch timer runs.
    timer = item(page, severe["id"]).locator("[data-timer=dispatch]")
    assert timer.get_attribute("data-phase") == "running"
    assert (
        item(page, severe["id"]).locator("[data-timer=travel]").get_attribute("data-phase")
        == "idle"
    )

    # Filter by type: only the medical ones stay.
    page.select_option("[data-testid=queue-filter-type]", "medical")
    eventually(lambda: extreme["id"] not in queue_ids(page), "the type filter applied")
    shown = set(queue_ids(page))
    assert {moderate["id"], later["id"]} <= shown
    assert not shown & {extreme["id"], severe["id"], drill["id"]}
    medical = {f["id"] for f in open_all if f["properties"]["type"] == "medical"}
    assert shown == medical
    page.select_option("[data-testid=queue-filter-type]", "")
    # Filter by status: verify one over the API; only it is listed as verified.
    api.post(f"/api/incidents/{later['id']}/status", {"status": "verified"})
    page.select_option("[data-testid=queue-filter-status]", "verified")
    eventually(lambda: queue_ids(page) == [later["id"]], "the status filter applied")
    page.select_option("[data-testid=queue-filter-status]", "")
    eventually(lambda: extreme["id"] in queue_ids(page), "the filter cleared")
    assert page.evaluate("window.__console.queueRenderMs") < 50
    # The language switch re-renders the queue and its filters.
    page.click("#lang")
    eventually(lambda: item(page, extreme["id"]).locator(".q-sev").inner_text() == "Extreme", "en")
    assert item(page, drill["id"]).locator(".q-drill").inner_text() == "DRILL"
    options = page.locator("[data-testid=queue-filter-status] option").all_inner_texts()
    assert options[0] == "All statuses"
    page.click("#lang")
    eventually(lambda: item(page, extreme["id"]).locator(".q-sev").inner_text() == "特别严重", "zh")
    cancel(api, moderate, extreme, severe, later, drill)
    eventually(lambda: not mine & set(queue_ids(page)), "ended incidents leave the queue")
    assert page.js_errors == []


# --- the drawer: recommend, dispatch, follow -------------------------------------------


def test_dispatcher_opens_an_incident_and_dispatches_the_recommendation(open_page, live_server):
    api = Api(live_server, "dispatcher")
    incident = new_incident(
        api, "D1 商场火灾 Mall fire", 0.001, -0.0005, address="Aleksanterinkatu 52"
    )
    page = open_screen(open_page)
    drawer = open_drawer(page, incident["id"])
    assert page.evaluate("window.__console.selected") == incident["id"]
    assert "D1 商场火灾" in drawer.locator(".d-title").inner_text()
    assert "Aleksanterinkatu 52" in drawer.inner_text()
    # A status action: verify, through the drawer.
    drawer.locator("[data-testid=incident-action][data-status=verified]").click()
    eventually(
        lambda: api.get(f"/api/incidents/{incident['id']}")["properties"]["status"] == "verified",
        "the incident verified",
    )
    eventually(
        lambda: item(page, incident["id"]).get_attribute("data-status") == "verified", "queue"
    )

    # The same units as the API's recommendation, in the same order; recommended ones checked.
    rec = api.get(f"/api/incidents/{incident['id']}/recommendations?limit=8")
    assert rec_ids(page) == [r["unit_id"] for r in rec["recommendations"]]
    recommended = [r["unit_id"] for r in rec["recommendations"] if r["recommended"]]
    assert recommended
    toggles = page.locator("[data-testid=recommendation] [data-testid=recommendation-toggle]")
    checked = [toggles.nth(i).is_checked() for i in range(toggles.count())]
    assert checked == [r["recommended"] for r in rec["recommendations"]]
    first = page.locator("[data-testid=recommendation]").first
    assert rec["recommendations"][0]["callsign"] in first.inner_text()
    # Routes on the map: one line per unit the API gave a route for.
    with_route = sorted(r["unit_id"] for r in rec["recommendations"] if r["route"])
    eventually(lambda: sorted(source_ids(page, "drawer-routes")) == with_route, "the routes")
    assert source_ids(page, "drawer-focus") == [incident["id"]]

    page.click("[data-testid=dispatch-recommended]")
    eventually(lambda: len(task_rows(page)) == len(recommended), "a task row per unit")
    tasks = active_tasks(api, incident_id=incident["id"])
    assert sorted(t["unit_id"] for t in tasks) == sorted(recommended)
    assert task_rows(page) == {u: "assigned" for u in recommended}
    assert page.locator("[data-testid=dispatch-error]").is_hidden()
    # The dispatched routes stay on the map; the queue's dispatch timer has stopped.
    eventually(lambda: set(recommended) <= set(source_ids(page, "drawer-routes")), "routes kept")
    timer = item(page, incident["id"]).locator("[data-timer=dispatch]")
    eventually(lambda: timer.get_attribute("data-phase") == "done", "the dispatch timer stopped")
    eventually(lambda: "ok" in (timer.get_attribute("class") or ""), "dispatched within target")

    # Escape closes the drawer and clears its routes.
    page.keyboard.press("Escape")
    drawer.wait_for(state="hidden")
    eventually(lambda: source_ids(page, "drawer-routes") == [], "routes cleared")
    assert page.evaluate("window.__console.selected") is None
    # Cancel through the drawer: the incident ends, its units are freed, the drawer closes.
    open_drawer(page, incident["id"])
    drawer.locator("[data-testid=incident-action][data-status=cancelled]").click()
    drawer.wait_for(state="hidden")
    assert api.get(f"/api/incidents/{incident['id']}")["properties"]["status"] == "cancelled"
    assert active_tasks(api, incident_id=incident["id"]) == []
    eventually(lambda: incident["id"] not in queue_ids(page), "the cancelled one leaves the queue")
    assert page.js_errors == []


def test_timeline_follows_the_responder(open_page, live_server):
    api = Api(live_server, "dispatcher")
    responder = Api(live_server, "responder")
    e101 = unit_id(api, "E101")
    incident = new_incident(api, "D2 住宅火灾 House fire", -0.001, 0.0008)
    page = open_screen(open_page)
    open_drawer(page, incident["id"])
    assert e101 in rec_ids(page), "E101 is among the units ranked for a fire near its station"
    # Per-unit toggles: only E101 is sent.
    toggles = page.locator("[data-testid=recommendation]")
    for i in range(toggles.count()):
        row = toggles.nth(i)
        box = row.locator("[data-testid=recommendation-toggle]")
        want = int(row.get_attribute("data-unit-id")) == e101
        if box.is_checked() != want:
            box.click()
    assert page.locator("[data-testid=dispatch-recommended]").get_attribute("data-count") == "1"
    page.locator("[data-testid=incident-drawer] h2").click()  # focus out of the checkbox
    page.keyboard.press("Control+Enter")
    eventually(lambda: task_rows(page) == {e101: "assigned"}, "E101's task row")
    (task,) = active_tasks(api, incident_id=incident["id"])
    assert task["unit_id"] == e101

    row = page.locator(f"[data-testid=task-row][data-unit-id='{e101}']")
    for status in ("accepted", "en_route", "on_scene"):
        responder.post(f"/api/tasks/{task['id']}/status", {"status": status})
        started = time.monotonic()
        eventually(lambda s=status: row.get_attribute("data-status") == s, f"row {status}", 5)
        assert time.monotonic() - started < 5
    # Each step reached shows its time.
    times = row.locator(".t-steps time").all_inner_texts()
    assert all(times[:4]) and not times[4]
    # The incident is on scene: both queue timers have stopped and show their final times.
    queue_item = item(page, incident["id"])
    travel = queue_item.locator("[data-timer=travel]")
    eventually(lambda: travel.get_attribute("data-phase") == "done", "the travel timer stopped")
    dispatch = queue_item.locator("[data-timer=dispatch]")
    assert dispatch.get_attribute("data-phase") == "done"
    before = dispatch.inner_text(), travel.inner_text()
    page.wait_for_timeout(1500)
    assert (dispatch.inner_text(), travel.inner_text()) == before
    responder.post(f"/api/tasks/{task['id']}/status", {"status": "done"})
    eventually(lambda: row.get_attribute("data-status") == "done", "row done", 5)
    cancel(api, incident)
    assert page.js_errors == []


def test_two_dispatchers_racing_for_a_unit(open_page, live_server):
    api = Api(live_server, "dispatcher")
    incident = new_incident(api, "D3 仓库火灾 Depot fire", 0.0015, 0.001)
    a = open_screen(open_page, "dispatcher")
    b = open_screen(open_page, "commander")
    open_drawer(a, incident["id"])
    open_drawer(b, incident["id"])
    assert rec_ids(a) == rec_ids(b)
    a.click("[data-testid=dispatch-recommended]")
    eventually(lambda: task_rows(a), "A's tasks")
    taken = active_tasks(api, incident_id=incident["id"])
    taken_ids = {t["unit_id"] for t in taken}
    units = {
        u["id"]: u["properties"]["callsign"] for u in api.get("/api/units?limit=500")["features"]
    }
    first = min(taken_ids)

    b.click("[data-testid=dispatch-recommended]")
    error = b.locator("[data-testid=dispatch-error]")
    error.wait_for(state="visible")
    assert units[first] in error.inner_text()
    assert "刚被其他调度员派出" in error.inner_text()
    # B's recommendation is refreshed: the taken units are no longer recommended there.
    eventually(
        lambda: (
            not b.locator("[data-testid=recommendation][data-recommended=true]").evaluate_all(
                "(els, ids) => els.filter(e => ids.includes(Number(e.dataset.unitId))).length",
                sorted(taken_ids),
            )
        ),
        "B's refreshed recommendation",
    )
    for uid in taken_ids:
        assert len(active_tasks(api, unit_id=uid)) == 1
    # A has sent the whole plan: B's refreshed list recommends nothing more (the server
    # counts the units on their way), nothing is checked (reinforcements are chosen by
    # hand), and the button is free again once one is checked.
    assert b.locator("[data-testid=recommendation][data-recommended=true]").count() == 0
    button = b.locator("[data-testid=dispatch-recommended]")
    assert button.get_attribute("data-count") == "0" and button.is_disabled()
    b.locator("[data-testid=recommendation-toggle]").first.check()
    assert button.is_enabled()
    cancel(api, incident)
    # The only failed request is B's 409, which is the point.
    assert [e for e in b.js_errors if "409" not in e] == []
    assert a.js_errors == []


def test_overdue_timers_turn_red(open_page, live_server, database_url):
    api = Api(live_server, "dispatcher")
    waiting = new_incident(api, "T1 久未派遣 Waiting", -0.0025, 0.0005, type="medical")
    driving = new_incident(api, "T2 久未到场 Driving", 0.0025, -0.0005)
    units = api.get("/api/units?status=available&limit=50")["features"]
    unit = next(u for u in units if "fire_suppression" in u["properties"]["capabilities"])
    api.post(f"/api/incidents/{driving['id']}/dispatch", {"unit_ids": [unit["id"]]}, status=201)
    # Backdated in the database (the server's targets: dispatch 60 s, fire travel 300 s).
    sql(
        database_url,
        "UPDATE incident SET reported_at = now() - interval '5 minutes' WHERE id = :id",
        id=waiting["id"],
    )
    sql(
        database_url,
        "UPDATE incident SET reported_at = now() - interval '13 minutes',"
        " dispatched_at = now() - interval '11 minutes' WHERE id = :id",
        id=driving["id"],
    )
    page = open_screen(open_page)
    late = item(page, waiting["id"])
    late.wait_for()
    eventually(lambda: late.get_attribute("data-overdue") == "dispatch", "dispatch overdue")
    timer = late.locator("[data-timer=dispatch]")
    assert "late" in timer.get_attribute("class")
    assert timer.evaluate("e => getComputedStyle(e).color") == "rgb(255, 214, 214)"
    assert timer.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(255, 92, 92)"
    assert timer.inner_text().split()[1].startswith("5:0")
    assert timer.inner_text().endswith("1:00")  # the target from GET /api/kpis
    travel = item(page, driving["id"])
    eventually(lambda: travel.get_attribute("data-overdue") == "travel", "travel overdue")
    assert travel.locator("[data-timer=dispatch]").get_attribute("data-phase") == "done"
    assert "late" in travel.locator("[data-timer=dispatch]").get_attribute("class")
    assert travel.locator("[data-timer=travel]").inner_text().endswith("5:00")  # fire: 300 s
    # A fresh one is not overdue, and its timer counts up each second.
    fresh = new_incident(api, "T3 刚报告 Fresh", 0.0005, 0.0015, type="medical", severity="minor")
    item(page, fresh["id"]).wait_for()
    assert item(page, fresh["id"]).get_attribute("data-overdue") is None
    shown = item(page, fresh["id"]).locator("[data-timer=dispatch]")
    first = shown.inner_text()
    eventually(lambda: shown.inner_text() != first, "the timer counting up", 3)
    cancel(api, waiting, driving, fresh)
    assert page.js_errors == []


def test_alarm_for_a_new_severe_incident_only(open_page, live_server):
    api = Api(live_server, "dispatcher")
    page = open_screen(open_page)
    before = page.evaluate("window.__console.alarms")
    severe = new_incident(api, "A1 化工厂爆炸 Plant explosion", 0.0005, -0.001, severity="severe")
    page.wait_for_function(f"window.__console.alarms === {before + 1}")
    assert page.evaluate("window.__console.lastAlarm.id") == severe["id"]
    # The pulse: rings on the map's own source while it lasts (a few seconds).
    eventually(
        lambda: page.evaluate(
            "async () => (await window.__map.getSource('queue-pulse').getData()).features.length"
        ),
        "the pulse on the map",
        3,
    )
    minor = new_incident(api, "A2 垃圾桶起火 Bin fire", -0.0005, 0.001, severity="minor")
    item(page, minor["id"]).wait_for()
    page.wait_for_timeout(500)
    assert page.evaluate("window.__console.alarms") == before + 1
    cancel(api, severe, minor)
    assert page.js_errors == []


# --- screenshots ---------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "scale"), [("zh-CN", 1), ("en", 1), ("zh-CN", 2)])
def test_console_screenshots(open_page, live_server, lang, scale):
    """The queue with about ten incidents and the drawer over the map, before and after
    dispatch: 1920x1080 in Chinese and English, and 3840x2160 (1920x1080 CSS at 2x) in Chinese."""
    api = Api(live_server, "dispatcher")
    spots = [
        (-0.003, 0.001),
        (0.002, -0.001),
        (0.001, 0.0012),
        (-0.002, -0.001),
        (0.003, 0.0015),
        (-0.001, -0.0015),
        (0.0025, 0.0002),
        (-0.0028, -0.0004),
        (0.0006, 0.0018),
    ]
    kinds = [
        ("medical", "moderate"),
        ("fire", "extreme"),
        ("traffic_accident", "severe"),
        ("medical", "minor"),
        ("flood", "moderate"),
        ("fire", "moderate"),
        ("traffic_accident", "minor"),
        ("medical", "severe"),
        ("fire", "minor"),
    ]
    titles = [
        "老人摔倒 Fall at home",
        "酒店火灾 Hotel fire",
        "三车相撞 Three-car crash",
        "腹痛 Abdominal pain",
        "地下车库进水 Garage flooding",
        "厨房起火 Kitchen fire",
        "剐蹭 Minor collision",
        "心脏骤停 Cardiac arrest",
        "垃圾桶起火 Bin fire",
    ]
    others = [
        new_incident(api, title, dx, dy, type=k, severity=s, address=f"Mannerheimintie {i + 3}")
        for i, (title, (dx, dy), (k, s)) in enumerate(zip(titles, spots, kinds, strict=True))
    ]
    others.append(new_incident(api, "演练：地铁站火灾 Metro drill", 0.0012, -0.0016, drill=True))
    incident = new_incident(
        api,
        "商场火灾 Mall fire",
        0.001,
        -0.0005,
        address="Aleksanterinkatu 52",
        people_affected=40,
        description="三楼冒烟，有人被困 / smoke on the 3rd floor, people trapped",
        caller_phone="+358 40 123 4567",
    )
    page = open_screen(open_page, lang=lang, device_scale_factor=scale)
    suffix = f"{1920 * scale}-{'zh' if lang == 'zh-CN' else 'en'}"
    open_drawer(page, incident["id"])
    page.wait_for_timeout(1000)
    shot(page, f"console-drawer-{suffix}.png")
    page.click("[data-testid=dispatch-recommended]")
    eventually(lambda: task_rows(page), "the task timeline")
    page.wait_for_timeout(500)
    shot(page, f"console-dispatched-{suffix}.png")
    cancel(api, incident, *others)
    assert page.js_errors == []


def test_queue_renders_500_open_incidents_quickly(open_page, live_server):
    """500 open incidents put into the page's state: every render (the first load fills in
    over a few frames, most urgent first), a re-order and a pass with nothing changed stay
    under 50 ms (window.__console.queueRenderMs); the timers tick without a rebuild."""
    page = open_screen(open_page)
    figures = page.evaluate(
        """async () => {
        const s = await import('/static/screen_state.js');
        const sev = ['minor', 'moderate', 'severe', 'extreme'];
        const types = ['fire', 'medical', 'flood', 'traffic_accident'];
        const now = Date.now();
        const queue = () => document.querySelectorAll('[data-testid=queue-item]').length;
        const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        const render = async () => { s.emit('event', 'incident.updated', {}, {}); s.redraw(); await frame();
          return window.__console.queueRenderMs; };
        const before = queue();
        const add = () => { for (let i = 0; i < 500; i++) {
          const id = 9000000 + i;
          s.state.incidents.set(id, { type: 'Feature', id,
            geometry: { type: 'Point', coordinates: [24.94 + (i % 50) * 1e-4, 60.17 + i * 1e-5] },
            properties: { title: `Bench ${i}`, type: types[i % 4], severity: sev[i % 4],
              status: i % 3 ? 'reported' : 'dispatched', address: `Street ${i}`, drill: i % 50 === 0,
              reported_at: new Date(now - i * 7000).toISOString(),
              dispatched_at: i % 3 ? null : new Date(now - i * 3000).toISOString(), on_scene_at: null } });
        } };
        const drop = () => { for (let i = 0; i < 500; i++) s.state.incidents.delete(9000000 + i); };
        // The slowest render of a full load, three times over (the machine is shared: the
        // best of three leaves out other processes' noise, which only ever adds).
        const load = [];
        for (let round = 0; round < 3; round++) {
          if (round) { drop(); await render(); }
          add();
          window.__console.queueRenderMaxMs = 0;
          for (let k = 0; k < 30 && queue() < before + 500; k++) await render();
          load.push(window.__console.queueRenderMaxMs);
        }
        const items = queue();
        const top = document.querySelector('[data-testid=queue-item]').dataset.incidentId;
        s.state.incidents.get(9000001).properties.severity = 'extreme';  // jumps up: a re-order
        s.state.incidents.get(9000001).properties.reported_at = new Date(now - 9e6).toISOString();
        const reorder = await render();
        const jumped = document.querySelector('[data-testid=queue-item]').dataset.incidentId;
        const again = await render();  // nothing changed
        const node = document.querySelector("[data-incident-id='9000002']");
        await new Promise((r) => setTimeout(r, 1100));
        const same = node === document.querySelector("[data-incident-id='9000002']") && node.isConnected;
        drop();
        await render();
        return { load, items: items - before, top, reorder, jumped, again, same, left: queue() - before };
    }"""
    )
    print("queue render ms", figures)
    assert figures["items"] == 500 and figures["left"] == 0
    assert min(figures["load"]) < 50, figures
    assert figures["reorder"] < 50, figures
    assert figures["again"] < 50, figures
    assert figures["jumped"] == "9000001" and figures["top"] != "9000001"
    assert figures["same"], "the timers tick in place: items are not rebuilt"
    assert page.js_errors == []


def test_a_stale_gps_fix_is_greyed_out(open_page, live_server):
    """A unit whose last fix is older than 120 s is flagged ``stale`` on the map's units
    source (drawn grey and translucent); a fresh fix brings it back."""
    api = Api(live_server, "dispatcher")
    page = open_screen(open_page)
    unit = api.get("/api/units?limit=500")["features"][-1]
    lon, lat = unit["geometry"]["coordinates"]  # where it already is: rankings stay as they were
    # A fix 115 s old: current when it arrives, stale a few seconds later with no new event.
    old = datetime.now(UTC) - timedelta(seconds=115)
    fix = {"lon": lon, "lat": lat, "recorded_at": old.isoformat()}
    api.post(f"/api/units/{unit['id']}/position", fix, status=202)

    def stale() -> Any:
        return page.evaluate(
            "async (id) => ((await window.__map.getSource('units').getData()).features"
            ".find(f => f.id === id) || {properties: {}}).properties.stale",
            unit["id"],
        )

    eventually(lambda: stale() is False, "the fix on the map, still current")
    eventually(lambda: stale() is True, "the unit flagged stale as its fix ages", 10)
    assert (datetime.now(UTC) - old).total_seconds() > 120
    paint = page.evaluate("window.__map.getPaintProperty('units', 'circle-opacity')")
    assert paint[0] == "case" and 0 < paint[2] < 1
    time.sleep(1.1)  # the server publishes at most one fix per unit per second
    fresh = {"lon": lon, "lat": lat, "recorded_at": datetime.now(UTC).isoformat()}
    api.post(f"/api/units/{unit['id']}/position", fresh, status=202)
    eventually(lambda: stale() is False, "the unit current again")
    assert page.js_errors == []
