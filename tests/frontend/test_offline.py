"""Every page works on a closed network: nothing a page loads (page, script, style, font,
glyph, sprite, tile, icon, chart) comes from outside the server.

Chromium runs each page with every non-loopback request aborted and recorded: requests of
the page, of its workers and of the responder's service worker (active, as users run it),
and WebSockets. Each page must make none and still draw: the overview its cards, the big
screen its map of our own road tiles with its panels, the phone its task card and map (tiles
through the service worker), the drill report its charts, /docs and /redoc every operation.
Each test also shows the recorder catches a request it should (a probe), so a silent
recorder cannot pass. Screenshots go to tests/screenshots/offline-*.png (looked at).
A static scan of the pages and the frontend's own files finds no URL a browser would fetch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx2 as httpx
import pytest

from tests.support.browser import (
    BIG_SCREEN,
    CENTRE,
    DEMO_PASSWORD,
    PHONE,
    SCREENSHOTS,
    TIMEOUT_MS,
    Api,
    demo_units,
    eventually,
    login_form,
)
from tests.support.drills import scenario_dict

pytestmark = pytest.mark.browser

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
PROBE = "https://tile.openstreetmap.org/0/0/0.png"  # what an online basemap would fetch
SCENE = (CENTRE[0] + 0.0025, CENTRE[1] + 0.0012)  # a street corner in the demo city

# URLs in our pages and scripts that no browser fetches: links a person follows and the
# SVG namespace. Anything else with a scheme or `//host` fails the static scan.
NOT_FETCHED = (
    "https://www.openstreetmap.org/copyright",  # <a href>: the ODbL attribution link
    "http://www.w3.org/2000/svg",  # xmlns inside a data: URL
    "https://uri.amap.com/navigation",  # hand-off <a href> to the AMap app
    "https://api.map.baidu.com/direction",  # hand-off <a href> to the Baidu Maps app
)


class Watch:
    """One browser context's traffic: outbound requests aborted and recorded, road-tile
    answers, and the errors of its pages (JS errors, console errors, HTTP >= 400)."""

    def __init__(self, context: Any) -> None:
        self.outbound: list[str] = []
        self.tiles: list[tuple[int, bool]] = []  # (status, answered by the service worker)
        self.errors: list[str] = []
        self.sockets: list[str] = []
        context.route("**/*", self._route)
        context.on("request", self._request)  # includes the service worker's fetches
        context.on("response", self._response)
        context.on("requestfailed", self._request)  # refused below the route, too
        context.on("page", self._page)

    @staticmethod
    def leaves(url: str) -> bool:
        if url.startswith(("data:", "blob:", "about:")):
            return False
        return (urlparse(url).hostname or "") not in LOOPBACK

    def _route(self, route: Any) -> None:
        url = route.request.url
        if self.leaves(url):
            self._record(url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def _request(self, request: Any) -> None:
        if self.leaves(request.url):
            self._record(request.url)

    def _response(self, response: Any) -> None:
        if urlparse(response.url).path.startswith("/tiles/roads/"):
            self.tiles.append((response.status, response.from_service_worker))
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status} {response.url}")

    def _page(self, page: Any) -> None:
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("websocket", self._socket)

    def _socket(self, ws: Any) -> None:
        self.sockets.append(ws.url)
        if self.leaves(ws.url):
            self._record(ws.url)

    def _record(self, url: str) -> None:
        if url not in self.outbound:  # seen by the route and as a request: one attempt
            self.outbound.append(url)

    def tiles_drawn(self) -> None:
        """Road tiles came from our server, and every one answered (204: an empty tile)."""
        assert self.tiles, "no road tile was requested"
        assert {status for status, _ in self.tiles} <= {200, 204}, self.tiles
        assert sum(status == 200 for status, _ in self.tiles) > 0, self.tiles

    def probe(self, page: Any) -> None:
        """The recorder works: an image from a tile server is blocked and recorded."""
        assert self.outbound == []
        page.evaluate(
            "(src) => new Promise((done) => { const img = new Image();"
            " img.onload = img.onerror = () => done(); img.src = src; })",
            PROBE,
        )
        assert self.outbound == [PROBE]
        self.outbound.clear()
        # Chromium logs the blocked image as a console error: the probe's, not the page's.
        self.errors[:] = [e for e in self.errors if "ERR_BLOCKED_BY_CLIENT" not in e]


@pytest.fixture
def watched(browser: Any, live_server: str) -> Iterator[Any]:
    """A factory: a fresh context (service workers allowed, as users run) and its Watch."""
    contexts: list[Any] = []

    def open_(viewport: dict[str, int], **options: Any) -> tuple[Any, Watch]:
        context = browser.new_context(viewport=viewport, base_url=live_server, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context, Watch(context)

    yield open_
    for context in contexts:
        context.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def token(base: str, username: str) -> str:
    response = httpx.post(
        f"{base}/api/auth/token", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


# --- the overview: "/" -------------------------------------------------------------------


def test_overview_makes_no_outbound_request(watched: Any) -> None:
    context, watch = watched(BIG_SCREEN)
    page = context.new_page()
    page.goto("/")
    login_form(page, "dispatcher")
    page.wait_for_selector("#overview:not([hidden])")
    page.wait_for_function("document.querySelectorAll('#units li').length > 1")
    page.wait_for_function("document.getElementById('health').textContent.length > 0")
    assert page.locator("#warehouses li").count() > 0
    assert page.locator("#shelters li").count() == 3  # total, capacity, occupancy
    assert page.locator("#units li").last.inner_text().split()[-1] == str(demo_units())
    shot(page, "offline-overview.png")
    assert watch.outbound == []
    assert watch.errors == []
    watch.probe(page)


# --- the big screen: "/screen" ----------------------------------------------------------


def test_screen_draws_its_map_and_panels_offline(watched: Any, live_server: str) -> None:
    incident = Api(live_server, "dispatcher").incident("离线火警 Offline fire", *CENTRE)
    context, watch = watched(BIG_SCREEN)
    page = context.new_page()
    page.goto("/screen")
    page.wait_for_selector("#login-overlay:not([hidden])")
    login_form(page, "dispatcher")
    page.wait_for_function("window.__live.state === 'live'")
    page.wait_for_function("window.__live.mapLoaded && window.__map.loaded()")
    page.wait_for_function(
        "window.__map.querySourceFeatures('roads', {sourceLayer: 'roads'}).length > 100"
    )
    # The incident on the map and in the queue; the KPI panel and the unit chart drawn.
    page.wait_for_function(
        "(id) => window.__map.queryRenderedFeatures({layers: ['incidents']})"
        ".some(f => f.id === id)",
        arg=incident["id"],
    )
    queued = page.locator(f"[data-testid=queue-item][data-incident-id='{incident['id']}']")
    assert "离线火警" in queued.inner_text()
    page.wait_for_function(
        "document.querySelector('[data-testid=kpi-panel]').childElementCount > 0"
    )
    assert page.evaluate("window.__chart.getOption().series[0].data.length") > 0
    page.wait_for_function("window.__map.loaded() && window.__map.areTilesLoaded()")
    shot(page, "offline-screen-1920x1080.png")
    watch.tiles_drawn()
    assert watch.sockets and not any(watch.leaves(url) for url in watch.sockets)
    assert watch.outbound == []
    assert watch.errors == []
    watch.probe(page)


# --- the responder's phone: "/responder", its service worker active ------------------------


def test_phone_with_its_service_worker_makes_no_outbound_request(
    watched: Any, live_server: str
) -> None:
    responder = Api(live_server, "responder")
    unit_id = responder.get("/api/me")["unit_id"]
    context, watch = watched(
        PHONE,
        geolocation={"latitude": CENTRE[1], "longitude": CENTRE[0]},
        permissions=["geolocation"],
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    page.goto("/responder")
    # The service worker installs (fetching the app shell), then controls the reloaded page.
    assert page.evaluate("navigator.serviceWorker.ready.then((r) => Boolean(r.active))")
    page.reload()
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    assert len(context.service_workers) == 1

    page.wait_for_selector("#login-panel:not([hidden])")
    login_form(page, "responder")
    page.wait_for_function("window.__live.state === 'live' && window.__live.mapLoaded === true")
    dispatcher = Api(live_server, "dispatcher")
    incident = dispatcher.incident("离线救援 Offline call", *SCENE)
    (task,) = dispatcher.post(
        f"/api/incidents/{incident['id']}/dispatch", {"unit_ids": [unit_id]}, status=201
    )
    card = page.locator(f"[data-testid=task-card][data-task-id='{task['id']}']")
    card.wait_for()
    assert "离线救援" in card.inner_text()
    assert page.locator("[data-testid=task-action]").count() == 4
    page.wait_for_function(
        "window.__taskMap.querySourceFeatures('roads', {sourceLayer: 'roads'}).length > 20"
    )
    page.wait_for_function(
        "async () => Boolean((await window.__taskMap.getSource('route').getData()).features[0])"
    )
    page.wait_for_function("window.__taskMap.loaded() && window.__taskMap.areTilesLoaded()")
    shot(page, "offline-responder-390x844.png")
    watch.tiles_drawn()
    # The tiles went through the service worker (sw.js keeps them for dead zones).
    assert any(by_worker for _, by_worker in watch.tiles), watch.tiles
    assert watch.sockets and not any(watch.leaves(url) for url in watch.sockets)
    assert watch.outbound == []
    assert watch.errors == []
    watch.probe(page)
    # The service worker's own fetches are watched too.
    (worker,) = context.service_workers
    answer = worker.evaluate("(u) => fetch(u).then(() => 'fetched', () => 'blocked')", PROBE)
    assert answer == "blocked"
    assert watch.outbound == [PROBE]


# --- the drill report: /api/drills/{id}/report?format=html -----------------------------------

# The drill tests' small Helsinki scenario, on the live server's loaded roads, two policies.
SCENARIO = scenario_dict(
    name="离线演练 Offline drill",
    network="loaded",
    duration_s=4 * 3600,
    replications=1,
    policies=["nearest", "move_up"],
    targets={"response_s": 480},
)


@pytest.fixture(scope="module")
def finished_drill(live_server: str) -> int:
    """A simulation run submitted over the API and run by the server to its report."""
    planner = Api(live_server, "planner")
    drill_id = int(planner.post("/api/drills", SCENARIO, status=202)["id"])
    status = eventually(
        lambda: (
            (s := planner.get(f"/api/drills/{drill_id}")["status"]) in {"finished", "failed"} and s
        ),
        "the drill to finish",
        timeout_s=120,
    )
    assert status == "finished"
    return drill_id


def test_drill_report_draws_its_charts_offline(
    watched: Any, live_server: str, finished_drill: int
) -> None:
    bearer = {"Authorization": f"Bearer {token(live_server, 'planner')}"}
    context, watch = watched({"width": 1280, "height": 1600}, extra_http_headers=bearer)
    page = context.new_page()
    page.goto(f"/api/drills/{finished_drill}/report?format=html")
    page.wait_for_function("window.__drillCharts && Object.keys(window.__drillCharts).length > 0")
    charts = page.evaluate(
        "Object.fromEntries(Object.entries(window.__drillCharts).map(([name, c]) =>"
        " [name, c.getOption().series.length]))"
    )
    assert charts and all(n > 0 for n in charts.values()), charts
    assert page.locator("canvas").count() >= len(charts)
    assert "离线演练" in page.title()
    shot(page, "offline-drill-report.png")
    assert watch.outbound == []
    assert watch.errors == []
    # The page's own policy (CSP: default-src 'none') refuses any request before it is
    # made, so a probe never reaches the network, nor this server.
    for url in (PROBE, "/healthz"):
        answer = page.evaluate("(u) => fetch(u).then(() => 'fetched', () => 'refused')", url)
        assert answer == "refused", url
    assert watch.outbound == []


# --- the API docs: /docs and /redoc ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "drawn"),
    [
        ("/docs", ".opblock-summary"),  # Swagger UI: one row per operation
        ("/redoc", "[data-section-id^='operation/']"),  # ReDoc: one section per operation
    ],
)
def test_api_docs_make_no_outbound_request(watched: Any, path: str, drawn: str) -> None:
    context, watch = watched(BIG_SCREEN)
    page = context.new_page()
    schema = page.request.get("/openapi.json").json()
    methods = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}
    expected = sum(len(methods & set(ops)) for ops in schema["paths"].values())
    page.goto(path)
    page.wait_for_selector(drawn, timeout=30_000)
    # Every operation of the API is drawn (Swagger UI draws an operation under each of its
    # tags, so one may show twice; ReDoc renders lazily: at least the first).
    operations = page.locator(drawn).count()
    if path == "/docs":
        assert operations >= expected, (operations, expected)
    else:
        assert operations >= 1
    shot(page, f"api-docs{path.replace('/', '-')}.png")
    assert watch.outbound == []
    assert watch.errors == []
    watch.probe(page)


# --- the static scan -------------------------------------------------------------------------

# A scheme URL, or a protocol-relative `//host` in an attribute, url(), import or string.
URL = re.compile(r"""(?:https?:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s"'`)<>]*""", re.I)
REFERENCE = re.compile(r"""(?:src|href|url\(|import|from|fetch\(|["'`])\s*=?\s*["'`]?$""")


def external_urls(text: str) -> list[str]:
    """URLs a browser could fetch: with a scheme, or protocol-relative right after an
    attribute, url(, import or a quote; allowed links and namespaces left out."""
    found = []
    for m in URL.finditer(text):
        url = m.group(0)
        if not url.lower().startswith(("http:", "https:")):
            before = text[max(0, m.start() - 12) : m.start()]
            if not REFERENCE.search(before):
                continue  # `//` inside a comment or a path, not a reference
        if not url.startswith(NOT_FETCHED):
            found.append(url)
    return found


def test_pages_and_frontend_files_name_no_outside_url(live_server: str) -> None:
    files = [p for p in FRONTEND.rglob("*") if p.is_file() and "vendor" not in p.parts]
    kinds = {".html", ".js", ".css", ".webmanifest", ".json"}
    texts = {
        str(p.relative_to(FRONTEND)): p.read_text(encoding="utf-8")
        for p in files
        if p.suffix in kinds
    }
    assert {"index.html", "screen.html", "responder.html", "static/sw.js"} <= set(texts)
    with httpx.Client(base_url=live_server, timeout=30) as client:
        for path in ("/", "/screen", "/responder", "/docs", "/redoc", "/sw.js"):
            response = client.get(path)
            assert response.status_code == 200, path
            texts[path] = response.text
    found = {name: urls for name, text in texts.items() if (urls := external_urls(text))}
    assert found == {}
    vendored = (
        "swagger-ui/swagger-ui-bundle.js",
        "swagger-ui/swagger-ui.css",
        "redoc/redoc.standalone.js",
        "maplibre-gl/maplibre-gl.js",
        "maplibre-gl/maplibre-gl.css",
        "echarts/echarts.min.js",
    )
    for asset in vendored:
        assert httpx.get(f"{live_server}/static/vendor/{asset}").status_code == 200, asset


def test_the_scan_finds_what_a_browser_would_fetch() -> None:
    """The scan itself: each way a page could reach outside is caught, links are not."""
    fetched = [
        '<script src="https://cdn.example.com/x.js"></script>',
        '<link rel="stylesheet" href="//fonts.example.com/css">',
        "@import url(//fonts.example.com/a.css);",
        'glyphs: "https://demotiles.maplibre.org/font/{fontstack}/{range}.pbf",',
        "tiles: [`https://tile.openstreetmap.org/{z}/{x}/{y}.png`],",
        "import x from 'https://esm.example.com/mod.js';",
    ]
    for line in fetched:
        assert external_urls(line), line
    allowed = [
        '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>',
        "// see the comment in sw.js",
        'const url = "/tiles/roads/{z}/{x}/{y}.mvt";',
    ]
    for line in allowed:
        assert external_urls(line) == [], line
