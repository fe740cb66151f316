// Big screen, console, call-taking: where the incident is. The place search (debounced,
// the previous request aborted, arrow keys / Enter / Esc in the hit list), placing by a
// hit, pasted coordinates or a map click, the draggable marker, the reverse lookup of the
// nearest places, and the hit list and placed-point panel drawn into the form. The state
// is the form's (`ct`, screen_calltaking.js).
import { addStrings, label, t } from "/static/screen_i18n.js";
import { el } from "/static/screen_state.js";
import { map } from "/static/screen_map.js";
import { call, ct, fmtDistance, renderErrors, requests } from "/static/screen_calltaking.js";
import { drawOverlay, refreshDuplicates } from "/static/screen_duplicates.js";

const SEARCH_DEBOUNCE_MS = 150;
const NEARBY_MAX_M = 300;  // reverse lookup: farther than this is not "the address"
let searchTimer = 0;
let marker = null;

addStrings({
  "zh-CN": {
    ctRepick: "在地图上重新选点", ctDrag: "可拖动标记微调", ctNearest: "最近",
    ctNoHits: "无匹配地点", ctSearchFailed: "搜索失败",
    placeKind: { address: "地址", street: "街道", place: "地点", coordinates: "坐标", poi: "地点" },
  },
  en: {
    ctRepick: "Pick again on the map", ctDrag: "drag the marker to adjust", ctNearest: "Nearest",
    ctNoHits: "No matching place", ctSearchFailed: "Search failed",
    placeKind: { address: "address", street: "street", place: "place", coordinates: "coordinates", poi: "place" },
  },
});

export function clearSearchTimer() { clearTimeout(searchTimer); }

export function removeMarker() { if (marker) { marker.remove(); marker = null; } }

// --- arming, placing -----------------------------------------------------------------------
export function arm(on_) {
  ct.armed = on_;
  map.getCanvas().style.cursor = on_ ? "crosshair" : "";
  const box = document.getElementById("incident-form-box");
  box.classList.toggle("armed", on_);
}

/** Put the incident at [lon, lat] (WGS-84): marker, reverse lookup, duplicates. */
export function place(lonLat, address) {
  ct.point = lonLat;
  ct.nearby = [];
  delete ct.errors.place;
  arm(false);
  if (address !== undefined) ct.values.address = address;
  if (!marker) {
    const pin = el("div", "ct-pin");
    pin.dataset.testid = "incident-marker";
    marker = new maplibregl.Marker({ element: pin, draggable: true, anchor: "bottom" });
    marker.on("dragend", () => { const p = marker.getLngLat(); place([p.lng, p.lat]); });
  }
  marker.setLngLat(lonLat).addTo(map);
  flyIfHidden(lonLat);
  renderPlace();
  renderErrors();
  drawOverlay();
  reverseLookup(lonLat, address === undefined);
  refreshDuplicates();
}

/** Fly to a point that is off-screen or under the form (then centred in what is left). */
function flyIfHidden(lonLat) {
  const box = document.getElementById("incident-form-box");
  const covered = box.hidden ? 0 : box.offsetLeft + box.offsetWidth;
  const p = map.project(lonLat);
  const c = map.getContainer();
  if (p.x > covered + 20 && p.x < c.clientWidth - 20 && p.y > 20 && p.y < c.clientHeight - 20) return;
  map.flyTo({ center: lonLat, offset: [covered / 2, 0], zoom: Math.max(map.getZoom(), 15), duration: 600 });
}

async function reverseLookup([lon, lat], fillAddress) {
  const got = await call("reverse", `/api/places?near=${lon},${lat}&limit=8`);
  if (!got || !ct.open) return;
  // Far from everything (open water, or outside the loaded city): no address to offer.
  const near = (got.ok ? got.data.features : []).filter((f) => (f.properties.distance_m ?? 0) <= NEARBY_MAX_M);
  const names = new Set();
  ct.nearby = near.filter((f) => !names.has(f.properties.name) && names.add(f.properties.name)).slice(0, 3);
  // What to read back is a street address when there is one near, else the nearest place.
  const best = near.find((f) => f.properties.kind === "address") || near[0];
  if (fillAddress) ct.values.address = best ? best.properties.name : "";
  renderPlace();
}

// --- place search ------------------------------------------------------------------------
export function searchSoon() {
  clearTimeout(searchTimer);
  const q = ct.values.place.trim();
  if (!q) {
    if (requests.search) requests.search.abort();
    ct.hits = null;
    ct.active = -1;
    renderHits();
    drawOverlay();
    return;
  }
  searchTimer = setTimeout(() => search(q), SEARCH_DEBOUNCE_MS);
}

async function search(q) {
  const params = new URLSearchParams({ q, limit: "8" });
  // `near` is read in the datum given: only the map's own (WGS-84) centre goes with wgs84.
  if (ct.values.crs === "wgs84") {
    const at = ct.point || map.getCenter().toArray();
    params.set("near", `${at[0].toFixed(6)},${at[1].toFixed(6)}`);
  } else params.set("crs", ct.values.crs);
  const got = await call("search", `/api/places?${params}`);
  if (!got || !ct.open) return;
  ct.hits = got.ok ? got.data.features : [];
  ct.searchError = got.ok ? null : (got.data && got.data.message) || `HTTP ${got.status}`;
  ct.active = ct.hits.length ? 0 : -1;
  renderHits();
  drawOverlay();
}

function pickHit(i) {
  const hit = ct.hits && ct.hits[i];
  if (!hit) return;
  const p = hit.properties;
  ct.values.place = p.name;
  ct.hits = null;
  ct.active = -1;
  const input = document.querySelector("[data-testid=incident-place]");
  if (input) input.value = p.name;
  renderHits();
  // A named hit is the address to read back; pasted coordinates get the nearest address.
  place(hit.geometry.coordinates.slice(0, 2), p.kind === "coordinates" ? undefined : p.name);
}

export function onPlaceKey(ev) {
  const n = ct.hits ? ct.hits.length : 0;
  if (ev.key === "ArrowDown" && n) { ct.active = (ct.active + 1) % n; renderHits(); ev.preventDefault(); }
  else if (ev.key === "ArrowUp" && n) { ct.active = (ct.active - 1 + n) % n; renderHits(); ev.preventDefault(); }
  else if (ev.key === "Escape" && ct.hits) {
    // The first Esc closes the hit list only; the next one closes the form.
    ev.stopPropagation();
    ct.hits = null;
    ct.active = -1;
    renderHits();
    drawOverlay();
  } else if (ev.key === "Enter") {
    ev.preventDefault();  // never submits the form from the search box
    if (n) pickHit(Math.max(ct.active, 0));
  }
}
// --- the hit list and the placed point, in the form -------------------------------------------
export function renderHits() {
  const ol = document.getElementById("ct-hits");
  if (!ol) return;
  const place = document.querySelector("[data-testid=incident-place]");
  if (!ct.hits) { ol.replaceChildren(); place.setAttribute("aria-expanded", "false"); return; }
  place.setAttribute("aria-expanded", "true");
  if (!ct.hits.length) {
    ol.replaceChildren(el("li", "ct-empty", ct.searchError ? `${t("ctSearchFailed")}: ${ct.searchError}` : t("ctNoHits")));
    return;
  }
  ol.replaceChildren(...ct.hits.map((hit, i) => {
    const p = hit.properties;
    const li = el("li", i === ct.active ? "active" : null);
    li.dataset.testid = "place-result";
    [li.dataset.lon, li.dataset.lat] = hit.geometry.coordinates;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", String(i === ct.active));
    li.append(el("b", null, p.name), el("span", "kind", label("placeKind", p.kind)));
    if (p.distance_m !== undefined && p.distance_m !== null) li.append(el("span", "dist", fmtDistance(p.distance_m)));
    // mousedown: picked before the input's blur could hide anything.
    li.addEventListener("mousedown", (ev) => { ev.preventDefault(); pickHit(i); });
    return li;
  }));
  const active = ol.children[ct.active];
  if (active && active.scrollIntoView) active.scrollIntoView({ block: "nearest" });
}

export function renderPlace() {
  const spot = document.querySelector("#incident-form-box .ct-spot");
  if (!spot) return;
  if (!ct.point) { spot.replaceChildren(); spot.hidden = true; }
  else {
    spot.hidden = false;
    const [lon, lat] = ct.point;
    const repick = el("button", "ct-repick", t("ctRepick"));
    repick.type = "button";
    repick.addEventListener("click", () => arm(true));
    spot.replaceChildren(el("i"), el("code", null, `${lat.toFixed(6)}, ${lon.toFixed(6)}`),
      el("small", null, t("ctDrag")), repick);
  }
  const address = document.querySelector("[data-testid=incident-address]");
  if (address && address.value !== ct.values.address) address.value = ct.values.address;
  const nearby = document.querySelector("#incident-form-box .ct-nearby");
  if (nearby) {
    nearby.replaceChildren(...ct.nearby.map((f) => {
      const b = el("button", "ct-near", `${f.properties.name} · ${fmtDistance(f.properties.distance_m)}`);
      b.type = "button";
      b.addEventListener("click", () => { ct.values.address = f.properties.name; renderPlace(); });
      return b;
    }));
    if (ct.nearby.length) nearby.prepend(el("span", null, `${t("ctNearest")}:`));
  }
}
