// Big screen, console: the KPI panel. GET /api/kpis (today, real incidents; ?drill=1 on the
// page's URL, or a drill scope ?drill=<id>, for the drill side) drawn in the right column:
// 处置及时率 overall and by type, reported→dispatched and dispatched→on-scene p50/p90/p95,
// open incidents by status, unit availability, shelter occupancy, low stock, and an
// ECharts histogram of response times
// against the default response target. Refreshed on start, every 30 s and 2 s after
// incident/task events. Hidden for roles that may not read KPIs. Tests read window.__kpis
// (the last answer) and window.__kpiChart.
import { apiGet } from "/static/live.js";
import { addStrings, label, locale, t } from "/static/screen_i18n.js";
import { el, on, scope, token } from "/static/screen_state.js";

addStrings({
  "zh-CN": {
    kpi: {
      title: "处置指标", today: "今日", drill: "演练", asOf: "更新", withinTarget: "处置及时率",
      within: "达标", pendingN: "待定 {n}", noneYet: "暂无到场记录", dispatchTime: "接警→派遣",
      travelTime: "派遣→到场", dispatchLong: "接警到首车派出", travelLong: "派出到首车到场", open: "未结", total: "{n} 起", units: "力量可用",
      shelters: "避难所入住", lowStock: "低库存", histogram: "响应时间分布（分钟）",
      target: "目标", failed: "指标加载失败", n: "例",
    },
    incidentType: { fire: "火灾", medical: "医疗", flood: "洪涝", traffic: "交通", traffic_accident: "交通事故", public_security: "治安事件", hazmat: "危化品",
      rescue: "救援", earthquake: "地震", police: "治安", storm: "风暴", landslide: "滑坡",
      collapse: "坍塌", gas_leak: "燃气泄漏", water_rescue: "水域救援", other: "其他" },
  },
  en: {
    kpi: {
      title: "Performance", today: "", drill: "Drill", asOf: "as of", withinTarget: "Within target",
      within: "within", pendingN: "{n} pending", noneYet: "no arrivals yet", dispatchTime: "Dispatch",
      travelTime: "Travel", dispatchLong: "reported → first unit dispatched",
      travelLong: "dispatched → first unit on scene", open: "Open", total: "{n} today", units: "Units free",
      shelters: "Shelters full", lowStock: "Low stock", histogram: "Response time (min)",
      target: "target", failed: "KPIs unavailable", n: "n",
    },
    incidentType: { fire: "Fire", medical: "Medical", flood: "Flood", traffic: "Traffic", traffic_accident: "Traffic accident", public_security: "Public order", hazmat: "Hazmat",
      rescue: "Rescue", earthquake: "Earthquake", police: "Police", storm: "Storm", landslide: "Landslide",
      collapse: "Collapse", gas_leak: "Gas leak", water_rescue: "Water rescue", other: "Other" },
  },
});

const REFRESH_MS = 30_000;
const DEBOUNCE_MS = 2_000;
const OPEN_STATUSES = ["reported", "verified", "dispatched", "on_scene"];
const NO_KPIS = new Set(["responder"]);  // the server says 403 to them
const drill = scope.drill !== null || ["1", "true"].includes(new URLSearchParams(location.search).get("drill"));

const k = (key) => t("kpi")[key];
const fill = (s, n) => s.replace("{n}", String(n));
const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);
/** Seconds as m:ss (tabular); – for none. */
export const fmtDuration = (s) => {
  if (s === null || s === undefined) return "–";
  const r = Math.round(s);
  return `${Math.floor(r / 60)}:${String(r % 60).padStart(2, "0")}`;
};

let body = null;
let failed = null;
let timer = null;
let debounce = null;
let started = false;
window.__kpis = null;

// --- the panel's frame (built once, so the chart keeps its element) ----------------------
const panel = document.getElementById("kpi-panel");
const head = el("h2", "kpi-head");
const headTitle = el("span");
const headMeta = el("small", "kpi-when");
head.append(headTitle, headMeta);
const top = el("div", "kpi-top");
const big = el("div", "kpi-big");
const times = el("table", "kpi-times");
top.append(big, times);
const types = el("ul", "kpi-types");
const hist = el("div", "kpi-hist");
hist.id = "kpi-hist";
const statusLine = el("div", "kpi-status");
const resources = el("div", "kpi-res");
panel.replaceChildren(head, top, types, hist, statusLine, resources);
const chart = echarts.init(hist, null, { renderer: "canvas" });
window.__kpiChart = chart;
window.addEventListener("resize", () => chart.resize());

function sinceToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

async function load() {
  if (!token) return;
  const params = new URLSearchParams({ since: sinceToday(), drill: String(drill) });
  if (scope.drill) params.set("drill_id", String(scope.drill));  // one tabletop drill's figures
  try {
    body = await apiGet(`/api/kpis?${params}`, token);
    failed = null;
  } catch (err) {
    failed = err.message;
  }
  window.__kpis = body;
  render();
}

// 2 s after the first of a burst of events (not after the last: in a busy hour events never
// stop for 2 s, and the panel would never refresh between its 30 s ticks).
function schedule() {
  if (debounce) return;
  debounce = setTimeout(() => { debounce = null; load(); }, DEBOUNCE_MS);
}

// --- drawing -----------------------------------------------------------------------------
function cell(tag, text, testid, value) {
  const c = el(tag, null, text);
  if (testid) c.dataset.testid = testid;
  if (value !== undefined) c.dataset.value = value === null ? "" : String(value);
  return c;
}

function render() {
  headTitle.textContent = k("title");
  if (!body) {
    headMeta.textContent = failed ? k("failed") : "";
    return;
  }
  const when = new Date(body.as_of).toLocaleTimeString(locale(), { hour12: false, hour: "2-digit", minute: "2-digit" });
  const pending = body.within_target.pending;
  const scope = drill ? k("drill") : k("today");
  headMeta.replaceChildren(scope ? `${scope} ` : "",
    cell("b", fill(k("total"), body.incidents.total), "kpi-total", body.incidents.total),
    pending ? ` · ${fill(k("pendingN"), pending)}` : "", ` · ${when}${failed ? ` · ${k("failed")}` : ""}`);
  headMeta.title = `${k("asOf")} ${new Date(body.as_of).toLocaleString(locale(), { hour12: false })}`;
  renderTop();
  renderTimes();
  renderStatus();
  renderResources();
  drawChart();
}

function renderTop() {
  const w = body.within_target;
  const value = cell("b", pct(w.share), "kpi-within-target", w.share);
  if (w.share !== null) value.classList.add(w.share >= 0.9 ? "good" : w.share >= 0.7 ? "fair" : "poor");
  const count = cell("small", w.within + w.missed ? `${w.within}/${w.within + w.missed} ${k("within")}` : k("noneYet"),
    "kpi-within-count", `${w.within}/${w.missed}/${w.pending}`);
  count.title = fill(k("pendingN"), w.pending);
  big.replaceChildren(el("span", "kpi-label", k("withinTarget")), value, count);
  const chips = [];
  for (const row of body.incidents.by_type) {
    const wt = row.within_target;
    const li = el("li");
    li.dataset.testid = "kpi-type";
    li.dataset.type = row.type;
    li.dataset.value = wt.share === null ? "" : String(wt.share);
    const name = el("span", "name", label("incidentType", row.type).replaceAll("_", " "));
    name.title = row.type;
    li.append(name, el("b", null, pct(wt.share)),
      el("small", null, `${wt.within}/${wt.within + wt.missed}`));
    chips.push(li);
  }
  types.replaceChildren(...chips);
}

function renderTimes() {
  const rows = [["dispatch", k("dispatchTime"), body.times.reported_to_dispatched, k("dispatchLong")],
    ["travel", k("travelTime"), body.times.dispatched_to_on_scene, k("travelLong")]];
  const headRow = el("tr");
  headRow.append(el("th"), ...["P50", "P90", "P95"].map((x) => el("th", null, x)), el("th", "n", k("n")));
  const out = [headRow];
  for (const [key, name, stats, long] of rows) {
    const tr = el("tr");
    tr.append(el("th", "row", name));
    tr.firstChild.title = long;
    for (const q of ["p50", "p90", "p95"]) {
      const v = stats[`${q}_s`];
      tr.append(cell("td", fmtDuration(v), `kpi-${key}-${q}`, v));
    }
    tr.append(cell("td", String(stats.n), `kpi-${key}-n`, stats.n));
    tr.lastChild.className = "n";
    out.push(tr);
  }
  times.replaceChildren(...out);
}

function renderStatus() {
  const by = body.incidents.by_status;
  const parts = [];
  for (const s of OPEN_STATUSES) {
    const chip = el("span", `chip st-${s}`);
    chip.dataset.testid = "kpi-status";
    chip.dataset.status = s;
    chip.dataset.value = String(by[s] || 0);
    chip.append(el("b", null, String(by[s] || 0)), el("span", null, label("status", s)));
    parts.push(chip);
  }
  statusLine.replaceChildren(...parts);
}

function renderResources() {
  const u = body.units;
  const s = body.shelters;
  const low = body.low_stock.length;
  const item = (name, text, testid, value, cls) => {
    const x = el("span", `kpi-r${cls ? ` ${cls}` : ""}`);
    x.append(el("span", "kpi-label", name), cell("b", text, testid, value));
    return x;
  };
  const unitsText = `${u.available}/${u.total}`;
  const shelterText = s.capacity ? pct(s.occupancy_share) : "–";
  const lowItem = item(k("lowStock"), String(low), "kpi-low-stock", low, low ? "warn" : "");
  if (low) lowItem.title = body.low_stock.slice(0, 8).map((x) => `${x.warehouse} · ${x.item} ${x.quantity}/${x.low_water}`).join("\n");
  resources.replaceChildren(
    item(k("units"), unitsText, "kpi-units-available", u.available),
    item(k("shelters"), shelterText, "kpi-shelter-occupancy", s.occupancy_share),
    lowItem);
}

function drawChart() {
  const h = body.response_histogram;
  if (!h) return;
  const binMin = h.bin_s / 60;
  const last = h.counts.length - 1;
  const data = h.counts.map((n, i) => ({
    value: [(i + 0.5) * binMin, n],
    itemStyle: { color: i < last && (i + 1) * h.bin_s <= h.target_s ? "#4cd38a" : "#ff6b6b" },
  }));
  const maxMin = (last + 1) * binMin;
  const targetMin = h.target_s / 60;
  chart.setOption({
    animation: false,
    textStyle: { fontFamily: "Noto Sans CJK SC, sans-serif" },
    grid: { left: 4, right: 16, top: 30, bottom: 2, containLabel: true },
    title: { text: k("histogram"), left: 0, top: 0, padding: 0,
      textStyle: { color: "#9fb0c8", fontSize: 13, fontWeight: 400 } },
    xAxis: { type: "value", min: 0, max: maxMin, interval: 5,
      axisLabel: { color: "#9fb0c8", fontSize: 13,
        formatter: (v) => (v >= h.max_s / 60 ? `${v}+` : String(v)) },
      splitLine: { show: false }, axisLine: { lineStyle: { color: "#3a4d70" } } },
    yAxis: { type: "value", minInterval: 1, splitNumber: 3,
      axisLabel: { color: "#9fb0c8", fontSize: 12 }, splitLine: { lineStyle: { color: "#24324f" } } },
    series: [{
      type: "bar", barWidth: "86%", data,
      label: { show: true, position: "top", color: "#e6edf7", fontSize: 12,
        formatter: (x) => (x.value[1] ? String(x.value[1]) : "") },
      markLine: {
        symbol: "none", silent: true,
        lineStyle: { color: "#ffd23f", type: "dashed", width: 2 },
        label: { color: "#ffd23f", fontSize: 13, position: "end",
          formatter: `${k("target")} ${fmtDuration(h.target_s)}` },
        data: [{ xAxis: targetMin }],
      },
    }],
  }, true);
}

// --- hooks -------------------------------------------------------------------------------
async function start() {
  if (started) return;
  started = true;
  try {
    const me = await apiGet("/api/me", token);
    if (NO_KPIS.has(me.role)) { panel.hidden = true; panel.dataset.state = "forbidden"; return; }
  } catch {
    // the page deals with a bad token; the panel tries anyway
  }
  panel.hidden = false;
  chart.resize();
  await load();
  timer = setInterval(load, REFRESH_MS);
}

on("start", start);
on("event", (name) => {
  if (!started || panel.hidden) return;
  if (name.startsWith("incident.") || name.startsWith("task.")) schedule();
});
on("lang", () => { if (body || failed) render(); else headTitle.textContent = k("title"); });
headTitle.textContent = k("title");
window.addEventListener("beforeunload", () => clearInterval(timer));
