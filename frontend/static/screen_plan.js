// Big screen, console: Plan all (全部规划). POST /api/dispatch/plan for every open incident
// not yet dispatched; the proposal as a list grouped by incident (units, ETAs, unmet lines,
// cost against greedy, coverage before and after, the solver) and as lines on the map from
// each unit to its incident. One confirmation applies it: one dispatch per incident (each
// all-or-nothing on the server), results shown per incident, then the rest can be planned
// again. Tests read window.__plan (the request, the answer, the results). A dispatch cut off by
// a dying server is sent again with the same key (retry.js); the plan's own POST computes only.
import { apiCall } from "/static/live.js";
import { sendWrite } from "/static/retry.js";
import { addStrings, capName, label, lang, t } from "/static/screen_i18n.js";
import { SEVERITY_COLORS, SEVERITY_TEXT, el, on, state, token } from "/static/screen_state.js";
import { centreOf, map } from "/static/screen_map.js";

addStrings({
  "zh-CN": {
    plan: {
      title: "全部规划", close: "关闭", loading: "正在为 {n} 起事件求解…", none: "没有待派遣的事件",
      failed: "规划失败", incidents: "事件", units: "力量", cost: "加权成本", greedy: "贪心",
      better: "优于贪心", worse: "与贪心相同", coverage: "覆盖率", solver: "求解器",
      unmet: "缺口", noUnits: "无可派力量", apply: "执行规划", replan: "重新规划其余事件",
      confirmTitle: "确认派遣", confirmText: "将向 {m} 起事件派遣 {n} 支力量。每起事件全部派遣或全部不派。",
      confirm: "确认派遣", cancel: "返回", applying: "正在派遣…", dispatched: "已派遣",
      conflict: "冲突", error: "失败", taken: "{u} 已被占用，本事件未派遣",
      takenNow: "已被占用", summary: "已派遣 {ok} 起，冲突 {bad} 起", eta: "ETA",
      nothingToApply: "方案中没有可派遣的力量",
    },
  },
  en: {
    plan: {
      title: "Plan all", close: "Close", loading: "Solving for {n} incidents…", none: "No incident waits for dispatch",
      failed: "Planning failed", incidents: "incidents", units: "units", cost: "Weighted cost", greedy: "greedy",
      better: "better than greedy", worse: "same as greedy", coverage: "Coverage", solver: "Solver",
      unmet: "Short of", noUnits: "No unit to send", apply: "Apply plan", replan: "Plan the rest again",
      confirmTitle: "Confirm dispatch", confirmText: "Dispatch {n} units to {m} incidents. Each incident gets all its units or none.",
      confirm: "Dispatch", cancel: "Back", applying: "Dispatching…", dispatched: "Dispatched",
      conflict: "Conflict", error: "Failed", taken: "{u} was just taken; nothing sent here",
      takenNow: "taken", summary: "{ok} dispatched, {bad} in conflict", eta: "ETA",
      nothingToApply: "The plan sends no unit",
    },
  },
});

const PLANNABLE = new Set(["reported", "verified"]);
const FREE_UNIT = new Set(["available", "returning"]);
const COLORS = ["#4dd0e1", "#ffd180", "#c5e1a5", "#f48fb1", "#b39ddb", "#80cbc4", "#ffab91", "#90caf9"];
const COVERAGE_TARGET_S = 480;  // the default travel target (DESIGN "Targets")

// phase: loading | proposal | confirm | applying | results | error
let plan = null;  // { phase, request, body, error, results: Map(incidentId -> result), retrying }
window.__plan = null;

const p = (key) => t("plan")[key];
const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k]));
const fmtEta = (s) => `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`;
const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);
const num = (x) => Math.round(x).toLocaleString(lang);
const sev = { minor: 0, moderate: 1, severe: 2, extreme: 3 };

/** Open incidents that wait for units: reported or verified, real, on the map. */
function plannable(skip = new Set()) {
  return [...state.incidents.values()]
    .filter((f) => PLANNABLE.has(f.properties.status) && !f.properties.drill && f.geometry
      && !f.properties.needs_review && !skip.has(f.id))
    .map((f) => f.id).sort((a, b) => a - b);
}

async function api(method, path, body) {
  const got = await apiCall(method, path, { token, body });
  return { ...got, body: got.body || {} };  // offline (status 0) or not JSON: the status says it
}

async function openPlan(skip) {
  const ids = plannable(skip);
  const request = { incident_ids: ids, coverage: { target_s: COVERAGE_TARGET_S }, time_limit_s: 2, seed: 0 };
  plan = { phase: ids.length ? "loading" : "error", request, body: null, error: ids.length ? null : p("none"),
    results: new Map(), taken: "" };
  publish();
  render();
  drawLines();
  if (!ids.length) return;
  const got = await api("POST", "/api/dispatch/plan", request);
  if (!plan || plan.request !== request) return;  // closed or replaced meanwhile
  if (got.ok) { plan.body = got.body; plan.phase = "proposal"; }
  else { plan.phase = "error"; plan.error = got.body.message || `HTTP ${got.status || "–"}`; }
  publish();
  render();
  drawLines();
  fit();
}

function closePlan() {
  plan = null;
  publish();
  render();
  drawLines();
}

function publish() {
  window.__plan = plan && { phase: plan.phase, request: plan.request, body: plan.body, error: plan.error,
    results: Object.fromEntries(plan.results) };
}

/** Units per incident in the plan: { incidentId: [assignment...] }. */
function byIncident(body) {
  const out = new Map(body.incidents.map((id) => [id, []]));
  for (const a of body.assignments) {
    if (!out.has(a.incident_id)) out.set(a.incident_id, []);
    out.get(a.incident_id).push(a);
  }
  return out;
}

/** Incidents in the order shown: most severe first, then oldest (as the queue). */
function ordered(body) {
  const groups = byIncident(body);
  const key = (id) => {
    const f = state.incidents.get(id);
    return f ? [-(sev[f.properties.severity] ?? 0), Date.parse(f.properties.reported_at) || 0] : [1, id];
  };
  return [...groups.keys()].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    return x[0] - y[0] || x[1] - y[1] || a - b;
  }).map((id) => [id, groups.get(id)]);
}

function colorOf(body, incidentId) {
  return COLORS[body.incidents.indexOf(incidentId) % COLORS.length];
}

// --- the card --------------------------------------------------------------------------
function render() {
  const card = document.getElementById("plan-panel");
  card.dataset.testid = "plan-panel";
  card.hidden = !plan;
  if (!plan) { card.replaceChildren(); delete card.dataset.phase; return; }
  card.dataset.phase = plan.phase;
  const head = el("div", "plan-head");
  const close = el("button", "close", "×");
  close.type = "button";
  close.title = p("close");
  close.setAttribute("aria-label", p("close"));
  close.dataset.testid = "plan-close";
  close.addEventListener("click", closePlan);
  head.append(el("h2", null, p("title")), close);
  const parts = [head];
  if (plan.phase === "loading") parts.push(el("p", "muted", fill(p("loading"), { n: plan.request.incident_ids.length })));
  else if (plan.phase === "error") parts.push(el("p", "error", plan.error === p("none") ? plan.error : `${p("failed")}: ${plan.error}`));
  else parts.push(...summary(plan.body), incidentList(plan.body), ...actions(plan.body));
  card.replaceChildren(...parts);
}

function summary(b) {
  const stats = el("div", "plan-stats");
  const better = b.greedy_cost > 0 ? b.better_than_greedy_by / b.greedy_cost : 0;
  const cost = el("div", "plan-stat cost");
  cost.dataset.testid = "plan-cost";
  cost.dataset.cost = b.cost;
  cost.dataset.greedyCost = b.greedy_cost;
  cost.append(el("span", null, p("cost")), el("b", null, num(b.cost)),
    el("small", null, `${p("greedy")} ${num(b.greedy_cost)}`),
    el("em", better > 0 ? "good" : "same", better > 0 ? `−${(better * 100).toFixed(1)}% ${p("better")}` : p("worse")));
  const cov = el("div", "plan-stat coverage");
  cov.dataset.testid = "plan-coverage";
  cov.append(el("span", null, p("coverage")),
    el("b", null, `${pct(b.coverage_before)} → ${pct(b.coverage_after)}`),
    el("small", null, `≤ ${Math.round(COVERAGE_TARGET_S / 60)} min`));
  stats.append(cost, cov);
  const units = b.assignments.length;
  const solver = el("p", "plan-solver",
    `${b.incidents.length} ${p("incidents")} · ${units}/${b.units_considered} ${p("units")} · ${p("solver")} ${b.solver} (${b.status}) · ${(b.seconds + b.matrix_seconds).toFixed(2)} s`);
  return [stats, solver];
}

function incidentList(b) {
  const list = el("ol", "plan-incidents");
  const unmet = new Map();
  for (const u of b.unmet) {
    if (!unmet.has(u.incident_id)) unmet.set(u.incident_id, []);
    unmet.get(u.incident_id).push(u);
  }
  for (const [id, assignments] of ordered(b)) {
    const f = state.incidents.get(id);
    const props = f ? f.properties : {};
    const li = el("li", "plan-incident");
    li.dataset.testid = "plan-incident";
    li.dataset.incidentId = id;
    li.style.setProperty("--pline", colorOf(b, id));
    li.style.setProperty("--sev", SEVERITY_COLORS[props.severity] || "#ffae42");
    const top = el("div", "pi-top");
    const title = el("b", "pi-title", props.title || `#${id}`);
    title.title = props.title || "";
    top.append(el("i", "swatch"), title, el("span", "pi-sev", label("severity", props.severity)));
    top.lastChild.style.color = SEVERITY_TEXT[props.severity] || "#ffbe66";
    li.append(top);
    const result = plan.results.get(id);
    if (result) li.append(resultLine(id, result));
    const ul = el("ul", "pi-units");
    for (const a of assignments) {
      const row = el("li", "plan-assignment");
      row.dataset.testid = "plan-assignment";
      row.dataset.unitId = a.unit_id;
      row.dataset.incidentId = id;
      const unit = state.units.get(a.unit_id);
      const taken = plan.phase !== "results" && unit && !FREE_UNIT.has(unit.properties.status);
      if (taken) row.classList.add("taken");
      row.append(el("b", "callsign", a.callsign), el("span", "cap", capName(a.capability)),
        el("span", "eta", `${p("eta")} ${fmtEta(a.eta_s)}`));
      if (taken) row.append(el("small", "taken-note", `${p("takenNow")} · ${label("status", unit.properties.status)}`));
      ul.append(row);
    }
    if (!assignments.length) ul.append(el("li", "empty", p("noUnits")));
    li.append(ul);
    const short = unmet.get(id);
    if (short) {
      const sep = lang === "en" ? ", " : "、";
      li.append(el("p", "pi-unmet", `${p("unmet")}: ${short.map((s) => `${capName(s.capability)} ×${s.missing}`).join(sep)}`));
    }
    list.append(li);
  }
  return list;
}

function resultLine(id, r) {
  const line = el("p", `plan-result ${r.outcome}`);
  line.dataset.testid = "plan-result";
  line.dataset.incidentId = id;
  line.dataset.outcome = r.outcome;
  if (r.outcome === "dispatched") line.textContent = `✓ ${p("dispatched")} · ${r.units.join(", ")}`;
  else if (r.outcome === "conflict") {
    if (r.unit) line.dataset.unit = r.unit;
    line.textContent = `✗ ${p("conflict")}: ${r.unit ? fill(p("taken"), { u: r.unit }) : r.message}`;
  } else line.textContent = `✗ ${p("error")}: ${r.message}`;
  return line;
}

function actions(b) {
  const box = el("div", "plan-actions");
  const out = [box];
  const toSend = b.assignments.length;
  if (plan.phase === "proposal") {
    const apply = button(p("apply"), "plan-apply", () => { plan.phase = "confirm"; publish(); render(); });
    apply.disabled = !toSend;
    box.append(apply);
    if (!toSend) box.append(el("span", "muted", p("nothingToApply")));
  } else if (plan.phase === "confirm") {
    const groups = [...byIncident(b).values()].filter((a) => a.length).length;
    const ask = el("div", "plan-confirm");
    ask.dataset.testid = "plan-confirm-box";
    ask.append(el("b", null, p("confirmTitle")), el("p", null, fill(p("confirmText"), { n: toSend, m: groups })));
    const row = el("div", "plan-actions");
    row.append(button(p("confirm"), "plan-confirm", applyPlan, "danger"),
      button(p("cancel"), "plan-cancel", () => { plan.phase = "proposal"; publish(); render(); }, "secondary"));
    ask.append(row);
    out.splice(0, 1, ask);
  } else if (plan.phase === "applying") {
    box.append(el("span", "muted", p("applying")));
    if (plan.retrying) {
      const note = el("p", "retry-note", t("retrying")(plan.retrying));
      note.dataset.testid = "write-retrying";
      note.setAttribute("role", "status");
      out.push(note);
    }
  } else if (plan.phase === "results") {
    const results = [...plan.results.values()];
    const ok = results.filter((r) => r.outcome === "dispatched").length;
    box.append(el("span", "plan-summary", fill(p("summary"), { ok, bad: results.length - ok })));
    const done = new Set([...plan.results].filter(([, r]) => r.outcome === "dispatched").map(([id]) => id));
    box.append(button(p("replan"), "plan-replan", () => openPlan(done), "secondary"));
  }
  return out;
}

function button(text, testid, onClick, cls) {
  const b = el("button", cls || null, text);
  b.type = "button";
  b.dataset.testid = testid;
  b.addEventListener("click", onClick);
  return b;
}

// --- applying ---------------------------------------------------------------------------
async function applyPlan() {
  const b = plan.body;
  const mine = plan;
  plan.phase = "applying";
  publish();
  render();
  for (const [id, assignments] of ordered(b)) {
    if (!assignments.length) continue;
    const retry = (r) => { mine.retrying = r && r.attempt; if (plan === mine) render(); };
    const sent = await sendWrite("POST", `/api/incidents/${id}/dispatch`, { token, onRetry: retry,
      body: { unit_ids: assignments.map((a) => a.unit_id), note: "plan all" } });
    const got = { ...sent, body: sent.body || {} };
    if (plan !== mine) return;  // closed meanwhile: the rest is not sent
    const units = assignments.map((a) => a.callsign);
    if (got.ok) mine.results.set(id, { outcome: "dispatched", units, tasks: (got.body || []).map((x) => x.id) });
    else if (got.status === 409) {
      const m = /^unit (.+) is not available$/.exec(got.body.message || "");
      mine.results.set(id, { outcome: "conflict", units, unit: m ? m[1] : null, message: got.body.message || "409" });
    } else mine.results.set(id, { outcome: "error", units, message: got.body.message || `HTTP ${got.status || "–"}` });
    publish();
    render();
  }
  mine.phase = "results";
  publish();
  render();
  drawLines();
}

// --- the map -----------------------------------------------------------------------------
function lineFeatures() {
  const b = plan && plan.body;
  if (!b || plan.phase === "error") return [];
  const features = [];
  for (const a of b.assignments) {
    const unit = state.units.get(a.unit_id);
    const incident = state.incidents.get(a.incident_id);
    if (!unit || !unit.geometry || !incident || !incident.geometry) continue;
    const r = plan.results.get(a.incident_id);
    const from = unit.geometry.coordinates;
    const to = centreOf(incident.geometry);
    const props = { unit_id: a.unit_id, incident_id: a.incident_id, color: colorOf(b, a.incident_id),
      outcome: r ? r.outcome : "proposed" };
    features.push({ type: "Feature", geometry: { type: "LineString", coordinates: [from, to] }, properties: props });
    features.push({ type: "Feature", geometry: { type: "Point", coordinates: from }, properties: props });
  }
  return features;
}

function drawLines() {
  const source = map.getSource("plan-lines");
  if (source) source.setData({ type: "FeatureCollection", features: lineFeatures() });
}

function fit() {
  const features = lineFeatures();
  if (!features.length) return;
  const bounds = new maplibregl.LngLatBounds();
  for (const f of features) {
    if (f.geometry.type === "Point") bounds.extend(f.geometry.coordinates);
    else f.geometry.coordinates.forEach((c) => bounds.extend(c));
  }
  const left = document.getElementById("plan-panel").offsetWidth + 80;
  map.fitBounds(bounds, { padding: { top: 60, bottom: 60, left, right: 60 }, maxZoom: 16, duration: 400 });
}

on("mapLoaded", (m) => {
  m.addSource("plan-lines", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  const below = m.getLayer("incidents-halo") ? "incidents-halo" : undefined;
  const line = ["==", ["geometry-type"], "LineString"];
  const dashed = ["==", ["get", "outcome"], "conflict"];
  m.addLayer({ id: "plan-lines-casing", type: "line", source: "plan-lines", filter: line,
    layout: { "line-cap": "round" }, paint: { "line-color": "#05090f", "line-width": 7, "line-opacity": 0.75 } }, below);
  m.addLayer({ id: "plan-lines", type: "line", source: "plan-lines", filter: ["all", line, ["!", dashed]],
    layout: { "line-cap": "round" }, paint: { "line-color": ["get", "color"], "line-width": 3.5 } }, below);
  m.addLayer({ id: "plan-lines-conflict", type: "line", source: "plan-lines", filter: ["all", line, dashed],
    paint: { "line-color": "#ff5c5c", "line-width": 3, "line-dasharray": [1.5, 1.5] } }, below);
  m.addLayer({ id: "plan-units", type: "circle", source: "plan-lines", filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-radius": 11, "circle-opacity": 0, "circle-stroke-width": 3, "circle-stroke-color": ["get", "color"] } });
  drawLines();
});

// A unit taken meanwhile is marked in the proposal (re-rendered only when that changes).
on("event", (name) => {
  if (!plan || !plan.body || !(name.startsWith("unit.") || name.startsWith("task."))) return;
  const taken = plan.body.assignments.filter((a) => {
    const u = state.units.get(a.unit_id);
    return u && !FREE_UNIT.has(u.properties.status);
  }).map((a) => a.unit_id).join(",");
  if (taken !== plan.taken && (plan.phase === "proposal" || plan.phase === "confirm")) {
    plan.taken = taken;
    render();
  }
  drawLines();
});

on("lang", render);
document.getElementById("plan-all").addEventListener("click", () => openPlan());
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && plan && plan.phase !== "applying") closePlan(); });
