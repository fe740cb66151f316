// Big screen, console: the incident drawer's recommendation. Ranked units with ETA bars, what
// each fills and why, units left out, unmet plan lines, a toggle per unit, and the
// recommended routes on the map (one colour per unit, the incident ringed). The drawer
// (screen_drawer.js) owns its state object and hands it in; this module keeps only the map.
import { addStrings, capName, label, lang, t, whyText } from "/static/screen_i18n.js";
import { el } from "/static/screen_state.js";
import { clock } from "/static/screen_queue.js";

const ROUTE_COLORS = ["#4dd0e1", "#ffd166", "#f48fb1", "#aed581", "#b39ddb", "#ff9e80", "#80cbc4", "#e6ee9c"];

addStrings({
  "zh-CN": {
    dRecommendation: "推荐力量", dRecLoading: "正在计算推荐…", dNoRec: "无可用力量",
    dStandby: "备选", dFills: "承担", dExcluded: "未纳入", dUnmet: "缺口", dPlan: "预案",
    dNoPlan: "无预案：推荐最快到达的力量",
    dReinforce: (n) => `已派遣 ${n} 支力量，推荐仅补足预案缺口；增援请手动勾选`,
    dReason: { busy: "执行任务中", out_of_service: "停用", lacks_capability: "能力不符",
      position_stale: "位置过旧", no_position: "无位置", unreachable: "道路不可达", inside_zone: "位于预警区内" },
    dKm: (m) => (m >= 1000 ? `${(m / 1000).toFixed(1)} 公里` : `${Math.round(m)} 米`),
  },
  en: {
    dRecommendation: "Recommended units", dRecLoading: "Working out the recommendation…",
    dNoRec: "No unit available", dStandby: "standby", dFills: "fills", dExcluded: "Left out",
    dUnmet: "Short of", dPlan: "Plan", dNoPlan: "No plan: the fastest unit is recommended",
    dReinforce: (n) => `${n} unit${n === 1 ? "" : "s"} already sent: only what the plan still lacks is recommended; check reinforcements by hand`,
    dReason: { busy: "on a task", out_of_service: "out of service", lacks_capability: "lacks capability",
      position_stale: "position too old", no_position: "no position", unreachable: "unreachable by road",
      inside_zone: "inside the warning zone" },
    dKm: (m) => (m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`),
  },
});

let mapRef = null;

/** Takes the server's recommendation into the drawer's state: what is checked, which routes. */
export function applyRecommendation(cur, rec) {
  cur.rec = rec;
  cur.recError = null;
  // The server counts the units already sent against the plan: what it still recommends
  // is what is missing, checked; standby units are reinforcements, checked by hand.
  const checked = new Map();
  for (const r of cur.rec.recommendations) {
    checked.set(r.unit_id, cur.checked.has(r.unit_id) ? cur.checked.get(r.unit_id) : r.recommended);
  }
  cur.checked = checked;
  let i = 0;
  for (const r of cur.rec.recommendations) {
    if (!r.route) continue;
    const old = cur.routes.get(r.unit_id);
    cur.routes.set(r.unit_id, { route: r.route, callsign: r.callsign, dispatched: old ? old.dispatched : false,
      color: old ? old.color : ROUTE_COLORS[i % ROUTE_COLORS.length] });
    i += 1;
  }
  // Routes of units neither recommended now nor dispatched from here are dropped.
  const listed = new Set(cur.rec.recommendations.map((r) => r.unit_id));
  for (const [uid, r] of cur.routes) if (!r.dispatched && !listed.has(uid)) cur.routes.delete(uid);
}

export function checkedIds(cur) {
  if (!cur || !cur.rec) return [];
  return cur.rec.recommendations.filter((r) => cur.checked.get(r.unit_id)).map((r) => r.unit_id);
}

// --- rendering ---------------------------------------------------------------------------
/** Draws the recommendation into `slot`; `sent` counts the active tasks, `onToggle(unitId, on)`. */
export function renderRecommendation(slot, cur, sent, onToggle) {
  const parts = [el("h3", null, t("dRecommendation"))];
  const rec = cur.rec;
  if (!rec) {
    parts.push(el("p", cur.recError ? "error" : "muted", cur.recError ? `${t("dFailed")}: ${cur.recError}` : t("dRecLoading")));
    slot.replaceChildren(...parts);
    return;
  }
  if (cur.recLoading) slot.classList.add("refreshing"); else slot.classList.remove("refreshing");
  if (!rec.response_plan) parts.push(el("p", "muted", t("dNoPlan")));
  if (sent) parts.push(el("p", "d-reinforce", t("dReinforce")(sent)));
  const list = el("ol", "d-recs");
  const maxEta = Math.max(60, ...rec.recommendations.map((r) => r.eta_s));
  for (const r of rec.recommendations) list.append(recItem(cur, r, maxEta, onToggle));
  if (!rec.recommendations.length) list.append(el("li", "empty", t("dNoRec")));
  parts.push(list);
  if (rec.unmet.length) {
    const unmet = el("p", "d-unmet");
    unmet.setAttribute("data-testid", "recommendation-unmet");
    unmet.append(el("b", null, `${t("dUnmet")}: `), rec.unmet.map((u) => `${capName(u.capability)} ×${u.missing}`).join("，"));
    parts.push(unmet);
  }
  if (rec.excluded.length || Object.keys(rec.excluded_counts || {}).length) {
    const ex = el("div", "d-excluded");
    ex.append(el("b", null, `${t("dExcluded")}: `));
    const shown = rec.excluded.slice(0, 12).map((x) => {
      const s = el("span", "d-ex", `${x.callsign} · ${label("dReason", x.reason)}`);
      s.title = x.why;
      s.dataset.unitId = x.unit_id;
      s.dataset.reason = x.reason;
      return s;
    });
    ex.append(...shown);
    const counted = Object.entries(rec.excluded_counts || {}).filter(([reason]) => reason === "lacks_capability");
    for (const [reason, count] of counted) ex.append(el("span", "d-ex muted", `${label("dReason", reason)} ×${count}`));
    parts.push(ex);
  }
  slot.replaceChildren(...parts);
}

function recItem(cur, r, maxEta, onToggle) {
  const li = el("li", `recommendation${r.recommended ? "" : " standby"}`);
  li.setAttribute("data-testid", "recommendation");
  li.dataset.unitId = r.unit_id;
  li.dataset.recommended = r.recommended;
  const box_ = el("input");
  box_.type = "checkbox";
  box_.checked = !!cur.checked.get(r.unit_id);
  box_.setAttribute("data-testid", "recommendation-toggle");
  box_.setAttribute("aria-label", r.callsign);
  box_.addEventListener("change", () => onToggle(r.unit_id, box_.checked));
  const route = cur.routes.get(r.unit_id);
  const swatch = el("i", "swatch");
  if (route) swatch.style.background = route.color;
  const name = el("b", "callsign", r.callsign);
  const fills = el("span", r.recommended ? "fills" : "fills standby",
    r.recommended && r.fills ? capName(r.fills) : t("dStandby"));
  const bar = el("span", "eta-bar");
  const fill = el("i");
  fill.style.width = `${Math.max(3, (100 * r.eta_s) / maxEta).toFixed(1)}%`;
  if (route) fill.style.background = route.color;
  bar.append(fill);
  const eta = el("span", "eta", clock(r.eta_s));
  const dist = el("span", "dist", t("dKm")(r.distance_m));
  const why = el("small", "why", recWhy(r.why));
  why.title = r.why;
  li.title = recWhy(r.why);
  const label_ = el("label", "pick");
  label_.append(box_, swatch, name);
  li.append(label_, fills, bar, eta, dist);
  if (r.recommended) li.append(why);  // a standby's why only repeats its ETA: on hover
  return li;
}

/** The server's why in words; the standby form in Chinese too (whyText knows the rest). */
function recWhy(why) {
  const m = /^standby: (\d+) min (\d+) s, has (\S+)$/.exec(why || "");
  if (!m || lang === "en") return whyText(why);
  return `备选：${m[1]} 分 ${m[2]} 秒可到，具备${capName(m[3])}`;
}

// --- the map: routes and the incident highlighted ------------------------------------------
const emptyFc = () => ({ type: "FeatureCollection", features: [] });

function incidentPoint(cur) {
  const g = cur && cur.feature && cur.feature.geometry;
  if (!g) return null;
  if (g.type === "Point") return g.coordinates;
  const b = new maplibregl.LngLatBounds();
  const walk = (c) => { if (typeof c[0] === "number") b.extend(c); else c.forEach(walk); };
  walk(g.coordinates);
  return b.getCenter().toArray();
}

/** The drawer's routes and focus on the map; `cur` null clears them. */
export function drawRoutes(cur) {
  if (!mapRef || !mapRef.getSource("drawer-routes")) return;
  const features = [];
  if (cur) {
    for (const [uid, r] of cur.routes) {
      const on_ = r.dispatched || !!cur.checked.get(uid);
      features.push({ type: "Feature", id: uid, geometry: r.route,
        properties: { unit_id: uid, callsign: r.callsign, color: r.color, on: on_, dispatched: r.dispatched } });
    }
  }
  mapRef.getSource("drawer-routes").setData({ type: "FeatureCollection", features });
  const at = incidentPoint(cur);
  mapRef.getSource("drawer-focus").setData(at
    ? { type: "FeatureCollection", features: [{ type: "Feature", id: cur.id, geometry: { type: "Point", coordinates: at }, properties: {} }] }
    : emptyFc());
}

/** Fits the map to the incident and its routes once per opening, clear of the drawer `box`. */
export function fitOnce(cur, box) {
  if (!cur || cur.fitted || !mapRef) return;
  const at = incidentPoint(cur);
  if (!at) return;
  cur.fitted = true;
  const b = new maplibregl.LngLatBounds(at, at);
  for (const r of cur.routes.values()) for (const c of r.route.coordinates) b.extend(c);
  const width = box.getBoundingClientRect().width || 0;
  const mapWidth = mapRef.getContainer().clientWidth;
  const right = Math.min(width + 40, mapWidth * 0.6);
  mapRef.fitBounds(b, { padding: { top: 60, bottom: 60, left: 60, right }, maxZoom: 16.5, duration: 600 });
}

/** Adds the routes' and the focus's sources and layers (from the drawer's mapLoaded hook). */
export function addRouteLayers(m) {
  mapRef = m;
  m.addSource("drawer-routes", { type: "geojson", data: emptyFc() });
  m.addSource("drawer-focus", { type: "geojson", data: emptyFc() });
  m.addLayer({ id: "drawer-focus", type: "circle", source: "drawer-focus",
    paint: { "circle-radius": 20, "circle-color": "rgba(255,255,255,0.08)", "circle-stroke-color": "#ffffff",
      "circle-stroke-width": 3 } });
  m.addLayer({ id: "drawer-routes-casing", type: "line", source: "drawer-routes",
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": "#05090f", "line-width": 8, "line-opacity": ["case", ["get", "on"], 0.75, 0.3] } });
  m.addLayer({ id: "drawer-routes", type: "line", source: "drawer-routes",
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": ["get", "color"], "line-width": ["case", ["get", "dispatched"], 5, 4],
      "line-opacity": ["case", ["get", "on"], 1, 0.35] } });
}
