// Replay of a finished simulation run, what it draws besides the units (which go into the
// console's own `units` source, so they keep its colours by status and its callsign
// labels): the stations, the legs being driven, the incidents (a ring: waiting, then met or
// late once the first unit is there; faded once every unit has cleared), the closures in
// force; the running figures and the newest incidents in the side columns.
import { addStrings, label, lang, t } from "/static/screen_i18n.js";
import { SEVERITY_COLORS, UNIT_COLORS, el } from "/static/screen_state.js";
import { clock, typeName } from "/static/screen_queue.js";

addStrings({
  "zh-CN": {
    replay: { play: "播放", pause: "暂停", speed: "倍速", policy: "调度策略", seek: "时间轴", clock: "仿真时间",
      loading: "正在加载回放…", notFinished: "仿真尚未完成，结束后可回放", progress: "进度",
      policyName: { nearest: "就近派遣", plan: "统筹规划", move_up: "动态补位" },
      stats: "回放统计", within: "处置及时率（截至当前）", incidents: "已发生事件", waiting: "等待到场",
      mean: "平均响应", busy: "出动力量", log: "回放事件", noneYet: "尚无事件",
      look: { waiting: "等待", met: "达标", late: "超时", answered: "已到场" }, station: "站点" },
  },
  en: {
    replay: { play: "Play", pause: "Pause", speed: "Speed", policy: "Policy", seek: "Timeline", clock: "Simulated time",
      loading: "Loading the replay…", notFinished: "The run has not finished; replay once it has", progress: "progress",
      policyName: { nearest: "Nearest idle", plan: "Planned (OR-Tools)", move_up: "Move-up" },
      stats: "Replay", within: "Within target so far", incidents: "Incidents so far", waiting: "Waiting for a unit",
      mean: "Mean response", busy: "Units out", log: "Replay incidents", noneYet: "No incident yet",
      look: { waiting: "waiting", met: "met", late: "late", answered: "answered" }, station: "Station" },
  },
});

export const LOOK = { waiting: "#ffd23f", met: "#4cd38a", late: "#ff3b3b", answered: "#9fb0c8" };
const LEG_COLORS = { en_route: "#ff9f1c", returning: "#5bc0eb" };
const LOG_MAX = 40;
const empty = () => ({ type: "FeatureCollection", features: [] });
const point = (c) => ({ type: "Point", coordinates: c });

/** Seconds since the run's start as the run's own wall time ("2026-07-01 09:23:45", in the
 * start's UTC offset), or T+h:mm:ss when the start is unknown. */
export function simTime(start, s, withDate = true) {
  const base = Date.parse(start || "");
  if (!Number.isFinite(base)) return `T+${clock(s)}`;
  const m = /([+-])(\d\d):?(\d\d)$/.exec(start);
  const offsetMin = m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
  const iso = new Date(base + Math.floor(s) * 1000 + offsetMin * 60_000).toISOString();
  return withDate ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : iso.slice(11, 19);
}

/** A station: a small square, drawn once as an image. */
function stationImage(size = 18) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const g = canvas.getContext("2d");
  g.fillStyle = "#22314f";
  g.strokeStyle = "#c9d6ea";
  g.lineWidth = 2;
  g.fillRect(2, 2, size - 4, size - 4);
  g.strokeRect(2, 2, size - 4, size - 4);
  return g.getImageData(0, 0, size, size);
}

/** The replay's sources and layers, under the console's units. */
export function addReplayLayers(map) {
  for (const id of ["replay-closures", "replay-legs", "replay-stations", "replay-incidents"]) {
    map.addSource(id, { type: "geojson", data: empty() });
  }
  map.addImage("replay-station", stationImage());
  const below = map.getLayer("units") ? "units" : undefined;
  const look = ["match", ["get", "state"], ...Object.entries(LOOK).flat(), "#9fb0c8"];
  const done = ["==", ["get", "done"], true];
  map.addLayer({ id: "replay-closures", type: "fill", source: "replay-closures",
    paint: map.hasImage("hatch-red") ? { "fill-pattern": "hatch-red" } : { "fill-color": "#ff3b3b", "fill-opacity": 0.2 } }, below);
  map.addLayer({ id: "replay-closures-line", type: "line", source: "replay-closures",
    paint: { "line-color": "#ff3b3b", "line-width": 3 } }, below);
  map.addLayer({ id: "replay-legs", type: "line", source: "replay-legs", layout: { "line-cap": "round" },
    paint: { "line-color": ["get", "color"], "line-width": 2.5, "line-dasharray": [2, 1.5], "line-opacity": 0.8 } }, below);
  map.addLayer({ id: "replay-stations", type: "symbol", source: "replay-stations",
    layout: { "icon-image": "replay-station", "icon-allow-overlap": true, "icon-ignore-placement": true } }, below);
  map.addLayer({ id: "replay-incidents-halo", type: "circle", source: "replay-incidents",
    filter: ["==", ["get", "state"], "waiting"],
    paint: { "circle-radius": 20, "circle-color": LOOK.waiting, "circle-opacity": 0.3, "circle-blur": 0.7 } }, below);
  map.addLayer({ id: "replay-incidents", type: "circle", source: "replay-incidents",
    paint: { "circle-radius": ["case", done, 6, 10], "circle-color": look, "circle-opacity": ["case", done, 0.18, 0.3],
      "circle-stroke-color": look, "circle-stroke-width": ["case", done, 2, 3.5],
      "circle-stroke-opacity": ["case", done, 0.5, 1] } }, below);
}

export function drawStations(map, tl) {
  const features = tl.stations.filter((s) => s.at).map((s) => ({ type: "Feature", id: s.index,
    geometry: point(s.at), properties: { name: s.name } }));
  map.getSource("replay-stations").setData({ type: "FeatureCollection", features });
}

export function drawIncidents(map, shown) {
  const features = shown.map(({ inc, state, done }) => ({ type: "Feature", id: inc.id,
    geometry: point([inc.lon, inc.lat]), properties: { state, done, type: inc.type, severity: inc.severity } }));
  map.getSource("replay-incidents").setData({ type: "FeatureCollection", features });
}

/** The legs being driven now, from where each began to where it ends. */
export function drawLegs(map, tl) {
  const features = [];
  for (const u of tl.units.values()) {
    if (!tl.moving(u)) continue;
    features.push({ type: "Feature", id: u.id, geometry: { type: "LineString", coordinates: [u.from, u.to] },
      properties: { color: LEG_COLORS[u.status] || "#9fb0c8" } });
  }
  map.getSource("replay-legs").setData({ type: "FeatureCollection", features });
  return features.length;
}

export function drawClosures(map, tl) {
  const features = [...tl.closureActive].map((k) => tl.closures[k]).filter((c) => c && c.polygon)
    .map((c, i) => ({ type: "Feature", id: i, geometry: c.polygon, properties: { name: c.name || "" } }));
  map.getSource("replay-closures").setData({ type: "FeatureCollection", features });
}

const pct = (x) => (x === null ? "–" : `${Math.round(x * 100)}%`);
const num = (n) => n.toLocaleString(lang);

/** The running figures: 处置及时率 so far, incidents so far, waiting, mean response, units out. */
export function renderStats(box, s) {
  const r = t("replay");
  const big = el("div", "rs-big");
  const share = el("b", null, pct(s.withinShare));
  share.setAttribute("data-testid", "replay-within");
  big.append(share, el("span", null, r.within), el("small", null, `${num(s.met)} / ${num(s.met + s.late)}`));
  const grid = el("dl", "rs-grid");
  const fact = (name, value, testid) => {
    const dd = el("dd", null, value);
    if (testid) dd.setAttribute("data-testid", testid);
    grid.append(el("dt", null, name), dd);
  };
  fact(r.incidents, `${num(s.called)} / ${num(s.total)}`, "replay-count");
  fact(r.waiting, num(s.waiting));
  fact(r.mean, s.meanResponse === null ? "–" : clock(s.meanResponse));
  fact(r.busy, `${num(s.busy)} / ${num(s.units)}`);
  const legend = el("div", "legend rs-legend");
  for (const [key, color] of Object.entries(LOOK)) {
    if (key === "answered") continue;
    const i = el("i", "ring");
    i.style.borderColor = color;
    const span = el("span");
    span.append(i, r.look[key]);
    legend.append(span);
  }
  const st = el("span");
  st.append(el("i", "station"), r.station);
  legend.append(st);
  for (const status of ["available", "en_route", "on_scene", "returning"]) {
    const i = el("i", "dot");
    i.style.background = UNIT_COLORS[status];
    const span = el("span");
    span.append(i, label("status", status));
    legend.append(span);
  }
  box.replaceChildren(el("h2", null, r.stats), big, grid, legend);
}

/** The newest incidents in (LOG_MAX), newest first, each with its verdict. */
export function renderLog(box, shown, start) {
  const r = t("replay");
  const ol = el("ol", "rl-list");
  for (let k = shown.length - 1; k >= 0 && k >= shown.length - LOG_MAX; k -= 1) {
    const { inc, state } = shown[k];
    const li = el("li", `rl-item rl-${state}`);
    li.dataset.incidentId = inc.id;
    li.dataset.state = state;
    li.style.setProperty("--sev", SEVERITY_COLORS[inc.severity] || "#ffae42");
    const verdict = state === "waiting" ? r.look.waiting
      : `${r.look[state] || ""} ${Number.isFinite(inc.response_s) ? clock(inc.response_s) : ""}`.trim();
    li.append(el("time", null, simTime(start, inc.t, false)),
      el("span", "rl-what", `${typeName(inc.type)} · ${label("severity", inc.severity)}`),
      el("b", "rl-verdict", verdict));
    ol.append(li);
  }
  if (!shown.length) ol.append(el("li", "empty", r.noneYet));
  const head = el("h2", null, r.log);
  head.append(" ", el("small", null, num(shown.length)));
  box.replaceChildren(head, ol);
}
