// Big screen, the left column: the warning system's alerts (what intake did with each, its
// warnings on a click, a proposal button per zone) and the incidents waiting for a person
// to review them (no usable location, or a reason the server gave).
import { apiGet } from "/static/live.js";
import { STRINGS, fmtWhen, label, lang, reasonText, t } from "/static/screen_i18n.js";
import {
  ALERTS_MAX, SEVERITY_COLORS, SEVERITY_TEXT, addAlert, alerts, dirty, el, live, redraw, state, token,
} from "/static/screen_state.js";
import { centreOf, map } from "/static/screen_map.js";
import { openProposal } from "/static/screen_proposal.js";

const SEVERITIES = ["minor", "moderate", "severe", "extreme"];

export function reviewMark(reason) {
  const mark = el("em", "review-mark", t("needsReview"));
  if (reason) mark.title = reasonText(reason);
  return mark;
}

let openAlert = null;  // the alert whose warnings are shown

export async function loadAlerts() {
  try {
    const body = await apiGet(`/api/alerts?limit=${ALERTS_MAX}&drill=false`, token);
    for (const x of body.alerts) addAlert(x, false);
  } catch {
    // The live topic still fills the list.
  }
  live.alertsLoaded = true;
  dirty.side = true;
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
    if (SEVERITIES.includes(level)) { a.severity = level; dirty.side = true; redraw(); }
  } catch {
    // Left uncoloured.
  }
}

export function alertTitle(a) {
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

export function renderAlerts() {
  const list = [...alerts.values()].sort((a, b) => b.id - a.id).slice(0, ALERTS_MAX);
  document.getElementById("alerts-count").textContent = list.length ? String(list.length) : "";
  document.getElementById("alerts").replaceChildren(
    ...(list.length ? list.map(alertItem) : [el("li", "empty", t("noAlerts"))]));
}

let openReview = null;  // the incident whose review reason is shown in full

export function renderReview() {
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
