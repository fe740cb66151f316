"""report.html (drills/html.py): one self-contained page, offline, escaped, every policy.

The pure tests read the HTML of reports whose policy entries come from the KPI code itself
(``drills.kpis`` over hand-made replications, one policy with no incident at all). The
browser test runs examples/drills/helsinki-centre.yaml on the tests' roads, opens the
written report.html from file:// in Chromium with every other request blocked, checks each
plot drew and nothing logged an error, and saves docs/img/drill-report.png (1600x1200,
looked at by a person) and docs/img/drill-report-en.png (the whole page, in English).
Every example scenario in examples/drills/ reads, and its CSV says on each row that it is
made up.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dispatch.targets import TargetTable
from drills import html, kpis
from drills.calls import SLOTS, Calls
from drills.engine import Outcome
from drills.report import clean
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, eventually

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMG = ROOT / "docs" / "img"
VENDOR = ROOT / "frontend" / "static" / "vendor"
START = datetime.fromisoformat("2026-07-01T08:00:00+03:00")
EVIL = "<script>alert(1)</script>"
EVIL_TYPE = "<img src=x onerror=alert(2)>"
# XML namespace names ECharts' SVG renderer uses as identifiers: never fetched
XML_NAMESPACES = {
    "http://www.w3.org/2000/svg",
    "http://www.w3.org/1999/xlink",
    "http://www.w3.org/2000/xmlns/",
    "http://www.w3.org/XML/1998/namespace",
}


# --- reports made by the KPI code ----------------------------------------------------------
def replication(responses: list[float | None], types: list[str], units: int) -> dict[str, Any]:
    """One replication's KPIs: calls every 10 min answered after ``responses`` seconds."""
    n = len(responses)
    rng = np.random.default_rng(n)
    calls = Calls(
        t_s=np.arange(n, dtype=np.float64) * 600.0,
        lon=24.94 + rng.uniform(-0.005, 0.005, n),
        lat=60.17 + rng.uniform(-0.004, 0.004, n),
        type=tuple(types),
        severity=("moderate",) * n,
        dispatch_delay_s=np.zeros(n),
        turnout_s=np.zeros((n, SLOTS)),
        on_scene_s=np.zeros((n, SLOTS)),
        transport=np.zeros(n, dtype=bool),
        transport_s=np.zeros(n),
        handover_s=np.zeros(n),
    )
    response = np.array([np.nan if r is None else r for r in responses], dtype=np.float64)
    out = Outcome(
        policy="x",
        replication=0,
        duration_s=86_400.0,
        warmup_s=0.0,
        response_s=response,
        wait_s=np.where(response > 600, response - 300, 0.0),
        queued=response > 600,
        unmet_slots=0,
        busy_s=units * 30_000.0,
        n_units=units,
        samples=[(t, 0.9, 2, 0) for t in np.arange(0, 86_400, 900.0)],
        timeline=None,
        timing={},
    )
    return kpis.replication(out, calls, START, TargetTable())


def policy_entry(shift_s: float) -> dict[str, Any]:
    types = ["medical", "fire", EVIL_TYPE] * 8
    reps = [
        replication([200 + shift_s + 40 * ((k * (r + 3)) % 17) for k in range(24)], types, 5)
        for r in range(3)
    ]
    return dict(kpis.across(reps))


def no_incidents() -> dict[str, Any]:
    """A policy whose replications had no call and no unit: every KPI null."""
    rep = replication([], [], 0)
    return dict(kpis.across([rep, rep]))


def make_report(name: str = "Helsinki test", **policies: dict[str, Any]) -> dict[str, Any]:
    policies = policies or {"nearest": policy_entry(0), "plan": policy_entry(120)}
    report = {
        "scenario": name,
        "seed": 7,
        "replications": 3,
        "start": START.isoformat(),
        "duration_s": 86_400.0,
        "warmup_s": 0.0,
        "fleet": {"stations": 2, "units": 5, "hospitals": 1},
        "targets": {
            "default": {"dispatch_s": 60, "travel_s": 420, "response_s": 480},
            "by_type": {"fire": {"dispatch_s": 60, "travel_s": 300, "response_s": 360}},
        },
        "policies": policies,
        "spec": {
            "name": name,
            "policies": list(policies),
            "stations": [{"name": f"Post {EVIL}", "lon": 24.94, "lat": 60.17}],
            "hospitals": [{"name": "H", "lon": 24.945, "lat": 60.169}],
            "closures": [
                {
                    "at_s": 0,
                    "name": EVIL,
                    "polygon": {
                        "type": "Polygon",
                        "coordinates": [
                            [[24.93, 60.16], [24.95, 60.16], [24.95, 60.18], [24.93, 60.16]]
                        ],
                    },
                }
            ],
        },
        "timing": {"wall_s": 1.5},
    }
    return dict(clean(report))


def json_block(page: str) -> Any:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page)
    assert found
    return json.loads(found.group(1))


def markup(page: str) -> str:
    """The page's body before its scripts."""
    return page.split("<body>")[1].split("<script")[0]


def loading_attributes(page: str) -> list[tuple[str, str]]:
    """Attributes of the page's elements that would load something (src, href, ...)."""
    found: list[tuple[str, str]] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend((tag, k) for k, _ in attrs if k in ("src", "href", "srcset", "data"))

    Tags().feed(page)
    return found


def inline_scripts(page: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", page, flags=re.S)


# --- pure -------------------------------------------------------------------------------------
def test_every_policy_section_and_plot_is_on_the_page() -> None:
    report = make_report(nearest=policy_entry(0), move_up=policy_entry(60))
    report = json.loads(json.dumps(report, sort_keys=True))  # as report.json is read back
    page = html.render(report)
    body = markup(page)
    for section in ("summary", "kpis", "by-hour", "late", "by-type"):
        assert f'data-section="{section}"' in page
    for chart in html.CHARTS:
        assert page.count(f'data-chart="{chart}"') == 1
    for table in ("kpi-table", "type-table"):
        assert f'data-testid="{table}"' in page
    # each policy heads a column of the KPI table and a group of the by-type table
    for policy in ("move_up", "nearest"):
        assert body.count(f'data-policy="{policy}"') == 2
    # in the scenario's order, not report.json's sorted keys
    assert body.index('data-policy="nearest"') < body.index('data-policy="move_up"')
    assert json_block(page)["policies"] == ["nearest", "move_up"]
    for kpi in ("response_s.p90", "within_target", "queued_fraction", "utilisation", "coverage"):
        assert f'data-kpi="{kpi}"' in page


def test_times_read_as_minutes_and_shares_as_percent() -> None:
    assert [html.mmss(x) for x in (0, 59.6, 431, 3725, -5, None)] == [
        "0:00",
        "1:00",
        "7:11",
        "62:05",
        "-0:05",
        "–",
    ]
    assert [html.pct(x) for x in (0.7616, 1, None)] == ["76.2%", "100.0%", "–"]
    report = make_report()
    p90 = report["policies"]["nearest"]["kpis"]["response_s"]["p90"]
    row = re.search(r'<tr data-kpi="response_s.p90">(.*?)</tr>', html.render(report))
    assert row and f'<span class="v">{html.mmss(p90)}</span>' in row.group(1)
    assert "2026-07-01 08:00 +03:00" in html.render(report)


def test_every_string_from_the_report_is_escaped() -> None:
    page = html.render(make_report(name=EVIL))
    assert EVIL not in page
    assert EVIL_TYPE not in page
    assert "<img" not in page.replace(inline_scripts(page)[0], "")  # ECharts' own code aside
    assert html.esc(EVIL) in page  # the scenario's name, shown as text
    assert html.esc(EVIL_TYPE) in page  # an incident type in the by-type table
    # only the three scripts the page brings: the data, ECharts and the page's own
    assert page.count("<script") == 3
    data = json_block(page)
    assert EVIL_TYPE in data["types"] and data["closures"][0]["name"] == EVIL


def test_the_data_block_holds_no_markup_and_reads_back() -> None:
    report = make_report(name=EVIL)
    page = html.render(report)
    raw = re.search(r'id="report-data">(.*?)</script>', page)
    assert raw and not set("<>&") & set(raw.group(1))
    assert json_block(page) == json.loads(json.dumps(clean(html.plot_data(report))))


def test_nothing_is_fetched_from_the_network() -> None:
    page = html.render(make_report())
    vendored = (VENDOR / "echarts" / "echarts.min.js").read_text(encoding="utf-8")
    scripts = inline_scripts(page)
    assert scripts[0] == vendored  # unchanged, licence comment included
    sums = (VENDOR / "SHA256SUMS").read_text(encoding="utf-8")
    assert hashlib.sha256(scripts[0].encode()).hexdigest() + "  echarts/echarts.min.js" in sums
    assert "Licensed to the Apache Software Foundation" in page
    assert "echarts 5.6.0" in page  # the VERSIONS line, in the comment naming the licence
    rest = page.replace(vendored, "")
    assert not re.findall(r"https?://", rest)
    assert loading_attributes(page) == []
    assert not re.search(r"url\(|@import", rest)
    # in ECharts itself, outside its comments, only XML namespace names
    code = re.sub(r"/\*.*?\*/", "", vendored, flags=re.S)
    assert set(re.findall(r"https?://[^\"'\s)]+", code)) <= XML_NAMESPACES


def test_the_security_policy_allows_only_the_page_scripts() -> None:
    page = html.render(make_report())
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp
    policy = csp.group(1)
    assert "default-src 'none'" in policy
    for code in inline_scripts(page):
        digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_a_policy_with_no_incidents_renders_with_dashes() -> None:
    report = make_report(nearest=policy_entry(0), plan=no_incidents())
    assert report["policies"]["plan"]["kpis"]["within_target"] is None
    page = html.render(report)
    row = re.search(r'<tr data-kpi="within_target">(.*?)</tr>', page)
    assert row
    cells = re.findall(r'<span class="v">([^<]*)</span>', row.group(1))
    assert cells[0].endswith("%") and cells[1] == "–"
    assert json_block(page)["util"]["plan"] == {"ci": None, "v": None}


def test_a_tabletop_report_shows_recommended_versus_chosen() -> None:
    report = {
        "mode": "tabletop",
        "scenario": "tabletop",
        "started_at": "2026-07-01T08:00:00+03:00",
        "policies": {"dispatchers": {"kpis": {"incidents": 2, "within_target": 0.5}}},
        "recommended_vs_chosen": {
            "dispatches": 2,
            "judged": 1,
            "followed": 1,
            "followed_share": 1.0,
            "items": [
                {
                    "incident": 5,
                    "title": EVIL,
                    "recommended": ["D1-A1"],
                    "chosen": ["D1-A1"],
                    "followed": True,
                },
                {
                    "incident": 6,
                    "title": "x",
                    "recommended": None,
                    "chosen": ["D1-E1"],
                    "followed": None,
                },
            ],
        },
    }
    page = html.render(report)
    section = re.search(r'data-section="decisions">(.*?)</section>', page, flags=re.S)
    assert section and section.group(1).count("<tr>") == 3
    assert html.esc(EVIL) in section.group(1) and EVIL not in page
    assert "100.0%" in section.group(1) and "2026-07-01 08:00 +03:00" in page
    assert "调度员" in markup(page)


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"scenario": "x", "policies": {"nearest": None}},
        {"policies": {"nearest": {"kpis": None, "ci95": None, "histogram": None}}},
        {"policies": {"plan": {"kpis": {"response_s": None}}}, "spec": {"stations": "from_db"}},
    ],
)
def test_partial_reports_still_render(report: dict[str, Any]) -> None:
    page = html.render(report)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (ROOT / "examples" / "drills").glob("*.yaml"))
)
def test_the_example_scenarios_read(name: str) -> None:
    from drills import scenario as sc

    spec = sc.load(ROOT / "examples" / "drills" / name)
    for g in spec.generators:
        if g.csv:  # the example CSV is made up, and says so on every row
            rows = Path(g.csv).read_text(encoding="utf-8").splitlines()
            assert rows[0].endswith(",source") and all(r.endswith(",synthetic") for r in rows[1:])


# --- in Chromium ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium is required in CI: none at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def example_report(road_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/drills/helsinki-centre.yaml run on the tests' roads, written out."""
    from drills import scenario as sc
    from drills.report import write
    from drills.runner import run
    from drills.world import fleet_from_scenario

    spec = sc.load(ROOT / "examples" / "drills" / "helsinki-centre.yaml")
    result = run(spec, fleet_from_scenario(spec), road_engine)
    return write(result, tmp_path_factory.mktemp("drill-report"))["html"]


def open_offline(browser: Any, path: Path, fragment: str = "") -> tuple[Any, list[str], list[str]]:
    """The page from file://, every other request refused; its errors and refused URLs."""
    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    errors: list[str] = []
    refused: list[str] = []

    def console(message: Any) -> None:
        if message.type in ("error", "warning"):
            errors.append(message.text)

    def dialog(d: Any) -> None:  # alert() from a name that was not escaped
        errors.append(f"dialog: {d.message}")
        d.dismiss()

    page.on("console", console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", dialog)

    def route(r: Any) -> None:
        if r.request.url.startswith("file://"):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri() + fragment)
    page.wait_for_function(
        f"Object.keys(window.__drillCharts || {{}}).length === {len(html.CHARTS)}"
    )
    return page, errors, refused


DRAWN = """() => [...document.querySelectorAll('[data-chart]')].map((el) => {
  const canvas = el.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return [el.dataset.chart, 0];
  const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < px.length; i += 4) if (px[i] > 0) inked++;
  return [el.dataset.chart, inked];
})"""


@pytest.mark.browser
def test_the_report_draws_offline_in_chromium(chromium: Any, example_report: Path) -> None:
    page, errors, refused = open_offline(chromium, example_report)
    try:
        drawn = dict(page.evaluate(DRAWN))
        assert set(drawn) == set(html.CHARTS)
        assert all(n > 2000 for n in drawn.values()), drawn
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        assert page.locator("h1").inner_text() == "演练报告"
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / "drill-report.png"))
        page.click("[data-testid=lang-toggle]")
        assert page.locator("h1").inner_text() == "Drill report"
        assert page.evaluate("document.documentElement.lang") == "en"
        page.wait_for_function(f"Object.keys(window.__drillCharts).length === {len(html.CHARTS)}")
        page.screenshot(path=str(DOCS_IMG / "drill-report-en.png"), full_page=True)
        assert errors == [] and refused == []
    finally:
        page.close()


@pytest.mark.browser
def test_hostile_names_and_empty_policies_in_chromium(chromium: Any, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    report = make_report(EVIL, nearest=policy_entry(0), plan=no_incidents())
    path.write_text(html.render(report), encoding="utf-8")
    page, errors, refused = open_offline(chromium, path, "#en")
    try:
        assert page.get_by_test_id("scenario-name").inner_text() == EVIL
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        # a tooltip naming the hostile incident type, shown as text
        chart = page.locator("[data-chart=type_within]")
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        assert box
        first = box["x"] + 48 + (box["width"] - 64) / 6  # types sorted: the hostile one first
        page.mouse.move(first - 5, box["y"] + box["height"] * 0.6)
        page.mouse.move(first, box["y"] + box["height"] * 0.6, steps=5)
        eventually(lambda: EVIL_TYPE in chart.inner_text(), "the tooltip")
        assert page.evaluate("document.querySelectorAll('img').length") == 0
        drawn = dict(page.evaluate(DRAWN))
        assert all(n > 0 for n in drawn.values()), drawn
        assert errors == [] and refused == []
    finally:
        page.close()
