"""The page tests' shared setup: Chromium (where it is, how it is launched, the viewports),
and for the live screens the demo city with its roads in PostGIS, the app with its realtime
hub, fresh pages, and REST calls as a demo user."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from command import roads
from command.app import create_app
from command.migrate import upgrade
from command.seed import DATA_DIR, seed_demo
from core.config import Settings
from core.db import make_engine, make_sessionmaker, session_scope
from gis.roads_db import write_roads
from tests.conftest import _unavailable, create_database, drop_database, serve_in_thread

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # WebGL through SwiftShader: MapLibre draws the live map in headless Chromium.
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
BIG_SCREEN = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}


def demo_units() -> int:
    return len(yaml.safe_load((DATA_DIR / "units.yaml").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


# --- the live screens: demo city, live server, pages ------------------------------
# test_browser.py (the overview page) has its own demo_database and live_server: no roads,
# no realtime hub. test_alert_screen.py has its own live_server (a secret key it knows).

DEMO_PASSWORD = "demo-live-" + secrets.token_hex(6)
TIMEOUT_MS = 20_000
CENTRE = (24.9443, 60.1716)  # lon, lat of the demo city


def _eventually(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A committed, migrated database: the demo city, its users and its road network."""
    try:
        url = create_database("emergency_live")
    except Exception as exc:
        _unavailable(f"no PostGIS: {str(exc).splitlines()[0]}")
        raise
    try:
        upgrade(url)
        settings = Settings(env="test", database_url=url)
        loaded = roads.load(settings)
        engine = make_engine(url, pool_size=1)
        try:
            with session_scope(make_sessionmaker(engine)) as session:
                seed_demo(session, demo_password=DEMO_PASSWORD)
                meta = loaded.graph.meta
                write_roads(
                    session,
                    loaded.graph,
                    source=str(meta.get("source", "demo")),
                    sha256=str(meta["sha256"]),
                    profile_key=str(meta["profile_key"]),
                )
        finally:
            engine.dispose()
        yield url, loaded.graph
    finally:
        drop_database(url)


@pytest.fixture(scope="module")
def database_url(demo_database: tuple[str, Any]) -> str:
    return demo_database[0]


@pytest.fixture(scope="module")
def live_secret_key() -> str:
    """The server's secret key (a module that makes API keys overrides it with one it knows)."""
    return secrets.token_urlsafe(48)


@pytest.fixture(scope="module")
def live_server(demo_database: tuple[str, Any], live_secret_key: str) -> Iterator[str]:
    """The app with its realtime hub under uvicorn in a background thread."""
    url, graph = demo_database
    settings = Settings(
        env="test",
        database_url=url,
        secret_key=live_secret_key,
        realtime=True,
        ws_ack_timeout_s=2.0,
        bus_poll_interval_s=0.5,
    )
    with serve_in_thread(create_app(settings, graph=graph)) as base:
        yield base


@pytest.fixture
def open_page(browser: Any, live_server: str) -> Iterator[Callable[..., Any]]:
    """A factory: a fresh page in its own context (empty storage), collecting JS errors."""
    contexts: list[Any] = []

    def open_(path: str, viewport: dict[str, int], **options: Any) -> Any:
        context = browser.new_context(viewport=viewport, base_url=live_server, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        errors: list[str] = []
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on(
            "response",
            lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
        )
        page.js_errors = errors
        page.goto(path)
        return page

    yield open_
    for context in contexts:
        context.close()


class Api:
    """REST calls as one demo user."""

    def __init__(self, base: str, username: str) -> None:
        self.base = base
        response = httpx.post(
            f"{base}/api/auth/token", json={"username": username, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 200, response.text
        self.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.base}{path}", headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        response = httpx.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=10)
        assert response.status_code == status, response.text
        return response.json()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def login_form(page: Any, username: str) -> None:
    """Through the login hooks every page shares (DESIGN, "Screens: automation hooks")."""
    page.fill("[data-testid=login-username]", username)
    page.fill("[data-testid=login-password]", DEMO_PASSWORD)
    page.click("[data-testid=login-submit]")


def source_ids(page: Any, source: str) -> list[int]:
    return list(
        page.evaluate(
            "async (s) => (await window.__map.getSource(s).getData()).features.map(f => f.id)",
            source,
        )
    )
