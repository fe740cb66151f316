"""Call-taking (接警) on ``/screen`` in real Chromium, driven only through the DESIGN hooks.

A dispatcher opens the new-incident form and places the incident by clicking the map, by
searching the offline place index (with a typo), or by pasting coordinates (WGS-84 with
hemisphere letters, or an Amap GCJ-02 pair converted by the server). Bad input is shown
next to its field and creates nothing, whether the page or the server refuses it. An open
incident of the same type nearby is offered as a duplicate, and attaching the call to it
creates no second incident. Every check is against what the server stored.
"""

from __future__ import annotations

from typing import Any

import pytest

from gis.crs import to_wgs84
from tests.support.browser import BIG_SCREEN, CENTRE, Api, eventually, shot
from tests.support.console import (
    FORM,
    METRES_PER_DEG_LAT,
    click_map,
    fill,
    incidents,
    new_fire,
    open_form,
    screen,
    search_pick,
    tag,
)

pytestmark = pytest.mark.browser

UHD = {"width": 3840, "height": 2160}
# --- helpers -----------------------------------------------------------------------


def submit_and_find(page: Any, api: Api, title: str) -> dict[str, Any]:
    """Submit; the form closes and the server holds exactly one incident so titled."""
    page.click("[data-testid=incident-submit]")
    page.wait_for_selector(FORM, state="detached")
    found = [f for f in incidents(api) if f["properties"]["title"] == title]
    assert len(found) == 1, found
    return dict(api.get(f"/api/incidents/{found[0]['id']}"))


def close_to(got: list[float], want: tuple[float, float], tol: float = 1e-6) -> bool:
    return abs(got[0] - want[0]) <= tol and abs(got[1] - want[1]) <= tol


def errors_by_field(page: Any) -> dict[str, list[str]]:
    """The messages shown, by the field they stand next to (read at one instant)."""
    pairs = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=form-error]')]"
        ".map(e => [e.closest('[data-field]:not(.ct-error)').dataset.field, e.textContent])"
    )
    out: dict[str, list[str]] = {}
    for name, text in pairs:
        out.setdefault(name, []).append(text)
    return out


# --- creating ------------------------------------------------------------------------


def test_create_by_clicking_the_map(open_page: Any, live_server: str) -> None:
    api = Api(live_server, "dispatcher")
    page = screen(open_page)
    open_form(page)
    title = tag("老人摔倒 三楼")
    fill(
        page,
        title=title,
        type="medical",
        severity="severe",
        description="老人摔倒，意识清醒\n请从东门进入",
        people="3",
        phone="+358 40 123 4567",
    )
    shot(page, "calltaking-armed-zh-CN-1920x1080.png")  # waiting for the click on the map
    lon, lat = click_map(page)
    assert page.evaluate("window.__calltaking.point") == [lon, lat]

    # The nearest street address of the clicked point, read back to the caller.
    near = api.get(f"/api/places?near={lon},{lat}&limit=8")["features"]
    nearest = next(f["properties"] for f in near if f["properties"]["kind"] == "address")
    assert nearest["distance_m"] < 300
    address = page.locator("[data-testid=incident-address]")
    eventually(lambda: address.input_value() == nearest["name"], "the nearest address")

    stored = submit_and_find(page, api, title)
    assert close_to(stored["geometry"]["coordinates"], (lon, lat))
    p = stored["properties"]
    assert (p["type"], p["severity"], p["people_affected"]) == ("medical", "severe", 3)
    assert p["description"] == "老人摔倒，意识清醒\n请从东门进入"
    assert p["address"] == nearest["name"]
    assert p["caller_phone"] == "+358 40 123 4567"
    assert p["calls"] == 1
    toast = page.locator("[data-testid=incident-toast]")
    assert title in toast.inner_text()
    assert page.js_errors == []


def test_create_by_place_search_with_a_typo(open_page: Any, live_server: str) -> None:
    api = Api(live_server, "dispatcher")
    page = screen(open_page)
    open_form(page)
    title = tag("Water main burst")
    fill(page, title=title, type="flood", severity="moderate")
    page.fill("[data-testid=incident-place]", "Manerheimintie")
    hits = page.locator("[data-testid=place-result]")
    hits.first.wait_for()
    assert "Mannerheimintie" in hits.first.inner_text()
    # Keyboard: down to the second hit and back up, Enter picks the first.
    page.press("[data-testid=incident-place]", "ArrowDown")
    page.press("[data-testid=incident-place]", "ArrowUp")
    want = float(hits.first.get_attribute("data-lon")), float(hits.first.get_attribute("data-lat"))
    page.press("[data-testid=incident-place]", "Enter")
    eventually(lambda: page.evaluate("window.__calltaking.point") == list(want), "the hit placed")
    assert (
        page.locator("[data-testid=incident-address]").input_value().startswith("Mannerheimintie")
    )

    stored = submit_and_find(page, api, title)
    assert close_to(stored["geometry"]["coordinates"], want)
    assert stored["properties"]["type"] == "flood"
    assert stored["properties"]["address"].startswith("Mannerheimintie")
    assert page.js_errors == []


def test_pasted_coordinates_and_a_gcj02_pair(open_page: Any, live_server: str) -> None:
    api = Api(live_server, "dispatcher")
    page = screen(open_page)

    open_form(page)
    title = tag("Collision at the crossing")
    fill(page, title=title, type="traffic_accident")
    assert search_pick(page, "60.1699 N, 24.9384 E") == (24.9384, 60.1699)
    stored = submit_and_find(page, api, title)
    assert close_to(stored["geometry"]["coordinates"], (24.9384, 60.1699))

    # An Amap (GCJ-02) point in Beijing: the server converts it; so does gis/crs.py here.
    open_form(page)
    title = tag("天安门广场 人员晕倒")
    fill(page, title=title, type="medical", crs="gcj02")
    search_pick(page, "116.397428,39.90923")
    stored = submit_and_find(page, api, title)
    want = to_wgs84(116.397428, 39.90923, "gcj02")
    assert close_to(stored["geometry"]["coordinates"], want)
    assert not close_to(stored["geometry"]["coordinates"], (116.397428, 39.90923), 1e-4)
    # The drawer opens the new incident and asks for its recommendation: Beijing is off the
    # loaded road network, so the server refuses that (422) and the drawer says so.
    off_network = ("/recommendations", "status of 422")
    assert [e for e in page.js_errors if not any(s in e for s in off_network)] == []


# --- refusing --------------------------------------------------------------------------


def test_bad_input_is_shown_by_its_field_and_creates_nothing(
    open_page: Any, live_server: str
) -> None:
    api = Api(live_server, "dispatcher")
    before = len(incidents(api))
    page = screen(open_page)
    page.click("#lang")  # English: the server's own message is shown as it wrote it
    open_form(page)

    # The page refuses: no title, no type, no place.
    page.click("[data-testid=incident-submit]")
    errors = errors_by_field(page)
    assert set(errors) == {"title", "type", "place"}, errors
    for name in ("title", "type", "place"):
        box = page.locator(f".ct-field[data-field={name}]")
        assert box.locator("[data-testid=form-error]").count() == 1  # next to its field

    # The server refuses: people beyond its maximum, then a phone that is not one.
    fill(page, title=tag("Smoke"), type="fire", people="200000000")
    click_map(page)
    page.click("[data-testid=incident-submit]")
    eventually(lambda: "people" in errors_by_field(page), "the server's refusal")
    errors = errors_by_field(page)
    assert list(errors) == ["people"], errors
    assert "100000000" in errors["people"][0]  # pydantic's message, from the 422

    fill(page, people="2", phone="abc")
    page.click("[data-testid=incident-submit]")
    eventually(lambda: "phone" in errors_by_field(page), "the phone refused")
    assert list(errors_by_field(page)) == ["phone"]
    shot(page, "calltaking-error-en-1920x1080.png")
    assert page.locator(FORM).is_visible()  # still open, values kept
    assert page.locator("[data-testid=incident-people]").input_value() == "2"

    page.keyboard.press("Escape")
    page.wait_for_selector(FORM, state="detached")
    assert len(incidents(api)) == before
    refused = [e for e in page.js_errors if "422" not in e]
    assert refused == [], page.js_errors


# --- duplicates ------------------------------------------------------------------------


def test_a_second_call_is_attached_to_the_open_duplicate(open_page: Any, live_server: str) -> None:
    api = Api(live_server, "dispatcher")
    lon, lat = CENTRE[0] - 0.004, CENTRE[1] + 0.001
    fire = new_fire(api, tag("Fire in the stairwell"), lon, lat + 200 / METRES_PER_DEG_LAT)
    calls_before = fire["properties"]["calls"]
    before = len(incidents(api))

    page = screen(open_page)
    open_form(page, (lon, lat))
    fill(page, title="Smoke seen from the street", type="fire", phone="040 765 4321", people="4")
    search_pick(page, f"{lon},{lat}")
    item = page.locator(f"[data-testid=duplicate-item][data-incident-id='{fire['id']}']")
    item.wait_for()
    assert "m" in item.inner_text()

    # The screenshots: search hits open and the duplicate listed, zh-CN then English.
    page.fill("[data-testid=incident-place]", "Manerheimintie")
    page.locator("[data-testid=place-result]").first.wait_for()
    shot(page, "calltaking-zh-CN-1920x1080.png")
    page.click("#lang")
    assert page.locator("[data-testid=incident-people]").input_value() == "4"  # values kept
    assert page.locator("[data-testid=incident-type]").input_value() == "fire"
    item.wait_for()
    page.locator("[data-testid=place-result]").first.wait_for()
    shot(page, "calltaking-en-1920x1080.png")

    item.locator("[data-testid=attach-call]").click()
    page.wait_for_selector(FORM, state="detached")
    assert len(incidents(api)) == before  # no second incident
    after = api.get(f"/api/incidents/{fire['id']}")["properties"]
    assert after["calls"] == calls_before + 1
    assert after["caller_phone"] == "040 765 4321"
    assert page.js_errors == []


@pytest.mark.parametrize(
    ("name", "viewport", "options"),
    [("3840x2160", UHD, {}), ("3840x2160-2x", BIG_SCREEN, {"device_scale_factor": 2})],
    ids=["css-3840", "1920-at-2x"],
)
def test_form_at_3840x2160(
    open_page: Any, live_server: str, name: str, viewport: dict[str, int], options: dict[str, Any]
) -> None:
    """A 4K wall: as a 3840-pixel-wide page, and as 1920 CSS pixels at 2x (OS scaling)."""
    api = Api(live_server, "dispatcher")
    lon, lat = CENTRE[0] + 0.003, CENTRE[1] - 0.002
    fire = new_fire(api, tag("Car fire in the car park"), lon + 0.001, lat)
    page = screen(open_page, viewport, **options)
    open_form(page, (lon, lat))
    fill(page, title="Black smoke, car park", type="fire", severity="severe", people="0")
    search_pick(page, f"{lon},{lat}")
    page.locator(f"[data-testid=duplicate-item][data-incident-id='{fire['id']}']").wait_for()
    page.fill("[data-testid=incident-place]", "Manerheimintie")
    page.locator("[data-testid=place-result]").first.wait_for()
    shot(page, f"calltaking-zh-CN-{name}.png")
    page.keyboard.press("Escape")  # the hit list first, the form kept
    page.locator("[data-testid=place-result]").first.wait_for(state="detached")
    assert page.locator(FORM).is_visible()
    page.keyboard.press("Escape")
    page.wait_for_selector(FORM, state="detached")
    assert page.js_errors == []
