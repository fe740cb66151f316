"""Vehicle positions (AVL) on the console, /screen, in real Chromium.

A unit is dispatched to an incident over REST; a run of fixes along its recommended route
(5 s apart, in the last minute) is posted for it, and the page is checked against what was
posted: the unit's point on the map is at the newest fix, the batched ``unit.positions``
events leave the event feed alone, and the incident drawer's track toggle (轨迹 / Track)
draws the unit's track with one vertex per fix, as ``GET /api/units/{id}/track`` answers
for the task's time. A unit with a single fix gets a note instead of a line. While the
task runs, fixes that arrive live extend the line; once it is done, the track ends at its
done time. Toggled off, or the drawer closed, the track goes. Screenshots (looked at by a person): docs/img/avl-track.png (the drawer with
the track drawn) and docs/img/avl-moving.png (a unit driving, its live track behind it).
"""

from __future__ import annotations

import itertools
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.browser import BIG_SCREEN, CENTRE, Api, eventually, login_form, source_ids
from tests.support.db import sql

pytestmark = pytest.mark.browser

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
FIXES = 10  # the run posted for the unit, 5 s apart
STEP_M = 50.0  # between two of them: 10 m/s, a car in town
LIVE_STEP_M = 12.0  # between live fixes about a second apart


# --- helpers -----------------------------------------------------------------------


def open_screen(open_page: Any, lang: str = "zh-CN") -> Any:
    page = open_page("/screen", BIG_SCREEN)
    if lang != "zh-CN":
        page.evaluate("(l) => localStorage.setItem('lang', l)", lang)
        page.reload()
    page.wait_for_selector("#login-overlay:not([hidden])")
    login_form(page, "dispatcher")
    page.wait_for_function(
        "window.__live.state === 'live' && Number.isInteger(window.__live.topics.situation)"
        " && window.__live.mapLoaded"
    )
    return page


def open_drawer(page: Any, incident_id: int) -> Any:
    """Click the incident in the queue; wait for its drawer with its task timeline."""
    page.locator(f"[data-testid=queue-item][data-incident-id='{incident_id}']").click()
    drawer = page.locator("[data-testid=incident-drawer]")
    drawer.wait_for(state="visible")
    page.wait_for_function(
        "(id) => document.querySelector('[data-testid=incident-drawer]').dataset.incidentId"
        " === String(id) && document.querySelectorAll("
        "'[data-testid=incident-drawer] [data-testid=task-row]').length > 0",
        arg=incident_id,
    )
    return drawer


def metres(a: list[float], b: list[float]) -> float:
    x = math.radians(b[0] - a[0]) * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot(x, math.radians(b[1] - a[1])) * 6_371_000


def along(line: list[list[float]], step_m: float, count: int) -> list[list[float]]:
    """``count`` points ``step_m`` apart along ``line`` from its start (stopping at its end)."""
    out = [list(line[0])]
    want = step_m
    done = 0.0
    for a, b in itertools.pairwise(line):
        seg = metres(a, b)
        while seg > 0 and done + seg >= want and len(out) < count:
            f = (want - done) / seg
            out.append([round(a[0] + f * (b[0] - a[0]), 7), round(a[1] + f * (b[1] - a[1]), 7)])
            want += step_m
        done += seg
    return out


def post_fixes(api: Api, unit_id: int, points: list[list[float]], times: list[datetime]) -> None:
    """The fixes in one batch, oldest first (``POST /api/positions``): all accepted."""
    positions = [
        {"unit_id": unit_id, "lon": lon, "lat": lat, "recorded_at": at.isoformat()}
        for (lon, lat), at in zip(points, times, strict=True)
    ]
    got = api.post("/api/positions", {"positions": positions}, status=202)
    assert got["accepted"] == len(positions) and not got["refused"], got
    assert not got["flagged"], got


def drawn_unit(page: Any, unit_id: int) -> Any:
    """The unit's point as the map's worker has it (what is drawn, not just getData())."""
    return page.evaluate(
        "(id) => { const f = window.__map.querySourceFeatures('units').find(f => f.id === id);"
        " return f ? f.properties : null; }",
        unit_id,
    )


def unit_point(page: Any, unit_id: int) -> Any:
    return page.evaluate(
        "async (id) => ((await window.__map.getSource('units').getData()).features"
        ".find(f => f.id === id) || {geometry: null}).geometry",
        unit_id,
    )


def track_lines(page: Any) -> dict[int, list[list[float]]]:
    features = page.evaluate(
        "async () => (await window.__map.getSource('unit-tracks').getData()).features"
    )
    return {int(f["id"]): f["geometry"]["coordinates"] for f in features}


def tracks(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("window.__tracks"))


def close_to(a: list[list[float]], b: list[list[float]]) -> bool:
    return len(a) == len(b) and all(
        c == pytest.approx(d, abs=2e-6) for c, d in zip(a, b, strict=True)
    )


# --- the test ------------------------------------------------------------------------


def test_unit_moves_on_the_map_and_its_track_is_drawn(
    open_page: Any, live_server: str, database_url: str
) -> None:
    api = Api(live_server, "dispatcher")
    incident = api.incident(
        "AVL 仓库火灾 Depot fire", CENTRE[0] + 0.006, CENTRE[1] - 0.003, address="Bulevardi 31"
    )
    rec = api.get(f"/api/incidents/{incident['id']}/recommendations?limit=8")
    # The plan's units are sent; the one with the longest drive is followed.
    sent = [r for r in rec["recommendations"] if r["recommended"] and r["route"]]
    assert len(sent) >= 2, "two recommended units with a route to the incident"
    first = max(sent, key=lambda r: r["distance_m"])
    uid = first["unit_id"]
    other = next(r["unit_id"] for r in sent if r["unit_id"] != uid)
    route = first["route"]["coordinates"]
    ids = [r["unit_id"] for r in sent]
    tasks = api.post(f"/api/incidents/{incident['id']}/dispatch", {"unit_ids": ids}, status=201)
    task = next(t for t in tasks if t["unit_id"] == uid)
    # The first unit was sent three minutes ago: its fixes of the last minute are its track.
    sql(
        database_url,
        "UPDATE task SET assigned_at = now() - interval '3 minutes' WHERE id = :id",
        id=task["id"],
    )
    # And the call came in 40 s before that (the KPIs' intervals stay true to the story).
    sql(
        database_url,
        "UPDATE incident SET reported_at = now() - interval '220 seconds', "
        "dispatched_at = now() - interval '3 minutes' WHERE id = :id",
        id=incident["id"],
    )
    page = open_screen(open_page)

    # A run of fixes along its route, 5 s apart, the newest 5 s ago.
    points = along(route, STEP_M, FIXES)
    assert len(points) == FIXES, "the route is long enough for the run"
    now = datetime.now(UTC)
    times = [now - timedelta(seconds=5 * (FIXES - i)) for i in range(FIXES)]
    post_fixes(api, uid, points, times)
    # The unit's point moves to the newest fix, from the batched live event.
    eventually(
        lambda: (g := unit_point(page, uid)) and g["coordinates"] == pytest.approx(points[-1]),
        "the unit's point at its newest fix",
    )
    # Drawn in its status's colour: the moved point keeps its properties on the map.
    eventually(
        lambda: (p := drawn_unit(page, uid)) and p.get("status") == "assigned",
        "the moved point drawn with its status",
    )
    assert drawn_unit(page, uid)["stale"] is False
    positions = page.evaluate("window.__live.positions")
    assert positions["batches"] >= 1 and positions["fixes"] >= 1, positions
    # The feed is not flooded: batched positions make no lines of their own.
    assert page.locator("#feed li[data-event='unit.positions']").count() == 0
    # The second unit: one fix since its dispatch, where it stands.
    units = api.get("/api/units?limit=500")["features"]
    there = next(u for u in units if u["id"] == other)["geometry"]["coordinates"]
    post_fixes(api, other, [there], [datetime.now(UTC)])

    # The drawer: each dispatched unit has a track toggle on its task row.
    drawer = open_drawer(page, incident["id"])
    toggle = drawer.locator(f"[data-testid=track-toggle-{uid}]")
    assert toggle.inner_text() == "轨迹"
    assert toggle.get_attribute("aria-pressed") == "false"
    assert drawer.locator(f"[data-testid=track-toggle-{other}]").count() == 1
    assert track_lines(page) == {}
    toggle.click()
    eventually(lambda: tracks(page).get(str(uid), {}).get("state") == "on", "the track drawn")
    assert toggle.get_attribute("aria-pressed") == "true"
    # One vertex per fix, at the fixes posted: the map's line and the server's track agree.
    line = eventually(lambda: track_lines(page).get(uid), "the track on the map")
    assert close_to(line, points), (line, points)
    shown = tracks(page)[str(uid)]
    assert shown["vertices"] == FIXES and shown["fixes"] == FIXES and shown["live"] is True
    assert shown["callsign"] == first["callsign"]
    window = urlencode({"since": shown["since"], "until": datetime.now(UTC).isoformat()})
    server = api.get(f"/api/units/{uid}/track?{window}")
    assert close_to(server["geometry"]["coordinates"], line)
    assert server["properties"]["fixes"] == FIXES and not server["properties"]["simplified"]
    note = drawer.locator(f"[data-testid=track-note-{uid}]")
    assert f"{FIXES} 个定位点" in note.inner_text()
    label = page.locator(f"[data-testid=track-label-{uid}]")
    assert first["callsign"] in label.inner_text()
    # The other unit's single fix: no line, a note saying so.
    drawer.locator(f"[data-testid=track-toggle-{other}]").click()
    lone_note = drawer.locator(f"[data-testid=track-note-{other}]")
    lone_note.wait_for()
    assert lone_note.get_attribute("data-state") == "empty"
    assert "无法绘制轨迹" in lone_note.inner_text()
    assert other not in track_lines(page)
    page.wait_for_timeout(800)  # the fit to the track
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "avl-track.png"))

    # English: the same toggle and notes in English.
    page.click("#lang")
    eventually(lambda: toggle.inner_text() == "Track", "the toggle in English")
    assert f"{FIXES} fixes" in note.inner_text()
    assert "too few" in lone_note.inner_text()
    page.click("#lang")
    eventually(lambda: toggle.inner_text() == "轨迹", "the toggle in Chinese")

    # Off: the line goes; the other's note too.
    drawer.locator(f"[data-testid=track-toggle-{other}]").click()
    eventually(lambda: str(other) not in tracks(page), "the other's track off")
    assert lone_note.count() == 0

    # Live: the unit drives on (en route), a fix about every second; the line follows it.
    api.post(f"/api/tasks/{task['id']}/status", {"status": "en_route"})
    rest = along(route, STEP_M, FIXES + 6)[FIXES - 1 :]  # the route on from the newest fix
    ahead = along(rest, LIVE_STEP_M, 6)[1:]
    assert len(ahead) >= 3, "the route goes on past the run"
    for point in ahead:
        time.sleep(1.1)  # the live map carries at most one fix per unit a second
        post_fixes(api, uid, [point], [datetime.now(UTC)])
    eventually(
        lambda: (g := unit_point(page, uid)) and g["coordinates"] == pytest.approx(ahead[-1]),
        "the unit's point at its live fix",
    )
    eventually(
        lambda: (p := drawn_unit(page, uid)) and p.get("status") == "en_route",
        "the moving point drawn en route",
    )
    grown = eventually(
        lambda: (t := tracks(page)[str(uid)])["vertices"] > FIXES and t,
        "the live fixes on the track",
    )
    assert grown["coords"][-1] == pytest.approx(ahead[-1])
    assert grown["coords"][:FIXES] == [pytest.approx(p) for p in points]
    assert close_to(track_lines(page)[uid], grown["coords"])
    page.wait_for_timeout(600)
    page.screenshot(path=str(DOCS_IMG / "avl-moving.png"))

    # Toggled off: the line and its label go. On again: every fix stored is on it (the
    # live map may have skipped one; the track never does). The drawer closed: gone too.
    toggle.click()
    eventually(lambda: track_lines(page) == {}, "the track off")
    assert label.count() == 0 and tracks(page) == {}
    toggle.click()
    again = eventually(lambda: track_lines(page).get(uid), "the track on again")
    assert close_to(again, points + ahead), (again, points + ahead)
    # The task done: the track ends with it, and a fix after that is not on the line.
    for status in ("on_scene", "done"):
        api.post(f"/api/tasks/{task['id']}/status", {"status": status})
    eventually(lambda: tracks(page)[str(uid)]["live"] is False, "the track ended with the task")
    time.sleep(1.1)
    after = along(rest, LIVE_STEP_M, len(ahead) + 3)[-1]
    post_fixes(api, uid, [after], [datetime.now(UTC)])
    eventually(
        lambda: (g := unit_point(page, uid)) and g["coordinates"] == pytest.approx(after),
        "the unit's point after the task",
    )
    assert close_to(track_lines(page)[uid], points + ahead)
    toggle.click()
    eventually(lambda: track_lines(page) == {}, "the track off")
    toggle.click()
    eventually(lambda: tracks(page).get(str(uid), {}).get("state") == "on", "on again, ended")
    assert close_to(track_lines(page)[uid], points + ahead)
    assert "实时延伸" not in note.inner_text()
    page.keyboard.press("Escape")
    drawer.wait_for(state="hidden")
    eventually(lambda: track_lines(page) == {}, "the track cleared with the drawer")
    assert tracks(page) == {} and label.count() == 0
    assert len(source_ids(page, "unit-track-fixes")) == 0

    api.post(f"/api/incidents/{incident['id']}/status", {"status": "cancelled"})
    assert page.js_errors == []
