// Big screen, the map: MapLibre over our own road tiles, the situation's sources and
// layers (zones hatched when they close roads, the proposal's routes and staging point),
// callsign labels kept from overlapping, and the legend. Tests read window.__map.
import { label } from "/static/screen_i18n.js";
import {
  SEVERITY_COLORS, UNIT_COLORS, UNIT_STATUSES, dirty, live, shownZones, state, unitsMoved,
} from "/static/screen_state.js";

const ROAD_CLOSED = "#ff3b3b";
const CENTER = [24.9443, 60.1716];  // a start only: fitted to the situation once it arrives

const params = new URLSearchParams(location.search);
const ROAD_STYLE = {
  version: 8,
  sources: {
    roads: {
      type: "vector",
      tiles: [`${location.origin}/tiles/roads/{z}/{x}/{y}.mvt`],
      minzoom: 0,
      maxzoom: 16,
      attribution: '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap contributors</a>',
    },
  },
  layers: [
    { id: "background", type: "background", paint: { "background-color": "#0b1322" } },
    {
      id: "roads-minor", type: "line", source: "roads", "source-layer": "roads",
      filter: ["!", ["in", ["get", "highway"], ["literal", ["motorway", "trunk", "primary", "secondary", "motorway_link", "trunk_link", "primary_link"]]]],
      paint: { "line-color": "#23324d", "line-width": ["interpolate", ["linear"], ["zoom"], 12, 0.5, 17, 3] },
    },
    {
      id: "roads-secondary", type: "line", source: "roads", "source-layer": "roads",
      filter: ["in", ["get", "highway"], ["literal", ["secondary", "primary_link"]]],
      paint: { "line-color": "#31476b", "line-width": ["interpolate", ["linear"], ["zoom"], 12, 1, 17, 5] },
    },
    {
      id: "roads-major", type: "line", source: "roads", "source-layer": "roads",
      filter: ["in", ["get", "highway"], ["literal", ["motorway", "trunk", "primary", "motorway_link", "trunk_link"]]],
      paint: { "line-color": "#41608f", "line-width": ["interpolate", ["linear"], ["zoom"], 10, 1, 17, 7] },
    },
  ],
};

const empty = () => ({ type: "FeatureCollection", features: [] });
export const map = new maplibregl.Map({
  container: "map",
  style: params.get("style") || ROAD_STYLE,
  center: CENTER,
  zoom: 14.5,
  attributionControl: false,
  preserveDrawingBuffer: true,  // screenshots of the canvas
});
map.addControl(new maplibregl.AttributionControl({ compact: false,
  customAttribution: '© <a href="https://www.openstreetmap.org/copyright">OpenStreetMap contributors</a>' }));
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-left");
window.__map = map;

/** Diagonal red stripes: the fill of a zone that closes its roads. */
function hatchImage(size = 16) {
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  const g = canvas.getContext("2d");
  g.strokeStyle = "rgba(255, 59, 59, 0.75)";
  g.lineWidth = 2.5;
  g.beginPath();
  for (const o of [-size, 0, size]) { g.moveTo(o, size); g.lineTo(o + size, 0); }
  g.stroke();
  return g.getImageData(0, 0, size, size);
}

/** The situation's sources and layers, once the style has loaded; a zone clicked is passed on. */
export function addOverlays(onZoneClick) {
  for (const id of ["zones", "proposal", "shelters", "incidents", "units"]) map.addSource(id, { type: "geojson", data: empty() });
  map.addImage("hatch-red", hatchImage());
  const blocks = ["==", ["get", "blocks_roads"], true];
  map.addLayer({ id: "zones-fill", type: "fill", source: "zones",
    paint: { "fill-color": ["match", ["get", "severity"], "extreme", "#d00000", "severe", "#ff5a36", "moderate", "#ffae42", "#f9e076"], "fill-opacity": 0.22 } });
  map.addLayer({ id: "zones-hatch", type: "fill", source: "zones", filter: blocks,
    paint: { "fill-pattern": "hatch-red" } });
  map.addLayer({ id: "zones-line", type: "line", source: "zones", filter: ["!", blocks],
    paint: { "line-color": "#ff8c42", "line-width": 2, "line-dasharray": [2, 1] } });
  map.addLayer({ id: "zones-blocked-line", type: "line", source: "zones", filter: blocks,
    paint: { "line-color": ROAD_CLOSED, "line-width": 3.5 } });
  map.addLayer({ id: "zones-selected", type: "line", source: "zones", filter: ["==", ["id"], -1],
    paint: { "line-color": "#ffffff", "line-width": 2, "line-offset": -3 } });
  map.addLayer({ id: "proposal-routes-casing", type: "line", source: "proposal",
    filter: ["==", ["geometry-type"], "LineString"], layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": "#05090f", "line-width": 7, "line-opacity": 0.7, "line-offset": ["get", "offset"] } });
  map.addLayer({ id: "proposal-routes", type: "line", source: "proposal",
    filter: ["==", ["geometry-type"], "LineString"], layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": ["get", "color"], "line-width": 3.5, "line-offset": ["get", "offset"] } });
  map.addLayer({ id: "proposal-shelters", type: "circle", source: "proposal",
    filter: ["==", ["get", "kind"], "shelter"],
    paint: { "circle-radius": 12, "circle-opacity": 0, "circle-stroke-color": "#2ec4b6", "circle-stroke-width": 2.5 } });
  map.addLayer({ id: "shelters", type: "circle", source: "shelters",
    paint: { "circle-radius": 6, "circle-color": "#2ec4b6", "circle-stroke-color": "#e6fffb", "circle-stroke-width": 1.5,
      "circle-opacity": ["case", ["==", ["get", "status"], "open"], 1, 0.4] } });
  map.addLayer({ id: "incidents-halo", type: "circle", source: "incidents",
    paint: { "circle-radius": 18, "circle-color": ["match", ["get", "severity"], ...Object.entries(SEVERITY_COLORS).flat(), "#ffae42"],
      "circle-opacity": ["case", ["in", ["get", "status"], ["literal", ["reported", "verified"]]], 0.35, 0.15], "circle-blur": 0.6 } });
  map.addLayer({ id: "incidents", type: "circle", source: "incidents",
    paint: { "circle-radius": 9, "circle-color": ["match", ["get", "severity"], ...Object.entries(SEVERITY_COLORS).flat(), "#ffae42"],
      "circle-stroke-width": 3,
      "circle-stroke-color": ["match", ["get", "status"], "reported", "#ffffff", "verified", "#ffd23f", "dispatched", "#ff9f1c", "on_scene", "#ff4d6d", "#7d8597"] } });
  // `stale` (GPS fix older than 120 s) is set on the unit's properties by screen_queue.js.
  const stale = ["==", ["get", "stale"], true];
  map.addLayer({ id: "units", type: "circle", source: "units",
    paint: { "circle-radius": 6, "circle-color": ["case", stale, "#7d8597", ["match", ["get", "status"], ...Object.entries(UNIT_COLORS).flat(), "#cccccc"]],
      "circle-opacity": ["case", stale, 0.45, 1], "circle-stroke-opacity": ["case", stale, 0.45, 1],
      "circle-stroke-color": "#0b1322", "circle-stroke-width": 1.5 } });
  map.addLayer({ id: "proposal-staging", type: "circle", source: "proposal",
    filter: ["==", ["get", "kind"], "staging"],
    paint: { "circle-radius": 9, "circle-color": "#ffffff", "circle-stroke-color": "#7b2cbf", "circle-stroke-width": 4 } });
  map.on("click", "zones-fill", (e) => {
    if (e.features && e.features.length) onZoneClick(e.features[0].id);
  });
  map.on("mouseenter", "zones-fill", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "zones-fill", () => { map.getCanvas().style.cursor = ""; });
}

/** Where to draw a feature as one point: itself, or the middle of its bounding box. */
export function centreOf(geometry) {
  if (geometry.type === "Point") return geometry.coordinates;
  const b = new maplibregl.LngLatBounds();
  const walk = (c) => { if (typeof c[0] === "number") b.extend(c); else c.forEach(walk); };
  walk(geometry.coordinates);
  return b.getCenter().toArray();
}

// Incidents from alerts carry the alert's area; the map marks them at its middle.
const asPoint = (f) => (!f.geometry || f.geometry.type === "Point" ? f
  : { ...f, geometry: { type: "Point", coordinates: centreOf(f.geometry) } });

// Callsigns as HTML labels (no glyph server offline); units at one spot share a label.
// Only the units in view get one, at most LABELS_MAX (busy units first), and labels are
// kept from overlapping by arithmetic on projected points (no layout reads): with 2,000
// units on the screen, a label per unit and a DOM measure per label cost a frame's budget.
const LABELS_MAX = 240;
const LABEL_CHAR_PX = 7.2;  // 12 px text, callsigns of ASCII letters and digits
const labels = new Map();
function drawLabels() {
  const bounds = map.getBounds();
  const groups = new Map();
  for (const u of state.units.values()) {
    if (!u.geometry) continue;
    const [lon, lat] = u.geometry.coordinates;
    if (!bounds.contains([lon, lat])) continue;
    const key = `${lon.toFixed(4)},${lat.toFixed(4)}`;
    let g = groups.get(key);
    if (!g) { g = { at: [lon, lat], units: [], busy: false }; groups.set(key, g); }
    g.units.push(u);
    if (u.properties.status !== "available") g.busy = true;
  }
  const chosen = [...groups.entries()].sort((a, b) => b[1].busy - a[1].busy).slice(0, LABELS_MAX);
  const seen = new Set();
  for (const [key, g] of chosen) {
    seen.add(key);
    g.units.sort((a, b) => (a.properties.status === "available") - (b.properties.status === "available")
      || a.properties.callsign.localeCompare(b.properties.callsign));
    const shown = g.units.slice(0, 3).map((u) => u.properties.callsign).join(" ");
    const text = g.units.length > 3 ? `${shown} +${g.units.length - 3}` : shown;
    let marker = labels.get(key);
    if (!marker) {
      const el = document.createElement("div");
      el.className = "unit-label";
      marker = new maplibregl.Marker({ element: el, anchor: "left", offset: [9, 0] }).setLngLat(g.at).addTo(map);
      labels.set(key, marker);
    }
    const el = marker.getElement();
    if (el.textContent !== text) el.textContent = text;
    el.dataset.units = g.units.map((u) => u.properties.callsign).join(",");
    el.classList.toggle("busy", g.busy);
    marker.busy = g.busy;
    marker.text = text;
    marker.at = g.at;
  }
  for (const [key, marker] of labels) if (!seen.has(key)) { marker.remove(); labels.delete(key); }
  declutter();
}

/** Hide labels that would overlap one already placed (busy units are placed first). */
function declutter() {
  // Incidents first: a callsign never hides one. Boxes in map pixels, from projection.
  const placed = [];
  for (const f of state.incidents.values()) {
    if (!f.geometry) continue;
    const p = map.project(centreOf(f.geometry));
    placed.push({ left: p.x - 13, right: p.x + 13, top: p.y - 13, bottom: p.y + 13 });
  }
  for (const marker of [...labels.values()].sort((a, b) => b.busy - a.busy)) {
    if (!marker.at) continue;
    const p = map.project(marker.at);
    const r = { left: p.x + 9, right: p.x + 17 + marker.text.length * LABEL_CHAR_PX, top: p.y - 9, bottom: p.y + 9 };
    const hit = placed.some((q) => r.left < q.right + 2 && r.right + 2 > q.left && r.top < q.bottom + 1 && r.bottom + 1 > q.top);
    marker.getElement().classList.toggle("hidden", hit);
    if (!hit) placed.push(r);
  }
}

const UNITS_DIFF_MAX = 400;  // more moved than this in one frame: set them all

/** The units source: the features that changed since the last draw (GeoJSONSource
 * updateData, by feature id), or all of them after a snapshot or a new unit. */
function drawUnits(fc) {
  const source = map.getSource("units");
  const moved = [...unitsMoved.ids].map((id) => state.units.get(id)).filter((u) => u && u.geometry);
  if (unitsMoved.all || moved.length > UNITS_DIFF_MAX) {
    source.setData(fc([...state.units.values()]));
  } else if (moved.length) {
    // Every property set again, none removed: with `removeAllProperties` this MapLibre's
    // worker drops the new properties too (the drawn point loses its status colour), though
    // getData() still shows them. A unit's properties are always the same keys.
    source.updateData({
      update: moved.map((u) => ({
        id: u.id,
        newGeometry: u.geometry,
        addOrUpdateProperties: Object.entries(u.properties).map(([key, value]) => ({ key, value })),
      })),
    });
  }
  unitsMoved.ids.clear();
  unitsMoved.all = false;
}

let zonesShown = "";  // the zone ids on the map, to notice one starting or ending

/** The situation onto the map's sources (once they exist), then labels and the first fit. */
export function drawSituation() {
  if (!map.getSource("units")) return;
  // Features with no location (an alert area that could not be read) stay off the map.
  // Only the sources whose entities changed since the last draw are set again.
  const fc = (features) => ({ type: "FeatureCollection", features: features.filter((f) => f.geometry) });
  if (dirty.incidents) map.getSource("incidents").setData(fc([...state.incidents.values()].map(asPoint)));
  if (dirty.units) drawUnits(fc);
  if (dirty.shelters) map.getSource("shelters").setData(fc([...state.shelters.values()]));
  const zones = shownZones();
  const zoneIds = zones.map((f) => f.id).join();
  if (dirty.zones || zoneIds !== zonesShown) map.getSource("zones").setData(fc(zones));
  zonesShown = zoneIds;
  if (dirty.units || dirty.incidents) drawLabels();
  dirty.incidents = dirty.units = dirty.shelters = dirty.zones = false;
  fitOnce();
}

/** Whether a zone has started or ended since the map was last drawn. */
export const zonesStale = () => shownZones().map((f) => f.id).join() !== zonesShown;

function fitOnce() {
  if (live.fitted || state.units.size === 0) return;
  const b = new maplibregl.LngLatBounds();
  for (const m of [state.units, state.shelters, state.incidents]) {
    for (const f of m.values()) if (f.geometry && f.geometry.type === "Point") b.extend(f.geometry.coordinates);
  }
  if (!b.isEmpty()) map.fitBounds(b, { padding: 60, duration: 0, maxZoom: 16 });
  live.fitted = true;
}

map.on("moveend", drawLabels);  // the units in view changed

export function legend() {
  const rows = [
    ...Object.entries(SEVERITY_COLORS).map(([k, c]) => [c, `${label("legend", "incident")} · ${label("severity", k)}`, "dot big"]),
    ...UNIT_STATUSES.map((s) => [UNIT_COLORS[s], `${label("legend", "unit")} · ${label("status", s)}`, "dot"]),
    ["#2ec4b6", label("legend", "shelter"), "dot"],
    ["#ff8c42", label("legend", "zone"), "box"],
    [null, label("legend", "roadsClosed"), "box hatch"],
    [null, label("legend", "staging"), "dot staging"],
  ];
  document.getElementById("legend").replaceChildren(...rows.map(([color, text, cls]) => {
    const span = document.createElement("span");
    const i = document.createElement("i");
    i.className = cls;
    if (color) i.style.background = color;
    span.append(i, text);
    return span;
  }));
}
