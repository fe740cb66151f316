// Big screen, console: the incident drawer. The selected incident's details and status
// actions, its recommendation (ranked units, ETA bars, what each fills and why, units left
// out, unmet plan lines) with the recommended routes on the map, one action to dispatch the
// checked units (button, Ctrl+Enter, "D"), a 409 said plainly, and the task timeline per
// unit, live from the `situation` topic. Escape closes it.
import { addStrings, capName, label, lang, locale, t, whyText } from "/static/screen_i18n.js";
import { SEVERITY_COLORS, SEVERITY_TEXT, bus, el, on, send, state, token } from "/static/screen_state.js";
import { clock, consoleHook, targetFor, typeName } from "/static/screen_queue.js";

const ROUTE_COLORS = ["#4dd0e1", "#ffd166", "#f48fb1", "#aed581", "#b39ddb", "#ff9e80", "#80cbc4", "#e6ee9c"];
const STEPS = ["assigned", "accepted", "en_route", "on_scene", "done"];
const ACTIONS = { reported: ["verified", "cancelled"], verified: ["cancelled"], dispatched: ["cancelled"],
  on_scene: ["resolved", "cancelled"], resolved: ["closed"] };
const ENDED = new Set(["closed", "cancelled"]);

addStrings({
  "zh-CN": {
    dClose: "关闭（Esc）", dLoading: "正在加载…", dFailed: "无法加载", dAddress: "地址", dPeople: "受影响人数",
    dReported: "报告时间", dCalls: "来电", dCaller: "来电号码", dDescription: "描述", dSource: "来源",
    dAction: { verified: "核实", resolved: "处置完毕", closed: "关闭事件", cancelled: "取消事件" },
    dRecommendation: "推荐力量", dRecLoading: "正在计算推荐…", dNoRec: "无可用力量",
    dStandby: "备选", dFills: "承担", dExcluded: "未纳入", dUnmet: "缺口", dPlan: "预案",
    dNoPlan: "无预案：推荐最快到达的力量", dDispatch: (n) => `派遣所选力量（${n}）`,
    dDispatching: "正在派遣…", dShortcut: "Ctrl+Enter / D", dNoneChecked: "未选择任何力量",
    dTaken: (c) => `${c} 刚被其他调度员派出`,
    dReinforce: (n) => `已派遣 ${n} 支力量，推荐仅补足预案缺口；增援请手动勾选`, dTakenSome: "所选力量已被其他调度员派出",
    dDrillNote: "演练事件由演练引擎调度，不调派真实力量", dNotOpen: "事件已结束，不能派遣",
    dTimeline: "任务进度", dNoTasks: "尚未派遣", dStep: { assigned: "已分配", accepted: "已接受",
      en_route: "途中", on_scene: "到场", done: "完成", cancelled: "已取消" },
    dTimers: "时限", dDispatchTimer: "接警→派遣", dTravelTimer: "派遣→到场",
    dReason: { busy: "执行任务中", out_of_service: "停用", lacks_capability: "能力不符",
      position_stale: "位置过旧", no_position: "无位置", unreachable: "道路不可达", inside_zone: "位于预警区内" },
    dKm: (m) => (m >= 1000 ? `${(m / 1000).toFixed(1)} 公里` : `${Math.round(m)} 米`),
  },
  en: {
    dClose: "Close (Esc)", dLoading: "Loading…", dFailed: "Could not load", dAddress: "Address",
    dPeople: "People affected", dReported: "Reported", dCalls: "Calls", dCaller: "Caller phone",
    dDescription: "Description", dSource: "Source",
    dAction: { verified: "Verify", resolved: "Resolve", closed: "Close incident", cancelled: "Cancel incident" },
    dRecommendation: "Recommended units", dRecLoading: "Working out the recommendation…",
    dNoRec: "No unit available", dStandby: "standby", dFills: "fills", dExcluded: "Left out",
    dUnmet: "Short of", dPlan: "Plan", dNoPlan: "No plan: the fastest unit is recommended",
    dDispatch: (n) => `Dispatch checked (${n})`, dDispatching: "Dispatching…", dShortcut: "Ctrl+Enter / D",
    dNoneChecked: "No unit checked", dTaken: (c) => `${c} was just taken`,
    dReinforce: (n) => `${n} unit${n === 1 ? "" : "s"} already sent: only what the plan still lacks is recommended; check reinforcements by hand`,
    dTakenSome: "A checked unit was just taken by another dispatcher",
    dDrillNote: "Drill incidents are run by the drill engine; no real unit is paged",
    dNotOpen: "The incident has ended; nothing can be dispatched",
    dTimeline: "Tasks", dNoTasks: "Nothing dispatched yet", dStep: { assigned: "Assigned", accepted: "Accepted",
      en_route: "En route", on_scene: "On scene", done: "Done", cancelled: "Cancelled" },
    dTimers: "Targets", dDispatchTimer: "To dispatch", dTravelTimer: "To scene",
    dReason: { busy: "on a task", out_of_service: "out of service", lacks_capability: "lacks capability",
      position_stale: "position too old", no_position: "no position", unreachable: "unreachable by road",
      inside_zone: "inside the warning zone" },
    dKm: (m) => (m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`),
  },
});

// One object for the drawer's state; render() draws it.
let cur = null;  // { id, feature, error, rec, recError, recLoading, checked: Map, tasks: Map, busy, dispatchError, routes: Map, fitted }
let mapRef = null;
let seq = 0;  // ignores answers for an incident no longer shown

async function api(path, options = {}) {
  let res;
  try {
    res = await fetch(path, { ...options, headers: { Authorization: `Bearer ${token}`,
      ...(options.body ? { "Content-Type": "application/json" } : {}) } });
  } catch {
    return { ok: false, status: 0, body: { message: label("conn", "offline") } };
  }
  let body = {};
  try { body = await res.json(); } catch { /* not JSON */ }
  return { ok: res.ok, status: res.status, body };
}

// --- open, load, close -------------------------------------------------------------------
async function open(id) {
  const mine = ++seq;
  const fromState = state.incidents.get(id) || null;
  cur = { id, feature: fromState, error: null, rec: null, recError: null, recLoading: true, checked: new Map(),
    tasks: new Map(), busy: false, dispatchError: null, routes: new Map(), fitted: false };
  consoleHook().selected = id;
  send("drawer-changed", { id });
  render();
  drawRoutes();
  const [detail, tasks] = await Promise.all([
    api(`/api/incidents/${id}`), api(`/api/tasks?incident_id=${id}&limit=200`)]);
  if (mine !== seq) return;
  if (detail.ok) cur.feature = detail.body;
  else if (!cur.feature) cur.error = detail.body.message || `HTTP ${detail.status}`;
  if (tasks.ok) for (const task of tasks.body.items) if (!cur.tasks.has(task.id)) cur.tasks.set(task.id, task);
  render();
  await loadRecommendation(mine);
}

async function loadRecommendation(mine = seq) {
  if (!cur) return;
  cur.recLoading = true;
  renderRecommendation();
  const got = await api(`/api/incidents/${cur.id}/recommendations?limit=8`);
  if (mine !== seq || !cur) return;
  cur.recLoading = false;
  if (got.ok) {
    cur.rec = got.body;
    cur.recError = null;
    // The server counts the units already sent against the plan: what it still recommends
    // is what is missing, checked; standby units are reinforcements, checked by hand.
    const checked = new Map();
    for (const r of cur.rec.recommendations) {
      checked.set(r.unit_id, cur.checked.has(r.unit_id) ? cur.checked.get(r.unit_id) : r.recommended);
    }
    cur.checked = checked;
    let i = 0;
    for (const r of cur.rec.recommendations) {
      if (!r.route) continue;
      const old = cur.routes.get(r.unit_id);
      cur.routes.set(r.unit_id, { route: r.route, callsign: r.callsign, dispatched: old ? old.dispatched : false,
        color: old ? old.color : ROUTE_COLORS[i % ROUTE_COLORS.length] });
      i += 1;
    }
    // Routes of units neither recommended now nor dispatched from here are dropped.
    const listed = new Set(cur.rec.recommendations.map((r) => r.unit_id));
    for (const [uid, r] of cur.routes) if (!r.dispatched && !listed.has(uid)) cur.routes.delete(uid);
  } else {
    cur.recError = got.body.message || `HTTP ${got.status}`;
  }
  render();
  drawRoutes();
  fitOnce();
}

function close() {
  if (!cur) return;
  cur = null;
  seq += 1;
  consoleHook().selected = null;
  send("drawer-changed", { id: null });
  render();
  drawRoutes();
}

// --- actions -------------------------------------------------------------------------------
async function setStatus(status) {
  if (!cur || cur.busy) return;
  const id = cur.id;
  cur.busy = true;
  cur.dispatchError = null;
  render();
  const got = await api(`/api/incidents/${id}/status`, { method: "POST", body: JSON.stringify({ status }) });
  if (!cur || cur.id !== id) return;
  cur.busy = false;
  if (got.ok) {
    cur.feature = { ...got.body, properties: { ...(cur.feature ? cur.feature.properties : {}), ...got.body.properties } };
    if (ENDED.has(status)) { close(); return; }
  } else {
    cur.dispatchError = got.body.message || `HTTP ${got.status}`;
  }
  render();
}

function activeTasks() {
  let n = 0;
  for (const task of cur.tasks.values()) if (!["done", "cancelled"].includes(task.status)) n += 1;
  return n;
}

function checkedIds() {
  if (!cur || !cur.rec) return [];
  return cur.rec.recommendations.filter((r) => cur.checked.get(r.unit_id)).map((r) => r.unit_id);
}

async function dispatch() {
  if (!cur || cur.busy || !canDispatch()) return;
  const ids = checkedIds();
  if (!ids.length) { cur.dispatchError = t("dNoneChecked"); renderActions(); return; }
  const id = cur.id;
  const mine = seq;
  cur.busy = true;
  cur.dispatchError = null;
  renderActions();
  const got = await api(`/api/incidents/${id}/dispatch`, { method: "POST", body: JSON.stringify({ unit_ids: ids }) });
  if (mine !== seq || !cur) return;
  cur.busy = false;
  if (got.ok) {
    for (const task of got.body) {
      cur.tasks.set(task.id, task);
      const r = cur.routes.get(task.unit_id);
      if (r) r.dispatched = true;
    }
    for (const uid of ids) cur.checked.delete(uid);
  } else if (got.status === 409) {
    const m = /^units? (.+) (?:is|are) not available$/.exec(got.body.message || "");
    cur.dispatchError = m ? m[1].split(", ").map((c) => t("dTaken")(c)).join("；") : t("dTakenSome");
  } else {
    cur.dispatchError = got.body.message || `HTTP ${got.status}`;
  }
  render();
  await loadRecommendation(mine);
}

function canDispatch() {
  const p = cur && cur.feature && cur.feature.properties;
  return !!p && !p.drill && !ENDED.has(p.status) && p.status !== "resolved";
}

// --- rendering ---------------------------------------------------------------------------
const box = document.getElementById("incident-drawer");
const section = (cls, title) => {
  const s = el("section", `d-section ${cls}`);
  if (title) s.append(el("h3", null, title));
  return s;
};

function render() {
  box.hidden = !cur;
  if (!cur) { box.replaceChildren(); delete box.dataset.incidentId; return; }
  box.dataset.incidentId = cur.id;
  const head = el("div", "d-head");
  const closeBtn = el("button", "close", "×");
  closeBtn.type = "button";
  closeBtn.title = t("dClose");
  closeBtn.setAttribute("aria-label", t("dClose"));
  closeBtn.setAttribute("data-testid", "drawer-close");
  closeBtn.addEventListener("click", close);
  const f = cur.feature;
  head.append(el("h2", "d-title", f ? f.properties.title : `#${cur.id}`), closeBtn);
  const parts = [head];
  if (!f) parts.push(el("p", cur.error ? "error" : "muted", cur.error ? `${t("dFailed")}: ${cur.error}` : t("dLoading")));
  else parts.push(...details(f));
  parts.push(el("section", "d-section d-timeline-slot"), el("section", "d-section d-rec-slot"), el("div", "d-actions-slot"));
  box.replaceChildren(...parts);
  box.style.setProperty("--sev", f ? SEVERITY_COLORS[f.properties.severity] || "#ffae42" : "#3a4d70");
  renderActions();
  renderRecommendation();
  renderTimeline();
}

function details(f) {
  const p = f.properties;
  const tags = el("div", "d-tags");
  const sev = el("span", "d-sev", label("severity", p.severity));
  sev.style.setProperty("--sev-text", SEVERITY_TEXT[p.severity] || "#ffbe66");
  tags.append(el("span", "tag", typeName(p.type)), sev, el("span", "tag d-status", label("status", p.status)));
  tags.lastChild.dataset.status = p.status;
  if (p.drill) tags.append(el("span", "q-drill", t("qDrill")));
  const dl = el("dl", "d-facts");
  const fact = (k, v, cls) => { if (v === null || v === undefined || v === "") return; const dd = el("dd", cls, v); dl.append(el("dt", null, t(k)), dd); };
  fact("dAddress", p.address);
  fact("dReported", p.reported_at ? new Date(p.reported_at).toLocaleString(locale(), { hour12: false }) : null);
  fact("dPeople", p.people_affected !== null && p.people_affected !== undefined ? p.people_affected.toLocaleString(lang) : null);
  fact("dCalls", p.calls ? String(p.calls) : null);
  fact("dCaller", p.caller_phone, "phone");
  const out = [tags, dl];
  if (p.description) out.push(el("p", "d-desc", p.description));
  out.push(timers(p));
  const actions = el("div", "d-status-actions");
  for (const s of ACTIONS[p.status] || []) {
    const b = el("button", `secondary act-${s}`, label("dAction", s));
    b.type = "button";
    b.setAttribute("data-testid", "incident-action");
    b.dataset.status = s;
    b.addEventListener("click", () => setStatus(s));
    actions.append(b);
  }
  if (actions.childElementCount) out.push(actions);
  return out;
}

/** The two timers as final figures (the queue ticks them live). */
function timers(p) {
  const target = targetFor(p.type);
  const line = el("p", "d-timers");
  const part = (name, from, to, tgt) => {
    const a = Date.parse(from);
    const b = to ? Date.parse(to) : NaN;
    const s = el("span", "q-timer");
    s.dataset.timer = name;
    if (!Number.isFinite(a)) s.textContent = `${t(name === "dispatch" ? "dDispatchTimer" : "dTravelTimer")} – / ${clock(tgt)}`;
    else {
      const v = ((Number.isFinite(b) ? b : Date.now()) - a) / 1000;
      s.dataset.phase = Number.isFinite(b) ? "done" : "running";
      s.classList.toggle("late", v > tgt);
      s.classList.toggle("ok", Number.isFinite(b) && v <= tgt);
      s.textContent = `${t(name === "dispatch" ? "dDispatchTimer" : "dTravelTimer")} ${clock(v)} / ${clock(tgt)}`;
    }
    return s;
  };
  line.append(part("dispatch", p.reported_at, p.dispatched_at, target.dispatch_s),
    part("travel", p.dispatched_at, p.on_scene_at, target.travel_s));
  return line;
}

function renderActions() {
  const slot = box.querySelector(".d-actions-slot");
  if (!cur || !slot) return;
  const wrap = el("div", "d-dispatch");
  const n = checkedIds().length;
  const btn = el("button", "dispatch-btn", cur.busy ? t("dDispatching") : t("dDispatch")(n));
  btn.type = "button";
  btn.setAttribute("data-testid", "dispatch-recommended");
  btn.dataset.count = n;
  btn.disabled = cur.busy || !canDispatch() || !cur.rec || n === 0;
  btn.addEventListener("click", dispatch);
  const kbd = el("kbd", null, t("dShortcut"));
  wrap.append(btn, kbd);
  const err = el("p", "dispatch-error", cur.dispatchError || "");
  err.setAttribute("data-testid", "dispatch-error");
  err.setAttribute("role", "alert");
  err.hidden = !cur.dispatchError;
  const parts = [wrap, err];
  const p = cur.feature && cur.feature.properties;
  if (p && p.drill) parts.push(el("p", "muted", t("dDrillNote")));
  else if (p && !canDispatch()) parts.push(el("p", "muted", t("dNotOpen")));
  slot.replaceChildren(...parts);
}

function renderRecommendation() {
  const slot = box.querySelector(".d-rec-slot");
  if (!cur || !slot) return;
  const parts = [el("h3", null, t("dRecommendation"))];
  const rec = cur.rec;
  if (!rec) {
    parts.push(el("p", cur.recError ? "error" : "muted", cur.recError ? `${t("dFailed")}: ${cur.recError}` : t("dRecLoading")));
    slot.replaceChildren(...parts);
    return;
  }
  if (cur.recLoading) slot.classList.add("refreshing"); else slot.classList.remove("refreshing");
  if (!rec.response_plan) parts.push(el("p", "muted", t("dNoPlan")));
  const sent = activeTasks();
  if (sent) parts.push(el("p", "d-reinforce", t("dReinforce")(sent)));
  const list = el("ol", "d-recs");
  const maxEta = Math.max(60, ...rec.recommendations.map((r) => r.eta_s));
  for (const r of rec.recommendations) list.append(recItem(r, maxEta));
  if (!rec.recommendations.length) list.append(el("li", "empty", t("dNoRec")));
  parts.push(list);
  if (rec.unmet.length) {
    const unmet = el("p", "d-unmet");
    unmet.setAttribute("data-testid", "recommendation-unmet");
    unmet.append(el("b", null, `${t("dUnmet")}: `), rec.unmet.map((u) => `${capName(u.capability)} ×${u.missing}`).join("，"));
    parts.push(unmet);
  }
  if (rec.excluded.length || Object.keys(rec.excluded_counts || {}).length) {
    const ex = el("div", "d-excluded");
    ex.append(el("b", null, `${t("dExcluded")}: `));
    const shown = rec.excluded.slice(0, 12).map((x) => {
      const s = el("span", "d-ex", `${x.callsign} · ${label("dReason", x.reason)}`);
      s.title = x.why;
      s.dataset.unitId = x.unit_id;
      s.dataset.reason = x.reason;
      return s;
    });
    ex.append(...shown);
    const counted = Object.entries(rec.excluded_counts || {}).filter(([reason]) => reason === "lacks_capability");
    for (const [reason, count] of counted) ex.append(el("span", "d-ex muted", `${label("dReason", reason)} ×${count}`));
    parts.push(ex);
  }
  slot.replaceChildren(...parts);
}

function recItem(r, maxEta) {
  const li = el("li", `recommendation${r.recommended ? "" : " standby"}`);
  li.setAttribute("data-testid", "recommendation");
  li.dataset.unitId = r.unit_id;
  li.dataset.recommended = r.recommended;
  const box_ = el("input");
  box_.type = "checkbox";
  box_.checked = !!cur.checked.get(r.unit_id);
  box_.setAttribute("data-testid", "recommendation-toggle");
  box_.setAttribute("aria-label", r.callsign);
  box_.addEventListener("change", () => {
    cur.checked.set(r.unit_id, box_.checked);
    renderActions();
    drawRoutes();
  });
  const route = cur.routes.get(r.unit_id);
  const swatch = el("i", "swatch");
  if (route) swatch.style.background = route.color;
  const name = el("b", "callsign", r.callsign);
  const fills = el("span", r.recommended ? "fills" : "fills standby",
    r.recommended && r.fills ? capName(r.fills) : t("dStandby"));
  const bar = el("span", "eta-bar");
  const fill = el("i");
  fill.style.width = `${Math.max(3, (100 * r.eta_s) / maxEta).toFixed(1)}%`;
  if (route) fill.style.background = route.color;
  bar.append(fill);
  const eta = el("span", "eta", clock(r.eta_s));
  const dist = el("span", "dist", t("dKm")(r.distance_m));
  const why = el("small", "why", recWhy(r.why));
  why.title = r.why;
  li.title = recWhy(r.why);
  const label_ = el("label", "pick");
  label_.append(box_, swatch, name);
  li.append(label_, fills, bar, eta, dist);
  if (r.recommended) li.append(why);  // a standby's why only repeats its ETA: on hover
  return li;
}

/** The server's why in words; the standby form in Chinese too (whyText knows the rest). */
function recWhy(why) {
  const m = /^standby: (\d+) min (\d+) s, has (\S+)$/.exec(why || "");
  if (!m || lang === "en") return whyText(why);
  return `备选：${m[1]} 分 ${m[2]} 秒可到，具备${capName(m[3])}`;
}

function timeOf(iso) {
  return iso ? new Date(iso).toLocaleTimeString(locale(), { hour12: false }) : "";
}

function renderTimeline() {
  const slot = box.querySelector(".d-timeline-slot");
  if (!cur || !slot) return;
  const ol = el("ol", "task-timeline");
  ol.setAttribute("data-testid", "task-timeline");
  const tasks = [...cur.tasks.values()].sort((a, b) => a.id - b.id);
  for (const task of tasks) {
    const li = el("li", "task-row");
    li.setAttribute("data-testid", "task-row");
    li.dataset.unitId = task.unit_id;
    li.dataset.taskId = task.id;
    li.dataset.status = task.status;
    const unit = state.units.get(task.unit_id);
    const callsign = (unit && unit.properties.callsign) || (cur.routes.get(task.unit_id) || {}).callsign || `#${task.unit_id}`;
    const head = el("div", "t-head");
    const sw = el("i", "swatch");
    const r = cur.routes.get(task.unit_id);
    if (r) sw.style.background = r.color;
    head.append(sw, el("b", null, callsign), el("span", "t-status", label("dStep", task.status)));
    const steps = el("ol", "t-steps");
    const reached = STEPS.indexOf(task.status);
    STEPS.forEach((s, i) => {
      const step = el("li", null);
      step.dataset.step = s;
      const at = task[`${s}_at`];
      step.className = at || i <= reached ? (i === reached ? "now" : "done") : "todo";
      step.append(el("span", null, label("dStep", s)), el("time", null, timeOf(at)));
      steps.append(step);
    });
    if (task.status === "cancelled") {
      li.classList.add("cancelled");
      const step = el("li", "now");
      step.dataset.step = "cancelled";
      step.append(el("span", null, label("dStep", "cancelled")), el("time", null, timeOf(task.cancelled_at)));
      steps.append(step);
    }
    li.append(head, steps);
    ol.append(li);
  }
  if (!tasks.length) ol.append(el("li", "empty", t("dNoTasks")));
  slot.replaceChildren(el("h3", null, t("dTimeline")), ol);
}

// The drawer's two timers tick with the queue's.
setInterval(() => {
  const line = cur && cur.feature && box.querySelector(".d-timers");
  if (line) line.replaceWith(timers(cur.feature.properties));
}, 1000);

// --- the map: routes and the incident highlighted ------------------------------------------
const emptyFc = () => ({ type: "FeatureCollection", features: [] });

function incidentPoint() {
  const g = cur && cur.feature && cur.feature.geometry;
  if (!g) return null;
  if (g.type === "Point") return g.coordinates;
  const b = new maplibregl.LngLatBounds();
  const walk = (c) => { if (typeof c[0] === "number") b.extend(c); else c.forEach(walk); };
  walk(g.coordinates);
  return b.getCenter().toArray();
}

function drawRoutes() {
  if (!mapRef || !mapRef.getSource("drawer-routes")) return;
  const features = [];
  if (cur) {
    for (const [uid, r] of cur.routes) {
      const on_ = r.dispatched || !!cur.checked.get(uid);
      features.push({ type: "Feature", id: uid, geometry: r.route,
        properties: { unit_id: uid, callsign: r.callsign, color: r.color, on: on_, dispatched: r.dispatched } });
    }
  }
  mapRef.getSource("drawer-routes").setData({ type: "FeatureCollection", features });
  const at = incidentPoint();
  mapRef.getSource("drawer-focus").setData(at
    ? { type: "FeatureCollection", features: [{ type: "Feature", id: cur.id, geometry: { type: "Point", coordinates: at }, properties: {} }] }
    : emptyFc());
}

function fitOnce() {
  if (!cur || cur.fitted || !mapRef) return;
  const at = incidentPoint();
  if (!at) return;
  cur.fitted = true;
  const b = new maplibregl.LngLatBounds(at, at);
  for (const r of cur.routes.values()) for (const c of r.route.coordinates) b.extend(c);
  const width = box.getBoundingClientRect().width || 0;
  const mapWidth = mapRef.getContainer().clientWidth;
  const right = Math.min(width + 40, mapWidth * 0.6);
  mapRef.fitBounds(b, { padding: { top: 60, bottom: 60, left: 60, right }, maxZoom: 16.5, duration: 600 });
}

// --- hooks ---------------------------------------------------------------------------------
bus.addEventListener("select-incident", (ev) => { if (ev.detail && ev.detail.id) open(Number(ev.detail.id)); });

on("event", (name, data) => {
  if (!cur || !data) return;
  const [entity] = name.split(".", 1);
  if (entity === "task" && data.incident_id === cur.id) {
    const { incident, ...task } = data;
    cur.tasks.set(task.id, task);
    if (incident) mergeIncident(incident);
    render();
  } else if (entity === "incident" && data.id === cur.id) {
    mergeIncident(data);
    render();
  }
});

function mergeIncident(f) {
  const old = cur.feature ? cur.feature.properties : {};
  const props = { ...old, ...f.properties };
  // Events may leave out what only the detail carries (the caller's phone, the calls).
  for (const k of ["caller_phone", "calls"]) if (f.properties[k] === undefined || (f.properties[k] === null && old[k])) props[k] = old[k];
  cur.feature = { ...f, properties: props };
}

on("lang", () => render());
on("mapLoaded", (m) => {
  mapRef = m;
  m.addSource("drawer-routes", { type: "geojson", data: emptyFc() });
  m.addSource("drawer-focus", { type: "geojson", data: emptyFc() });
  m.addLayer({ id: "drawer-focus", type: "circle", source: "drawer-focus",
    paint: { "circle-radius": 20, "circle-color": "rgba(255,255,255,0.08)", "circle-stroke-color": "#ffffff",
      "circle-stroke-width": 3 } });
  m.addLayer({ id: "drawer-routes-casing", type: "line", source: "drawer-routes",
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": "#05090f", "line-width": 8, "line-opacity": ["case", ["get", "on"], 0.75, 0.3] } });
  m.addLayer({ id: "drawer-routes", type: "line", source: "drawer-routes",
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": ["get", "color"], "line-width": ["case", ["get", "dispatched"], 5, 4],
      "line-opacity": ["case", ["get", "on"], 1, 0.35] } });
  drawRoutes();
});

const TEXT_INPUT = new Set(["text", "search", "number", "tel", "email", "password", "url", "date", "datetime-local", "time"]);
function typing(target) {
  if (!target || !target.tagName) return false;
  if (target.isContentEditable) return true;
  if (target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
  return target.tagName === "INPUT" && TEXT_INPUT.has(target.type);
}

document.addEventListener("keydown", (ev) => {
  if (!cur) return;
  if (ev.key === "Escape") { close(); return; }
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); dispatch(); return; }
  if ((ev.key === "d" || ev.key === "D") && !ev.ctrlKey && !ev.metaKey && !ev.altKey && !typing(ev.target)) {
    ev.preventDefault();
    dispatch();
  }
});
