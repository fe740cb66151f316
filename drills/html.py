"""report.html: a drill's after-action report as one self-contained page.

The page needs no network: the vendored ECharts (frontend/static/vendor, its licence comment
kept), the page's script (``html_page.js``) and style (``html_page.css``) are inlined,
and a Content-Security-Policy allows only those two scripts (by hash) and no requests.
Tables (the scenario, the KPIs per policy with their 95% intervals, the percentiles by type)
are written here; the plots are drawn by the script from a JSON block. Every string from the
report (scenario, station and incident type names are user input) is escaped: HTML-escaped
in the markup, and ``<``, ``>``, ``&`` written as ``\\u003c``... inside the JSON block.
Text is zh-CN with an English switch (``report.html#en`` opens in English).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from datetime import datetime
from importlib import resources
from typing import Any

from drills.html_text import KPI_ROWS, TEXT, TYPE_NAMES
from drills.report import clean

_VENDOR = "static/vendor"
MAX_DECISIONS = 2000  # rows of a tabletop's recommended-versus-chosen shown


def _asset(package: str, name: str) -> str:
    return (resources.files(package) / name).read_text(encoding="utf-8")


def _echarts() -> tuple[str, str]:
    """ECharts' code (unchanged, with its licence comment) and its version line."""
    code = _asset("frontend", f"{_VENDOR}/echarts/echarts.min.js")
    versions = _asset("frontend", f"{_VENDOR}/VERSIONS").splitlines()
    version = next((v for v in versions if v.startswith("echarts ")), "echarts")
    return code, version


# --- formatting ----------------------------------------------------------------------------
def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def mmss(seconds: Any) -> str:
    """Seconds as m:ss (minutes may pass 59); a dash for none."""
    if not _number(seconds):
        return "–"
    sign = "-" if seconds < 0 else ""
    whole = round(abs(seconds))
    return f"{sign}{whole // 60}:{whole % 60:02d}"


def pct(share: Any) -> str:
    return f"{share * 100:.1f}%" if _number(share) else "–"


def count(value: Any) -> str:
    if not _number(value):
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


FORMATS = {"s": mmss, "%": pct, "n": count}


def dig(data: Any, *keys: Any) -> Any:
    """``data[k1][k2]...``, or None where any level is missing or not a mapping/list."""
    for key in keys:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def t(key: str) -> str:
    """A label in both languages (the page shows one, see html_page.css)."""
    zh, en = TEXT[key]
    return f'<span class="l-zh">{esc(zh)}</span><span class="l-en">{esc(en)}</span>'


def type_name(name: str) -> str:
    zh, en = TYPE_NAMES.get(name, (name, name))
    return f'<span class="l-zh">{esc(zh)}</span><span class="l-en">{esc(en)}</span>'


def _interval(ci: Any, fmt: str) -> str:
    if not (isinstance(ci, list) and len(ci) == 2 and all(_number(x) for x in ci)):
        return '<span class="ci none">–</span>'
    lo, hi = (FORMATS[fmt](x) for x in ci)
    return f'<span class="ci">{esc(lo)} – {esc(hi)}</span>'


def _cell(entry: dict[str, Any], keys: tuple[str, ...], fmt: str) -> str:
    value = esc(FORMATS[fmt](dig(entry, "kpis", *keys)))
    return f'<td><span class="v">{value}</span>{_interval(dig(entry, "ci95", *keys), fmt)}</td>'


# --- sections ------------------------------------------------------------------------------
def _policies(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each policy's entry, in the scenario's order (report.json sorts its keys)."""
    raw = report.get("policies")
    if not isinstance(raw, dict):
        return {}
    order = dig(report, "spec", "policies")
    names = [p for p in order if p in raw] if isinstance(order, list) else []
    names += sorted(str(k) for k in raw if k not in names)
    return {k: (raw[k] if isinstance(raw[k], dict) else {}) for k in names}


def _policy_label(name: str) -> str:
    key = f"policy_{name}"
    return t(key) if key in TEXT else esc(name)


def _policy_head(name: str, span: int = 1) -> str:
    cols = f' colspan="{span}"' if span > 1 else ""
    return (
        f'<th{cols} data-policy="{esc(name)}"><span class="swatch"></span>'
        f"{_policy_label(name)}</th>"
    )


def kpi_table(report: dict[str, Any]) -> str:
    policies = _policies(report)
    head = "".join(_policy_head(p) for p in policies)
    rows = []
    for key, keys, fmt in KPI_ROWS:
        cells = "".join(_cell(entry, keys, fmt) for entry in policies.values())
        rows.append(f'<tr data-kpi="{esc(".".join(keys))}"><th>{t(key)}</th>{cells}</tr>')
    return (
        f'<table class="kpis" data-testid="kpi-table"><thead><tr><th>{t("kpi")}</th>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _types(policies: dict[str, dict[str, Any]]) -> list[str]:
    found: set[str] = set()
    for entry in policies.values():
        for key in ("within_target_by_type", "response_s_by_type"):
            by = dig(entry, "kpis", key)
            if isinstance(by, dict):
                found.update(str(k) for k in by)
    return sorted(found)


def type_table(report: dict[str, Any]) -> str:
    policies = _policies(report)
    types = _types(policies)
    if not types:
        return f'<p class="empty">{t("no_types")}</p>'
    cols = (("within_target", "%"), ("p50", "s"), ("p90", "s"), ("p95", "s"))
    top = "".join(_policy_head(p, len(cols)) for p in policies)
    sub = "".join(f"<th>{t(c)}</th>" for _ in policies for c, _ in cols)
    rows = []
    for name in types:
        cells = []
        for entry in policies.values():
            for col, fmt in cols:
                keys = (
                    ("within_target_by_type", name)
                    if col == "within_target"
                    else ("response_s_by_type", name, col)
                )
                cells.append(_cell(entry, keys, fmt))
        rows.append(f'<tr data-type="{esc(name)}"><th>{type_name(name)}</th>{"".join(cells)}</tr>')
    return (
        f'<table class="kpis by-type" data-testid="type-table"><thead>'
        f'<tr><th rowspan="2">{t("type")}</th>{top}</tr><tr>{sub}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _duration(seconds: Any) -> str:
    if not _number(seconds):
        return "–"
    hours = seconds / 3600
    return f"{hours:g} h" if hours >= 1 else f"{seconds / 60:g} min"


def _when(start: Any) -> str:
    """An ISO time as "2026-07-01 08:00 +03:00" (the scenario's own offset)."""
    try:
        when = datetime.fromisoformat(str(start))
    except ValueError:
        return str(start) if start is not None else "–"
    offset = when.strftime("%z")
    zone = f" {offset[:3]}:{offset[3:]}" if offset else ""
    return when.strftime("%Y-%m-%d %H:%M") + (f":{when:%S}" if when.second else "") + zone


def _targets(report: dict[str, Any]) -> str:
    default = mmss(dig(report, "targets", "default", "response_s"))
    by = dig(report, "targets", "by_type")
    parts = [f"{t('default')} {esc(default)}"]
    if isinstance(by, dict):
        parts += [f"{type_name(str(k))} {esc(mmss(dig(v, 'response_s')))}" for k, v in by.items()]
    return " · ".join(parts)


def summary(report: dict[str, Any]) -> str:
    fleet = report.get("fleet")
    fleet = fleet if isinstance(fleet, dict) else {}
    policies = _policies(report)
    facts = [
        ("start", esc(_when(report.get("start") or report.get("started_at")))),
        ("duration", esc(_duration(report.get("duration_s")))),
        ("seed", esc(report.get("seed", "–"))),
        ("replications", esc(report.get("replications", "–"))),
        ("warmup", esc(mmss(report.get("warmup_s")))),
        ("stations", esc(count(fleet.get("stations")))),
        ("units", esc(count(fleet.get("units")))),
        ("hospitals", esc(count(fleet.get("hospitals")))),
        ("targets", _targets(report)),
        ("policies", ", ".join(_policy_label(p) for p in policies) or "–"),
    ]
    items = "".join(f"<div><dt>{t(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
    return f'<dl class="facts" data-testid="summary">{items}</dl>'


def _names(value: Any) -> str:
    if value is None:
        return "–"
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def decisions(report: dict[str, Any]) -> str:
    """A tabletop drill's recommended-versus-chosen (command/drills/tabletop_report.py)."""
    rvc = report.get("recommended_vs_chosen")
    if not isinstance(rvc, dict):
        return ""
    followed = {True: "yes", False: "no", None: "not_judged"}
    rows = "".join(
        f"<tr><td>{esc(dig(i, 'incident'))}</td><td class=text>{esc(dig(i, 'title') or '')}</td>"
        f"<td class=text>{esc(_names(dig(i, 'recommended')))}</td>"
        f"<td class=text>{esc(_names(dig(i, 'chosen')))}</td>"
        f"<td class=text>{t(followed.get(dig(i, 'followed'), 'not_judged'))}</td></tr>"
        for i in (rvc.get("items") or [])[:MAX_DECISIONS]
        if isinstance(i, dict)
    )
    share = pct(rvc.get("followed_share"))
    cols = ("incident", "name", "recommended", "chosen", "followed")
    head = "".join(f"<th>{t(k)}</th>" for k in cols)
    return (
        f'<section class="row" data-section="decisions"><h2>{t("decisions")}</h2>'
        f"<p>{t('followed_share')} <b>{esc(share)}</b> ({esc(count(rvc.get('followed')))} / "
        f"{esc(count(rvc.get('judged')))})</p>"
        f'<table class="kpis decisions"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
        "</table></section>"
    )


def _timing(report: dict[str, Any]) -> str:
    wall = dig(report, "timing", "wall_s")
    if not _number(wall):
        return ""
    return f'<p class="timing">{t("timing")} {wall:.1f} s</p>'


# --- the data the plots use ----------------------------------------------------------------
def _places(spec: Any, key: str) -> list[list[Any]]:
    items = dig(spec, key)
    if not isinstance(items, list):
        return []
    return [
        [p["lon"], p["lat"], str(p.get("name", ""))]
        for p in items
        if isinstance(p, dict) and _number(p.get("lon")) and _number(p.get("lat"))
    ]


def _closures(spec: Any) -> list[dict[str, Any]]:
    out = []
    for k, c in enumerate(dig(spec, "closures") or []):
        ring = dig(c, "polygon", "coordinates", 0)
        if isinstance(ring, list):
            out.append({"name": str(dig(c, "name") or f"#{k + 1}"), "ring": ring})
    return out


def plot_data(report: dict[str, Any]) -> dict[str, Any]:
    policies = _policies(report)
    types = _types(policies)

    def stat(entry: dict[str, Any], *keys: str) -> dict[str, Any]:
        return {"v": dig(entry, "kpis", *keys), "ci": dig(entry, "ci95", *keys)}

    spec = report.get("spec")
    return {
        "policies": list(policies),
        "replications": report.get("replications"),
        "target_s": dig(report, "targets", "default", "response_s"),
        "hist": {p: dig(e, "histogram") or {} for p, e in policies.items()},
        "by_hour": {p: dig(e, "by_hour") or [] for p, e in policies.items()},
        "late": {p: dig(e, "late") or [] for p, e in policies.items()},
        "util": {p: stat(e, "utilisation") for p, e in policies.items()},
        "types": types,
        "within_by_type": {
            p: {k: stat(e, "within_target_by_type", k) for k in types} for p, e in policies.items()
        },
        "stations": _places(spec, "stations"),
        "hospitals": _places(spec, "hospitals"),
        "closures": _closures(spec),
        "text": TEXT,
        "type_names": {k: TYPE_NAMES.get(k, (k, k)) for k in types},
    }


def json_block(data: Any) -> str:
    """JSON safe inside a <script> element: no ``<``, ``>`` or ``&`` left as such."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, allow_nan=False)
    for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(raw, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _hash(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"


# --- the page -------------------------------------------------------------------------------
CHARTS = (
    "hist",
    "hour_within",
    "hour_response",
    "hour_busy",
    "hour_coverage",
    "late",
    "util",
    "type_within",
)


def _chart(name: str) -> str:
    key = f"chart_{name}"
    return (
        f'<figure class="panel"><figcaption>{t(key)}</figcaption>'
        f'<div class="chart {name}" data-chart="{name}" data-testid="chart-{name}"></div>'
        f'<p class="note">{t(key + "_note")}</p></figure>'
    )


def body(report: dict[str, Any]) -> str:
    name = esc(report.get("scenario") or "–")
    return f"""<header>
<div class="title"><span class="badge">{t("drill")}</span><h1>{t("title")}</h1>
<p class="scenario" data-testid="scenario-name">{name}</p></div>
<button type="button" id="lang" data-testid="lang-toggle">
<span class="l-zh">English</span><span class="l-en">中文</span></button>
</header>
<section class="row" data-section="summary"><h2>{t("summary")}</h2>{summary(report)}</section>
<section class="row two" data-section="kpis">
<div class="panel"><h2>{t("kpis")}</h2>{kpi_table(report)}<p class="note">{t("kpis_note")}</p></div>
{_chart("hist")}</section>
<section class="row" data-section="by-hour"><h2>{t("by_hour")}</h2><div class="four">
{_chart("hour_within")}{_chart("hour_response")}{_chart("hour_busy")}{_chart("hour_coverage")}
</div></section>
<section class="row two" data-section="late">{_chart("late")}
<div class="stack">{_chart("util")}{_chart("type_within")}</div></section>
<section class="row" data-section="by-type"><h2>{t("by_type")}</h2>{type_table(report)}</section>
{decisions(report)}
<footer><p>{t("footer")}</p>{_timing(report)}</footer>"""


def render(report: dict[str, Any]) -> str:
    """The whole page for ``report`` (report.json as a dict)."""
    echarts, version = _echarts()
    script = _asset("drills", "html_page.js")
    style = _asset("drills", "html_page.css")
    csp = (
        f"default-src 'none'; script-src {_hash(echarts)} {_hash(script)}; "
        "style-src 'unsafe-inline'; img-src data: blob:"
    )
    title = f"{TEXT['title'][0]} – {report.get('scenario') or ''}"
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{style}</style>
</head>
<body>
{body(report)}
<script type="application/json" id="report-data">{json_block(clean(plot_data(report)))}</script>
<!-- {esc(version)} (frontend/static/vendor/echarts: LICENSE, NOTICE). Apache ECharts,
Copyright 2017-2024 The Apache Software Foundation. This product includes software
developed at The Apache Software Foundation. -->
<script>{echarts}</script>
<script>{script}</script>
</body>
</html>
"""
