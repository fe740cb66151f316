// Big screen, console, call-taking: possible duplicates. Open incidents of the same type
// near the placed point (GET /api/incidents/duplicates), listed in the form with "attach
// call" (POST /api/incidents/{id}/calls), and the call-taking map overlay: search hits,
// the duplicate search circle, duplicates ringed. The state is the form's (`ct`,
// screen_calltaking.js).
import { addStrings, label, t } from "/static/screen_i18n.js";
import { SEVERITY_COLORS, el, send } from "/static/screen_state.js";
import { map } from "/static/screen_map.js";
import {
  call, closeForm, ct, fmtDistance, renderErrors, renderRetrying, requests, setBusy, showServerErrors,
  toast,
} from "/static/screen_calltaking.js";

const DUPLICATE_RADIUS_M = 500;
let dupTimer = 0;

addStrings({
  "zh-CN": {
    ctDuplicates: "可能重复的事件", ctDupNote: (r) => `同类型、${r} 米内、30 分钟内的未结事件`,
    ctAttach: "合并来电", ctCalls: (n) => `${n} 次来电`, ctAgo: (m) => (m < 1 ? "刚刚" : `${m} 分钟前`),
    ctAttached: (title) => `来电已合并到事件：${title}`,
  },
  en: {
    ctDuplicates: "Possible duplicates", ctDupNote: (r) => `open, same type, within ${r} m and 30 min`,
    ctAttach: "Attach call", ctCalls: (n) => `${n} call${n === 1 ? "" : "s"}`,
    ctAgo: (m) => (m < 1 ? "just now" : `${m} min ago`),
    ctAttached: (title) => `Call attached to: ${title}`,
  },
});

export function clearDuplicatesTimer() { clearTimeout(dupTimer); }

// --- duplicates ------------------------------------------------------------------------------
export function refreshDuplicates(delayMs = 0) {
  clearTimeout(dupTimer);
  dupTimer = setTimeout(loadDuplicates, delayMs);
}

async function loadDuplicates() {
  if (!ct.open || !ct.point || !ct.values.type) {
    if (requests.duplicates) requests.duplicates.abort();
    ct.duplicates = [];
    renderDuplicates();
    drawOverlay();
    return;
  }
  const [lon, lat] = ct.point;
  const params = new URLSearchParams({ type: ct.values.type, at: `${lon},${lat}` });
  const got = await call("duplicates", `/api/incidents/duplicates?${params}`);
  if (!got || !ct.open) return;
  ct.duplicates = got.ok ? got.data.features : [];
  renderDuplicates();
  drawOverlay();
}

async function attachCall(feature) {
  if (ct.busy) return;
  const body = {};
  const v = ct.values;
  if (v.phone.trim()) body.caller_phone = v.phone.trim();
  if (v.description.trim()) body.description = v.description.trim();
  const errors = {};
  if (v.people.trim()) {
    const n = Number(v.people.trim());
    if (!Number.isInteger(n) || n < 0) errors.people = [t("ctErr").peopleInvalid];
    else body.people_affected = n;
  }
  ct.errors = errors;
  if (Object.keys(errors).length) { renderErrors(); return; }
  setBusy(true);
  // Sent again with its key if a dying server cuts it off: the call is counted once.
  const got = await call("attach", `/api/incidents/${feature.id}/calls`, body, (r) => {
    ct.retrying = r && r.attempt;
    renderRetrying();
  });
  setBusy(false);
  if (!got) return;
  if (!got.ok) { showServerErrors(got); return; }
  closeForm();
  toast(t("ctAttached")(feature.properties.title));
  send("select-incident", { id: feature.id });
}
export function renderDuplicates() {
  const box = document.querySelector("#incident-form-box .ct-dups");
  if (!box) return;
  box.hidden = !ct.duplicates.length;
  if (!ct.duplicates.length) { box.replaceChildren(); return; }
  const ol = el("ol");
  ol.append(...ct.duplicates.map((f) => {
    const p = f.properties;
    const li = el("li");
    li.dataset.testid = "duplicate-item";
    li.dataset.incidentId = f.id;
    li.style.setProperty("--sev", SEVERITY_COLORS[p.severity] || "#ffae42");
    const mins = Math.floor((Date.now() - Date.parse(p.reported_at)) / 60000);
    const meta = el("div", "meta");
    meta.append(el("span", "dist", fmtDistance(p.distance_m)), el("span", null, t("ctAgo")(mins)),
      el("span", "status", label("status", p.status)), el("span", null, t("ctCalls")(p.calls || 0)));
    const btn = el("button", "ct-attach", t("ctAttach"));
    btn.type = "button";
    btn.dataset.testid = "attach-call";
    btn.disabled = ct.busy;
    btn.addEventListener("click", () => attachCall(f));
    const text = el("div", "text");
    text.append(el("b", null, p.title), meta);
    li.append(text, btn);
    return li;
  }));
  const head = el("h3");
  head.append(el("span", null, `${t("ctDuplicates")} · ${ct.duplicates.length}`),
    el("small", null, t("ctDupNote")(DUPLICATE_RADIUS_M)));
  box.replaceChildren(head, ol);
}

// --- the map: search hits, the duplicate search circle, duplicates ringed ----------------------
function circle([lon, lat], radiusM, steps = 64) {
  const dLat = radiusM / 111_320;
  const dLon = dLat / Math.cos((lat * Math.PI) / 180);
  const ring = [];
  for (let i = 0; i <= steps; i += 1) {
    const a = (2 * Math.PI * i) / steps;
    ring.push([lon + dLon * Math.cos(a), lat + dLat * Math.sin(a)]);
  }
  return { type: "Polygon", coordinates: [ring] };
}

export function drawOverlay() {
  const source = map.getSource("calltaking");
  if (!source) return;
  const features = [];
  if (ct.open && ct.point && ct.values.type) {
    features.push({ type: "Feature", geometry: circle(ct.point, DUPLICATE_RADIUS_M), properties: { kind: "radius" } });
  }
  for (const [i, h] of (ct.open && ct.hits ? ct.hits : []).entries()) {
    features.push({ type: "Feature", geometry: h.geometry, properties: { kind: "hit", active: i === ct.active } });
  }
  for (const d of ct.open ? ct.duplicates : []) {
    features.push({ type: "Feature", geometry: d.geometry, properties: { kind: "duplicate" } });
  }
  source.setData({ type: "FeatureCollection", features });
}

/** The overlay's source and layers (on the map's load). */
export function addOverlay(m) {
  m.addSource("calltaking", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  const kind = (k) => ["==", ["get", "kind"], k];
  m.addLayer({ id: "calltaking-radius", type: "line", source: "calltaking", filter: kind("radius"),
    paint: { "line-color": "#7fdbff", "line-width": 1.5, "line-dasharray": [3, 2], "line-opacity": 0.7 } });
  m.addLayer({ id: "calltaking-duplicates", type: "circle", source: "calltaking", filter: kind("duplicate"),
    paint: { "circle-radius": 16, "circle-opacity": 0, "circle-stroke-color": "#ffd23f", "circle-stroke-width": 3 } });
  m.addLayer({ id: "calltaking-hits", type: "circle", source: "calltaking", filter: kind("hit"),
    paint: { "circle-radius": ["case", ["get", "active"], 8, 5], "circle-color": "#7fdbff",
      "circle-stroke-color": "#0b1322", "circle-stroke-width": 2 } });
}
