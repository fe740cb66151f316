// Big screen, console: the incident queue. Open incidents by severity then age, each with
// two timers against the server's targets (reported -> dispatched, dispatched -> first unit
// on scene), filters by type and status, drill incidents in a group of their own; a sound
// and a pulse on the map for a new severe or extreme incident; stale GPS fixes flagged for
// the map. The list is rebuilt only when its set or order changes; timers tick in place.
import { apiGet } from "/static/live.js";
import { addStrings, label, lang, t } from "/static/screen_i18n.js";
import {
  SEVERITY_COLORS, bus, dirty, el, live, movedUnitIds, on, redraw, send, state, token, touchUnit,
} from "/static/screen_state.js";

const OPEN = ["reported", "verified", "dispatched", "on_scene"];
const OPEN_SET = new Set(OPEN);
const SEVERITY_RANK = { extreme: 0, severe: 1, moderate: 2, minor: 3 };
const STALE_GPS_MS = 120_000;
const PULSE_MS = 4000;

addStrings({
  "zh-CN": {
    qAll: "全部", qAllTypes: "全部类型", qAllStatus: "全部状态", qEmpty: "暂无未结事件",
    qNoMatch: "没有符合筛选的事件", qDrillGroup: "演练事件", qDrill: "演练",
    qDispatchTimer: "派遣", qTravelTimer: "到场", qTarget: "目标",
    qFilterType: "按类型筛选", qFilterStatus: "按状态筛选", qNoAddress: "无地址",
    qAge: (s) => (s < 60 ? "刚刚" : s < 3600 ? `${Math.floor(s / 60)} 分钟前` : `${Math.floor(s / 3600)} 小时 ${Math.floor((s % 3600) / 60)} 分前`),
    incidentType: { fire: "火灾", medical: "医疗急救", traffic_accident: "交通事故", flood: "洪涝",
      hazmat: "危化品", public_security: "治安", rescue: "救援", earthquake: "地震", landslide: "山体滑坡",
      building_collapse: "建筑倒塌", storm: "风暴", gas_leak: "燃气泄漏", water_rescue: "水域救援", other: "其他" },
  },
  en: {
    qAll: "All", qAllTypes: "All types", qAllStatus: "All statuses", qEmpty: "No open incidents",
    qNoMatch: "No incident matches the filters", qDrillGroup: "Drill incidents", qDrill: "DRILL",
    qDispatchTimer: "Dispatch", qTravelTimer: "Travel", qTarget: "target",
    qFilterType: "Filter by type", qFilterStatus: "Filter by status", qNoAddress: "no address",
    qAge: (s) => (s < 60 ? "just now" : s < 3600 ? `${Math.floor(s / 60)} min ago` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`),
    incidentType: { fire: "Fire", medical: "Medical", traffic_accident: "Traffic accident", flood: "Flood",
      hazmat: "Hazmat", public_security: "Public security", rescue: "Rescue", earthquake: "Earthquake",
      landslide: "Landslide", building_collapse: "Building collapse", storm: "Storm", gas_leak: "Gas leak",
      water_rescue: "Water rescue", other: "Other" },
  },
});

export const typeName = (type) => label("incidentType", type).replaceAll("_", " ");

// --- the console's test hook, shared with the drawer ------------------------------------
// Read through window.__console each time: another module may set it up too.
export const consoleHook = () => (window.__console ||= {});
Object.assign(consoleHook(), { queueRenderMs: 0, queueRenders: [], alarms: 0, selected: null }, window.__console);

// --- targets (GET /api/kpis/targets answers them; the DESIGN defaults until it has) -------
let targets = { default: { dispatch_s: 60, travel_s: 480 }, by_type: { fire: { dispatch_s: 60, travel_s: 300 } } };

const targetCache = new Map();
export function targetFor(type) {
  let got = targetCache.get(type);
  if (!got) { got = { ...targets.default, ...(targets.by_type[type] || {}) }; targetCache.set(type, got); }
  return got;
}

async function loadTargets() {
  try {
    const body = await apiGet("/api/kpis/targets", token);
    targets = { default: body.default, by_type: body.by_type || {} };
    consoleHook().targets = targets;
    targetCache.clear();
    queueDirty = true;
    redraw();
  } catch {
    // The defaults stay; the timers still run.
  }
}

// --- time formatting -------------------------------------------------------------------
export function clock(s) {
  const v = Math.max(0, Math.floor(s));
  const h = Math.floor(v / 3600);
  const m = Math.floor((v % 3600) / 60);
  const ss = String(v % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

const ms = (iso) => (iso ? Date.parse(iso) : NaN);

/** One timer's state: not started, running (counts up) or done (its final time). */
function timerState(from, to, target, now) {
  if (!Number.isFinite(from)) return { phase: "idle", s: 0, late: false };
  const end = Number.isFinite(to) ? to : now;
  const s = (end - from) / 1000;
  return { phase: Number.isFinite(to) ? "done" : "running", s, late: s > target };
}

// --- the list ----------------------------------------------------------------------------
const filters = { type: "", status: "" };
const items = new Map();  // incident id -> { li, sig, parts }
let queueDirty = true;
let typesKey = "";

/** By severity (extreme first), then age (oldest first); keys computed once, not per comparison. */
function sortQueue(features) {
  const keyed = features.map((f) => [SEVERITY_RANK[f.properties.severity] ?? 9, ms(f.properties.reported_at), f.id, f]);
  keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  return keyed.map((k) => k[3]);
}

const signature = (p) => [p.title, p.type, p.severity, p.status, p.address, p.drill, p.reported_at,
  p.dispatched_at, p.on_scene_at, p.needs_review].join("\u0001");

// One item's markup, cloned (much cheaper than building each node: 500 items < 50 ms).
const ITEM = document.createElement("template");
ITEM.innerHTML = '<div class="q-top"><span class="q-sev"></span><b class="q-title"></b><span class="q-drill"></span></div>'
  + '<div class="q-meta"><span class="q-type"></span><span class="q-status"></span><span class="q-addr"></span>'
  + '<span class="q-age"></span></div><div class="q-timers"><span class="q-timer" data-timer="dispatch"></span>'
  + '<span class="q-timer" data-timer="travel"></span></div>';

function buildItem(f) {
  const li = document.createElement("li");
  li.className = "queue-item";
  li.setAttribute("data-testid", "queue-item");
  li.dataset.incidentId = f.id;
  li.tabIndex = 0;
  const entry = { li, sig: "", parts: null };
  fillItem(entry, f);
  return entry;
}

function fillItem(entry, f) {
  const p = f.properties;
  const { li } = entry;
  li.dataset.severity = p.severity;
  li.dataset.status = p.status;
  li.dataset.type = p.type;
  if (p.drill) li.classList.add("drill"); else li.classList.remove("drill");
  const frag = ITEM.content.cloneNode(true);
  const [top, meta, timers] = frag.children;
  const [sev, title, drill] = top.children;
  sev.textContent = label("severity", p.severity);
  title.textContent = p.title;
  title.title = p.title;
  if (p.drill) drill.textContent = t("qDrill"); else drill.remove();
  const [type, status, addr, age] = meta.children;
  type.textContent = typeName(p.type);
  status.textContent = label("status", p.status);
  addr.textContent = p.address || t("qNoAddress");
  const [dispatch, travel] = timers.children;
  li.replaceChildren(frag);
  if (consoleHook().selected === f.id) li.classList.add("selected"); else li.classList.remove("selected");
  entry.parts = { age, dispatch, travel };
  entry.sig = signature(p) + lang;
  tickItem(entry, f, Date.now());
}

function showTimer(span, name, st, target) {
  // Only what changed is written: 500 items tick each second.
  const cls = `q-timer${st.late && st.phase !== "idle" ? " late" : ""}${st.phase === "done" && !st.late ? " ok" : ""}`;
  if (span.className !== cls) span.className = cls;
  if (span.dataset.phase !== st.phase) span.dataset.phase = st.phase;
  const value = st.phase === "idle" ? "–" : clock(st.s);
  const text = `${t(name === "dispatch" ? "qDispatchTimer" : "qTravelTimer")} ${value} / ${clock(target)}`;
  if (span.textContent !== text) span.textContent = text;
}

/** The timers and the age of one item, in place. */
function tickItem(entry, f, now) {
  const p = f.properties;
  const target = targetFor(p.type);
  const reported = ms(p.reported_at);
  const dispatched = ms(p.dispatched_at);
  const d = timerState(reported, dispatched, target.dispatch_s, now);
  const v = timerState(dispatched, ms(p.on_scene_at), target.travel_s, now);
  showTimer(entry.parts.dispatch, "dispatch", d, target.dispatch_s);
  showTimer(entry.parts.travel, "travel", v, target.travel_s);
  const overdue = d.phase === "running" && d.late ? "dispatch" : v.phase === "running" && v.late ? "travel" : "";
  if ((entry.li.dataset.overdue || "") !== overdue) {
    if (overdue) entry.li.dataset.overdue = overdue;
    else delete entry.li.dataset.overdue;
  }
  const age = t("qAge")(Math.max(0, (now - reported) / 1000));
  if (entry.parts.age.textContent !== age) entry.parts.age.textContent = age;
}

function matches(f) {
  const p = f.properties;
  return (!filters.type || p.type === filters.type) && (!filters.status || p.status === filters.status);
}

export function openIncidents() {
  const out = [];
  for (const f of state.incidents.values()) if (OPEN_SET.has(f.properties.status)) out.push(f);
  return out;
}

// Items built or refilled per render at most: a big first load (a resync with hundreds of
// open incidents) fills in over a few frames, the most urgent first, and no frame stalls.
const FILLS_PER_RENDER = 100;
const groupHead = el("li", "queue-group");
groupHead.dataset.group = "drill";
const emptyLine = el("li", "empty");

function renderQueue() {
  const t0 = performance.now();
  const open = openIncidents();
  renderTypeFilter(open);
  document.getElementById("queue-count").textContent = open.length.toLocaleString(lang);
  const shown = sortQueue(open.filter(matches));
  const seen = new Set();
  const real = [];
  const drill = [];
  let budget = FILLS_PER_RENDER;
  for (const f of shown) {
    seen.add(f.id);
    let entry = items.get(f.id);
    if (!entry || entry.sig !== signature(f.properties) + lang) {
      if (budget <= 0) { if (entry) (f.properties.drill ? drill : real).push(entry.li); continue; }
      budget -= 1;
      if (entry) fillItem(entry, f);
      else { entry = buildItem(f); items.set(f.id, entry); }
    }
    (f.properties.drill ? drill : real).push(entry.li);
  }
  for (const id of items.keys()) if (!seen.has(id)) items.delete(id);
  if (budget <= 0) { queueDirty = true; redraw(); }  // the rest next frame
  const want = real;
  if (drill.length) {
    groupHead.textContent = `${t("qDrillGroup")} · ${drill.length}`;
    want.push(groupHead, ...drill);
  }
  if (!shown.length) {
    emptyLine.textContent = open.length ? t("qNoMatch") : t("qEmpty");
    want.push(emptyLine);
  }
  place(document.getElementById("incident-queue"), want);
  consoleHook().queueRenderMs = performance.now() - t0;
  consoleHook().queueRenderMaxMs = Math.max(consoleHook().queueRenderMaxMs || 0, consoleHook().queueRenderMs);
  if (live.measure) consoleHook().queueRenders.push(consoleHook().queueRenderMs);  // bench/screen.py
  consoleHook().queueShown = shown.length;
}

/** Make `ol`'s children exactly `want`, moving only the nodes out of place. */
function place(ol, want) {
  const keep = new Set(want);
  for (let node = ol.firstChild; node;) {
    const next = node.nextSibling;
    if (!keep.has(node)) node.remove();
    node = next;
  }
  let node = ol.firstChild;
  for (const li of want) {
    if (node === li) { node = node.nextSibling; continue; }
    ol.insertBefore(li, node);
  }
}

// --- filters ----------------------------------------------------------------------------
function selectEl(testid, name, options, value) {
  const sel = el("select", "queue-filter");
  sel.setAttribute("data-testid", testid);
  sel.setAttribute("aria-label", t(name));
  sel.title = t(name);
  for (const [v, text] of options) {
    const o = el("option", null, text);
    o.value = v;
    sel.append(o);
  }
  sel.value = value;
  return sel;
}

function renderFilters(open = openIncidents()) {
  typesKey = "";
  const box = document.getElementById("queue-filters");
  const status = selectEl("queue-filter-status", "qFilterStatus",
    [["", t("qAllStatus")], ...OPEN.map((s) => [s, label("status", s)])], filters.status);
  status.addEventListener("change", () => { filters.status = status.value; queueDirty = true; redraw(); });
  box.replaceChildren(el("select", "queue-filter"), status);
  renderTypeFilter(open);
}

/** The type choices: every type among the open incidents, and the one chosen. */
function renderTypeFilter(open) {
  const types = [...new Set(open.map((f) => f.properties.type).concat(filters.type ? [filters.type] : []))].sort();
  const key = `${lang}|${types.join()}`;
  if (key === typesKey) return;
  typesKey = key;
  const box = document.getElementById("queue-filters");
  const type = selectEl("queue-filter-type", "qFilterType", [["", t("qAllTypes")], ...types.map((x) => [x, typeName(x)])], filters.type);
  type.addEventListener("change", () => { filters.type = type.value; queueDirty = true; redraw(); });
  box.firstElementChild.replaceWith(type);
}

// --- selection --------------------------------------------------------------------------
const ol = document.getElementById("incident-queue");
ol.addEventListener("click", (ev) => {
  const li = ev.target.closest("li.queue-item");
  if (li) send("select-incident", { id: Number(li.dataset.incidentId) });
});
ol.addEventListener("keydown", (ev) => {
  const li = ev.target.closest("li.queue-item");
  if (li && (ev.key === "Enter" || ev.key === " ")) {
    ev.preventDefault();
    send("select-incident", { id: Number(li.dataset.incidentId) });
  }
});
// The drawer says which incident it shows ({id} or {id: null}).
bus.addEventListener("drawer-changed", (ev) => {
  for (const [id, entry] of items) entry.li.classList.toggle("selected", id === ev.detail.id);
});

// --- alarm: a sound and a pulse for a new severe or extreme incident ----------------------
let audio = null;
function beep(extreme) {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
    const tones = extreme ? [[880, 0], [660, 0.22], [880, 0.44], [660, 0.66]] : [[740, 0], [740, 0.3]];
    for (const [hz, at] of tones) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "square";
      osc.frequency.value = hz;
      const start = audio.currentTime + at;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.18, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.2);
      osc.connect(gain).connect(audio.destination);
      osc.start(start);
      osc.stop(start + 0.21);
    }
  } catch {
    // No audio device (or not allowed yet): the pulse and the list still show it.
  }
}

let mapRef = null;
const pulses = [];  // { at: [lon, lat], t0, color }
let pulseFrame = 0;

function pointOf(f) {
  const g = f.geometry;
  if (!g) return null;
  if (g.type === "Point") return g.coordinates;
  let n = 0; let x = 0; let y = 0;
  const walk = (c) => { if (typeof c[0] === "number") { x += c[0]; y += c[1]; n += 1; } else c.forEach(walk); };
  walk(g.coordinates);
  return n ? [x / n, y / n] : null;
}

function animatePulses() {
  pulseFrame = 0;
  const src = mapRef && mapRef.getSource("queue-pulse");
  if (!src) return;
  const now = performance.now();
  while (pulses.length && now - pulses[0].t0 > PULSE_MS) pulses.shift();
  const features = [];
  for (const p of pulses) {
    for (const lag of [0, 0.33, 0.66]) {  // three rings a beat apart
      const k = ((now - p.t0) / 1000 * 0.9 + lag) % 1;
      features.push({ type: "Feature", geometry: { type: "Point", coordinates: p.at },
        properties: { r: 10 + 60 * k, o: 0.9 * (1 - k), color: p.color } });
    }
  }
  src.setData({ type: "FeatureCollection", features });
  if (pulses.length) pulseFrame = requestAnimationFrame(animatePulses);
}

function alarm(f) {
  const p = f.properties;
  consoleHook().alarms = (consoleHook().alarms || 0) + 1;
  consoleHook().lastAlarm = { id: f.id, severity: p.severity };
  beep(p.severity === "extreme");
  const at = pointOf(f);
  if (at) {
    pulses.push({ at, t0: performance.now(), color: SEVERITY_COLORS[p.severity] || "#ff5a36" });
    if (!pulseFrame) pulseFrame = requestAnimationFrame(animatePulses);
  }
  const entry = items.get(f.id);
  if (entry) { entry.li.classList.remove("fresh"); void entry.li.offsetWidth; entry.li.classList.add("fresh"); }
  else freshIds.add(f.id);
}
const freshIds = new Set();

// --- stale GPS fixes: a `stale` flag on each unit's properties for the map's paint --------
function markStale(u, now) {
  const at = u.properties.position_at;
  const stale = !!at && now - Date.parse(at) > STALE_GPS_MS;
  if (u.properties.stale === stale) return false;
  u.properties.stale = stale;
  touchUnit(u.id);
  return true;
}

function markAllStale() {
  const now = Date.now();
  let changed = false;
  for (const u of state.units.values()) if (markStale(u, now)) changed = true;
  return changed;
}

// --- hooks ------------------------------------------------------------------------------
on("start", loadTargets);
on("resync", () => { queueDirty = true; markAllStale(); });
on("event", (name, data) => {
  const [entity, action] = name.split(".", 2);
  if (entity === "incident" || entity === "task") queueDirty = true;
  if (name === "incident.created" && data && data.properties) {
    const p = data.properties;
    if ((p.severity === "severe" || p.severity === "extreme") && !p.drill && OPEN_SET.has(p.status)) alarm(data);
  }
  if (entity === "unit") {
    const moved = movedUnitIds(name, data);
    const ids = moved.length || action === "positions" ? moved : [data && data.id];
    const now = Date.now();
    for (const id of ids) {
      const u = state.units.get(id);
      if (u) markStale(u, now);  // position_at: set by screen_state.js
    }
  }
});
on("draw", () => {
  if (!queueDirty) return;
  queueDirty = false;
  renderQueue();
  for (const id of freshIds) {
    const entry = items.get(id);
    if (entry) entry.li.classList.add("fresh");
  }
  freshIds.clear();
});
on("lang", () => { renderFilters(); queueDirty = true; redraw(); });
on("mapLoaded", (m) => {
  mapRef = m;
  m.addSource("queue-pulse", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  m.addLayer({ id: "queue-pulse", type: "circle", source: "queue-pulse",
    paint: { "circle-radius": ["get", "r"], "circle-color": "rgba(0,0,0,0)",
      "circle-stroke-color": ["get", "color"], "circle-stroke-width": 4, "circle-stroke-opacity": ["get", "o"] } });
});

// Every second: the running timers and ages in place (no rebuild), and stale fixes.
setInterval(() => {
  const now = Date.now();
  for (const [id, entry] of items) {
    const f = state.incidents.get(id);
    if (f && entry.li.isConnected) tickItem(entry, f, now);
  }
  if (markAllStale()) { dirty.units = true; redraw(); }  // a fix aged past 120 s: grey it
}, 1000);

renderFilters([]);
