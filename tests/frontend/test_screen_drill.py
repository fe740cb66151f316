"""The console's drill scope, /screen?drill=<id>, in real Chromium.

A finished simulation run (a ``drill`` row of mode ``run`` with a hand-made replay
timeline around the test city: 4 stations, 5 units, 20 incidents, two policies) is replayed
on the map: the 演练 banner, play at x3600 (the clock runs, units leave their stations),
pause (the clock stops), seek (the incidents shown are those called by then; a unit half-way
along a leg is half-way on the map), and a policy switch (the other timeline at the same
time). A tabletop drill (a ``drill`` row of mode ``tabletop`` with its own incidents and
stand-in units) fills the queue with its incidents only, under the banner, and dispatches
to a stand-in. Without ``?drill`` there is no banner. Seeking 10,000 events is timed in the
page. Screenshots: docs/img/drill-replay.png (1920x1080, looked at by a person) and
docs/img/drill-tabletop.png.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from geoalchemy2 import WKTElement
from sqlalchemy import text

from command.drills.models import Drill
from command.incidents.models import Incident
from core.db import make_engine, make_sessionmaker, session_scope
from tests.support.browser import BIG_SCREEN, Api, eventually, login_form, source_ids

pytestmark = pytest.mark.browser

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
START = "2026-07-01T08:00:00+08:00"
DURATION_S = 4 * 3600
STATIONS = [
    ("Fire post 1", 24.9435452, 60.1722668),
    ("Fire post 2", 24.9532279, 60.1645736),
    ("Fire post 3", 24.9378624, 60.1642864),
    ("Ambulance post 1", 24.9435041, 60.1695572),
]
UNITS = [("E1", "fire", 0), ("E2", "fire", 1), ("E3", "fire", 2), ("A1", "ambulance", 3),
         ("A2", "ambulance", 3)]  # fmt: skip
SPEED_MPS = 7.0
TURNOUT_S = 45.0
ON_SCENE_S = 1500.0
TARGET_S = 480.0


# --- a hand-made timeline (the drills contract's replay format) ---------------------------
def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    x = math.radians(b[0] - a[0]) * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot(x, math.radians(b[1] - a[1])) * 6_371_000


def timeline(policy: str) -> dict[str, Any]:
    """Nearest idle unit (or the first to come free) for each incident, in a burst that
    queues; `move_up` also sends each unit home to the next station after it is back."""
    rng = random.Random(7)
    times = [60.0 + 240 * i for i in range(10)] + [3000.0 + 500 * i for i in range(10)]
    incidents: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    at = [(s[1], s[2]) for s in STATIONS]
    home = [u[2] for u in UNITS]
    free = [0.0] * len(UNITS)
    for i, t in enumerate(times):
        lon, lat = rng.uniform(24.9370, 24.9520), rng.uniform(60.1655, 60.1775)
        sev = rng.choice(["moderate", "severe", "minor"])
        ready = min(
            range(len(UNITS)), key=lambda k: (max(free[k], t), metres(at[home[k]], (lon, lat)))
        )
        assign = max(free[ready], t) + 30.0
        arrive = assign + TURNOUT_S + metres(at[home[ready]], (lon, lat)) / SPEED_MPS
        clear = arrive + ON_SCENE_S
        back = home[ready] if policy == "nearest" else (home[ready] + 1) % len(STATIONS)
        at_home = clear + metres((lon, lat), at[back]) / SPEED_MPS
        home[ready], free[ready] = back, at_home
        response = arrive - t
        incidents.append({"id": i, "t": t, "lon": lon, "lat": lat, "type": "medical" if i % 3 else "fire",
                          "severity": sev, "response_s": round(response, 1),
                          "within": response <= TARGET_S})  # fmt: skip
        events += [
            {"t": t, "kind": "call", "incident": i},
            {"t": assign, "kind": "assign", "unit": ready, "incident": i},
            {"t": arrive, "kind": "arrive", "unit": ready, "incident": i},
            {"t": clear, "kind": "clear", "unit": ready, "incident": i},
            {"t": at_home, "kind": "home", "unit": ready, "station": back},
        ]
    events.sort(key=lambda e: e["t"])
    return {
        "policy": policy, "replication": 0, "start": START, "duration_s": DURATION_S,
        "stations": [{"name": n, "lon": x, "lat": y} for n, x, y in STATIONS],
        "units": [{"id": k, "callsign": c, "type": ty, "station": s} for k, (c, ty, s) in enumerate(UNITS)],
        "incidents": incidents, "events": events, "closures": [],
    }  # fmt: skip


# --- the database ------------------------------------------------------------------------
def insert_drill(database_url: str, **values: Any) -> int:
    engine = make_engine(database_url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            drill = Drill(created_by="test", progress=1.0, **values)
            session.add(drill)
            session.flush()
            return int(drill.id)
    finally:
        engine.dispose()


def sql(database_url: str, statement: str, **params: Any) -> list[Any]:
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def run_drill(database_url: str) -> int:
    return insert_drill(
        database_url, name="回放 Two more ambulances", mode="run", status="finished",
        scenario={"name": "Two more ambulances", "start": START, "duration_s": DURATION_S,
                  "policies": ["nearest", "move_up"]},
        replay={"nearest": timeline("nearest"), "move_up": timeline("move_up")},
    )  # fmt: skip


# --- the page ----------------------------------------------------------------------------
def open_screen(open_page: Any, path: str, user: str, topic: str) -> Any:
    page = open_page(path, BIG_SCREEN)
    page.wait_for_selector("#login-overlay:not([hidden])")
    login_form(page, user)
    page.wait_for_function(
        "(t) => window.__live.state === 'live' && Number.isInteger(window.__live.topics[t])"
        " && window.__live.mapLoaded",
        arg=topic,
    )
    return page


def replay(page: Any, what: str) -> Any:
    return page.evaluate(f"() => window.__replay.{what}")


def seek(page: Any, t: float) -> None:
    page.eval_on_selector(
        "[data-testid=replay-seek]",
        "(el, t) => { el.value = String(t); el.dispatchEvent(new Event('input', {bubbles: true})); }",
        t,
    )


def shown_incidents(page: Any) -> int:
    return int(page.evaluate(
        "async () => (await window.__map.getSource('replay-incidents').getData()).features.length"
    ))  # fmt: skip


def shown_equal(page: Any, n: int) -> bool:
    return shown_incidents(page) == n


def position(tl: dict[str, Any], unit: int, t: float) -> tuple[float, float]:
    """Where the contract puts a unit at ``t`` while on its first job (from its station)."""
    first = [
        e for e in tl["events"] if e.get("unit") == unit and e["kind"] in ("assign", "arrive")
    ][:2]
    inc = tl["incidents"][first[0]["incident"]]
    s = tl["stations"][UNITS[unit][2]]
    f = min(1.0, max(0.0, (t - first[0]["t"]) / (first[1]["t"] - first[0]["t"])))
    return s["lon"] + (inc["lon"] - s["lon"]) * f, s["lat"] + (inc["lat"] - s["lat"]) * f


def unit_at(page: Any, unit: int) -> tuple[float, float]:
    u = next(x for x in page.evaluate("() => window.__replay.units()") if x["id"] == unit)
    return u["lon"], u["lat"]


# --- the tests ---------------------------------------------------------------------------
def test_replay_plays_pauses_seeks_and_switches_policy(open_page: Any, run_drill: int) -> None:
    page = open_screen(open_page, f"/screen?drill={run_drill}", "planner", f"drill:{run_drill}")
    page.wait_for_function("window.__replay.ready")
    banner = page.locator("[data-testid=drill-banner]")
    assert banner.is_visible()
    assert "演练" in banner.inner_text() and "Two more ambulances" in banner.inner_text()
    assert banner.get_attribute("data-mode") == "run"
    assert page.locator("[data-testid=new-incident]").is_hidden()
    policies = page.eval_on_selector_all(
        "[data-testid=replay-policy] option", "os => os.map(o => o.value)"
    )
    assert policies == ["nearest", "move_up"] and replay(page, "policy") == "nearest"
    assert replay(page, "t") == 0 and shown_incidents(page) == 0
    stations = {(s[1], s[2]) for s in STATIONS}
    assert all((u["lon"], u["lat"]) in stations for u in replay(page, "units()"))

    # Play at x3600: the clock runs and units leave their stations.
    page.select_option("[data-testid=replay-speed]", "3600")
    page.click("[data-testid=replay-play]")
    assert page.locator("[data-testid=replay-pause]").is_visible()
    eventually(lambda: replay(page, "t") > 900, "the simulated clock to run")
    eventually(
        lambda: any((u["lon"], u["lat"]) not in stations for u in replay(page, "units()")),
        "a unit away from its station",
    )
    clock = int(page.get_attribute("[data-testid=replay-clock]", "data-t") or 0)
    assert clock > 0 and "2026-07-01" in page.inner_text("[data-testid=replay-clock]")

    # Pause: the clock stops.
    page.click("[data-testid=replay-pause]")
    stopped = replay(page, "t")
    page.wait_for_timeout(600)
    assert replay(page, "t") == stopped and not replay(page, "playing")

    # Seek: the state is rebuilt at that time.
    tl = timeline("nearest")
    for at in (5000, 1000, 100):
        seek(page, at)
        assert replay(page, "t") == at
        called = sum(1 for i in tl["incidents"] if i["t"] <= at)
        eventually(partial(shown_equal, page, called), f"{called} incidents shown at t={at}")
        assert page.inner_text("[data-testid=replay-count]").startswith(str(called))
    first = next(e for e in tl["events"] if e["kind"] == "assign")
    arrive = next(e for e in tl["events"] if e["kind"] == "arrive" and e["unit"] == first["unit"])
    middle = float(int((first["t"] + arrive["t"]) / 2))  # the slider moves by whole seconds
    seek(page, middle)
    want = position(tl, first["unit"], middle)
    assert unit_at(page, first["unit"]) == pytest.approx(want, abs=1e-7)
    assert replay(page, "units()")[first["unit"]]["status"] == "en_route"
    seek(page, int(arrive["t"]) + 10)
    assert replay(page, "units()")[first["unit"]]["status"] == "on_scene"

    # The other policy: its own timeline, at the same time.
    seek(page, 9000)
    before = page.evaluate("() => window.__replay.units()")
    page.select_option("[data-testid=replay-policy]", "move_up")
    page.wait_for_function("window.__replay.policy === 'move_up' && window.__replay.ready")
    assert replay(page, "t") == 9000
    after = page.evaluate("() => window.__replay.units()")
    assert before != after  # units went home to other stations
    assert page.js_errors == []


def test_replay_screenshot(open_page: Any, run_drill: int) -> None:
    page = open_screen(open_page, f"/screen?drill={run_drill}", "dispatcher", f"drill:{run_drill}")
    page.wait_for_function("window.__replay.ready")
    # A busy moment: units on their way and on scene, incidents waiting, met and late.
    seek(page, 4150)
    page.wait_for_function("window.__map.loaded()")
    page.wait_for_timeout(800)
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "drill-replay.png"))
    stats = replay(page, "stats()")
    assert stats["called"] == sum(1 for i in timeline("nearest")["incidents"] if i["t"] <= 4150)
    assert 0 < stats["busy"] <= len(UNITS)
    # The right column's counts are the replay's: incidents not yet cleared, units out.
    assert 0 < int(page.inner_text("#k-incidents")) <= stats["called"]
    assert int(page.inner_text("#k-tasks")) == stats["busy"]
    page.click("#lang")
    assert "DRILL" in page.inner_text("[data-testid=drill-banner]")
    assert page.locator("[data-testid=replay-play]").inner_text().endswith("Play")
    page.wait_for_timeout(300)
    page.screenshot(path=str(DOCS_IMG / "drill-replay-en.png"))
    assert page.js_errors == []


def test_seek_of_10000_events_is_fast(open_page: Any, run_drill: int) -> None:
    page = open_screen(open_page, f"/screen?drill={run_drill}", "planner", f"drill:{run_drill}")
    page.wait_for_function("window.__replay.ready")
    got = page.evaluate("""() => {
      const stations = Array.from({length: 20}, (_, i) => ({name: `S${i}`, lon: 24.93 + i / 1000, lat: 60.17}));
      const units = Array.from({length: 300}, (_, i) => ({id: i, callsign: `U${i}`, type: 'ambulance', station: i % 20}));
      const incidents = [], events = [];
      for (let i = 0; i < 2000; i += 1) {
        const t = i * 40, u = i % 300;
        incidents.push({id: i, t, lon: 24.94, lat: 60.17 + i / 1e5, type: 'medical', severity: 'moderate',
                        response_s: 300, within: true});
        events.push({t, kind: 'call', incident: i}, {t: t + 5, kind: 'assign', unit: u, incident: i},
                    {t: t + 300, kind: 'arrive', unit: u, incident: i}, {t: t + 900, kind: 'clear', unit: u, incident: i},
                    {t: t + 1200, kind: 'home', unit: u, station: u % 20});
      }
      events.sort((a, b) => a.t - b.t);
      const tl = new window.__replay.Timeline({policy: 'x', start: null, duration_s: 82000, stations, units, incidents, events});
      const times = [];
      for (let k = 0; k < 40; k += 1) {
        const to = (k % 2 ? 81000 : 0) + ((k * 7919) % 1000);  // back and forth: each seek back starts over
        const began = performance.now();
        tl.seek(to);
        times.push(performance.now() - began);
      }
      times.sort((a, b) => a - b);
      return {events: tl.events.length, max: times[times.length - 1], median: times[times.length >> 1],
              called: tl.stats().called};
    }""")  # fmt: skip
    assert got["events"] == 10_000
    assert got["max"] < 100 and got["median"] < 25, got


def test_no_banner_without_a_drill(open_page: Any) -> None:
    page = open_screen(open_page, "/screen", "dispatcher", "situation")
    assert page.locator("[data-testid=drill-banner]").is_hidden()
    assert page.locator("#replay-bar").is_hidden()
    assert page.locator("[data-testid=new-incident]").is_visible()
    assert page.evaluate("() => window.__replay.ready") is False
    assert page.js_errors == []


def test_tabletop_scope_shows_its_incidents_and_dispatches_to_stand_ins(
    open_page: Any, live_server: str, database_url: str
) -> None:
    api = Api(live_server, "dispatcher")
    live = api.incident("Live fire, not the drill's", 24.9443, 60.1716)
    drill_id = insert_drill(
        database_url, name="桌面推演 Metro fire", mode="tabletop", status="running",
        scenario={"name": "Metro fire", "start": START, "duration_s": 3600},
        speed=1.0, started_at=datetime.now(UTC),
    )  # fmt: skip
    # Stand-ins of three real units, and the drill's own incidents.
    sql(database_url, """
        INSERT INTO unit (callsign, name, kind, type, capabilities, crew, home_station_id, status,
                          drill_id, geom)
        SELECT 'D' || :d || '-' || u.callsign, u.name, u.kind, u.type, u.capabilities, u.crew,
               u.home_station_id, 'available', :d, COALESCE(u.geom, station.geom)
        FROM unit u LEFT JOIN station ON station.id = u.home_station_id
        WHERE u.drill_id IS NULL ORDER BY u.id LIMIT 3""", d=drill_id)  # fmt: skip
    engine = make_engine(database_url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            mine = []
            for k, (lon, lat) in enumerate([(24.9410, 60.1700), (24.9470, 60.1735)]):
                incident = Incident(
                    title=f"演练 Metro fire #{k + 1}", type="fire", severity="severe",
                    status="reported", source="drill", drill=True, drill_id=drill_id,
                    reported_by=f"drill:{drill_id}", geom=WKTElement(f"POINT({lon} {lat})", srid=4326),
                )  # fmt: skip
                session.add(incident)
                session.flush()
                mine.append(int(incident.id))
    finally:
        engine.dispose()

    page = open_screen(open_page, f"/screen?drill={drill_id}", "dispatcher", f"drill:{drill_id}")
    banner = page.locator("[data-testid=drill-banner]")
    assert banner.is_visible() and "Metro fire" in banner.inner_text()
    eventually(lambda: banner.get_attribute("data-mode") == "tabletop", "the banner's mode")
    queue = "[data-testid=incident-queue] [data-testid=queue-item]"
    eventually(
        lambda: sorted(int(x) for x in page.eval_on_selector_all(queue, "els => els.map(e => e.dataset.incidentId)"))
        == sorted(mine),
        "the drill's incidents, and only them, in the queue",
    )  # fmt: skip
    eventually(
        lambda: sorted(source_ids(page, "incidents")) == sorted(mine), "only the drill's on the map"
    )
    assert live["id"] not in source_ids(page, "incidents")
    page.locator(f"{queue}[data-incident-id='{mine[0]}']").click()
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=incident-drawer] [data-testid=recommendation]').length > 0"
    )
    recommended = page.eval_on_selector_all(
        "[data-testid=incident-drawer] [data-testid=recommendation]",
        "els => els.map(e => e.dataset.unitId)",
    )
    standins = {
        r[0] for r in sql(database_url, "SELECT id FROM unit WHERE drill_id = :d", d=drill_id)
    }
    assert {int(u) for u in recommended} <= standins
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / "drill-tabletop.png"))
    page.click("[data-testid=dispatch-recommended]")
    page.wait_for_selector("[data-testid=task-timeline] [data-testid=task-row]")
    rows = page.eval_on_selector_all(
        "[data-testid=task-row]", "els => els.map(e => Number(e.dataset.unitId))"
    )
    assert rows and set(rows) <= standins

    # The drill's own events reach the banner: stopped, the clock frozen.
    Api(live_server, "planner").post(f"/api/drills/{drill_id}/stop", {})
    eventually(lambda: banner.get_attribute("data-status") == "stopped", "the banner's status")
    assert "已停止" in banner.inner_text()
    assert page.js_errors == []


def test_a_tabletop_drill_from_inject_to_report(open_page: Any, live_server: str) -> None:
    """The whole exercise as a dispatcher lives it: a planner starts a tabletop drill, its
    clock injects an incident into the drill scope, the dispatcher sees it under the 演练
    banner, dispatches the recommendation (a stand-in, never a real unit), the planner
    stops the drill, and its report holds recommended versus chosen."""
    planner = Api(live_server, "planner")
    scenario = {
        "name": "E2E tabletop",
        "start": START,
        "duration_s": 3600,
        "injects": [
            {"at_s": 60, "lon": 24.9443, "lat": 60.1712, "type": "fire", "severity": "severe",
             "title": "演练 Warehouse fire"},
        ],
    }  # fmt: skip
    started = planner.post("/api/drills/tabletop?speed=60", scenario, status=201)
    drill_id = int(started["drill"]["id"])
    real_units = {u["id"] for u in Api(live_server, "dispatcher").get("/api/units")["features"]}
    page = open_screen(open_page, f"/screen?drill={drill_id}", "dispatcher", f"drill:{drill_id}")
    banner = page.locator("[data-testid=drill-banner]")
    assert banner.is_visible() and "E2E tabletop" in banner.inner_text()
    queue = "[data-testid=incident-queue] [data-testid=queue-item]"
    page.wait_for_selector(queue, timeout=15_000)  # injected after 60 simulated s (1 s)
    item = page.locator(queue).first
    assert "Warehouse fire" in item.inner_text()
    item.click()
    page.wait_for_selector("[data-testid=incident-drawer] [data-testid=recommendation]")
    page.click("[data-testid=dispatch-recommended]")
    page.wait_for_selector("[data-testid=task-timeline] [data-testid=task-row]")
    sent = set(page.eval_on_selector_all(
        "[data-testid=task-row]", "els => els.map(e => Number(e.dataset.unitId))"
    ))  # fmt: skip
    assert sent and not sent & real_units  # stand-ins only
    planner.post(f"/api/drills/{drill_id}/stop", {})
    eventually(lambda: banner.get_attribute("data-status") == "stopped", "the banner's status")
    report = planner.get(f"/api/drills/{drill_id}/report")
    decided = report["recommended_vs_chosen"]
    assert decided["dispatches"] == 1 and decided["followed"] == 1
    (item_,) = decided["items"]
    assert item_["title"] == "演练 Warehouse fire"
    assert sorted(item_["chosen"]) == sorted(item_["recommended"])
    assert all(c.startswith(f"D{drill_id}-") for c in item_["chosen"])
    # the live side never saw it
    live_titles = {
        f["properties"]["title"]
        for f in Api(live_server, "dispatcher").get("/api/incidents")["features"]
    }
    assert "演练 Warehouse fire" not in live_titles
    assert page.js_errors == []
