// Big screen, console: the incident drawer. The selected incident's details and status
// actions, its recommendation with the recommended routes on the map (drawn by
// screen_recommendation.js), one action to dispatch the checked units (button, Ctrl+Enter,
// "D"), a 409 said plainly, and the task timeline per unit, live from the `situation` topic,
// each unit with a toggle for its track (where it drove: screen_tracks.js). Escape closes it.
// A dispatch cut off by a dying server is sent again with the same key (retry.js).
import { apiCall } from "/static/live.js";
import { sendWrite } from "/static/retry.js";
import { addStrings, label, lang, locale, t } from "/static/screen_i18n.js";
import { SEVERITY_COLORS, SEVERITY_TEXT, bus, el, on, scope, send, state, token } from "/static/screen_state.js";
import { clock, consoleHook, targetFor, typeName } from "/static/screen_queue.js";
import { addRouteLayers, applyRecommendation, checkedIds, drawRoutes, fitOnce, renderRecommendation }
  from "/static/screen_recommendation.js";
import { clearTracks, onTrackChange, trackControl, trackNote } from "/static/screen_tracks.js";

const STEPS = ["assigned", "accepted", "en_route", "on_scene", "done"];
const ACTIONS = { reported: ["verified", "cancelled"], verified: ["cancelled"], dispatched: ["cancelled"],
  on_scene: ["resolved", "cancelled"], resolved: ["closed"] };
const ENDED = new Set(["closed", "cancelled"]);

addStrings({
  "zh-CN": {
    dClose: "关闭（Esc）", dLoading: "正在加载…", dFailed: "无法加载", dAddress: "地址", dPeople: "受影响人数",
    dReported: "报告时间", dCalls: "来电", dCaller: "来电号码", dDescription: "描述", dSource: "来源",
    dAction: { verified: "核实", resolved: "处置完毕", closed: "关闭事件", cancelled: "取消事件" },
    dDispatch: (n) => `派遣所选力量（${n}）`,
    dDispatching: "正在派遣…", dShortcut: "Ctrl+Enter / D", dNoneChecked: "未选择任何力量",
    dTaken: (c) => `${c} 刚被其他调度员派出`,
    dTakenSome: "所选力量已被其他调度员派出",
    dDrillNote: "演练事件由演练引擎调度，不调派真实力量", dNotOpen: "事件已结束，不能派遣",
    dTimeline: "任务进度", dNoTasks: "尚未派遣", dStep: { assigned: "已分配", accepted: "已接受",
      en_route: "途中", on_scene: "到场", done: "完成", cancelled: "已取消" },
    dTimers: "时限", dDispatchTimer: "接警→派遣", dTravelTimer: "派遣→到场",
  },
  en: {
    dClose: "Close (Esc)", dLoading: "Loading…", dFailed: "Could not load", dAddress: "Address",
    dPeople: "People affected", dReported: "Reported", dCalls: "Calls", dCaller: "Caller phone",
    dDescription: "Description", dSource: "Source",
    dAction: { verified: "Verify", resolved: "Resolve", closed: "Close incident", cancelled: "Cancel incident" },
    dDispatch: (n) => `Dispatch checked (${n})`, dDispatching: "Dispatching…", dShortcut: "Ctrl+Enter / D",
    dNoneChecked: "No unit checked", dTaken: (c) => `${c} was just taken`,
    dTakenSome: "A checked unit was just taken by another dispatcher",
    dDrillNote: "Drill incidents are run by the drill engine; no real unit is paged",
    dNotOpen: "The incident has ended; nothing can be dispatched",
    dTimeline: "Tasks", dNoTasks: "Nothing dispatched yet", dStep: { assigned: "Assigned", accepted: "Accepted",
      en_route: "En route", on_scene: "On scene", done: "Done", cancelled: "Cancelled" },
    dTimers: "Targets", dDispatchTimer: "To dispatch", dTravelTimer: "To scene",
  },
});

// One object for the drawer's state; render() draws it.
let cur = null;  // { id, feature, error, rec, recError, recLoading, checked: Map, tasks: Map, busy, retrying, dispatchError, routes: Map, fitted }
let seq = 0;  // ignores answers for an incident no longer shown

async function api(path, { method = "GET", body, retry } = {}) {
  const got = retry ? await sendWrite(method, path, { token, body, onRetry: retry }) : await apiCall(method, path, { token, body });
  if (!got.status) return { ...got, body: { message: label("conn", "offline") } };
  return { ...got, body: got.body || {} };
}

// --- open, load, close -------------------------------------------------------------------
async function open(id) {
  const mine = ++seq;
  const fromState = state.incidents.get(id) || null;
  cur = { id, feature: fromState, error: null, rec: null, recError: null, recLoading: true, checked: new Map(),
    tasks: new Map(), busy: false, retrying: null, dispatchError: null, routes: new Map(), fitted: false };
  clearTracks();
  consoleHook().selected = id;
  send("drawer-changed", { id });
  render();
  drawRoutes(cur);
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
  renderRecSlot();
  const got = await api(`/api/incidents/${cur.id}/recommendations?limit=8`);
  if (mine !== seq || !cur) return;
  cur.recLoading = false;
  if (got.ok) {
    applyRecommendation(cur, got.body);
  } else {
    cur.recError = got.body.message || `HTTP ${got.status}`;
  }
  render();
  drawRoutes(cur);
  fitOnce(cur, box);
}

function close() {
  if (!cur) return;
  cur = null;
  seq += 1;
  clearTracks();
  consoleHook().selected = null;
  send("drawer-changed", { id: null });
  render();
  drawRoutes(cur);
}

// --- actions -------------------------------------------------------------------------------
async function setStatus(status) {
  if (!cur || cur.busy) return;
  const id = cur.id;
  cur.busy = true;
  cur.dispatchError = null;
  render();
  // A step cut off by a dying server goes again with its key: the first answer comes back,
  // not a 409 because the incident has moved on since (retry.js).
  const retry = (r) => { if (cur && cur.id === id) { cur.retrying = r && r.attempt; renderActions(); } };
  const got = await api(`/api/incidents/${id}/status`, { method: "POST", body: { status }, retry });
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

async function dispatch() {
  if (!cur || cur.busy || !canDispatch()) return;
  const ids = checkedIds(cur);
  if (!ids.length) { cur.dispatchError = t("dNoneChecked"); renderActions(); return; }
  const id = cur.id;
  const mine = seq;
  cur.busy = true;
  cur.dispatchError = null;
  renderActions();
  // Retried while this incident is shown or not: the dispatcher asked for it.
  const retry = (r) => { if (mine === seq && cur) { cur.retrying = r && r.attempt; renderActions(); } };
  const got = await api(`/api/incidents/${id}/dispatch`, { method: "POST", body: { unit_ids: ids }, retry });
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

// Drill incidents are dispatched only in their drill's scope (/screen?drill=ID: a tabletop,
// whose tasks reach only its stand-in units).
function canDispatch() {
  const p = cur && cur.feature && cur.feature.properties;
  return !!p && (!p.drill || scope.drill !== null) && !ENDED.has(p.status) && p.status !== "resolved";
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
  renderRecSlot();
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
  const n = checkedIds(cur).length;
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
  if (cur.retrying) {
    const note = el("p", "retry-note", t("retrying")(cur.retrying));
    note.setAttribute("data-testid", "write-retrying");
    note.setAttribute("role", "status");
    parts.splice(1, 0, note);
  }
  const p = cur.feature && cur.feature.properties;
  if (p && p.drill && scope.drill === null) parts.push(el("p", "muted", t("dDrillNote")));
  else if (p && !canDispatch()) parts.push(el("p", "muted", t("dNotOpen")));
  slot.replaceChildren(...parts);
}

function renderRecSlot() {
  const slot = box.querySelector(".d-rec-slot");
  if (!cur || !slot) return;
  renderRecommendation(slot, cur, activeTasks(), (unitId, checked) => {
    cur.checked.set(unitId, checked);
    renderActions();
    drawRoutes(cur);
  });
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
  // A unit's track covers all its tasks for this incident: one toggle, on its latest row.
  const byUnit = new Map();
  for (const task of tasks) byUnit.set(task.unit_id, [...(byUnit.get(task.unit_id) || []), task]);
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
    const unitTasks = byUnit.get(task.unit_id);
    const latest = unitTasks[unitTasks.length - 1] === task;
    if (latest) head.append(trackControl(task.unit_id, callsign, unitTasks, cur.feature && cur.feature.geometry));
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
    const note = latest ? trackNote(task.unit_id) : null;
    if (note) li.append(note);
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
onTrackChange(() => renderTimeline());
on("mapLoaded", (m) => {
  addRouteLayers(m);
  drawRoutes(cur);
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
