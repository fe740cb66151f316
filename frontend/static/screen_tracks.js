// Big screen, console: where each dispatched unit drove. The incident drawer
// (screen_drawer.js) puts a track toggle on each unit's task row; on, the unit's track over
// its tasks for this incident (GET /api/units/{id}/track?since=<assigned>&until=<done or
// now>) is drawn on the map, one colour per unit, its callsign at the start, its fixes as
// dots. While the task runs, the unit's live positions extend the line. Off, another
// incident or the drawer closed: the track goes. Tests read window.__tracks and the map's
// `unit-tracks` source.
import { apiCall } from "/static/live.js";
import { addStrings, t } from "/static/screen_i18n.js";
import { el, on, token } from "/static/screen_state.js";
import { centreOf } from "/static/screen_map.js";

const TRACK_COLORS = ["#ff5cf0", "#00e5ff", "#c6ff00", "#ffab40", "#b388ff", "#ff8a80", "#64ffda", "#ffff8d"];
const ENDED_TASK = new Set(["done", "cancelled"]);

addStrings({
  "zh-CN": {
    trToggle: "轨迹", trLoading: "轨迹…", trHide: "隐藏轨迹", trShow: "显示行驶轨迹",
    trFixes: (n) => `${n} 个定位点`, trSimplified: "已简化", trFlagged: (n) => `${n} 个异常点未计入`,
    trTooFew: (n) => (n ? `仅 ${n} 个定位点，无法绘制轨迹` : "该时段内无定位点，无法绘制轨迹"),
    trFailed: "无法加载轨迹", trLive: "实时延伸",
  },
  en: {
    trToggle: "Track", trLoading: "Track…", trHide: "Hide track", trShow: "Show where the unit drove",
    trFixes: (n) => `${n} fix${n === 1 ? "" : "es"}`, trSimplified: "simplified",
    trFlagged: (n) => `${n} flagged fix${n === 1 ? "" : "es"} left out`,
    trTooFew: (n) => (n ? `Only ${n} fix: too few to draw a track` : "No fixes in this time: no track to draw"),
    trFailed: "Could not load the track", trLive: "live",
  },
});

// unit id -> { unitId, callsign, color, state: loading|on|empty|error, since, until (null:
// still running), live, coords, times, fixes, simplified, flagged, error, fitted }
const tracks = new Map();
let colorNext = 0;
let mapRef = null;
let rerender = () => {};  // the drawer's render: a track's state changed
const labels = new Map();  // unit id -> maplibregl.Marker (the callsign at the start)

/** The unit's tasks for the shown incident -> the window its track covers. */
function windowOf(tasks) {
  const byTime = (a, b) => Date.parse(a) - Date.parse(b);
  const since = tasks.map((x) => x.assigned_at).filter(Boolean).sort(byTime)[0] || null;
  const running = tasks.some((x) => !ENDED_TASK.has(x.status));
  const ends = tasks.map((x) => x.done_at || x.cancelled_at).filter(Boolean).sort(byTime);
  return { since, until: running ? null : ends[ends.length - 1] || null };
}

/** The toggle for one unit's row. `tasks`: its tasks for this incident; `incident`: the
 * incident's geometry (kept in view with the track). */
export function trackControl(unitId, callsign, tasks, incident) {
  const rec = tracks.get(unitId);
  const btn = el("button", "track-toggle", rec && rec.state === "loading" ? t("trLoading") : t("trToggle"));
  btn.type = "button";
  btn.setAttribute("data-testid", `track-toggle-${unitId}`);
  btn.dataset.unitId = unitId;
  btn.dataset.state = rec ? rec.state : "off";
  btn.setAttribute("aria-pressed", rec ? "true" : "false");
  btn.title = rec ? t("trHide") : t("trShow");
  if (rec) btn.style.setProperty("--track", rec.color);
  btn.addEventListener("click", (ev) => {
    ev.stopPropagation();
    if (tracks.has(unitId)) hide(unitId);
    else show(unitId, callsign, windowOf(tasks), incident ? centreOf(incident) : null);
  });
  return btn;
}

/** The line under a unit's row saying what its track shows (null when off). */
export function trackNote(unitId) {
  const rec = tracks.get(unitId);
  if (!rec || rec.state === "loading") return null;
  const p = el("p", `track-note ${rec.state}`, noteText(rec));
  p.setAttribute("data-testid", `track-note-${unitId}`);
  p.dataset.state = rec.state;
  if (rec.state === "on") p.style.setProperty("--track", rec.color);
  return p;
}

function noteText(rec) {
  if (rec.state === "error") return `${t("trFailed")}: ${rec.error}`;
  if (rec.state === "empty") return t("trTooFew")(rec.fixes);
  const parts = [t("trFixes")(rec.fixes)];
  if (rec.simplified) parts.push(t("trSimplified"));
  if (rec.flagged) parts.push(t("trFlagged")(rec.flagged));
  if (rec.live) parts.push(t("trLive"));
  return parts.join(" · ");
}

async function show(unitId, callsign, win, around) {
  const rec = { unitId, callsign, around, color: TRACK_COLORS[colorNext++ % TRACK_COLORS.length], state: "loading",
    since: win.since, until: win.until, live: win.until === null, coords: [], times: [], fixes: 0,
    simplified: false, flagged: 0, error: null, fitted: false };
  tracks.set(unitId, rec);
  publish();
  rerender();
  const q = new URLSearchParams();
  if (rec.since) q.set("since", rec.since);
  q.set("until", rec.until || new Date().toISOString());
  const got = await apiCall("GET", `/api/units/${unitId}/track?${q}`, { token });
  if (tracks.get(unitId) !== rec) return;  // toggled off, or the drawer moved on, meanwhile
  if (!got.ok) {
    rec.state = "error";
    rec.error = (got.body && (got.body.message || got.body.detail)) || (got.status ? `HTTP ${got.status}` : "offline");
  } else {
    const f = got.body || {};
    const p = f.properties || {};
    rec.coords = f.geometry && f.geometry.coordinates ? f.geometry.coordinates.slice() : [];
    rec.times = Array.isArray(p.times) ? p.times.slice() : [];
    rec.fixes = Number.isInteger(p.fixes) ? p.fixes : rec.coords.length;
    rec.simplified = !!p.simplified;
    rec.flagged = p.flagged || 0;
    if (p.callsign) rec.callsign = p.callsign;
    rec.lastAt = Date.parse(rec.times[rec.times.length - 1] || p.until || "") || 0;
    rec.state = rec.coords.length >= 2 ? "on" : "empty";
  }
  draw();
  fit(rec);
  publish();
  rerender();
}

function hide(unitId) {
  tracks.delete(unitId);
  draw();
  publish();
  rerender();
}

/** Every track off (the drawer closed or shows another incident). */
export function clearTracks() {
  if (!tracks.size) return;
  tracks.clear();
  draw();
  publish();
}

/** The drawer's render, called when a track's state changes. */
export function onTrackChange(fn) { rerender = fn; }

// --- the map -------------------------------------------------------------------------------
const fc = (features) => ({ type: "FeatureCollection", features });

function draw() {
  if (!mapRef || !mapRef.getSource("unit-tracks")) return;
  const lines = [];
  const fixes = [];
  for (const rec of tracks.values()) {
    if (rec.coords.length < 2) continue;
    const props = { unit_id: rec.unitId, callsign: rec.callsign, color: rec.color };
    lines.push({ type: "Feature", id: rec.unitId, geometry: { type: "LineString", coordinates: rec.coords }, properties: props });
    rec.coords.forEach((c, i) => fixes.push({ type: "Feature", geometry: { type: "Point", coordinates: c },
      properties: { ...props, end: i === 0 ? "start" : i === rec.coords.length - 1 ? "end" : "" } }));
  }
  mapRef.getSource("unit-tracks").setData(fc(lines));
  mapRef.getSource("unit-track-fixes").setData(fc(fixes));
  drawLabels();
}

function drawLabels() {
  for (const [uid, marker] of labels) {
    const rec = tracks.get(uid);
    if (!rec || rec.coords.length < 2) { marker.remove(); labels.delete(uid); }
  }
  for (const rec of tracks.values()) {
    if (rec.coords.length < 2) continue;
    let marker = labels.get(rec.unitId);
    if (!marker) {
      const e = el("div", "track-label");
      e.setAttribute("data-testid", `track-label-${rec.unitId}`);
      marker = new maplibregl.Marker({ element: e, anchor: "right", offset: [-10, 0] });
      labels.set(rec.unitId, marker);
    }
    const e = marker.getElement();
    e.textContent = `${rec.callsign} ${t("trToggle")}`;
    e.style.setProperty("--track", rec.color);
    marker.setLngLat(rec.coords[0]).addTo(mapRef);
  }
}

/** Once per track shown: the map to the track and its incident, clear of the drawer and
 * the legend. */
function fit(rec) {
  if (!mapRef || rec.fitted || rec.coords.length < 2) return;
  rec.fitted = true;
  const b = new maplibregl.LngLatBounds(rec.coords[0], rec.coords[0]);
  for (const c of rec.coords) b.extend(c);
  if (rec.around) b.extend(rec.around);
  const box = mapRef.getContainer();
  const drawer = document.getElementById("incident-drawer");
  const legend = document.getElementById("legend");
  const width = drawer && !drawer.hidden ? drawer.getBoundingClientRect().width : 0;
  const right = Math.min(width + 60, box.clientWidth * 0.6);
  const bottom = Math.min((legend ? legend.getBoundingClientRect().height : 0) + 60, box.clientHeight * 0.4);
  mapRef.fitBounds(b, { padding: { top: 60, bottom, left: 60, right }, maxZoom: 17, duration: 400 });
}

// The test hook: what each shown track is (plain data, rebuilt on each change).
function publish() {
  window.__tracks = Object.fromEntries([...tracks.values()].map((r) => [r.unitId, {
    unit_id: r.unitId, callsign: r.callsign, color: r.color, state: r.state, since: r.since, until: r.until,
    live: r.live, vertices: r.coords.length, coords: r.coords.map((c) => c.slice()), fixes: r.fixes,
    simplified: r.simplified, flagged: r.flagged, error: r.error,
  }]));
}
publish();

// --- live: a running task's track grows with the unit's positions --------------------------
function extend(p) {
  const rec = tracks.get(p.unit_id);
  if (!rec || !rec.live || (rec.state !== "on" && rec.state !== "empty")) return false;
  const at = Date.parse(p.recorded_at || "");
  if (!Number.isFinite(at) || at <= rec.lastAt || !Number.isFinite(p.lon) || !Number.isFinite(p.lat)) return false;
  rec.coords.push([p.lon, p.lat]);
  rec.times.push(p.recorded_at);
  rec.lastAt = at;
  rec.fixes += 1;
  const was = rec.state;
  rec.state = rec.coords.length >= 2 ? "on" : "empty";
  if (was !== rec.state) rerender();
  else {
    const note = document.querySelector(`[data-testid=track-note-${rec.unitId}]`);
    if (note) note.textContent = noteText(rec);
  }
  return true;
}

on("event", (name, data) => {
  if (!tracks.size || !data) return;
  if (name === "unit.positions" || name === "unit.position_reported") {
    const fixes = name === "unit.positions" ? data.positions || [] : [data];
    let changed = false;
    for (const p of fixes) if (tracks.has(p.unit_id) && extend(p)) changed = true;
    if (changed) { draw(); publish(); }
  } else if (name.startsWith("task.") && tracks.has(data.unit_id) && ENDED_TASK.has(data.status)) {
    const rec = tracks.get(data.unit_id);
    if (rec.live) { rec.live = false; rec.until = data.done_at || data.cancelled_at || new Date().toISOString(); publish(); }
  }
});

on("lang", () => { if (tracks.size) drawLabels(); });
on("mapLoaded", (m) => {
  mapRef = m;
  m.addSource("unit-tracks", { type: "geojson", data: fc([]) });
  m.addSource("unit-track-fixes", { type: "geojson", data: fc([]) });
  // Under the units: a unit's own point stays on top of where it has been.
  const before = m.getLayer("units") ? "units" : undefined;
  m.addLayer({ id: "unit-tracks-casing", type: "line", source: "unit-tracks",
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": "#05090f", "line-width": 8, "line-opacity": 0.8 } }, before);
  m.addLayer({ id: "unit-tracks", type: "line", source: "unit-tracks",
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": ["get", "color"], "line-width": 4 } }, before);
  m.addLayer({ id: "unit-track-fixes", type: "circle", source: "unit-track-fixes",
    paint: { "circle-radius": ["match", ["get", "end"], "start", 6, 3.5],
      "circle-color": ["match", ["get", "end"], "start", "#0b1322", ["get", "color"]],
      "circle-stroke-color": ["match", ["get", "end"], "start", ["get", "color"], "#0b1322"],
      "circle-stroke-width": ["match", ["get", "end"], "start", 3, 1.5] } }, before);
  draw();
});
