// Big screen, what every part shares: the constants, the session's token, the situation
// (the `situation` topic's snapshot with its events applied in seq order), the alerts, the
// test hook window.__live, and the one-draw-per-frame scheduler.

export const UNIT_STATUSES = ["available", "assigned", "en_route", "on_scene", "returning", "out_of_service"];
export const UNIT_COLORS = { available: "#4cd38a", assigned: "#ffd23f", en_route: "#ff9f1c",
  on_scene: "#ff4d6d", returning: "#5bc0eb", out_of_service: "#7d8597" };
export const SEVERITY_COLORS = { minor: "#f9e076", moderate: "#ffae42", severe: "#ff5a36", extreme: "#d00000" };
// The same levels as text on the dark panels (the deep reds are unreadable there).
export const SEVERITY_TEXT = { minor: "#f9e076", moderate: "#ffbe66", severe: "#ff8a6b", extreme: "#ff6b6b" };
const OPEN_INCIDENT = new Set(["reported", "verified", "dispatched", "on_scene"]);
const ACTIVE_TASK = new Set(["assigned", "accepted", "en_route", "on_scene"]);
export const ENDED_INCIDENT = new Set(["closed", "cancelled"]);
export const ALERTS_MAX = 20;

// A live binding, like `lang`: only setToken changes it (sessionStorage is the caller's).
export let token = sessionStorage.getItem("token");
export function setToken(next) { token = next; }

// --- scope -----------------------------------------------------------------------------
// /screen follows the live `situation`; /screen?drill=<id> follows the drill's own topic
// `drill:<id>` instead (screen_drill.js: the banner, and the replay of a finished run).
// `replay`: the replay owns `state` (the topic's snapshot and events are not applied);
// `counts(base)`: the figures the right column shows, when not those of `state`.
const drillParam = new URLSearchParams(location.search).get("drill") || "";
const drillId = /^[1-9][0-9]{0,15}$/.test(drillParam) ? Number(drillParam) : null;
export const scope = { drill: drillId, topic: drillId ? `drill:${drillId}` : "situation", info: null,
  replay: false, counts: null };

// --- state ---------------------------------------------------------------------------
export const state = {
  incidents: new Map(), units: new Map(), tasks: new Map(), shelters: new Map(),
  stock: new Map(), zones: new Map(),
};
export const alerts = new Map();  // alert id -> what intake did with it (see alertRecord)
export const live = {
  topics: {}, state: "idle", counts: {}, events: 0, mapLoaded: false, fitted: false,
  feed: [], alertsLoaded: false, proposal: null,
  measure: false, latencyMs: [], drawMs: [],  // bench/screen.py
};
window.__live = live;

export function counts() {
  const units = Object.fromEntries(UNIT_STATUSES.map((s) => [s, 0]));
  for (const u of state.units.values()) units[u.properties.status] = (units[u.properties.status] || 0) + 1;
  let tasksActive = 0;
  let unacked = 0;
  for (const task of state.tasks.values()) {
    if (!ACTIVE_TASK.has(task.status)) continue;
    tasksActive += 1;
    if (!task.acknowledged_at) unacked += 1;
  }
  return {
    incidents_open: [...state.incidents.values()].filter((f) => OPEN_INCIDENT.has(f.properties.status)).length,
    units, units_total: state.units.size, tasks_active: tasksActive, tasks_unacked: unacked,
    shelters: state.shelters.size, zones: shownZones().length,
  };
}

/** Not ended: active and its end (if any) still ahead. Such a zone stays in state. */
function zoneLive(f) {
  const p = f.properties;
  return p.status === "active" && (!p.ends_at || Date.parse(p.ends_at) > Date.now());
}

/** On the map now: live and already started. */
function zoneActive(f) {
  const p = f.properties;
  return zoneLive(f) && (!p.starts_at || Date.parse(p.starts_at) <= Date.now());
}

export const shownZones = () => [...state.zones.values()].filter(zoneActive);

/** Drop zones whose end has passed (the server ends them too, a little later). */
export function pruneZones() {
  let changed = false;
  for (const [id, f] of state.zones) if (!zoneLive(f)) { state.zones.delete(id); changed = true; }
  return changed;
}

export function applySnapshot(snapshot) {
  const fill = (map, items, key = (x) => x.id) => { map.clear(); for (const x of items || []) map.set(key(x), x); };
  fill(state.incidents, snapshot.incidents);
  fill(state.units, snapshot.units);
  fill(state.tasks, snapshot.tasks);
  fill(state.shelters, snapshot.shelters);
  fill(state.stock, snapshot.stock);
  fill(state.zones, (snapshot.warning_zones || []).filter(zoneLive));
  dirty.side = true;
  for (const source of MAP_SOURCES) dirty[source] = true;
  unitsMoved.all = true;
}

// The units changed since the last draw: the map updates just those features (a full
// setData of 2,000 units for the few that moved costs most of a frame). `all`: set them all.
export const unitsMoved = { ids: new Set(), all: true };
export function touchUnit(id) {
  unitsMoved.ids.add(id);
  dirty.units = true;
}

// Which of the map's sources an entity's event changes (only those are set again).
const MAP_SOURCES = ["incidents", "units", "shelters", "zones"];
const SOURCE_OF = { incident: ["incidents"], unit: ["units"], task: ["incidents"], shelter: ["shelters"],
  warning_zone: ["zones"] };

const SIDE_ENTITIES = new Set(["alert", "incident", "task", "warning_zone", "shelter"]);

/** One fix onto its unit's point: {unit_id, lon, lat, status?, recorded_at?}. A fix older
 * than the one shown never moves the unit back (the server keeps the newest too). */
function moveUnit(p) {
  const unit = p && state.units.get(p.unit_id);
  if (!unit || !Number.isFinite(p.lon) || !Number.isFinite(p.lat)) return;
  const shown = Date.parse(unit.properties.position_at || "");
  if (p.recorded_at && Number.isFinite(shown) && Date.parse(p.recorded_at) < shown) return;
  unit.geometry = { type: "Point", coordinates: [p.lon, p.lat] };
  if (p.status) unit.properties.status = p.status;
  if (p.recorded_at) unit.properties.position_at = p.recorded_at;
  touchUnit(unit.id);
}

/** The unit ids an event moved: a `unit.position_reported` or a batched `unit.positions`. */
export function movedUnitIds(name, data) {
  if (!data) return [];
  if (name === "unit.positions") return ((data.positions) || []).map((p) => p.unit_id);
  if (name === "unit.position_reported") return [data.unit_id];
  return [];
}

export function applyEvent(name, data) {
  const [entity, action] = name.split(".", 2);
  if (SIDE_ENTITIES.has(entity)) dirty.side = true;
  for (const source of SOURCE_OF[entity] || []) dirty[source] = true;
  switch (entity) {
    case "incident":
      if (ENDED_INCIDENT.has(data.properties.status)) state.incidents.delete(data.id);
      else state.incidents.set(data.id, data);
      break;
    case "unit":
      if (action === "position_reported") {
        moveUnit(data);
      } else if (action === "positions") {
        // The batched form (AVL): at most one entry per unit per second, every ~250 ms.
        for (const p of (data && data.positions) || []) moveUnit(p);
      } else if (data && data.type === "Feature") {
        if (!state.units.has(data.id)) unitsMoved.all = true;  // a new one: set them all
        state.units.set(data.id, data);
        touchUnit(data.id);
      }
      break;
    case "task": {
      const { incident, ...task } = data;
      if (incident) state.incidents.set(incident.id, incident);
      if (ACTIVE_TASK.has(task.status)) state.tasks.set(task.id, task);
      else state.tasks.delete(task.id);
      break;
    }
    case "shelter":
      if (data && data.type === "Feature") state.shelters.set(data.id, data);
      break;
    case "stock":
      if (data && data.id !== undefined) state.stock.set(data.id, data);
      break;
    case "warning_zone":
      if (data && data.type === "Feature") {
        if (zoneLive(data) && action !== "deleted" && action !== "ended") state.zones.set(data.id, data);
        else state.zones.delete(data.id);
      }
      break;
    case "alert":
      if (action === "received" && data && !data.drill) addAlert(data, true);
      break;
    default:
      break;
  }
  return entity;
}

/** One alert as listed: the REST summary (its `result` is the intake answer) or the
 * payload of `alert.received` (the answer itself). */
export function alertRecord(x) {
  const merged = { ...(x.result || {}), ...x };
  return { ...merged, id: merged.alert_id ?? merged.id, warnings: merged.warnings || [] };
}

export function addAlert(x, fresh) {
  const a = alertRecord(x);
  const old = alerts.get(a.id);
  if (old) Object.assign(a, { severity: a.severity || old.severity, arrivedAt: old.arrivedAt, detailAsked: old.detailAsked });
  if (fresh) a.arrivedAt = Date.now();
  alerts.set(a.id, a);
  if (alerts.size > ALERTS_MAX * 3) {
    for (const id of [...alerts.keys()].sort((p, q) => p - q).slice(0, alerts.size - ALERTS_MAX)) alerts.delete(id);
  }
  dirty.side = true;
}

// --- drawing -------------------------------------------------------------------------
// At most one draw per animation frame, however many events come in it; screen.js says
// what a draw is. When frames are slow to come (the map painting thousands of points in
// software, a busy machine), a timer draws anyway after DRAW_WAIT_MS: the lists and the
// map's sources stay current and MapLibre paints them with its next frame.
export const DRAW_WAIT_MS = 40;
// side: the alert and review lists need drawing again; incidents, units, shelters, zones:
// that map source must be set again; feed: the event feed.
export const dirty = { side: true, incidents: true, units: true, shelters: true, zones: true, feed: true };
let draw = () => {};
let frame = 0;
let timer = 0;

export function onDraw(fn) { draw = fn; }

function drawNow() {
  cancelAnimationFrame(frame);
  clearTimeout(timer);
  frame = 0;
  timer = 0;
  draw();
}

export function redraw() {
  // The naive peer of bench/screen.py: a full draw for every event, no coalescing.
  if (live.naive) { draw(); return; }
  if (frame) return;
  frame = requestAnimationFrame(drawNow);
  timer = setTimeout(drawNow, DRAW_WAIT_MS);
}

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

// --- console hooks -------------------------------------------------------------------
// The console's modules (call-taking, queue, drawer, plan, KPIs) plug in here instead of
// into screen.js: each subscribes to what it needs. `hooks.event(name, data, msg)` runs
// after a live event is applied to `state`; `hooks.resync(snapshot)` after a snapshot; `hooks.draw()`
// in the frame's draw; `hooks.lang()` after a language switch; `hooks.start()` once logged
// in; `hooks.mapLoaded(map)` once the map's style has loaded (add sources and layers there).
const HOOKS = ["event", "resync", "draw", "lang", "start", "mapLoaded"];
const subscribers = Object.fromEntries(HOOKS.map((h) => [h, []]));
export function on(hook, fn) {
  if (!subscribers[hook]) throw new Error(`unknown hook ${hook}`);
  subscribers[hook].push(fn);
}
export function emit(hook, ...args) {
  for (const fn of subscribers[hook]) {
    try { fn(...args); } catch (err) { console.error(`hook ${hook}`, err); }
  }
}
// Between modules: "select-incident" {id}, "incident-created" {feature}, "place-picked"
// {lon, lat}, as CustomEvents with `detail`.
export const bus = new EventTarget();
export const send = (name, detail) => bus.dispatchEvent(new CustomEvent(name, { detail }));
