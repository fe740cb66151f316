"""The command console (/screen) in Chromium: logging in, the call-taking form, the queue
and the incident drawer, shared by the console's browser tests."""

from __future__ import annotations

import secrets
from typing import Any

from tests.support.browser import BIG_SCREEN, CENTRE, Api, eventually, login_form

FORM = "[data-testid=incident-form]"
METRES_PER_DEG_LAT = 111_320
ACTIVE_TASK = "assigned,accepted,en_route,on_scene"


def tag(title: str) -> str:
    """A title no other test uses, to find the incident the form created."""
    return f"{title} {secrets.token_hex(3)}"


def screen(open_page: Any, viewport: dict[str, int] = BIG_SCREEN, **options: Any) -> Any:
    """The live screen, logged in as the dispatcher, the map loaded and fitted once."""
    page = open_page("/screen", viewport, **options)
    login_form(page, "dispatcher")
    eventually(
        lambda: page.evaluate(
            "window.__live.mapLoaded && window.__live.fitted && window.__live.state === 'live'"
        ),
        "the live map",
    )
    return page


def open_form(page: Any, centre: tuple[float, float] = CENTRE) -> None:
    """New incident; the map looks at ``centre`` (as a dispatcher would pan it there)."""
    page.click("[data-testid=new-incident]")
    page.wait_for_selector(FORM)
    page.evaluate("(c) => window.__map.jumpTo({center: c, zoom: 16})", list(centre))
    eventually(lambda: page.evaluate("!window.__map.isMoving()"), "the map at rest")


def fill(page: Any, **fields: str) -> None:
    for name, value in fields.items():
        hook = f"[data-testid=incident-{name}]"
        if name in ("type", "severity", "crs"):
            page.select_option(hook, value)
        else:
            page.fill(hook, value)


def click_map(page: Any, dx: int = 80, dy: int = 40) -> tuple[float, float]:
    """Click the map right of its centre (clear of the form); the clicked point."""
    box = page.locator("[data-testid=map]").bounding_box()
    x, y = int(box["width"] / 2) + dx, int(box["height"] / 2) + dy
    lon, lat = page.evaluate("([x, y]) => window.__map.unproject([x, y]).toArray()", [x, y])
    page.click("[data-testid=map]", position={"x": x, "y": y})
    return lon, lat


def search_pick(page: Any, text: str) -> tuple[float, float]:
    """Type into the place search, pick the first hit; the hit's point."""
    page.fill("[data-testid=incident-place]", text)
    first = page.locator("[data-testid=place-result]").first
    first.wait_for()
    lon, lat = float(first.get_attribute("data-lon")), float(first.get_attribute("data-lat"))
    first.click()
    eventually(lambda: page.evaluate("window.__calltaking.point !== null"), "the picked point")
    return lon, lat


def incidents(api: Api) -> list[dict[str, Any]]:
    return list(api.get("/api/incidents?limit=1000")["features"])


def new_fire(api: Api, title: str, lon: float, lat: float) -> dict[str, Any]:
    return api.incident(title, lon, lat)


def new_incident(
    api: Api, title: str, dx: float = 0.0, dy: float = 0.0, **props: Any
) -> dict[str, Any]:
    """An incident ``dx``, ``dy`` degrees from the demo city's centre."""
    return api.incident(title, CENTRE[0] + dx, CENTRE[1] + dy, **props)


def cancel(api: Api, *incidents: dict[str, Any]) -> None:
    """End the incidents (their tasks are cancelled and their units freed)."""
    for incident in incidents:
        api.post(f"/api/incidents/{incident['id']}/status", {"status": "cancelled"})


def open_screen(
    open_page: Any, user: str = "dispatcher", lang: str = "zh-CN", **options: Any
) -> Any:
    page = open_page("/screen", BIG_SCREEN, **options)
    if lang != "zh-CN":
        page.evaluate("(l) => localStorage.setItem('lang', l)", lang)
        page.reload()
    page.wait_for_selector("#login-overlay:not([hidden])")
    login_form(page, user)
    page.wait_for_function(
        "window.__live.state === 'live' && Number.isInteger(window.__live.topics.situation)"
        " && window.__live.mapLoaded"
    )
    return page


def item(page: Any, incident_id: int) -> Any:
    return page.locator(f"[data-testid=queue-item][data-incident-id='{incident_id}']")


def open_drawer(page: Any, incident_id: int) -> Any:
    """Click the incident in the queue; wait for its recommendation in the drawer."""
    item(page, incident_id).click()
    drawer = page.locator("[data-testid=incident-drawer]")
    drawer.wait_for(state="visible")
    page.wait_for_function(
        "(id) => document.querySelector('[data-testid=incident-drawer]').dataset.incidentId"
        " === String(id) && document.querySelectorAll("
        "'[data-testid=incident-drawer] [data-testid=recommendation]').length > 0",
        arg=incident_id,
    )
    return drawer


def task_rows(page: Any) -> dict[int, str]:
    rows = page.eval_on_selector_all(
        "[data-testid=task-timeline] [data-testid=task-row]",
        "els => els.map(e => [e.dataset.unitId, e.dataset.status])",
    )
    return {int(u): s for u, s in rows}


def active_tasks(api: Api, **query: Any) -> list[dict[str, Any]]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return list(api.get(f"/api/tasks?status={ACTIVE_TASK}&limit=500&{params}")["items"])


def wait_in_state(page: Any, ids: list[int]) -> None:
    eventually(
        lambda: page.evaluate(
            "async (ids) => { const d = await window.__map.getSource('incidents').getData();"
            " return ids.every(id => d.features.some(f => f.id === id)); }",
            ids,
        ),
        "the incidents in the page's state",
    )
