// Responder phone, the task card's map: our own road tiles (MapLibre, the big screen's dark
// style, copied so the phone loads no screen module), the unit, the scene and the drive
// route from GET /api/route. The route is fetched again when the unit has moved more than
// ROUTE_MOVE_M from where the last one started; the last route is kept in localStorage so
// the card still shows it offline. MapLibre is loaded on first use (not on the login page).
// Tests read window.__taskMap.
import { apiGet, distanceM } from "/static/live.js";

const ROUTE_MOVE_M = 100;       // re-route when the start moved this far
const RETRY_MS = 15000;         // after a failed route request (offline, server busy)
const ROUTE_KEY = "responder.route";
const OSM = '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap contributors</a>';
const MAJOR = ["motorway", "trunk", "primary", "motorway_link", "trunk_link"];

const ROAD_STYLE = {
  version: 8,
  sources: {
    roads: { type: "vector", tiles: [`${location.origin}/tiles/roads/{z}/{x}/{y}.mvt`],
      minzoom: 0, maxzoom: 16, attribution: OSM },
  },
  layers: [
    { id: "background", type: "background", paint: { "background-color": "#0b1322" } },
    { id: "roads-minor", type: "line", source: "roads", "source-layer": "roads",
      filter: ["!", ["in", ["get", "highway"], ["literal", [...MAJOR, "secondary", "primary_link"]]]],
      paint: { "line-color": "#2a3b5a", "line-width": ["interpolate", ["linear"], ["zoom"], 12, 0.6, 17, 3.5] } },
    { id: "roads-secondary", type: "line", source: "roads", "source-layer": "roads",
      filter: ["in", ["get", "highway"], ["literal", ["secondary", "primary_link"]]],
      paint: { "line-color": "#36507a", "line-width": ["interpolate", ["linear"], ["zoom"], 12, 1, 17, 5] } },
    { id: "roads-major", type: "line", source: "roads", "source-layer": "roads",
      filter: ["in", ["get", "highway"], ["literal", MAJOR]],
      paint: { "line-color": "#4a6ca0", "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 17, 7] } },
  ],
};

const empty = () => ({ type: "FeatureCollection", features: [] });
const pointFeature = (kind, at) => ({ type: "Feature", properties: { kind },
  geometry: { type: "Point", coordinates: at } });

let libPromise = null;
let map = null;
let loaded = false;
const markers = {};         // kind -> maplibregl.Marker (HTML labels: no glyph server offline)
let want = null;            // what render() asked for: {taskId, from, to, labels}
let route = loadRoute();    // {taskId, from, to, feature} the last route fetched
let pending = false;
let failedAt = 0;
let fittedFor = null;       // the task (and whether with its route) last framed
let touchedAt = 0;          // when the responder last panned or zoomed the map
const LEAVE_ALONE_MS = 20000;
let onRouteChange = () => {};

function loadRoute() {
  try { return JSON.parse(localStorage.getItem(ROUTE_KEY)); } catch { return null; }
}

/** Load the vendored MapLibre (script and CSS) once; resolves to window.maplibregl. */
function loadLib() {
  if (window.maplibregl) return Promise.resolve(window.maplibregl);
  if (!libPromise) {
    libPromise = new Promise((resolve, reject) => {
      const css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = "/static/vendor/maplibre-gl/maplibre-gl.css";
      document.head.append(css);
      const script = document.createElement("script");
      script.src = "/static/vendor/maplibre-gl/maplibre-gl.js";
      script.onload = () => resolve(window.maplibregl);
      script.onerror = () => { libPromise = null; reject(new Error("maplibre not loaded")); };
      document.head.append(script);
    });
  }
  return libPromise;
}

/** Create the map in `container` (once). `onChange` is called when a route arrives. */
export async function initTaskMap(container, onChange) {
  onRouteChange = onChange;
  if (map) return;
  const lib = await loadLib();
  if (map) return;
  map = new lib.Map({
    container,
    style: ROAD_STYLE,
    center: [24.9443, 60.1716],
    zoom: 14,
    attributionControl: false,
    cooperativeGestures: false,
    dragRotate: false,
    pitchWithRotate: false,
    preserveDrawingBuffer: true,  // screenshots of the canvas
  });
  map.touchZoomRotate.disableRotation();
  map.addControl(new lib.AttributionControl({ compact: false, customAttribution: OSM }));
  map.addControl(new lib.NavigationControl({ showCompass: false }), "top-right");
  // Tiles fail while offline: that is expected, not an error worth the console.
  map.on("error", (e) => { if (!navigator.onLine) return; console.warn("map:", e.error && e.error.message); });
  for (const ev of ["dragstart", "zoomstart"]) {
    map.on(ev, (e) => { if (e.originalEvent) touchedAt = Date.now(); });
  }
  map.on("load", () => {
    map.addSource("route", { type: "geojson", data: empty() });
    map.addSource("task-points", { type: "geojson", data: empty() });
    map.addLayer({ id: "route-casing", type: "line", source: "route",
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": "#05090f", "line-width": 9, "line-opacity": 0.8 } });
    map.addLayer({ id: "route", type: "line", source: "route",
      layout: { "line-cap": "round", "line-join": "round" },
      paint: { "line-color": "#3fa9ff", "line-width": 5 } });
    map.addLayer({ id: "scene-halo", type: "circle", source: "task-points", filter: ["==", ["get", "kind"], "scene"],
      paint: { "circle-radius": 18, "circle-color": "#ff5a36", "circle-opacity": 0.3, "circle-blur": 0.5 } });
    map.addLayer({ id: "task-points", type: "circle", source: "task-points",
      paint: { "circle-radius": ["match", ["get", "kind"], "scene", 9, 8],
        "circle-color": ["match", ["get", "kind"], "scene", "#ff5a36", "#4cd38a"],
        "circle-stroke-color": "#ffffff", "circle-stroke-width": 2.5 } });
    loaded = true;
    window.__live.mapLoaded = true;
    draw();
  });
  window.__taskMap = map;
}

/** The route to show for `want`, if the stored one still fits it. */
function routeFor(w) {
  if (!w || !route || route.taskId !== w.taskId) return null;
  if (distanceM(route.to, w.to) > 1) return null;
  return route;
}

/** What the card shows: the current task's route (or null), and whether it is being fetched. */
export function currentRoute() {
  const r = routeFor(want);
  return { route: r ? r.feature : null, loading: pending && !r, stale: r ? routeStale(want, r) : false };
}

/** "3 min" / "3 分钟": seconds under a minute, else whole minutes. */
export function etaText(seconds, lang) {
  if (seconds < 60) return lang === "en" ? `${Math.round(seconds)} s` : `${Math.round(seconds)} 秒`;
  const min = Math.round(seconds / 60);
  return lang === "en" ? `${min} min` : `${min} 分钟`;
}

export function lengthText(metres) {
  return metres < 1000 ? `${Math.round(metres)} m` : `${(metres / 1000).toFixed(1)} km`;
}

/** The card's line under the map: drive time and length, or why there is none. */
export function drawRouteSummary(t, lang, hasFrom) {
  const { route: feature, loading, stale } = currentRoute();
  const p = feature && feature.properties;
  const ok = Boolean(p && p.reachable && p.eta_s !== null);
  const $ = (id) => document.getElementById(id);
  $("route").dataset.state = ok ? (stale ? "stale" : "ok") : loading ? "loading" : p ? "unreachable" : "none";
  $("route-eta").textContent = ok ? `${t("drive")} ${etaText(p.eta_s, lang)}` : "";
  $("route-eta").dataset.etaS = ok ? p.eta_s : "";
  $("route-length").textContent = ok ? lengthText(p.length_m) : "";
  $("route-length").dataset.lengthM = ok ? p.length_m : "";
  $("route-note").textContent = ok ? (stale && !navigator.onLine ? `· ${t("routeOld")}` : "")
    : loading ? t("routing") : p ? t("noRoute") : hasFrom ? "" : t("noFrom");
}

function routeStale(w, r) {
  return Boolean(w.from) && (!r.from || distanceM(r.from, w.from) > ROUTE_MOVE_M);
}

/** Show a task on the map: `from` (the unit, [lon, lat] or null), `to` (the scene). */
export function showTask(next, token) {
  want = next;
  if (!want) { draw(); return; }
  const r = routeFor(want);
  const needed = want.from && (!r || routeStale(want, r));
  if (needed && !pending && Date.now() - failedAt > RETRY_MS) fetchRoute(want, token);
  draw();
}

async function fetchRoute(w, token) {
  pending = true;
  const q = (p) => `${p[0].toFixed(6)},${p[1].toFixed(6)}`;
  try {
    const feature = await apiGet(`/api/route?from=${q(w.from)}&to=${q(w.to)}`, token);
    route = { taskId: w.taskId, from: w.from, to: w.to, feature };
    localStorage.setItem(ROUTE_KEY, JSON.stringify(route));
    failedAt = 0;
  } catch (err) {
    if (/^4\d\d$/.test(err.message)) {
      // Refused (e.g. the scene is off the road network): no route from here; asked again
      // only once the unit has moved.
      route = { taskId: w.taskId, from: w.from, to: w.to,
        feature: { type: "Feature", geometry: null, properties: { reachable: false, eta_s: null } } };
    } else failedAt = Date.now();  // offline or busy: keep the last route, try again later
  } finally {
    pending = false;
  }
  draw();
  onRouteChange();
}

/** Resize after the card was hidden (the canvas has no size while display: none). */
export function resizeTaskMap() {
  if (map) map.resize();
}

function marker(kind, at, text) {
  if (!at) {
    if (markers[kind]) { markers[kind].remove(); delete markers[kind]; }
    return;
  }
  if (!markers[kind]) {
    const el = document.createElement("div");
    el.className = `map-label ${kind}`;
    markers[kind] = new window.maplibregl.Marker({ element: el, anchor: "bottom", offset: [0, -13] })
      .setLngLat(at).addTo(map);
  }
  markers[kind].setLngLat(at);
  markers[kind].getElement().textContent = text;
}

function draw() {
  if (!loaded) return;
  const w = want;
  const r = routeFor(w);
  map.getSource("route").setData(r && r.feature.geometry ? { type: "FeatureCollection", features: [r.feature] } : empty());
  const points = [];
  if (w && w.from) points.push(pointFeature("unit", w.from));
  if (w) points.push(pointFeature("scene", w.to));
  map.getSource("task-points").setData({ type: "FeatureCollection", features: points });
  marker("unit", w && w.from, w ? w.labels.unit : "");
  marker("scene", w && w.to, w ? w.labels.scene : "");
  if (w) fit(w, r);
}

/** Frame the unit, the scene and the route: once per task and route, and again when one
 * is off view (unless the responder has just moved the map). */
function fit(w, r) {
  const lib = window.maplibregl;
  const b = new lib.LngLatBounds();
  b.extend(w.to);
  if (w.from) b.extend(w.from);
  if (r && r.feature.geometry) for (const c of r.feature.geometry.coordinates) b.extend(c);
  const view = map.getBounds();
  const offView = !view.contains(w.to) || (w.from && !view.contains(w.from));
  const key = r ? `${w.taskId}:route` : `${w.taskId}`;
  if (fittedFor === key && (!offView || Date.now() - touchedAt < LEAVE_ALONE_MS)) return;
  fittedFor = key;
  const box = map.getContainer().getBoundingClientRect();
  if (box.width < 50 || box.height < 50) { fittedFor = null; return; }  // hidden: later
  map.fitBounds(b, { padding: { top: 40, bottom: 30, left: 30, right: 50 }, maxZoom: 16.5, duration: 0 });
}
