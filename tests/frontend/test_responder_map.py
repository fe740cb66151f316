"""The responder's phone: the task card's map, route, ETA and hand-off links, in Chromium.

A dispatcher sends E101 (the demo responder's unit) over REST; the phone at 390x844 shows
the task card with our own road tiles, the unit, the scene and the drive route from
/api/route, its ETA and length as the API gives them, and links to map apps whose
coordinates are gis/crs.py's conversions (GCJ-02 for Amap, BD-09 for Baidu). crs.js is also
checked point by point against gis/crs.py inside and outside China. The task's steps are
tapped and checked back over REST; the route follows the phone when it moves over 100 m; the
card, its map library and the last route still load offline. Screenshots in zh-CN and
English go to tests/screenshots/.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from gis.crs import from_wgs84
from tests.support.browser import CENTRE, PHONE, Api, eventually, login_form, shot

pytestmark = pytest.mark.browser

SCENE = (CENTRE[0] + 0.0025, CENTRE[1] + 0.0012)  # lon, lat: a street corner in the demo city
CALLER_PHONE = "+358 40 123 4567"
# crs.js against gis/crs.py: inside China's box (the transform applies) and outside it.
CRS_POINTS = {
    "Beijing": (116.3975, 39.9087),
    "Shanghai": (121.4737, 31.2304),
    "Shenzhen": (114.0579, 22.5431),
    "Urumqi": (87.6168, 43.8256),
    "Seoul (inside the box gis/crs.py uses)": (126.978, 37.566),
    "Helsinki (outside China)": (24.9443, 60.1716),
    "Tokyo (east of the box)": (139.6917, 35.6895),
    "Sydney (southern hemisphere)": (151.2093, -33.8688),
}


def metres(a: tuple[float, float] | list[float], b: tuple[float, float] | list[float]) -> float:
    """Great-circle distance between two (lon, lat) points."""
    rad = math.pi / 180
    h = (
        math.sin((b[1] - a[1]) * rad / 2) ** 2
        + math.cos(a[1] * rad) * math.cos(b[1] * rad) * math.sin((b[0] - a[0]) * rad / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def js_round(x: float) -> int:
    """JavaScript's Math.round (halves up), which the page uses."""
    return math.floor(x + 0.5)


def eta_text(seconds: float, lang: str) -> str:
    """The ETA as the card shows it: seconds under a minute, else whole minutes."""
    if seconds < 60:
        return f"{js_round(seconds)} s" if lang == "en" else f"{js_round(seconds)} 秒"
    minutes = js_round(seconds / 60)
    return f"{minutes} min" if lang == "en" else f"{minutes} 分钟"


def length_text(length_m: float) -> str:
    return f"{js_round(length_m)} m" if length_m < 1000 else f"{length_m / 1000:.1f} km"


def route_on_map(page: Any) -> Any:
    """The route source's LineString on the card's map (or None)."""
    return page.evaluate(
        "async () => { const f = (await window.__taskMap.getSource('route').getData())"
        ".features[0]; return f && f.geometry.type === 'LineString' ? f : null; }"
    )


def open_phone(open_page: Any) -> Any:
    return open_page(
        "/responder",
        PHONE,
        geolocation={"latitude": CENTRE[1], "longitude": CENTRE[0]},
        permissions=["geolocation"],
        is_mobile=True,
        has_touch=True,
    )


def new_task(dispatcher: Api, unit_id: int, title: str) -> tuple[dict[str, Any], float]:
    """An incident at SCENE with a caller's phone, dispatched to the unit: (task, when)."""
    incident = dispatcher.incident(
        title, *SCENE, address="Aleksanterinkatu 52", caller_phone=CALLER_PHONE
    )
    (task,) = dispatcher.post(
        f"/api/incidents/{incident['id']}/dispatch", {"unit_ids": [unit_id]}, status=201
    )
    return task, time.monotonic()


def nav_hrefs(page: Any) -> dict[str, str]:
    return {
        app: page.get_attribute(f"[data-testid=nav-{app}]", "href")
        for app in ("geo", "amap", "baidu")
    }


def link_coords(hrefs: dict[str, str]) -> dict[str, tuple[float, float]]:
    """(lon, lat) of the scene in each hand-off link (and Baidu's origin, if any)."""
    m = re.fullmatch(r"geo:(-?[\d.]+),(-?[\d.]+)\?q=(-?[\d.]+),(-?[\d.]+)\((.+)\)", hrefs["geo"])
    assert m, hrefs["geo"]
    assert m.group(1, 2) == m.group(3, 4)
    amap = urlsplit(hrefs["amap"])
    assert (amap.scheme, amap.netloc, amap.path) == ("https", "uri.amap.com", "/navigation")
    aq = parse_qs(amap.query)
    assert aq["mode"] == ["car"] and aq["coordinate"] == ["gaode"] and aq["callnative"] == ["1"]
    alon, alat, aname = aq["to"][0].split(",")
    baidu = urlsplit(hrefs["baidu"])
    assert (baidu.scheme, baidu.netloc, baidu.path) == ("https", "api.map.baidu.com", "/direction")
    bq = parse_qs(baidu.query)
    assert bq["coord_type"] == ["bd09ll"] and bq["mode"] == ["driving"]
    assert bq["output"] == ["html"] and bq["src"]
    bm = re.fullmatch(r"latlng:(-?[\d.]+),(-?[\d.]+)\|name:(.+)", bq["destination"][0])
    assert bm, bq["destination"]
    assert unquote(m.group(5)) == aname == bm.group(3)  # one name in all three
    found = {
        "geo": (float(m.group(2)), float(m.group(1))),
        "amap": (float(alon), float(alat)),
        "baidu": (float(bm.group(2)), float(bm.group(1))),
    }
    if "origin" in bq:
        om = re.fullmatch(r"latlng:(-?[\d.]+),(-?[\d.]+)\|name:(.+)", bq["origin"][0])
        assert om, bq["origin"]
        found["baidu-origin"] = (float(om.group(2)), float(om.group(1)))
    return found


def assert_links_match_crs(
    found: dict[str, tuple[float, float]],
    scene: tuple[float, float],
    origin: tuple[float, float] | list[float] | None,
) -> None:
    """The links' numbers are gis/crs.py's conversions of the scene, to 1e-6 degrees."""
    assert found["geo"] == pytest.approx(scene, abs=1e-6)
    assert found["amap"] == pytest.approx(from_wgs84(*scene, "gcj02"), abs=1e-6)
    assert found["baidu"] == pytest.approx(from_wgs84(*scene, "bd09"), abs=1e-6)
    if origin is None:
        assert "baidu-origin" not in found
    else:
        assert found["baidu-origin"] == pytest.approx(from_wgs84(*origin, "bd09"), abs=1e-6)


def no_overflow(page: Any, selector: str) -> None:
    """Every element matched shows its text whole, and is thumb-sized (>= 44 px high)."""
    boxes = page.eval_on_selector_all(
        selector,
        "els => els.filter(e => e.offsetParent).map(e => ({text: e.innerText,"
        " over: e.scrollWidth - e.clientWidth, h: e.getBoundingClientRect().height,"
        " w: e.getBoundingClientRect().width}))",
    )
    assert boxes, selector
    for box in boxes:
        assert box["over"] <= 0, box
        assert box["h"] >= 44 and box["w"] >= 44, box


# --- crs.js is gis/crs.py -----------------------------------------------------------


def test_crs_js_matches_gis_crs(open_page: Any) -> None:
    page = open_page("/responder", PHONE)
    got = page.evaluate(
        """async (points) => {
          const crs = await import("/static/crs.js");
          return points.map(([lon, lat]) => ({
            gcj02: crs.wgs84ToGcj02(lon, lat), bd09: crs.wgs84ToBd09(lon, lat),
            viaName: [crs.fromWgs84(lon, lat, "gcj02"), crs.fromWgs84(lon, lat, "bd09")],
            inChina: crs.inChina(lon, lat) }));
        }""",
        list(CRS_POINTS.values()),
    )
    for (name, (lon, lat)), js in zip(CRS_POINTS.items(), got, strict=True):
        for crs in ("gcj02", "bd09"):
            want = from_wgs84(lon, lat, crs)
            assert js[crs] == pytest.approx(want, abs=1e-9), (name, crs)
        assert js["viaName"] == [js["gcj02"], js["bd09"]]
        moved = from_wgs84(lon, lat, "gcj02") != (lon, lat)
        assert js["inChina"] == moved, name
        if moved:  # the offsets really are there: hundreds of metres, not rounding
            assert 100 < metres((lon, lat), js["gcj02"]) < 1000, name
            assert metres(js["gcj02"], js["bd09"]) > 500, name

    # The card's hand-off links for scenes in China (the demo roads are in Helsinki, so the
    # link builder the card uses is run in the page for these).
    scenes = [CRS_POINTS[c] for c in ("Beijing", "Shanghai", "Shenzhen", "Urumqi")]
    origin = (116.3075, 39.9842)
    built = page.evaluate(
        """async ([scenes, origin]) => {
          const { handoffLinks } = await import("/static/handoff.js");
          return scenes.map((s, i) => handoffLinks(s, "火场 (north gate), 1|2",
                                                   i % 2 ? null : origin, "E101"));
        }""",
        [scenes, origin],
    )
    for i, (scene, hrefs) in enumerate(zip(scenes, built, strict=True)):
        found = link_coords(hrefs)
        assert found["amap"] != pytest.approx(scene, abs=1e-3)  # really converted
        assert_links_match_crs(found, scene, None if i % 2 else origin)
    assert page.js_errors == []


# --- the task card -----------------------------------------------------------------


def test_task_card_map_route_links_and_steps(open_page: Any, live_server: str) -> None:
    dispatcher = Api(live_server, "dispatcher")
    responder = Api(live_server, "responder")
    unit_id = responder.get("/api/me")["unit_id"]
    page = open_phone(open_page)
    page.wait_for_selector("#login-panel:not([hidden])")
    login_form(page, "responder")
    page.wait_for_function("window.__live.state === 'live'")
    page.wait_for_function("window.__live.mapLoaded === true")  # loaded at login
    assert page.locator("[data-testid=task-card]").is_hidden()

    task, dispatched = new_task(dispatcher, unit_id, "商场火警 Mall fire alarm")
    card = page.locator(f"[data-testid=task-card][data-task-id='{task['id']}']")
    card.wait_for(timeout=2000)
    card_s = time.monotonic() - dispatched
    page.wait_for_function(
        "async () => { const f = (await window.__taskMap.getSource('route').getData())"
        ".features[0]; return Boolean(f && f.geometry.type === 'LineString')"
        " && document.querySelector('#route-eta').dataset.etaS !== ''; }",
        timeout=2000,
        polling=50,
    )
    elapsed = time.monotonic() - dispatched
    print(f"after the dispatch returned: card {card_s:.3f} s, card and route {elapsed:.3f} s")
    assert elapsed < 2.0, f"card and route after {elapsed:.2f} s"

    # The map: one MapLibre canvas in the card, our road tiles, the unit and the scene.
    task_map = page.locator("[data-testid=task-map]")
    assert task_map.locator("canvas.maplibregl-canvas").count() == 1
    box = task_map.bounding_box()
    assert box is not None and 220 <= box["height"] <= 260 and box["width"] >= 320
    page.wait_for_function(
        "window.__taskMap.querySourceFeatures('roads', {sourceLayer: 'roads'}).length > 20"
    )
    unit_at = dispatcher.get(f"/api/units/{unit_id}")["geometry"]["coordinates"]
    points = page.evaluate(
        "async () => (await window.__taskMap.getSource('task-points').getData())"
        ".features.map(f => [f.properties.kind, f.geometry.coordinates])"
    )
    assert dict(points) == {"unit": pytest.approx(unit_at), "scene": pytest.approx(list(SCENE))}

    # The route is the API's, from the unit to the scene; the card shows its ETA and length.
    api_route = responder.get(
        f"/api/route?from={unit_at[0]:.6f},{unit_at[1]:.6f}&to={SCENE[0]:.6f},{SCENE[1]:.6f}"
    )
    props = api_route["properties"]
    assert props["reachable"]
    drawn = route_on_map(page)
    assert drawn["geometry"]["coordinates"] == api_route["geometry"]["coordinates"]
    line = drawn["geometry"]["coordinates"]
    assert metres(line[0], unit_at) <= props["origin"]["distance_m"] + 1
    assert metres(line[-1], SCENE) <= props["destination"]["distance_m"] + 1
    eta = page.locator("[data-testid=route-eta]")
    assert float(eta.get_attribute("data-eta-s")) == props["eta_s"]
    assert eta.inner_text() == f"车程 {eta_text(props['eta_s'], 'zh-CN')}"
    length = page.locator("[data-testid=route-length]")
    assert float(length.get_attribute("data-length-m")) == props["length_m"]
    assert length.inner_text() == length_text(props["length_m"])

    # The hand-off links carry the scene in each app's datum, as gis/crs.py converts it.
    assert_links_match_crs(link_coords(nav_hrefs(page)), SCENE, unit_at)

    # The caller's phone: our own task, so the API gives it and the card shows it.
    phone = responder.get(f"/api/tasks/{task['id']}").get("caller_phone")
    caller = page.locator("[data-testid=caller-phone]")
    if phone:
        caller.wait_for()
        assert caller.get_attribute("href") == "tel:" + re.sub(r"[^0-9+]", "", phone)
        assert caller.inner_text() == phone
    else:
        assert caller.count() == 0

    page.wait_for_function("window.__taskMap.loaded() && window.__taskMap.areTilesLoaded()")
    shot(page, "responder-map-zh-CN-390x844.png")
    no_overflow(page, "[data-testid=task-action], .nav-links a")

    # The steps, tapped on the phone, change the task on the server.
    for status in ("accepted", "en_route", "on_scene"):
        page.tap(f"[data-testid=task-action][data-status='{status}']")
        eventually(
            lambda s=status: responder.get(f"/api/tasks/{task['id']}")["status"] == s,
            f"the task to be {status}",
        )
        page.wait_for_selector(f"[data-testid=task-card][data-status='{status}']")
    assert page.locator("[data-testid=task-action][data-status='done']").is_enabled()

    page.click("#lang")
    assert eta.inner_text() == f"Drive {eta_text(props['eta_s'], 'en')}"
    assert page.locator("[data-testid=nav-amap]").inner_text() == "Amap"
    assert page.locator(".map-label.scene").inner_text() == "Scene"
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "responder-map-en-390x844.png")
    no_overflow(page, "[data-testid=task-action], .nav-links a")
    page.locator("#logout").scroll_into_view_if_needed()
    shot(page, "responder-map-details-en-390x844.png")
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    assert page.js_errors == []


def test_route_follows_the_phone_and_loads_offline(open_page: Any, live_server: str) -> None:
    dispatcher = Api(live_server, "dispatcher")
    responder = Api(live_server, "responder")
    unit_id = responder.get("/api/me")["unit_id"]
    for old in responder.get(
        f"/api/tasks?unit_id={unit_id}&status=assigned,accepted,en_route,on_scene"
    )["items"]:
        responder.post(f"/api/tasks/{old['id']}/status", {"status": "done"})
    page = open_phone(open_page)
    routes: list[str] = []
    page.on("request", lambda r: routes.append(r.url) if "/api/route?" in r.url else None)
    login_form(page, "responder")
    page.wait_for_function("window.__live.state === 'live'")
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    task, _ = new_task(dispatcher, unit_id, "Kitchen fire")
    page.locator(f"[data-testid=task-card][data-task-id='{task['id']}']").wait_for()
    page.wait_for_function("document.querySelector('#route-eta').dataset.etaS !== ''")
    assert len(routes) == 1

    # GPS on, 300 m from where the route started: a new route from the phone.
    here = (CENTRE[0] - 0.004, CENTRE[1] - 0.0015)
    page.context.set_geolocation({"latitude": here[1], "longitude": here[0], "accuracy": 5})
    with page.expect_request(lambda r: "/api/route?" in r.url):
        page.check("#gps")
    assert len(routes) == 2
    api_route = responder.get(
        f"/api/route?from={here[0]:.6f},{here[1]:.6f}&to={SCENE[0]:.6f},{SCENE[1]:.6f}"
    )

    def from_here() -> bool:
        drawn = route_on_map(page)
        return bool(drawn) and drawn["geometry"] == api_route["geometry"]

    eventually(from_here, "the route from the phone's position")
    eta = page.locator("[data-testid=route-eta]")
    assert float(eta.get_attribute("data-eta-s")) == api_route["properties"]["eta_s"]

    # 40 m further: the same route (no request) until the phone is 100 m away.
    near = (here[0] + 0.0007, here[1])
    assert 30 < metres(here, near) < 100
    page.context.set_geolocation({"latitude": near[1], "longitude": near[0], "accuracy": 5})
    page.wait_for_function(
        "([lon, lat]) => window.__live.fix && Math.abs(window.__live.fix.lon - lon) < 1e-9"
        " && Math.abs(window.__live.fix.lat - lat) < 1e-9",
        arg=list(near),
    )
    page.wait_for_timeout(500)  # (Playwright events are taken in while it waits)
    assert len(routes) == 2

    # Offline, reloaded: the card, its map and the last route come from the phone itself.
    page.wait_for_function("window.__taskMap.loaded() && window.__taskMap.areTilesLoaded()")
    assert page.js_errors == []
    page.context.set_offline(True)
    page.reload()
    card = page.locator(f"[data-testid=task-card][data-task-id='{task['id']}']")
    card.wait_for()
    page.wait_for_function("window.__live.mapLoaded === true")
    eventually(from_here, "the stored route on the map offline")
    assert float(eta.get_attribute("data-eta-s")) == api_route["properties"]["eta_s"]
    page.wait_for_function(
        "window.__taskMap.querySourceFeatures('roads', {sourceLayer: 'roads'}).length > 20"
    )
    assert page.locator("#net").get_attribute("data-state") == "offline"
    shot(page, "responder-map-offline-zh-CN-390x844.png")
    page.context.set_offline(False)
    # Chromium logs each request that found no network (the API calls the app then answers
    # from its own storage); nothing else may have gone wrong.
    assert page.js_errors, "the reload really was offline"
    assert [e for e in page.js_errors if "net::ERR_INTERNET_DISCONNECTED" not in e] == []
