"""The API docs work on a closed network: /docs (Swagger UI) and /redoc load only from the
server itself. Chromium runs with every non-loopback request blocked and recorded; each
page must make none and still draw the operations."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support.browser import BIG_SCREEN, SCREENSHOTS

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def blocking_outbound(page: Any) -> list[str]:
    """Abort and record every request that would leave the machine."""
    outbound: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        host = urlparse(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in LOOPBACK:
            r.continue_()
        else:
            outbound.append(url)
            r.abort()

    page.context.route("**/*", route)
    return outbound


@pytest.mark.parametrize(
    ("path", "drawn"),
    [
        ("/docs", ".opblock-summary"),  # Swagger UI: one row per operation
        ("/redoc", "[data-section-id^='operation/']"),  # ReDoc: one section per operation
    ],
)
def test_api_docs_make_no_outbound_request(browser: Any, live_server: str, path: str, drawn: str):
    context = browser.new_context(viewport=BIG_SCREEN, base_url=live_server)
    try:
        page = context.new_page()
        outbound = blocking_outbound(page)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        schema = page.request.get("/openapi.json").json()
        methods = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}
        expected = sum(len(methods & set(ops)) for ops in schema["paths"].values())
        page.goto(path)
        page.wait_for_selector(drawn, timeout=30_000)
        # Every operation of the API is drawn (Swagger UI draws an operation under each of
        # its tags, so one may show twice; ReDoc renders lazily: at least the first).
        operations = page.locator(drawn).count()
        if path == "/docs":
            assert operations >= expected, (operations, expected)
        else:
            assert operations >= 1
        assert outbound == []
        assert errors == []
        page.screenshot(path=str(SCREENSHOTS / f"api-docs{path.replace('/', '-')}.png"))
    finally:
        context.close()


def test_docs_html_names_only_our_assets(live_server: str) -> None:
    import httpx2 as httpx

    with httpx.Client(base_url=live_server, timeout=30) as client:
        for path in ("/docs", "/redoc"):
            html = client.get(path).text
            assert "https://" not in html, path
            assert "http://" not in html, path
        for asset in ("swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css",
                      "redoc/redoc.standalone.js"):  # fmt: skip
            assert client.get(f"/static/vendor/{asset}").status_code == 200, asset
