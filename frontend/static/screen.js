// Big-screen live situation map: MapLibre over our own road tiles, the `situation` topic
// applied in seq order, counts, an ECharts KPI chart and an event feed.
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
    legend: { incident: "事件", unit: "救援力量", shelter: "避难场所", zone: "预警区域" },
    status: { reported: "已报告", verified: "已核实", dispatched: "已派遣", on_scene: "到场处置",
      resolved: "已处置", closed: "已关闭", cancelled: "已取消", available: "待命",
      assigned: "已分配", en_route: "途中", returning: "返回中", out_of_service: "停用",
      accepted: "已接受", done: "已完成", acknowledged: "已确认", open: "开放" },
    severity: { minor: "轻微", moderate: "中等", severe: "严重", extreme: "特别严重" },
    ev: { created: "新建", updated: "更新", status_changed: "状态变更", position_reported: "位置上报",
      deleted: "删除", acknowledged: "已确认" },
    entity: { incident: "事件", unit: "救援力量", task: "任务", shelter: "避难场所",
      stock: "物资", warning_zone: "预警区域" },
    resync: "同步全部态势",
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
    legend: { incident: "Incident", unit: "Unit", shelter: "Shelter", zone: "Warning zone" },
    status: { reported: "Reported", verified: "Verified", dispatched: "Dispatched",
      on_scene: "On scene", resolved: "Resolved", closed: "Closed", cancelled: "Cancelled",
      available: "Available", assigned: "Assigned", en_route: "En route",
      returning: "Returning", out_of_service: "Out of service", accepted: "Accepted",
      done: "Done", acknowledged: "Acknowledged", open: "Open" },
    severity: { minor: "Minor", moderate: "Moderate", severe: "Severe", extreme: "Extreme" },
    ev: { created: "created", updated: "updated", status_changed: "status changed",
      position_reported: "position", deleted: "deleted", acknowledged: "acknowledged" },
    entity: { incident: "Incident", unit: "Unit", task: "Task", shelter: "Shelter",
      stock: "Stock", warning_zone: "Warning zone" },
    resync: "Full situation loaded",
  },
};

const UNIT_STATUSES = ["available", "assigned", "en_route", "on_scene", "returning", "out_of_service"];
const UNIT_COLORS = { available: "#4cd38a", assigned: "#ffd23f", en_route: "#ff9f1c",
  on_scene: "#ff4d6d", returning: "#5bc0eb", out_of_service: "#7d8597" };
const SEVERITY_COLORS = { minor: "#f9e076", moderate: "#ffae42", severe: "#ff5a36", extreme: "#d00000" };
const OPEN_INCIDENT = new Set(["reported", "verified", "dispatched", "on_scene"]);
const ACTIVE_TASK = new Set(["assigned", "accepted", "en_route", "on_scene"]);
const ENDED_INCIDENT = new Set(["closed", "cancelled"]);
const FEED_MAX = 60;
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
const live = {
  topics: {}, state: "idle", counts: {}, events: 0, mapLoaded: false, fitted: false,
  feed: [],
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
    shelters: state.shelters.size, zones: state.zones.size,
  };
}

function zoneActive(f) {
  const p = f.properties;
  const now = Date.now();
  return p.status === "active" && (!p.starts_at || Date.parse(p.starts_at) <= now)
    && (!p.ends_at || Date.parse(p.ends_at) > now);
}

function applySnapshot(snapshot) {
  const fill = (map, items, key = (x) => x.id) => { map.clear(); for (const x of items || []) map.set(key(x), x); };
  fill(state.incidents, snapshot.incidents);
  fill(state.units, snapshot.units);
  fill(state.tasks, snapshot.tasks);
  fill(state.shelters, snapshot.shelters);
  fill(state.stock, snapshot.stock);
  fill(state.zones, (snapshot.warning_zones || []).filter(zoneActive));
}

function applyEvent(name, data) {
  const [entity, action] = name.split(".", 2);
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
        if (zoneActive(data) && action !== "deleted") state.zones.set(data.id, data);
        else state.zones.delete(data.id);
      }
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

function addOverlays() {
  for (const id of ["zones", "shelters", "incidents", "units"]) map.addSource(id, { type: "geojson", data: empty() });
  map.addLayer({ id: "zones-fill", type: "fill", source: "zones",
    paint: { "fill-color": ["match", ["get", "severity"], "extreme", "#d00000", "severe", "#ff5a36", "moderate", "#ffae42", "#f9e076"], "fill-opacity": 0.22 } });
  map.addLayer({ id: "zones-line", type: "line", source: "zones",
    paint: { "line-color": "#ff8c42", "line-width": 2, "line-dasharray": [2, 1] } });
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
}

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
  const placed = [...state.incidents.values()].filter((f) => f.geometry && f.geometry.type === "Point").map((f) => {
    const p = map.project(f.geometry.coordinates);
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
function redraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    if (map.getSource("units")) {
      const fc = (m) => ({ type: "FeatureCollection", features: [...m.values()].filter((f) => f.geometry) });
      map.getSource("incidents").setData(fc(state.incidents));
      map.getSource("units").setData(fc(state.units));
      map.getSource("shelters").setData(fc(state.shelters));
      map.getSource("zones").setData(fc(state.zones));
      drawLabels();
      fitOnce();
    }
    showCounts();
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
  const verb = status ? (lang === "en" ? status.toLowerCase() : status) : label("ev", action);
  let subject = "";
  if (entity === "incident") subject = `${p.title || `#${d.id}`}${p.severity ? ` · ${label("severity", p.severity)}` : ""}`;
  else if (entity === "unit") subject = d.callsign || p.callsign || `#${d.unit_id || d.id}`;
  else if (entity === "task") {
    const unit = state.units.get(d.unit_id);
    subject = `#${d.id} ${unit ? unit.properties.callsign : ""} → ${(d.incident && d.incident.properties.title) || `#${d.incident_id}`}`;
  } else subject = p.name || d.item || `#${d.id}`;
  return { what, verb, subject, entity };
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
      text.append(strong, ` ${d.subject}`);
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
  ];
  document.getElementById("legend").replaceChildren(...rows.map(([color, text, cls]) => {
    const span = document.createElement("span");
    const i = document.createElement("i");
    i.className = cls;
    i.style.background = color;
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
