"""The overview page at "/" in real Chromium, against a live server on the demo city.

Skips on a laptop without /usr/bin/chromium (or without PostGIS), but fails when CI=true,
so a missing browser can never turn a CI run green by skipping. Screenshots of both
languages at big-screen (1920x1080) and phone (390x844) size go to tests/screenshots/.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from shapely.geometry import Point

from command.app import create_app
from command.incidents.service import create_incident
from command.migrate import upgrade
from command.seed import city_dir, seed_demo
from core.config import Settings
from core.db import make_engine, make_sessionmaker, session_scope
from core.security import SYSTEM
from tests.support.browser import BIG_SCREEN, PHONE, SCREENSHOTS, demo_units
from tests.support.db import create_database, drop_database, unavailable
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.browser

DEMO_PASSWORD = "demo-browser-" + secrets.token_hex(6)
DATA_DIR = city_dir("helsinki")  # the tests' city (the demo is Columbus)
TIMEOUT_MS = 15_000

ZH_TITLE = "智慧应急指挥调度"
EN_TITLE = "Emergency Command & Dispatch"


def _demo_shelter_capacity() -> int:
    data = json.loads((DATA_DIR / "shelters.geojson").read_text(encoding="utf-8"))
    return sum(int(f["properties"]["capacity"]) for f in data["features"])


# --- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_database() -> Iterator[str]:
    """A committed, migrated database with the demo city, demo users and a few incidents."""
    try:
        url = create_database("emergency_browser")
    except Exception as exc:
        unavailable(f"no PostGIS: {str(exc).splitlines()[0]}")
        raise
    try:
        upgrade(url)
        engine = make_engine(url, pool_size=1)
        try:
            with session_scope(make_sessionmaker(engine)) as session:
                seed_demo(session, city="helsinki", demo_password=DEMO_PASSWORD)
                for title, type_, lon, lat in (
                    ("Kitchen fire", "fire", 24.9425, 60.1705),
                    ("Cyclist hit by car", "traffic_accident", 24.9480, 60.1690),
                    ("Person collapsed", "medical", 24.9390, 60.1750),
                ):
                    create_incident(
                        session,
                        props={"title": title, "type": type_, "severity": "severe"},
                        geom=Point(lon, lat),
                        principal=SYSTEM,
                    )
        finally:
            engine.dispose()
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def live_server(demo_database: str) -> Iterator[str]:
    """The app under uvicorn in a background thread on a free loopback port."""
    settings = Settings(
        env="test",
        database_url=demo_database,
        secret_key=secrets.token_urlsafe(48),
        demo_city="helsinki",
    )
    with serve_in_thread(create_app(settings)) as base:
        yield base


@pytest.fixture
def page_at(browser: Any, live_server: str) -> Iterator[Any]:
    """A factory: a fresh page (own context: empty storage) of a given viewport size."""
    contexts: list[Any] = []

    def open_page(viewport: dict[str, int] = BIG_SCREEN) -> Any:
        context = browser.new_context(viewport=viewport, base_url=live_server)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        errors: list[str] = []
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors  # checked by tests that care
        page.goto("/")
        return page

    yield open_page
    for context in contexts:
        context.close()


def login(page: Any, username: str, password: str) -> None:
    """Through the login hooks every page shares (DESIGN, "Screens: automation hooks")."""
    page.fill("[data-testid=login-username]", username)
    page.fill("[data-testid=login-password]", password)
    page.click("[data-testid=login-submit]")


def card_value(page: Any, list_id: str, label: str) -> str:
    """The number next to ``label`` in one of the overview's cards."""
    item = page.locator(f"#{list_id} li").filter(has=page.get_by_text(label, exact=True))
    return str(item.locator("b").inner_text()).strip()


def card_number(page: Any, list_id: str, label: str) -> int:
    """``card_value`` as an integer (the page groups thousands: 13,653)."""
    return int(card_value(page, list_id, label).replace(",", ""))


# --- tests -------------------------------------------------------------------------


def test_page_defaults_to_chinese_with_osm_attribution(page_at):
    page = page_at()
    assert page.title() == ZH_TITLE
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == ZH_TITLE
    footer = page.locator("footer").inner_text()
    assert "© OpenStreetMap contributors" in footer
    assert "ODbL" in footer
    page.wait_for_function("document.getElementById('health').textContent.length > 0")
    assert page.locator("#health").inner_text() == "系统正常"
    assert page.js_errors == []


def test_dispatcher_login_shows_overview_of_the_demo_city(page_at):
    page = page_at()
    login(page, "dispatcher", DEMO_PASSWORD)
    page.wait_for_selector("#overview:not([hidden])")
    assert page.locator("#login-panel").is_hidden()
    assert "dispatcher" in page.locator("#whoami").inner_text()
    assert card_number(page, "units", "合计") == demo_units()
    assert card_number(page, "shelters", "容量") == _demo_shelter_capacity()
    assert card_number(page, "incidents", "合计") == 3
    assert card_number(page, "incidents", "已报告") == 3
    assert page.locator("#warehouses li").count() > 0
    assert page.js_errors == []


def test_wrong_password_shows_the_error(page_at):
    page = page_at()
    login(page, "dispatcher", "not-the-password")
    error = page.locator("#login-error")
    error.wait_for()
    page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
    assert error.inner_text() == "用户名或密码错误"
    assert page.locator("#overview").is_hidden()
    assert page.locator("#login-panel").is_visible()
    # The message follows a language switch, like everything else on the page.
    page.click("#lang")
    assert error.inner_text() == "Wrong username or password"


def test_a_locked_out_user_is_told_so_not_that_the_password_is_wrong(page_at):
    """After 10 failures the right password is refused too (429): the page says why and
    for how long, instead of 'wrong password' (which would send them guessing on)."""
    page = page_at()
    error = page.locator("#login-error")
    for n in range(10):
        login(page, "auditor", f"not-the-password-{n}")
        page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
        assert error.inner_text() == "用户名或密码错误"
        page.evaluate("document.getElementById('login-error').textContent = ''")
    login(page, "auditor", DEMO_PASSWORD)
    page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
    assert error.inner_text() == "登录失败次数过多，请稍后再试 (15 min)"
    assert page.locator("#overview").is_hidden()
    page.screenshot(path=str(SCREENSHOTS / "login-locked-out-zh-CN.png"))


def test_language_button_switches_to_english_and_back(page_at):
    page = page_at()
    page.wait_for_function("document.getElementById('health').textContent.length > 0")
    page.click("#lang")
    assert page.locator("h1").inner_text() == EN_TITLE
    assert page.title() == EN_TITLE
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#lang").inner_text() == "中文"
    assert "ODbL" in page.locator("footer").inner_text()
    assert page.locator("#health").inner_text() == "System OK"
    page.click("#lang")
    assert page.locator("h1").inner_text() == ZH_TITLE
    assert page.title() == ZH_TITLE
    assert page.locator("#lang").inner_text() == "English"
    assert page.locator("#health").inner_text() == "系统正常"


def test_english_overview_after_login(page_at):
    page = page_at()
    page.click("#lang")
    login(page, "dispatcher", DEMO_PASSWORD)
    page.wait_for_selector("#overview:not([hidden])")
    assert card_number(page, "units", "Total") == demo_units()
    assert card_number(page, "shelters", "Capacity") == _demo_shelter_capacity()
    # Switching language after login redraws the cards in the other language.
    page.click("#lang")
    page.wait_for_function(
        "[...document.querySelectorAll('#units li span')].some(s => s.textContent === '合计')"
    )
    assert card_number(page, "units", "合计") == demo_units()


@pytest.mark.parametrize(
    ("size", "viewport"), [("1920x1080", BIG_SCREEN), ("390x844", PHONE)], ids=["big", "phone"]
)
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_screenshots(page_at, size, viewport, lang):
    """Login and overview at big-screen and phone size, in both languages (looked at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = page_at(viewport)
    if lang == "en":
        page.click("#lang")
    page.wait_for_function("document.getElementById('health').textContent.length > 0")
    page.screenshot(path=str(SCREENSHOTS / f"login-{lang}-{size}.png"), full_page=True)
    login(page, "dispatcher", DEMO_PASSWORD)
    page.wait_for_selector("#overview:not([hidden])")
    page.screenshot(path=str(SCREENSHOTS / f"overview-{lang}-{size}.png"), full_page=True)
    # Nothing may stick out sideways (a phone would scroll horizontally).
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"page is {overflow}px wider than the {size} viewport"
    assert page.js_errors == []
