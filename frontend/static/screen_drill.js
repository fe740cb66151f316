// Big screen, the drill scope: /screen?drill=<id> (screen_state.js's `scope`). The 演练
// banner throughout, with the drill's name, mode, status and simulated clock, and the live
// connection on the drill's topic `drill:<id>` in place of `situation` (screen.js).
// - A tabletop drill: its topic's snapshot and events have the situation's shape (its
//   incidents, tasks and stand-in units, plus a `drill` object), so the queue, the drawer,
//   the recommendation and dispatch work on it unchanged.
// - A simulation run: once finished, replayed here, client-side, from the stored timeline of
//   one policy (GET /api/drills/{id}/replay?policy=NAME; screen_replay.js is the model,
//   screen_replay_view.js the drawing): play, pause, a speed from x1 to x3600 (simulated
//   seconds per real second, frame by frame with requestAnimationFrame), seek, and the
//   policy. It still follows `drill:<id>`, for the banner's name and status only: the topic
//   carries a tabletop's events, and a run's timeline is never sent over it.
// Tests read window.__replay.
import { apiCall } from "/static/live.js";
import { addStrings, t } from "/static/screen_i18n.js";
import { el, live, on, redraw, scope, state, token, touchUnit, unitsMoved } from "/static/screen_state.js";
import { map } from "/static/screen_map.js";
import { clock } from "/static/screen_queue.js";
import { Timeline, upperBound } from "/static/screen_replay.js";
import {
  addReplayLayers, drawClosures, drawIncidents, drawLegs, drawStations, renderLog, renderStats, simTime,
} from "/static/screen_replay_view.js";

const SPEEDS = [1, 10, 60, 300, 900, 3600];
const DEFAULT_SPEED = 60;
const MAX_STEP_S = 0.25;  // real seconds one frame may advance (a tab that slept does not leap)

addStrings({
  "zh-CN": {
    drillScreen: "演练态势",
    drill: { mode: { run: "仿真回放", tabletop: "桌面推演" },
      status: { queued: "排队中", running: "进行中", finished: "已结束", failed: "失败", stopped: "已停止" },
      error: { notFound: "演练不存在", forbidden: "无权查看演练", failed: "演练加载失败" } },
  },
  en: {
    drillScreen: "Drill",
    drill: { mode: { run: "Replay", tabletop: "Tabletop" },
      status: { queued: "queued", running: "running", finished: "finished", failed: "failed", stopped: "stopped" },
      error: { notFound: "no such drill", forbidden: "not allowed to watch drills", failed: "drill not loaded" } },
  },
});

// The replay's state: the model of the policy shown, the player, what was last drawn.
const R = {
  tl: null, policy: null, policies: [], playing: false, speed: DEFAULT_SPEED, last: 0, raf: 0,
  loads: 0, loading: false, error: null, dragging: false, seekMs: 0, fitted: false,
  shown: [], open: 0, shownKey: null, incidentsKey: null, logKey: null, statsKey: null, legs: 0, ui: null,
};

// --- the drill and its banner ------------------------------------------------------------
let infoAt = 0;     // performance.now() when scope.info last came (a tabletop's clock runs on from it)
let loadError = null;
const banner = document.getElementById("drill-banner");
if (scope.drill) {
  document.body.dataset.drill = String(scope.drill);
  document.querySelector("h1 [data-i18n=screen]").dataset.i18n = "drillScreen";  // not "live situation"
}

/** GET /api/drills/{id}: the drill's name, mode and status (awaited before connecting). */
export async function loadDrill() {
  if (!scope.drill) return;
  const got = await apiCall("GET", `/api/drills/${scope.drill}`, { token });
  if (!got.ok || !got.body) {
    loadError = got.status === 404 ? "notFound" : got.status === 403 ? "forbidden" : "failed";
    renderBanner();
    return;
  }
  setInfo(got.body);
}

function setInfo(info) {
  if (!info || (info.id !== undefined && Number(info.id) !== scope.drill)) return;
  scope.info = { ...(scope.info || {}), ...info };
  infoAt = performance.now();
  loadError = null;
  const mode = scope.info.mode || "";
  document.body.dataset.drillMode = mode;
  if (mode === "run") {
    // The replay owns the map: the topic's snapshot (a run has no rows) is not applied.
    scope.replay = true;
    scope.counts = replayCounts;
    if (scope.info.status === "finished" && !R.tl && !R.loads) startReplay();
  }
  renderBanner();
  renderBar();
}

/** The tabletop's simulated seconds now: its clock runs on at its speed while it runs. */
function tabletopSeconds() {
  const info = scope.info || {};
  if (!Number.isFinite(info.clock_s)) return null;
  const running = info.status === "running";
  const s = info.clock_s + (running ? ((performance.now() - infoAt) / 1000) * (info.speed || 1) : 0);
  return info.duration_s > 0 ? Math.min(s, info.duration_s) : s;
}

function renderBanner() {
  banner.hidden = !scope.drill;
  if (!scope.drill) return;
  const d = t("drill");
  const info = scope.info || {};
  banner.dataset.mode = info.mode || "";
  banner.dataset.status = info.status || "";
  banner.querySelector(".db-name").textContent = info.name || `#${scope.drill}`;
  banner.querySelector(".db-mode").textContent = info.mode ? d.mode[info.mode] || info.mode : "";
  banner.querySelector(".db-status").textContent = loadError ? d.error[loadError]
    : info.status ? d.status[info.status] || info.status : "";
  bannerClock();
}

function bannerClock() {
  const node = banner.querySelector(".db-clock");
  const s = R.tl ? R.tl.t : tabletopSeconds();
  node.textContent = s === null ? "" : simTime(R.tl ? R.tl.start : (scope.info || {}).start, s);
  if (s === null) delete node.dataset.t; else node.dataset.t = String(Math.floor(s));
}

renderBanner();
if (scope.drill) setInterval(() => { if (!R.tl) bannerClock(); }, 1000);

// --- the replay ----------------------------------------------------------------------------

/** The run's policies: the drill's list, else its scenario's, else its report's. */
function policiesOf(info) {
  for (const p of [info.policies, info.scenario && info.scenario.policies, info.report && info.report.policies]) {
    const names = Array.isArray(p) ? p.map(String) : p && typeof p === "object" ? Object.keys(p) : [];
    if (names.length) return names;
  }
  return [];  // the replay's default policy names itself
}

function startReplay() {
  R.policies = policiesOf(scope.info);
  const asked = new URLSearchParams(location.search).get("policy");
  loadPolicy(asked && R.policies.includes(asked) ? asked : R.policies[0] || null);
}

/** One policy's timeline: fetched, then shown at the time the previous one was at. */
async function loadPolicy(name) {
  const mine = ++R.loads;
  R.loading = true;
  R.error = null;
  renderBar();
  const query = name ? `?policy=${encodeURIComponent(name)}` : "";
  const got = await apiCall("GET", `/api/drills/${scope.drill}/replay${query}`, { token });
  if (mine !== R.loads) return;
  R.loading = false;
  if (!got.ok || !got.body) {
    R.error = (got.body && got.body.message) || `HTTP ${got.status}`;
    renderBar();
    return;
  }
  const keep = R.tl ? R.tl.t : 0;
  const tl = new Timeline(got.body);
  R.tl = tl;
  R.policy = tl.policy || name;
  if (R.policy && !R.policies.includes(R.policy)) R.policies.push(R.policy);
  state.units.clear();
  for (const u of tl.units.values()) {
    state.units.set(u.id, { type: "Feature", id: u.id, geometry: { type: "Point", coordinates: u.to },
      properties: { callsign: u.callsign, type: u.type, status: u.status } });
  }
  R.shownKey = R.incidentsKey = R.logKey = R.statsKey = null;
  renderBar();
  fitReplay();
  ensureLayers();
  seekTo(Math.min(keep, tl.duration));
}

/** The time shown: the model brought there, the units set where it says. */
function seekTo(t) {
  const began = performance.now();
  R.tl.seek(t);
  R.seekMs = performance.now() - began;
  syncUnits(true);
  changed();
}

/** The console's unit features from the model: the ones that changed or are moving. */
function syncUnits(all = false) {
  const tl = R.tl;
  for (const u of tl.units.values()) {
    const moving = tl.moving(u);
    if (!all && !u.changed && !moving && !u.drawnMoving) continue;
    u.changed = false;
    u.drawnMoving = moving;
    const f = state.units.get(u.id);
    if (!f) continue;
    f.geometry = { type: "Point", coordinates: tl.position(u) };
    f.properties.status = u.status;
    touchUnit(u.id);
  }
  if (all) unitsMoved.all = true;
}

function changed() {
  refreshShown();
  updateBar();
  bannerClock();
  redraw();
}

function frame(now) {
  R.raf = 0;
  if (!R.playing || !R.tl) return;
  const step = Math.min(MAX_STEP_S, Math.max(0, (now - R.last) / 1000));
  R.last = now;
  let t = R.tl.t + step * R.speed;
  if (t >= R.tl.duration) { t = R.tl.duration; R.playing = false; }
  R.tl.seek(t);
  syncUnits();
  changed();
  if (R.playing) R.raf = requestAnimationFrame(frame);
  else renderBar();
}

function play() {
  if (!R.tl || R.playing) return;
  if (R.tl.t >= R.tl.duration) seekTo(0);
  R.playing = true;
  R.last = performance.now();
  R.raf = requestAnimationFrame(frame);
  renderBar();
}

function pause() {
  R.playing = false;
  cancelAnimationFrame(R.raf);
  R.raf = 0;
  renderBar();
}

function replayCounts(base) {
  const s = R.tl ? R.tl.stats() : { busy: 0 };
  return { ...base, incidents_open: R.open, tasks_active: s.busy, tasks_unacked: 0 };
}

function fitReplay() {
  if (R.fitted) return;
  const b = new maplibregl.LngLatBounds();
  for (const s of R.tl.stations) if (s.at) b.extend(s.at);
  for (const inc of R.tl.incidents) b.extend([inc.lon, inc.lat]);
  if (b.isEmpty()) return;
  map.fitBounds(b, { padding: { top: 120, bottom: 80, left: 80, right: 80 }, duration: 0, maxZoom: 16 });
  R.fitted = true;
  live.fitted = true;  // the console's own first fit (to the units) is not wanted
}

function ensureLayers() {
  if (!live.mapLoaded || !R.tl) return;
  if (!map.getSource("replay-incidents")) addReplayLayers(map);
  drawStations(map, R.tl);
  R.incidentsKey = null;
  redraw();
}

/** The incidents in by now and how many are open (before the frame's counts are drawn). */
function refreshShown() {
  const tl = R.tl;
  const key = `${tl.version}:${upperBound(tl.incidentT, tl.t)}`;
  if (key === R.shownKey) return;
  R.shownKey = key;
  R.shown = tl.shownIncidents();
  R.open = R.shown.filter((x) => !x.done).length;
}

/** With each frame's draw: the incidents, legs and closures on the map, the side panels. */
function drawReplay() {
  const tl = R.tl;
  if (!tl) return;
  const s = tl.stats();
  const key = R.shownKey;
  if (map.getSource("replay-incidents")) {
    if (key !== R.incidentsKey) { drawIncidents(map, R.shown); drawClosures(map, tl); R.incidentsKey = key; }
    const moving = [...tl.units.values()].some((u) => tl.moving(u));
    if (moving || R.legs) R.legs = drawLegs(map, tl);
  }
  if (key !== R.logKey) { renderLog(document.getElementById("replay-log"), R.shown, tl.start); R.logKey = key; }
  const statsKey = JSON.stringify({ ...s, t: 0 });
  if (statsKey !== R.statsKey) { renderStats(document.getElementById("replay-stats"), s); R.statsKey = statsKey; }
}

// --- the player bar ------------------------------------------------------------------------
const bar = document.getElementById("replay-bar");

function control(tag, testid, cls, text) {
  const node = el(tag, cls, text);
  node.setAttribute("data-testid", testid);
  if (tag === "button") node.type = "button";
  return node;
}

function select(testid, values, current, name, onChange) {
  const node = control("select", testid, "replay-select");
  for (const [value, text] of values) {
    const o = el("option", null, text);
    o.value = value;
    node.append(o);
  }
  node.value = String(current);
  node.title = name;
  node.setAttribute("aria-label", name);
  node.addEventListener("change", () => onChange(node.value));
  return node;
}

function renderBar() {
  bar.hidden = !scope.replay;
  document.getElementById("replay-log").hidden = !scope.replay;
  document.getElementById("replay-stats").hidden = !scope.replay;
  if (!scope.replay) return;
  const r = t("replay");
  const info = scope.info || {};
  bar.dataset.state = R.playing ? "playing" : "paused";
  if (!R.tl) {
    const pctDone = Number.isFinite(info.progress) ? ` · ${r.progress} ${Math.round(info.progress * 100)}%` : "";
    const text = R.error || (R.loading || info.status === "finished" ? r.loading : `${r.notFinished}${pctDone}`);
    bar.replaceChildren(el("p", R.error ? "error" : "muted", text));
    R.ui = null;
    return;
  }
  const playBtn = control("button", "replay-play", "rp-play", `▶ ${r.play}`);
  playBtn.hidden = R.playing;
  playBtn.addEventListener("click", play);
  const pauseBtn = control("button", "replay-pause", "rp-play", `❚❚ ${r.pause}`);
  pauseBtn.hidden = !R.playing;
  pauseBtn.addEventListener("click", pause);
  const speed = select("replay-speed", SPEEDS.map((v) => [v, `×${v}`]), R.speed, r.speed, (v) => { R.speed = Number(v); });
  const clockEl = control("span", "replay-clock", "rp-clock");
  clockEl.title = r.clock;
  const elapsed = el("small", "rp-elapsed");
  const seek = control("input", "replay-seek", "rp-seek");
  Object.assign(seek, { type: "range", min: "0", max: String(Math.ceil(R.tl.duration)), step: "1" });
  seek.setAttribute("aria-label", r.seek);
  seek.addEventListener("pointerdown", () => { R.dragging = true; });
  seek.addEventListener("change", () => { R.dragging = false; });
  seek.addEventListener("input", () => seekTo(Number(seek.value)));
  const policy = select("replay-policy", R.policies.map((p) => [p, r.policyName[p] || p]), R.policy, r.policy,
    (v) => loadPolicy(v));
  const parts = [playBtn, pauseBtn, speed, el("div", "rp-time", null), seek, policy];
  parts[3].append(clockEl, elapsed);
  if (R.error || R.loading) parts.push(el("span", R.error ? "error" : "muted", R.error || r.loading));
  bar.replaceChildren(...parts);
  R.ui = { clockEl, elapsed, seek };
  updateBar();
}

/** Each frame: the clock and the slider (left alone while it is dragged). */
function updateBar() {
  if (!R.ui || !R.tl) return;
  const tl = R.tl;
  R.ui.clockEl.textContent = simTime(tl.start, tl.t);
  R.ui.clockEl.dataset.t = String(Math.floor(tl.t));
  R.ui.elapsed.textContent = `T+${clock(tl.t)} / ${clock(tl.duration)}`;
  if (!R.dragging) R.ui.seek.value = String(Math.floor(tl.t));
}

document.addEventListener("keydown", (ev) => {
  if (!R.tl || ev.key !== " " || ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(ev.target.tagName)) return;
  ev.preventDefault();
  if (R.playing) pause(); else play();
});

// --- hooks ---------------------------------------------------------------------------------
on("resync", (snapshot) => { if (scope.drill && snapshot && snapshot.drill) setInfo(snapshot.drill); });
on("event", (name, data) => {
  if (!scope.drill || !data || !name.startsWith("drill.")) return;
  setInfo(data.drill || data);
});
on("draw", drawReplay);
on("mapLoaded", ensureLayers);
on("lang", () => {
  renderBanner();
  renderBar();
  R.logKey = R.statsKey = null;
  drawReplay();
});

window.__replay = {
  get ready() { return !!R.tl && !R.loading; },
  get t() { return R.tl ? R.tl.t : null; },
  get duration() { return R.tl ? R.tl.duration : null; },
  get playing() { return R.playing; },
  get speed() { return R.speed; },
  get policy() { return R.policy; },
  get policies() { return [...R.policies]; },
  get seekMs() { return R.seekMs; },
  get error() { return R.error; },
  units() {
    if (!R.tl) return [];
    return [...R.tl.units.values()].map((u) => {
      const [lon, lat] = R.tl.position(u);
      return { id: u.id, callsign: u.callsign, status: u.status, lon, lat };
    });
  },
  stats() { return R.tl ? R.tl.stats() : null; },
  seek: (s) => { if (R.tl) seekTo(s); },
  Timeline,  // for measuring seeks on timelines made in the page
};
