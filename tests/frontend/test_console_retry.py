"""The console's writes survive a server's death, in real Chromium (/screen).

A server that dies mid-request leaves the browser with a reset connection or a 502/503/504
from the proxy, and no way to know whether the write committed. Playwright's ``page.route``
plays the dying server: the request reaches the real server and commits, then its answer is
lost (``route.fetch()`` then ``abort("connectionreset")``); or the proxy answers 503 before
the server sees it. The console sends the same request again with the same Idempotency-Key
(frontend/static/retry.js), says so while it does, and the server stores the dispatch or the
report once. When the server stays away the console gives up with its usual error and
nothing is created; the dispatcher's own second click then reuses the key.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.browser import CENTRE, Api, eventually, shot
from tests.support.console import (
    METRES_PER_DEG_LAT,
    active_tasks,
    cancel,
    click_map,
    fill,
    incidents,
    new_fire,
    new_incident,
    open_drawer,
    open_form,
    open_screen,
    screen,
    search_pick,
    tag,
    task_rows,
    wait_in_state,
)

pytestmark = pytest.mark.browser

KEY = re.compile(r"^[A-Za-z0-9._:\-]{8,100}$")
ATTEMPTS = 5  # retry.js: the first try and 4 retries (0.5 s, 1 s, 2 s, 4 s apart)
FORM = "[data-testid=incident-form]"


# --- helpers -----------------------------------------------------------------------


class Proxy:
    """A route that plays a dying server for the first ``cut`` POSTs, then lets them through.

    ``mode``: ``"after-commit"`` (the server does the work, the answer is lost), ``"503"``
    (the proxy answers, the server never sees it) or ``"down"`` (the connection is reset
    before the server sees it). Records each POST's Idempotency-Key and body."""

    def __init__(self, mode: str, cut: int = 1) -> None:
        self.mode, self.cut = mode, cut
        self.sent: list[tuple[str, str | None, Any]] = []  # (url, key, body)

    def __call__(self, route: Any) -> None:
        request = route.request
        if request.method != "POST":
            route.continue_()
            return
        self.sent.append(
            (request.url, request.headers.get("idempotency-key"), request.post_data_json)
        )
        if len(self.sent) > self.cut:
            route.continue_()
        elif self.mode == "after-commit":
            route.fetch()  # the server commits and answers; the answer never arrives
            route.abort("connectionreset")
        elif self.mode == "503":
            route.fulfill(
                status=503,
                content_type="text/html",
                body="<html><body>503 Service Unavailable</body></html>",
            )
        else:
            route.abort("connectionreset")

    def keys(self) -> list[str | None]:
        return [key for _, key, _ in self.sent]


def unexpected_errors(page: Any) -> list[str]:
    """The page's errors but those the cut-off requests cause by design."""
    return [
        e
        for e in page.js_errors
        if "net::ERR_CONNECTION_RESET" not in e
        and not e.startswith("HTTP 503")
        and "status of 503" not in e
    ]


def dispatch_with(
    open_page: Any, api: Api, title: str, dx: float, proxy: Proxy
) -> tuple[Any, dict[str, Any], list[int]]:
    """Open a new incident in the drawer behind ``proxy`` and press dispatch."""
    incident = new_incident(api, title, dx, 0.0006)
    page = open_screen(open_page)
    open_drawer(page, incident["id"])
    page.route(f"**/api/incidents/{incident['id']}/dispatch", proxy)
    rec = api.get(f"/api/incidents/{incident['id']}/recommendations?limit=8")
    recommended = [r["unit_id"] for r in rec["recommendations"] if r["recommended"]]
    assert recommended
    page.click("[data-testid=dispatch-recommended]")
    return page, incident, recommended


def one_task_per_unit(api: Api, incident_id: int, units: list[int]) -> None:
    tasks = api.get(f"/api/tasks?incident_id={incident_id}&limit=100")["items"]
    assert sorted(t["unit_id"] for t in tasks) == sorted(units), tasks


def same_key_twice(proxy: Proxy, attempts: int = 2) -> str:
    keys = proxy.keys()
    assert len(keys) == attempts, proxy.sent
    assert keys[0] is not None and KEY.match(keys[0]), keys
    assert set(keys) == {keys[0]}, keys
    assert all(body == proxy.sent[0][2] for _, _, body in proxy.sent)  # the same request
    return keys[0]


# --- dispatch from the drawer ------------------------------------------------------------


def test_a_dispatch_whose_answer_is_lost_is_retried_and_stored_once(open_page, live_server):
    api = Api(live_server, "dispatcher")
    proxy = Proxy("after-commit")
    page, incident, units = dispatch_with(open_page, api, "R1 答复丢失的派遣", 0.0012, proxy)

    # The console shows the dispatch as done, with no error: the retry got the first answer.
    eventually(lambda: task_rows(page) == {u: "assigned" for u in units}, "a task row per unit")
    # (the rows may come first over /ws; the retry's answer then ends the note)
    retrying = page.locator("[data-testid=write-retrying]")
    eventually(lambda: retrying.count() == 0 and len(proxy.sent) == 2, "the retry answered")
    assert page.locator("[data-testid=dispatch-error]").is_hidden()
    one_task_per_unit(api, incident["id"], units)
    assert len(active_tasks(api, incident_id=incident["id"])) == len(units)
    key = same_key_twice(proxy)
    assert key.startswith("console:")
    assert proxy.sent[0][2] == {"unit_ids": units}
    cancel(api, incident)
    assert unexpected_errors(page) == []


def test_a_503_from_the_proxy_is_retried_and_dispatches_once(open_page, live_server):
    api = Api(live_server, "dispatcher")
    proxy = Proxy("503")
    page, incident, units = dispatch_with(open_page, api, "R2 代理返回 503", -0.0015, proxy)

    eventually(lambda: task_rows(page) == {u: "assigned" for u in units}, "a task row per unit")
    assert page.locator("[data-testid=dispatch-error]").is_hidden()
    one_task_per_unit(api, incident["id"], units)
    same_key_twice(proxy)
    cancel(api, incident)
    assert unexpected_errors(page) == []


def test_retries_give_up_with_the_usual_error_and_create_nothing(open_page, live_server):
    api = Api(live_server, "dispatcher")
    proxy = Proxy("down", cut=ATTEMPTS)
    page, incident, units = dispatch_with(open_page, api, "R3 服务器持续不可达", 0.0004, proxy)

    # While it retries, the drawer says so (zh-CN by default), and the button stays busy.
    note = page.locator("[data-testid=incident-drawer] [data-testid=write-retrying]")
    note.wait_for(state="visible")
    assert re.fullmatch(r"连接中断，正在重试…（第 [2-5] 次）", note.inner_text()), note.inner_text()
    assert page.locator("[data-testid=dispatch-recommended]").is_disabled()
    shot(page, "console-retry-zh-CN-1920x1080.png")

    error = page.locator("[data-testid=dispatch-error]")
    eventually(lambda: error.is_visible(), "the error after the last attempt", 20)
    assert error.inner_text() == "离线"  # the drawer's usual words for no answer at all
    assert note.count() == 0
    key = same_key_twice(proxy, ATTEMPTS)
    assert api.get(f"/api/tasks?incident_id={incident['id']}&limit=100")["items"] == []
    assert api.get(f"/api/incidents/{incident['id']}")["properties"]["status"] == "reported"

    # The server is back; the dispatcher presses again: the same request, the same key.
    eventually(lambda: page.locator("[data-testid=dispatch-recommended]").is_enabled(), "enabled")
    page.click("[data-testid=dispatch-recommended]")
    eventually(lambda: task_rows(page) == {u: "assigned" for u in units}, "a task row per unit")
    assert proxy.keys()[ATTEMPTS:] == [key]
    one_task_per_unit(api, incident["id"], units)
    cancel(api, incident)
    assert unexpected_errors(page) == []


# --- reporting an incident (call-taking) ---------------------------------------------------


def report_with(open_page: Any, proxy: Proxy, title: str, english: bool = False) -> Any:
    page = screen(open_page)
    if english:
        page.click("#lang")
    page.route("**/api/incidents", proxy)
    open_form(page)
    fill(page, title=title, type="medical", severity="severe")
    click_map(page)
    page.click("[data-testid=incident-submit]")
    return page


def titled(api: Api, title: str) -> list[dict[str, Any]]:
    return [f for f in incidents(api) if f["properties"]["title"] == title]


def test_a_report_whose_answer_is_lost_creates_one_incident(open_page, live_server):
    api = Api(live_server, "dispatcher")
    title = tag("R4 答复丢失的接警")
    proxy = Proxy("after-commit")
    page = report_with(open_page, proxy, title)

    page.wait_for_selector(FORM, state="detached")
    toast = page.locator("[data-testid=incident-toast]")
    eventually(lambda: title in toast.inner_text(), "the created toast")
    (stored,) = titled(api, title)
    same_key_twice(proxy)
    assert proxy.sent[0][2]["properties"]["title"] == title
    # The console selects what it created: the incident the server stored, not a second one.
    eventually(lambda: page.evaluate("window.__console.selected") == stored["id"], "selected")
    cancel(api, stored)
    assert unexpected_errors(page) == []


def test_a_report_that_never_gets_through_says_so_and_creates_nothing(open_page, live_server):
    api = Api(live_server, "dispatcher")
    title = tag("R5 no answer")
    before = len(incidents(api))
    proxy = Proxy("down", cut=ATTEMPTS)
    page = report_with(open_page, proxy, title, english=True)
    note = page.locator(f"{FORM} [data-testid=write-retrying]")
    eventually(lambda: note.is_visible(), "the retry note")
    assert re.fullmatch(r"Connection lost, retrying… \(attempt [2-5]\)", note.inner_text())
    shot(page, "console-retry-calltaking-en-1920x1080.png")

    errors = page.locator(f"{FORM} [data-testid=form-error][data-field=form]")
    eventually(lambda: errors.count() == 1, "the error after the last attempt", 20)
    assert errors.inner_text() == "The server cannot be reached; try again"
    assert note.is_hidden()
    assert page.locator("[data-testid=incident-submit]").is_enabled()
    same_key_twice(proxy, ATTEMPTS)
    assert titled(api, title) == []
    assert len(incidents(api)) == before
    assert unexpected_errors(page) == []


# --- plan all: one dispatch per incident ----------------------------------------------------


def test_plan_all_retries_a_cut_off_dispatch_once(open_page, live_server):
    api = Api(live_server, "dispatcher")
    made = [
        new_incident(api, "R6 计划 仓库起火", -0.006, -0.005),
        new_incident(api, "R7 计划 老人晕倒", 0.0057, 0.0044, type="medical", severity="minor"),
    ]
    page = open_screen(open_page)
    proxy = Proxy("after-commit")
    page.route("**/api/incidents/*/dispatch", proxy)
    wait_in_state(page, [m["id"] for m in made])
    page.click("[data-testid=plan-all]")
    page.wait_for_function("window.__plan && window.__plan.phase === 'proposal'")
    body = page.evaluate("window.__plan.body")
    planned = {m["id"] for m in made} & {a["incident_id"] for a in body["assignments"]}
    assert planned == {m["id"] for m in made}, body
    page.click("[data-testid=plan-apply]")
    page.click("[data-testid=plan-confirm]")
    page.wait_for_function("window.__plan && window.__plan.phase === 'results'", timeout=30_000)

    results = page.evaluate("window.__plan.results")
    assert {int(i): r["outcome"] for i, r in results.items()} == dict.fromkeys(
        planned, "dispatched"
    )
    for m in made:
        want = sorted(a["unit_id"] for a in body["assignments"] if a["incident_id"] == m["id"])
        one_task_per_unit(api, m["id"], want)
    # The first incident's dispatch was sent twice with one key; the second once, its own key.
    per_url: dict[str, list[str | None]] = {}
    for url, key, _ in proxy.sent:
        per_url.setdefault(url, []).append(key)
    assert sorted(len(k) for k in per_url.values()) == [1, 2], per_url
    assert all(len(set(k)) == 1 for k in per_url.values())
    assert len({k[0] for k in per_url.values()}) == 2
    cancel(api, *made)
    assert unexpected_errors(page) == []


# --- an incident's status step and a second call -------------------------------------------


def test_a_status_step_whose_answer_is_lost_is_retried_and_taken_once(open_page, live_server):
    api = Api(live_server, "dispatcher")
    incident = new_incident(api, "R7 核实答复丢失", 0.0030, 0.0006)
    page = open_screen(open_page)
    open_drawer(page, incident["id"])
    proxy = Proxy("after-commit")
    page.route(f"**/api/incidents/{incident['id']}/status", proxy)

    page.click("[data-testid=incident-action][data-status=verified]")

    # (each check asks the page something: Playwright runs the route only while it is asked)
    retrying = page.locator("[data-testid=write-retrying]")
    eventually(lambda: retrying.count() == 0 and len(proxy.sent) == 2, "the step sent again")
    assert page.locator("[data-testid=dispatch-error]").is_hidden()  # no 409, no error
    assert api.get(f"/api/incidents/{incident['id']}")["properties"]["status"] == "verified"
    same_key_twice(proxy)
    cancel(api, incident)
    assert unexpected_errors(page) == []


def test_a_second_call_whose_answer_is_lost_is_counted_once(open_page, live_server):

    api = Api(live_server, "dispatcher")
    lon, lat = CENTRE[0] + 0.006, CENTRE[1] - 0.002
    fire = new_fire(api, tag("Fire behind the depot"), lon, lat + 150 / METRES_PER_DEG_LAT)
    calls_before = fire["properties"]["calls"]
    page = screen(open_page)
    proxy = Proxy("after-commit")
    page.route(f"**/api/incidents/{fire['id']}/calls", proxy)
    open_form(page, (lon, lat))
    fill(page, title="Smoke seen again", type="fire", phone="040 111 2222")
    search_pick(page, f"{lon},{lat}")
    item = page.locator(f"[data-testid=duplicate-item][data-incident-id='{fire['id']}']")
    item.wait_for()

    item.locator("[data-testid=attach-call]").click()

    page.wait_for_selector(FORM, state="detached")  # the retry got the first answer
    assert api.get(f"/api/incidents/{fire['id']}")["properties"]["calls"] == calls_before + 1
    same_key_twice(proxy)
    assert unexpected_errors(page) == []
