"""Chromium for the page tests: where it is, how it is launched, the viewports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from command.seed import DATA_DIR
from tests.conftest import _unavailable

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
