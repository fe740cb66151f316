// Big screen, the pre-positioning proposal for a warning zone: the card (staging point,
// units with their ETAs, shelters with room) and its overlay on the map (routes, shelters,
// staging point). Fetched on demand, drawn until closed or its zone ends. It moves nothing.
import { capName, fmtMinutes, label, lang, locale, t, whyText } from "/static/screen_i18n.js";
import { SEVERITY_COLORS, SEVERITY_TEXT, el, live, state, token } from "/static/screen_state.js";
import { map } from "/static/screen_map.js";

const ROUTE_COLORS = ["#c77dff", "#4dd0e1", "#f48fb1", "#aed581", "#ffd180", "#90caf9"];

let proposal = null;  // { zoneId, body, error }
let stagingMarker = null;

export async function openProposal(zoneId) {
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

export function renderProposal() {
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

export function drawProposal() {
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

/** Close the card when its zone has ended. */
export function closeProposalIfZoneEnded() {
  if (proposal && !state.zones.has(proposal.zoneId)) closeProposal();
}

document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && proposal) closeProposal(); });
