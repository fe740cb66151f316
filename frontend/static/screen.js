// Big-screen live situation map: MapLibre over our own road tiles, the `situation` topic
// applied in seq order, counts, an ECharts KPI chart and an event feed; the warning
// system's alerts with their warnings, incidents waiting for review, and a pre-positioning
// proposal for a warning zone (shown, never acted on).
// zh-CN by default, English switchable. Tests read window.__live.
import { LiveClient, apiGet, login } from "/static/live.js";

const STRINGS = {
  "zh-CN": {
    title: "智慧应急指挥调度", screen: "实时态势", overview: "总览", other: "English",
    openIncidents: "未结事件", unitsTotal: "救援力量", activeTasks: "执行中任务",
    unackedTasks: "未确认任务", unitsByStatus: "救援力量状态", feed: "实时动态",
    attribution: "地图数据", libs: "MapLibre GL JS · Apache ECharts",
    login: "登录", username: "用户名", password: "密码", signin: "登录",
    badLogin: "用户名或密码错误",
    conn: { idle: "未连接", connecting: "连接中", live: "实时", reconnecting: "重连中", offline: "离线" },
    legend: { incident: "事件", unit: "救援力量", shelter: "避难场所", zone: "预警区域",
      roadsClosed: "道路封闭", staging: "集结点（建议）" },
    status: { reported: "已报告", verified: "已核实", dispatched: "已派遣", on_scene: "到场处置",
      resolved: "已处置", closed: "已关闭", cancelled: "已取消", available: "待命",
      assigned: "已分配", en_route: "途中", returning: "返回中", out_of_service: "停用",
      accepted: "已接受", done: "已完成", acknowledged: "已确认", open: "开放" },
    severity: { minor: "轻微", moderate: "中等", severe: "严重", extreme: "特别严重" },
    ev: { created: "新建", updated: "更新", status_changed: "状态变更", position_reported: "位置上报",
      deleted: "删除", acknowledged: "已确认", flagged: "待核实", ended: "结束" },
    entity: { incident: "事件", unit: "救援力量", task: "任务", shelter: "避难场所",
      stock: "物资", warning_zone: "预警区域", alert: "预警" },
    resync: "同步全部态势",
    alerts: "预警", reviewList: "待核实事件", noAlerts: "暂无预警", noReview: "暂无待核实事件",
    needsReview: "待核实", noLocation: "无位置", warnings: "警告", noWarnings: "无警告",
    warningsCount: (n) => `${n} 条警告`, blocksRoads: "道路封闭",
    msgType: { Alert: "新发布", Update: "更新", Cancel: "解除", Ack: "确认", Error: "错误" },
    alertVerb: { Alert: "新发布", Update: "更新", Cancel: "解除" },
    alertStatus: { Exercise: "演练", Test: "测试", System: "系统", Draft: "草稿" },
    outcome: { incident_ids: "新建事件", zone_ids: "新建区域", updated_incident_ids: "更新事件",
      updated_zone_ids: "更新区域", cancelled_incident_ids: "取消事件", ended_zone_ids: "结束区域",
      review_incident_ids: "转待核实" },
    proposal: "预置建议", notOrder: "建议，非指令",
    notOrderLong: "仅供参考：不会调派任何力量，是否前置由指挥员决定。",
    staging: "集结点", stagingNote: "区域外、最近的道路上", suggestedUnits: "建议前置力量",
    suggestedShelters: "有空位的避难场所", room: "余位", minutes: (m) => `${m} 分钟`,
    unmet: "缺口", noUnits: "无可用力量", noShelters: "区域外无有空位的避难场所",
    loading: "正在计算建议…", failed: "无法生成建议", computedAt: "计算于", close: "关闭",
    accessible: "无障碍", pets: "可带宠物",
    capability: { water_rescue: "水域救援", rescue: "救援", medical_bls: "基础医疗",
      medical_als: "高级医疗", patient_transport: "病人转运", fire_suppression: "灭火",
      police: "警务", search_rescue: "搜救", supply_transport: "物资运输", ladder: "云梯",
      hazmat: "危化品处置" },
  },
  en: {
    title: "Emergency Command & Dispatch", screen: "Live situation", overview: "Overview",
    other: "中文", openIncidents: "Open incidents", unitsTotal: "Units", activeTasks: "Active tasks",
    unackedTasks: "Unacknowledged", unitsByStatus: "Units by status", feed: "Live events",
    attribution: "Map data", libs: "MapLibre GL JS · Apache ECharts",
    login: "Sign in", username: "Username", password: "Password", signin: "Sign in",
    badLogin: "Wrong username or password",
    conn: { idle: "Not connected", connecting: "Connecting", live: "Live",
      reconnecting: "Reconnecting", offline: "Offline" },
    legend: { incident: "Incident", unit: "Unit", shelter: "Shelter", zone: "Warning zone",
      roadsClosed: "Roads closed", staging: "Staging (proposal)" },
    status: { reported: "Reported", verified: "Verified", dispatched: "Dispatched",
      on_scene: "On scene", resolved: "Resolved", closed: "Closed", cancelled: "Cancelled",
      available: "Available", assigned: "Assigned", en_route: "En route",
      returning: "Returning", out_of_service: "Out of service", accepted: "Accepted",
      done: "Done", acknowledged: "Acknowledged", open: "Open" },
    severity: { minor: "Minor", moderate: "Moderate", severe: "Severe", extreme: "Extreme" },
    ev: { created: "created", updated: "updated", status_changed: "status changed",
      position_reported: "position", deleted: "deleted", acknowledged: "acknowledged",
      flagged: "flagged for review", ended: "ended" },
    entity: { incident: "Incident", unit: "Unit", task: "Task", shelter: "Shelter",
      stock: "Stock", warning_zone: "Warning zone", alert: "Alert" },
    resync: "Full situation loaded",
    alerts: "Alerts", reviewList: "Needs review", noAlerts: "No alerts",
    noReview: "Nothing waiting for review", needsReview: "needs review", noLocation: "no location",
    warnings: "Warnings", noWarnings: "No warnings",
    warningsCount: (n) => `${n} warning${n === 1 ? "" : "s"}`, blocksRoads: "Roads closed",
    msgType: { Alert: "Alert", Update: "Update", Cancel: "Cancel", Ack: "Ack", Error: "Error" },
    alertVerb: { Alert: "issued", Update: "updated", Cancel: "cancelled" },
    alertStatus: { Exercise: "Exercise", Test: "Test", System: "System", Draft: "Draft" },
    outcome: { incident_ids: "new incidents", zone_ids: "new zones",
      updated_incident_ids: "incidents updated", updated_zone_ids: "zones updated",
      cancelled_incident_ids: "incidents cancelled", ended_zone_ids: "zones ended",
      review_incident_ids: "flagged for review" },
    proposal: "Pre-positioning proposal", notOrder: "Proposal, not an order",
    notOrderLong: "For information only: nothing is dispatched; the commander decides.",
    staging: "Staging point", stagingNote: "outside the zone, on the nearest road",
    suggestedUnits: "Units to pre-position", suggestedShelters: "Shelters with room",
    room: "room", minutes: (m) => `${m} min`, unmet: "Short of", noUnits: "No units available",
    noShelters: "No shelter with room outside the zone", loading: "Working out a proposal…",
    failed: "No proposal", computedAt: "Computed", close: "Close",
    accessible: "accessible", pets: "pets allowed",
    capability: {},
  },
};

const UNIT_STATUSES = ["available", "assigned", "en_route", "on_scene", "returning", "out_of_service"];
const UNIT_COLORS = { available: "#4cd38a", assigned: "#ffd23f", en_route: "#ff9f1c",
  on_scene: "#ff4d6d", returning: "#5bc0eb", out_of_service: "#7d8597" };
const SEVERITY_COLORS = { minor: "#f9e076", moderate: "#ffae42", severe: "#ff5a36", extreme: "#d00000" };
// The same levels as text on the dark panels (the deep reds are unreadable there).
const SEVERITY_TEXT = { minor: "#f9e076", moderate: "#ffbe66", severe: "#ff8a6b", extreme: "#ff6b6b" };
const OPEN_INCIDENT = new Set(["reported", "verified", "dispatched", "on_scene"]);
const ACTIVE_TASK = new Set(["assigned", "accepted", "en_route", "on_scene"]);
const ENDED_INCIDENT = new Set(["closed", "cancelled"]);
const FEED_MAX = 60;
const ALERTS_MAX = 20;
const SEVERITIES = ["minor", "moderate", "severe", "extreme"];
const ROAD_CLOSED = "#ff3b3b";
const ROUTE_COLORS = ["#c77dff", "#4dd0e1", "#f48fb1", "#aed581", "#ffd180", "#90caf9"];
const CENTER = [24.9443, 60.1716];  // the demo city; fitted to the data once it arrives

let lang = localStorage.getItem("lang") || "zh-CN";
let token = sessionStorage.getItem("token");
const t = (key) => STRINGS[lang][key];
const label = (group, key) => (STRINGS[lang][group] || {})[key] || key;

// --- state ---------------------------------------------------------------------------
const state = {
  incidents: new Map(), units: new Map(), tasks: new Map(), shelters: new Map(),
  stock: new Map(), zones: new Map(),
};
const alerts = new Map();  // alert id -> what intake did with it (see alertRecord)
const live = {
  topics: {}, state: "idle", counts: {}, events: 0, mapLoaded: false, fitted: false,
  feed: [], alertsLoaded: false, proposal: null,
};
window.__live = live;

function counts() {
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

const shownZones = () => [...state.zones.values()].filter(zoneActive);

/** Drop zones whose end has passed (the server ends them too, a little later). */
function pruneZones() {
  let changed = false;
  for (const [id, f] of state.zones) if (!zoneLive(f)) { state.zones.delete(id); changed = true; }
  return changed;
}

function applySnapshot(snapshot) {
  const fill = (map, items, key = (x) => x.id) => { map.clear(); for (const x of items || []) map.set(key(x), x); };
  fill(state.incidents, snapshot.incidents);
  fill(state.units, snapshot.units);
  fill(state.tasks, snapshot.tasks);
  fill(state.shelters, snapshot.shelters);
  fill(state.stock, snapshot.stock);
  fill(state.zones, (snapshot.warning_zones || []).filter(zoneLive));
  sideDirty = true;
}

const SIDE_ENTITIES = new Set(["alert", "incident", "task", "warning_zone", "shelter"]);

function applyEvent(name, data) {
  const [entity, action] = name.split(".", 2);
  if (SIDE_ENTITIES.has(entity)) sideDirty = true;
  switch (entity) {
    case "incident":
      if (ENDED_INCIDENT.has(data.properties.status)) state.incidents.delete(data.id);
      else state.incidents.set(data.id, data);
      break;
    case "unit":
      if (action === "position_reported") {
        const unit = state.units.get(data.unit_id);
        if (unit) {
          unit.geometry = { type: "Point", coordinates: [data.lon, data.lat] };
          if (data.status) unit.properties.status = data.status;
        }
      } else if (data && data.type === "Feature") {
        state.units.set(data.id, data);
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

// --- map -----------------------------------------------------------------------------
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
const map = new maplibregl.Map({
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

function addOverlays() {
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
  map.addLayer({ id: "units", type: "circle", source: "units",
    paint: { "circle-radius": 6, "circle-color": ["match", ["get", "status"], ...Object.entries(UNIT_COLORS).flat(), "#cccccc"],
      "circle-stroke-color": "#0b1322", "circle-stroke-width": 1.5 } });
  map.addLayer({ id: "proposal-staging", type: "circle", source: "proposal",
    filter: ["==", ["get", "kind"], "staging"],
    paint: { "circle-radius": 9, "circle-color": "#ffffff", "circle-stroke-color": "#7b2cbf", "circle-stroke-width": 4 } });
  map.on("click", "zones-fill", (e) => {
    if (e.features && e.features.length) openProposal(e.features[0].id);
  });
  map.on("mouseenter", "zones-fill", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "zones-fill", () => { map.getCanvas().style.cursor = ""; });
}

/** Where to draw a feature as one point: itself, or the middle of its bounding box. */
function centreOf(geometry) {
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
const labels = new Map();
function drawLabels() {
  const groups = new Map();
  for (const u of state.units.values()) {
    if (!u.geometry) continue;
    const [lon, lat] = u.geometry.coordinates;
    const key = `${lon.toFixed(4)},${lat.toFixed(4)}`;
    if (!groups.has(key)) groups.set(key, { at: [lon, lat], units: [] });
    groups.get(key).units.push(u);
  }
  const seen = new Set();
  for (const [key, g] of groups) {
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
    el.textContent = text;
    el.dataset.units = g.units.map((u) => u.properties.callsign).join(",");
    el.classList.toggle("busy", g.units.some((u) => u.properties.status !== "available"));
  }
  for (const [key, marker] of labels) if (!seen.has(key)) { marker.remove(); labels.delete(key); }
  declutter();
}

/** Hide labels that would overlap one already placed (busy units are placed first). */
function declutter() {
  // Incidents first: a callsign never hides one.
  const box = map.getContainer().getBoundingClientRect();
  const placed = [...state.incidents.values()].filter((f) => f.geometry).map((f) => {
    const p = map.project(centreOf(f.geometry));
    const x = box.left + p.x;
    const y = box.top + p.y;
    return { left: x - 13, right: x + 13, top: y - 13, bottom: y + 13 };
  });
  const busy = (m) => (m.getElement().classList.contains("busy") ? 1 : 0);
  for (const marker of [...labels.values()].sort((a, b) => busy(b) - busy(a))) {
    const el = marker.getElement();
    const r = el.getBoundingClientRect();
    const hit = placed.some((p) => r.left < p.right + 2 && r.right + 2 > p.left && r.top < p.bottom + 1 && r.bottom + 1 > p.top);
    el.classList.toggle("hidden", hit);
    if (!hit) placed.push(r);
  }
}

let drawQueued = false;
let zonesShown = "";  // the zone ids on the map, to notice one starting or ending
let sideDirty = true;  // the alert and review lists need drawing again
function redraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    if (map.getSource("units")) {
      // Features with no location (an alert area that could not be read) stay off the map.
      const fc = (features) => ({ type: "FeatureCollection", features: features.filter((f) => f.geometry) });
      map.getSource("incidents").setData(fc([...state.incidents.values()].map(asPoint)));
      map.getSource("units").setData(fc([...state.units.values()]));
      map.getSource("shelters").setData(fc([...state.shelters.values()]));
      const zones = shownZones();
      map.getSource("zones").setData(fc(zones));
      zonesShown = zones.map((f) => f.id).join();
      drawLabels();
      fitOnce();
    }
    showCounts();
    if (sideDirty) { sideDirty = false; renderSide(); }
  });
}

function fitOnce() {
  if (live.fitted || state.units.size === 0) return;
  const b = new maplibregl.LngLatBounds();
  for (const m of [state.units, state.shelters, state.incidents]) {
    for (const f of m.values()) if (f.geometry && f.geometry.type === "Point") b.extend(f.geometry.coordinates);
  }
  if (!b.isEmpty()) map.fitBounds(b, { padding: 60, duration: 0, maxZoom: 16 });
  live.fitted = true;
}

map.on("moveend", declutter);
map.on("load", () => {
  addOverlays();
  live.mapLoaded = true;
  drawProposal();
  redraw();
});

// --- side panel ----------------------------------------------------------------------
const chart = echarts.init(document.getElementById("chart"), null, { renderer: "canvas" });
window.__chart = chart;

function showCounts() {
  const c = counts();
  live.counts = c;
  const fmt = (n) => n.toLocaleString(lang);
  document.getElementById("k-incidents").textContent = fmt(c.incidents_open);
  document.getElementById("k-units").textContent = fmt(c.units_total);
  document.getElementById("k-tasks").textContent = fmt(c.tasks_active);
  document.getElementById("k-unacked").textContent = fmt(c.tasks_unacked);
  document.body.dataset.unacked = c.tasks_unacked;
  chart.setOption({
    animation: false,
    textStyle: { fontFamily: "Noto Sans CJK SC, sans-serif" },
    grid: { left: 8, right: 40, top: 6, bottom: 6, containLabel: true },
    xAxis: { type: "value", minInterval: 1, splitLine: { lineStyle: { color: "#24324f" } },
      axisLabel: { color: "#9fb0c8", fontSize: 13 } },
    yAxis: { type: "category", inverse: true, data: UNIT_STATUSES.map((s) => label("status", s)),
      axisLabel: { color: "#e6edf7", fontSize: 15 }, axisLine: { lineStyle: { color: "#3a4d70" } } },
    series: [{ type: "bar", barWidth: "62%",
      data: UNIT_STATUSES.map((s) => ({ value: c.units[s] || 0, itemStyle: { color: UNIT_COLORS[s] } })),
      label: { show: true, position: "right", color: "#e6edf7", fontSize: 15 } }],
  });
}

function describe(msg) {
  const [entity, action] = msg.event.split(".", 2);
  const d = msg.data || {};
  const p = d.properties || {};
  const what = label("entity", entity);
  const status = STRINGS[lang].status[action];
  let verb = status ? (lang === "en" ? status.toLowerCase() : status) : label("ev", action);
  let subject = "";
  // Still open and waiting for a person (a cancelled one is not waiting any more).
  const review = entity === "incident" && p.needs_review && !ENDED_INCIDENT.has(p.status)
    ? p.review_reason || "" : null;
  if (entity === "alert") {
    verb = label("alertVerb", d.msg_type);
    subject = alertTitle(alertRecord(d));
  } else if (entity === "incident") subject = `${p.title || `#${d.id}`}${p.severity ? ` · ${label("severity", p.severity)}` : ""}`;
  else if (entity === "unit") subject = d.callsign || p.callsign || `#${d.unit_id || d.id}`;
  else if (entity === "task") {
    const unit = state.units.get(d.unit_id);
    subject = `#${d.id} ${unit ? unit.properties.callsign : ""} → ${(d.incident && d.incident.properties.title) || `#${d.incident_id}`}`;
  } else subject = p.name || d.item || `#${d.id}`;
  return { what, verb, subject, entity, review };
}

function renderFeed() {
  const ol = document.getElementById("feed");
  ol.replaceChildren(...live.feed.map((item) => {
    const li = document.createElement("li");
    li.dataset.seq = item.seq;
    li.dataset.event = item.event;
    li.className = `ev-${item.event.split(".")[0]}`;
    const time = document.createElement("time");
    time.textContent = new Date(item.at).toLocaleTimeString(lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
    const text = document.createElement("span");
    if (item.resync) {
      text.textContent = t("resync");
    } else {
      const d = describe(item);
      const strong = document.createElement("b");
      strong.textContent = `${d.what}${lang === "en" ? " " : ""}${d.verb}`;
      text.append(strong, " ");
      if (d.review !== null) { text.append(reviewMark(d.review), " "); li.dataset.review = "1"; }
      text.append(d.subject);
      if (d.review) text.title = reasonText(d.review);
    }
    const seq = document.createElement("small");
    seq.textContent = `#${item.seq}`;
    li.append(time, text, seq);
    return li;
  }));
}

function pushFeed(item) {
  live.feed.unshift(item);
  if (live.feed.length > FEED_MAX) live.feed.length = FEED_MAX;
  renderFeed();
}

// --- alerts, incidents waiting for review, pre-positioning proposal ------------------
const locale = () => (lang === "en" ? "en-GB" : "zh-CN");
const capName = (c) => label("capability", c).replaceAll("_", " ");
const fmtMinutes = (s) => t("minutes")(Math.max(1, Math.round(s / 60)));
const fmtWhen = (iso) => new Date(iso).toLocaleString(locale(),
  { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

// The server writes review reasons and unit choices in English; the known ones in Chinese.
const REASONS_ZH = [
  [/^no usable location in the alert(?: \(geocodes (.*)\))?$/,
    (m) => `预警中没有可用的位置${m[1] ? `（地理编码 ${m[1]}）` : ""}，请人工定位`],
  [/^no longer named by alert (.+)$/, (m) => `预警 ${m[1]} 已不再包含此区域`],
  [/^the alert was cancelled by the sender \((.+)\) while units are assigned: decide whether to stand them down$/,
    (m) => `发布方已解除预警（${m[1]}），但已有力量出动：请决定是否撤回`],
];

function reasonText(reason) {
  if (!reason || lang === "en") return reason || "";
  for (const [re, zh] of REASONS_ZH) { const m = re.exec(reason); if (m) return zh(m); }
  return reason;
}

function whyText(why) {
  const m = /^fastest with (\S+) \((\d+) of (\d+)\): (\d+) min (\d+) s(.*)$/.exec(why || "");
  if (!m || lang === "en") return why || "";
  let out = `${capName(m[1])} ${m[2]}/${m[3]}，最快 ${m[4]} 分 ${m[5]} 秒`;
  if (m[6].includes("returning")) out += "，任务返回途中";
  if (m[6].includes("home station")) out += "，按驻地计算（未上报位置）";
  return out;
}

function reviewMark(reason) {
  const mark = el("em", "review-mark", t("needsReview"));
  if (reason) mark.title = reasonText(reason);
  return mark;
}

/** One alert as listed: the REST summary (its `result` is the intake answer) or the
 * payload of `alert.received` (the answer itself). */
function alertRecord(x) {
  const merged = { ...(x.result || {}), ...x };
  return { ...merged, id: merged.alert_id ?? merged.id, warnings: merged.warnings || [] };
}

let openAlert = null;  // the alert whose warnings are shown

function addAlert(x, fresh) {
  const a = alertRecord(x);
  const old = alerts.get(a.id);
  if (old) Object.assign(a, { severity: a.severity || old.severity, arrivedAt: old.arrivedAt, detailAsked: old.detailAsked });
  if (fresh) a.arrivedAt = Date.now();
  alerts.set(a.id, a);
  if (alerts.size > ALERTS_MAX * 3) {
    for (const id of [...alerts.keys()].sort((p, q) => p - q).slice(0, alerts.size - ALERTS_MAX)) alerts.delete(id);
  }
  sideDirty = true;
}

async function loadAlerts() {
  try {
    const body = await apiGet(`/api/alerts?limit=${ALERTS_MAX}&drill=false`, token);
    for (const x of body.alerts) addAlert(x, false);
  } catch {
    // The live topic still fills the list.
  }
  live.alertsLoaded = true;
  sideDirty = true;
  redraw();
}

/** The alert's level as intake computed it; for alerts stored before intake said so, the
 * highest among its incidents and zones, else its thread's, else asked for once. */
function alertSeverity(a) {
  if (a.severity) return a.severity;
  let best = -1;
  const see = (level) => { best = Math.max(best, SEVERITIES.indexOf(level)); };
  for (const k of ["incident_ids", "updated_incident_ids", "review_incident_ids"]) {
    for (const id of a[k] || []) if (state.incidents.has(id)) see(state.incidents.get(id).properties.severity);
  }
  for (const k of ["zone_ids", "updated_zone_ids"]) {
    for (const id of a[k] || []) if (state.zones.has(id)) see(state.zones.get(id).properties.severity);
  }
  if (best < 0) for (const b of alerts.values()) if (b.thread_id === a.thread_id && b.severity) see(b.severity);
  if (best >= 0) a.severity = SEVERITIES[best];
  else if (a.msg_type !== "Cancel" && !a.detailAsked) askSeverity(a);
  return a.severity || null;
}

async function askSeverity(a) {
  a.detailAsked = true;
  try {
    const detail = await apiGet(`/api/alerts/${a.id}`, token);
    const level = (((detail.info || [])[0] || {}).severity || "").toLowerCase();
    if (SEVERITIES.includes(level)) { a.severity = level; sideDirty = true; redraw(); }
  } catch {
    // Left uncoloured.
  }
}

function alertTitle(a) {
  if (a.headline || a.event) return a.headline || a.event;
  const first = [...alerts.values()].find((b) => b.thread_id === a.thread_id && (b.headline || b.event));
  return first ? first.headline || first.event : a.identifier;
}

function alertZones(a) {
  const ids = new Set([...(a.zone_ids || []), ...(a.updated_zone_ids || [])]);
  for (const z of state.zones.values()) if (z.properties.alert_id === a.id) ids.add(z.id);
  return [...ids].map((id) => state.zones.get(id)).filter(Boolean);
}

function alertItem(a) {
  const sev = alertSeverity(a);
  const li = el("li", "alert");
  const allClear = a.msg_type === "Cancel";
  Object.assign(li.dataset, { alertId: a.id, msgType: a.msg_type, severity: sev || "" });
  li.tabIndex = 0;
  li.setAttribute("role", "button");
  li.setAttribute("aria-expanded", String(openAlert === a.id));
  li.style.setProperty("--sev", allClear ? "#2e7d4f" : sev ? SEVERITY_COLORS[sev] : "#5f7392");
  if (sev) li.style.setProperty("--sev-text", SEVERITY_TEXT[sev]);
  if (a.arrivedAt && Date.now() - a.arrivedAt < 1500) li.classList.add("fresh");
  const top = el("div", "a-top");
  top.append(el("span", `tag msg-${a.msg_type}`, label("msgType", a.msg_type)));
  if (a.status !== "Actual") top.append(el("span", "tag", label("alertStatus", a.status)));
  const title = el("b", "a-title", alertTitle(a));
  title.title = title.textContent;
  top.append(title);
  if (a.warnings.length) {
    const badge = el("span", "badge", `⚠ ${a.warnings.length}`);
    badge.dataset.count = a.warnings.length;
    badge.title = t("warningsCount")(a.warnings.length);
    top.append(badge);
  }
  const meta = el("div", "a-meta");
  const when = el("time", null, fmtWhen(a.sent));
  when.dateTime = a.sent;
  meta.append(when, el("span", "sender", a.sender));
  if (sev && !allClear) meta.append(el("span", "sev", label("severity", sev)));
  li.append(top, meta);
  if (openAlert === a.id) li.append(alertDetail(a));
  return li;
}

function alertDetail(a) {
  const box = el("div", "a-detail");
  const done = Object.keys(STRINGS[lang].outcome).filter((k) => (a[k] || []).length)
    .map((k) => `${label("outcome", k)} ${a[k].length}`);
  if (done.length) box.append(el("p", "a-outcome", done.join(" · ")));
  box.append(el("h3", null, `${t("warnings")} (${a.warnings.length})`));
  if (a.warnings.length) {
    const ul = el("ul", "a-warnings");
    ul.append(...a.warnings.map((w) => {
      const item = el("li");
      item.append(el("code", null, w.field), el("span", null, w.message));
      return item;
    }));
    box.append(ul);
  } else {
    box.append(el("p", "muted", t("noWarnings")));
  }
  for (const z of alertZones(a)) {
    const button = el("button", "zone-btn", `${t("proposal")} · ${z.properties.name}`);
    button.type = "button";
    button.dataset.zoneId = z.id;
    box.append(button);
  }
  return box;
}

function renderAlerts() {
  const list = [...alerts.values()].sort((a, b) => b.id - a.id).slice(0, ALERTS_MAX);
  document.getElementById("alerts-count").textContent = list.length ? String(list.length) : "";
  document.getElementById("alerts").replaceChildren(
    ...(list.length ? list.map(alertItem) : [el("li", "empty", t("noAlerts"))]));
}

let openReview = null;  // the incident whose review reason is shown in full

function renderReview() {
  const items = [...state.incidents.values()].filter((f) => f.properties.needs_review || !f.geometry)
    .sort((a, b) => b.id - a.id);
  document.getElementById("review-count").textContent = items.length ? String(items.length) : "";
  document.getElementById("review").replaceChildren(...(items.length ? items.map((f) => {
    const p = f.properties;
    const li = el("li", "review-item");
    li.dataset.incidentId = f.id;
    li.tabIndex = 0;
    li.setAttribute("role", "button");
    li.classList.toggle("open", openReview === f.id);
    li.style.setProperty("--sev", SEVERITY_COLORS[p.severity] || "#5f7392");
    const top = el("div", "r-top");
    top.append(reviewMark(p.review_reason));
    if (!f.geometry) top.append(el("span", "tag noloc", t("noLocation")));
    const title = el("b", "r-title", p.title || `#${f.id}`);
    title.title = title.textContent;
    top.append(title);
    if (p.address) top.append(el("small", "r-addr", p.address));
    li.append(top, el("p", "r-reason", reasonText(p.review_reason)));
    return li;
  }) : [el("li", "empty", t("noReview"))]));
}

// The proposal: fetched on demand, drawn until closed or its zone ends. It moves nothing.
let proposal = null;  // { zoneId, body, error }
let stagingMarker = null;

async function openProposal(zoneId) {
  if (!state.zones.has(zoneId)) return;
  proposal = { zoneId, body: null, error: null };
  live.proposal = { zoneId, loading: true };
  renderProposal();
  drawProposal();
  let res = null;
  let body = {};
  try {
    res = await fetch(`/api/warning-zones/${zoneId}/suggestions`, { headers: { Authorization: `Bearer ${token}` } });
    body = await res.json();
  } catch {
    // Offline or not JSON: said on the card.
  }
  if (!proposal || proposal.zoneId !== zoneId) return;  // closed or replaced meanwhile
  if (res && res.ok) proposal.body = body;
  else proposal.error = body.message || (res ? `HTTP ${res.status}` : label("conn", "offline"));
  live.proposal = { zoneId, units: body.units ? body.units.length : 0,
    shelters: body.shelters ? body.shelters.length : 0, error: proposal.error };
  renderProposal();
  drawProposal();
  fitProposal();
}

function closeProposal() {
  proposal = null;
  live.proposal = null;
  renderProposal();
  drawProposal();
}

function renderProposal() {
  const card = document.getElementById("proposal");
  card.hidden = !proposal;
  if (!proposal) { card.replaceChildren(); delete card.dataset.zoneId; return; }
  card.dataset.zoneId = proposal.zoneId;
  const head = el("div", "p-head");
  const close = el("button", "close", "×");
  close.type = "button";
  close.title = t("close");
  close.setAttribute("aria-label", t("close"));
  close.addEventListener("click", closeProposal);
  head.append(el("h2", null, t("proposal")), close);
  const note = el("p", "not-order");
  note.append(el("b", null, t("notOrder")), el("span", null, t("notOrderLong")));
  const parts = [head, note];
  const zone = state.zones.get(proposal.zoneId);
  if (zone) {
    const zp = zone.properties;
    const line = el("p", "p-zone");
    line.style.setProperty("--sev", SEVERITY_COLORS[zp.severity] || "#ff8c42");
    line.style.setProperty("--sev-text", SEVERITY_TEXT[zp.severity] || "#ffbe66");
    line.append(el("i"), el("b", null, zp.name), el("span", "sev", label("severity", zp.severity)));
    if (zp.blocks_roads) line.append(el("span", "tag closed", t("blocksRoads")));
    parts.push(line);
  }
  if (proposal.body) parts.push(...proposalBody(proposal.body));
  else if (proposal.error) parts.push(el("p", "error", `${t("failed")}: ${proposal.error}`));
  else parts.push(el("p", "muted", t("loading")));
  card.replaceChildren(...parts);
}

function proposalBody(b) {
  const [lon, lat] = b.staging.coordinates;
  const staging = el("p", "p-staging");
  staging.append(el("i"), el("b", null, t("staging")), el("span", null, `${lat.toFixed(5)}, ${lon.toFixed(5)}`),
    el("small", null, t("stagingNote")));
  const units = el("ol", "p-units");
  units.append(...b.units.map((u, i) => {
    const li = el("li");
    li.dataset.unitId = u.unit_id;
    const swatch = el("i", "swatch");
    swatch.style.background = ROUTE_COLORS[i % ROUTE_COLORS.length];
    li.append(swatch, el("b", null, u.callsign), el("span", "eta", fmtMinutes(u.eta_s)), el("small", "why", whyText(u.why)));
    return li;
  }));
  if (!b.units.length) units.append(el("li", "empty", t("noUnits")));
  const out = [staging, el("h3", null, `${t("suggestedUnits")} · ${b.units.length}`), units];
  if (b.unmet && b.unmet.length) {
    const short = b.unmet.map((s) => `${capName(s.capability)} ×${s.missing}`).join(lang === "en" ? ", " : "、");
    out.push(el("p", "unmet", `${t("unmet")}: ${short}`));
  }
  const shelters = el("ol", "p-shelters");
  shelters.append(...b.shelters.map((s) => {
    const li = el("li");
    li.dataset.shelterId = s.shelter_id;
    li.append(el("b", null, s.name), el("span", "room", `${t("room")} ${s.room.toLocaleString(lang)}`),
      el("span", "eta", fmtMinutes(s.eta_s)));
    const extra = [s.accessible && t("accessible"), s.pets_allowed && t("pets")].filter(Boolean);
    if (extra.length) li.append(el("small", null, extra.join(" · ")));
    return li;
  }));
  if (!b.shelters.length) shelters.append(el("li", "empty", t("noShelters")));
  out.push(el("h3", null, `${t("suggestedShelters")} · ${b.shelters.length}`), shelters);
  const when = new Date(b.computed_at).toLocaleTimeString(locale(), { hour12: false });
  out.push(el("p", "p-when", `${t("computedAt")} ${when}`));
  return out;
}

function proposalFeatures(b) {
  // Units from one station share their road: side by side (a few pixels apart), not on top.
  const routed = b.units.filter((u) => u.route);
  const features = routed.map((u, i) => ({ type: "Feature", geometry: u.route,
    properties: { kind: "route", unit_id: u.unit_id, offset: (i - (routed.length - 1) / 2) * 4,
      color: ROUTE_COLORS[b.units.indexOf(u) % ROUTE_COLORS.length] } }));
  for (const s of b.shelters) {
    const f = state.shelters.get(s.shelter_id);
    if (f && f.geometry) features.push({ type: "Feature", geometry: f.geometry, properties: { kind: "shelter", shelter_id: s.shelter_id } });
  }
  features.push({ type: "Feature", geometry: b.staging, properties: { kind: "staging" } });
  return features;
}

function drawProposal() {
  if (!map.getSource("proposal")) return;
  const b = proposal && proposal.body;
  map.getSource("proposal").setData({ type: "FeatureCollection", features: b ? proposalFeatures(b) : [] });
  map.setFilter("zones-selected", ["==", ["id"], proposal ? proposal.zoneId : -1]);
  if (!b) { if (stagingMarker) stagingMarker.remove(); return; }
  if (!stagingMarker) {
    stagingMarker = new maplibregl.Marker({ element: el("div", "staging-label"), anchor: "left", offset: [14, 0] });
  }
  stagingMarker.getElement().textContent = label("legend", "staging");
  stagingMarker.setLngLat(b.staging.coordinates).addTo(map);
}

function fitProposal() {
  const b = proposal && proposal.body;
  if (!b) return;
  const bounds = new maplibregl.LngLatBounds();
  const walk = (c) => { if (typeof c[0] === "number") bounds.extend(c); else c.forEach(walk); };
  const zone = state.zones.get(proposal.zoneId);
  if (zone) walk(zone.geometry.coordinates);
  for (const f of proposalFeatures(b)) walk(f.geometry.coordinates);
  const right = document.getElementById("proposal").offsetWidth + 40;
  map.fitBounds(bounds, { padding: { top: 60, bottom: 50, left: 60, right }, maxZoom: 16, duration: 500 });
}

function renderSide() {
  renderAlerts();
  renderReview();
  if (proposal && !state.zones.has(proposal.zoneId)) closeProposal();  // the zone ended
}

function toggleItem(ev) {
  if (ev.type === "keydown") {
    if (ev.target.closest("button") || (ev.key !== "Enter" && ev.key !== " ")) return;
    ev.preventDefault();
  }
  const button = ev.target.closest("button.zone-btn");
  if (button) { openProposal(Number(button.dataset.zoneId)); return; }
  if (ev.target.closest(".a-detail")) return;
  const alert = ev.target.closest("li.alert");
  if (alert) {
    const id = Number(alert.dataset.alertId);
    openAlert = openAlert === id ? null : id;
    renderAlerts();
    return;
  }
  const item = ev.target.closest("li.review-item");
  if (!item) return;
  const id = Number(item.dataset.incidentId);
  openReview = openReview === id ? null : id;
  renderReview();
  const f = state.incidents.get(id);
  if (openReview === id && f && f.geometry) map.easeTo({ center: centreOf(f.geometry), duration: 500 });
}

for (const id of ["alerts", "review"]) {
  document.getElementById(id).addEventListener("click", toggleItem);
  document.getElementById(id).addEventListener("keydown", toggleItem);
}
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && proposal) closeProposal(); });

function showConn() {
  const el = document.getElementById("conn");
  el.dataset.state = live.state;
  document.getElementById("conn-text").textContent = label("conn", live.state);
  const seq = live.topics.situation;
  document.getElementById("conn-seq").textContent = Number.isInteger(seq) ? `seq ${seq}` : "";
}

function legend() {
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

function applyLang() {
  document.documentElement.lang = lang;
  document.title = `${t("screen")} · ${t("title")}`;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.getElementById("lang").textContent = t("other");
  legend();
  showConn();
  renderFeed();
  showCounts();
  renderSide();
  renderProposal();
  drawProposal();
}

// --- connection ----------------------------------------------------------------------
let client = null;

function start() {
  document.getElementById("login-overlay").hidden = true;
  client = new LiveClient({
    token: () => token,
    topics: ["situation"],
    onResync: (topic, seq, snapshot) => {
      applySnapshot(snapshot);
      loadAlerts();  // alerts are not in the snapshot
      live.topics[topic] = seq;
      pushFeed({ seq, at: new Date().toISOString(), event: "resync", resync: true });
      redraw();
      showConn();
    },
    onEvent: (msg) => {
      applyEvent(msg.event, msg.data);
      live.topics[msg.topic] = msg.seq;
      live.events += 1;
      pushFeed({ seq: msg.seq, at: msg.at, event: msg.event, data: msg.data });
      redraw();
      showConn();
    },
    onState: (s) => { live.state = s; showConn(); },
    onAuthFailed: () => {
      token = null;
      sessionStorage.removeItem("token");
      document.getElementById("login-overlay").hidden = false;
    },
  });
  client.connect();
}

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const error = document.getElementById("login-error");
  token = await login(form.get("username"), form.get("password"));
  if (!token) { error.dataset.i18n = "badLogin"; error.textContent = t("badLogin"); return; }
  delete error.dataset.i18n;
  error.textContent = "";
  sessionStorage.setItem("token", token);
  start();
});

document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("lang", lang);
  applyLang();
});

function tick() {
  document.getElementById("clock").textContent = new Date().toLocaleString(lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
  // A zone whose time is up (or has come) leaves (or joins) the map without waiting for the server.
  const ended = pruneZones();
  if (ended || (live.mapLoaded && shownZones().map((f) => f.id).join() !== zonesShown)) {
    sideDirty = true;
    redraw();
  }
}
setInterval(tick, 1000);
tick();
window.addEventListener("resize", () => chart.resize());
applyLang();

if (token) {
  apiGet("/api/me", token).then(start, () => {
    token = null;
    sessionStorage.removeItem("token");
    document.getElementById("login-overlay").hidden = false;
  });
} else {
  document.getElementById("login-overlay").hidden = false;
}
