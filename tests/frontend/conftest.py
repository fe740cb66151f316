"""The page tests' shared fixtures: Chromium, and for the live screens the demo city with
its roads in PostGIS, the app with its realtime hub, and fresh pages. The plain helpers
(viewports, ``Api``, ``eventually``, ...) are in tests/support/browser.py."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from command import roads
from command.app import create_app
from command.migrate import upgrade
from command.seed import seed_demo
from core.config import Settings
from core.db import make_engine, make_sessionmaker, session_scope
from gis.roads_db import write_network
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DEMO_PASSWORD, TIMEOUT_MS
from tests.support.db import create_database, drop_database, unavailable
from tests.support.servers import serve_in_thread


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)")
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


@pytest.fixture(scope="module")
def demo_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A committed, migrated database: the demo city, its users and its road network."""
    try:
        url = create_database("emergency_live")
    except Exception as exc:
        unavailable(f"no PostGIS: {str(exc).splitlines()[0]}")
        raise
    try:
        upgrade(url)
        settings = Settings(env="test", database_url=url, demo_city="helsinki")
        loaded = roads.load(settings)
        engine = make_engine(url, pool_size=1)
        try:
            with session_scope(make_sessionmaker(engine)) as session:
                seed_demo(session, city="helsinki", demo_password=DEMO_PASSWORD)
                write_network(session, loaded.graph)
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
