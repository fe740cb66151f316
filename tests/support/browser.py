"""Chromium for the screen tests (where it is, how it is launched, the viewports), the
demo city's password and centre, and page helpers: polling (``eventually``), REST calls as
a demo user (``Api``), screenshots, the shared login form and the map's sources."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from command.seed import city_dir

DATA_DIR = city_dir("helsinki")  # the tests' city (the demo is Columbus)

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


DEMO_PASSWORD = "demo-live-" + secrets.token_hex(6)
TIMEOUT_MS = 20_000
CENTRE = (24.9443, 60.1716)  # lon, lat of the demo city


def eventually(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


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

    def incident(self, title: str, lon: float, lat: float, **props: Any) -> dict[str, Any]:
        """A point incident created over the API: a severe fire unless ``props`` say else."""
        feature = {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"title": title, "type": "fire", "severity": "severe", **props},
        }
        return dict(self.post("/api/incidents", feature, status=201))

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
