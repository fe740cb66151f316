// Big screen, console: Call-taking (接警): the new-incident form, map-click placement, offline place search and reverse lookup, possible duplicates with attach-the-call.
// One state object (`ct`), changed here and rendered from. The caller's phone is personal
// data: it lives only in the form's state and input, is never logged, and is dropped
// when the form closes.
import { addStrings, label, lang, locale, t } from "/static/screen_i18n.js";
import { SEVERITY_COLORS, el, on, send, token } from "/static/screen_state.js";
import { map } from "/static/screen_map.js";

const FIXED_TYPES = ["fire", "medical", "traffic_accident", "flood", "hazmat", "rescue", "public_security", "other"];
const SEVERITIES = ["minor", "moderate", "severe", "extreme"];
const CRS = ["wgs84", "gcj02", "bd09"];
const DUPLICATE_RADIUS_M = 500;
const SEARCH_DEBOUNCE_MS = 150;
const NEARBY_MAX_M = 300;  // reverse lookup: farther than this is not "the address"
// API field -> the form's field key (errors are shown next to the field).
const FIELD_OF = { title: "title", type: "type", severity: "severity", description: "description",
  address: "address", people_affected: "people", caller_phone: "phone", geometry: "place" };

addStrings({
  "zh-CN": {
    ctTitle: "接警 · 新建事件", ctClose: "关闭", ctArmed: "请在地图上点击事件位置，或搜索地址 / 粘贴坐标",
    ctPlace: "位置", ctPlaceHint: "地址、街道、地名或坐标", ctCrs: "坐标系", ctRepick: "在地图上重新选点",
    ctDrag: "可拖动标记微调", ctAddress: "地址（可向来电人复述）", ctNearest: "最近",
    ctType: "类型", ctChooseType: "请选择类型", ctSeverity: "等级", ctIncidentTitle: "标题",
    ctDescription: "情况描述", ctPeople: "受影响人数", ctPhone: "来电号码",
    ctPhoneNote: "个人信息，仅在此表单显示", ctSubmit: "创建事件", ctSubmitting: "正在创建…",
    ctCancel: "取消", ctNoHits: "无匹配地点", ctSearchFailed: "搜索失败",
    ctDuplicates: "可能重复的事件", ctDupNote: (r) => `同类型、${r} 米内、30 分钟内的未结事件`,
    ctAttach: "合并来电", ctCalls: (n) => `${n} 次来电`, ctAgo: (m) => (m < 1 ? "刚刚" : `${m} 分钟前`),
    ctCreated: (title) => `已创建事件：${title}`, ctAttached: (title) => `来电已合并到事件：${title}`,
    ctErr: { titleRequired: "请填写标题", placeRequired: "请在地图上点选或搜索事件位置",
      typeRequired: "请选择事件类型", peopleInvalid: "人数须为不小于 0 的整数",
      phoneInvalid: "号码格式不正确：数字，可有开头的 +、空格、括号和 -",
      tooLong: "内容过长", tooBig: (n) => `不能大于 ${n}`, tooSmall: (n) => `不能小于 ${n}`,
      required: "必填", notInteger: "请输入整数", offline: "无法连接服务器，请重试" },
    crs: { wgs84: "WGS-84 / GPS", gcj02: "GCJ-02 高德", bd09: "BD-09 百度" },
    placeKind: { address: "地址", street: "街道", place: "地点", coordinates: "坐标", poi: "地点" },
    incidentType: { fire: "火灾", medical: "医疗急救", traffic_accident: "交通事故", flood: "洪涝",
      hazmat: "危化品", rescue: "抢险救援", public_security: "治安事件", other: "其他" },
  },
  en: {
    ctTitle: "Take a call · new incident", ctClose: "Close",
    ctArmed: "Click the map where it is, or search an address / paste coordinates",
    ctPlace: "Place", ctPlaceHint: "address, street, place or coordinates", ctCrs: "Datum",
    ctRepick: "Pick again on the map", ctDrag: "drag the marker to adjust",
    ctAddress: "Address (read it back to the caller)", ctNearest: "Nearest",
    ctType: "Type", ctChooseType: "Choose a type", ctSeverity: "Severity", ctIncidentTitle: "Title",
    ctDescription: "Description", ctPeople: "People affected", ctPhone: "Caller phone",
    ctPhoneNote: "personal data, shown only here", ctSubmit: "Create incident", ctSubmitting: "Creating…",
    ctCancel: "Cancel", ctNoHits: "No matching place", ctSearchFailed: "Search failed",
    ctDuplicates: "Possible duplicates", ctDupNote: (r) => `open, same type, within ${r} m and 30 min`,
    ctAttach: "Attach call", ctCalls: (n) => `${n} call${n === 1 ? "" : "s"}`,
    ctAgo: (m) => (m < 1 ? "just now" : `${m} min ago`),
    ctCreated: (title) => `Incident created: ${title}`, ctAttached: (title) => `Call attached to: ${title}`,
    ctErr: { titleRequired: "A title is required", placeRequired: "Click the map or search for the place",
      typeRequired: "Choose the incident type", peopleInvalid: "A whole number, 0 or more",
      phoneInvalid: "Not a phone number: digits, an optional leading +, spaces, ( ) and -",
      tooLong: null, tooBig: null, tooSmall: null, required: "Required", notInteger: "A whole number",
      offline: "The server cannot be reached; try again" },
    crs: { wgs84: "WGS-84 / GPS", gcj02: "GCJ-02 (Amap)", bd09: "BD-09 (Baidu)" },
    placeKind: { address: "address", street: "street", place: "place", coordinates: "coordinates", poi: "place" },
    incidentType: { fire: "Fire", medical: "Medical", traffic_accident: "Traffic accident", flood: "Flood",
      hazmat: "Hazmat", rescue: "Rescue", public_security: "Public security", other: "Other" },
  },
});

const blank = () => ({ title: "", type: "", severity: "moderate", description: "", people: "", phone: "",
  address: "", place: "", crs: "wgs84" });
const ct = {
  open: false, armed: false, busy: false,
  values: blank(),
  point: null,          // [lon, lat] WGS-84
  nearby: [],           // reverse lookup: nearest places of `point`
  hits: null, active: -1, searchError: null,
  duplicates: [],
  errors: {},           // field key (or "form") -> [messages]
  types: [...FIXED_TYPES],
};
const requests = {};    // kind -> AbortController of the request in flight
let searchTimer = 0;
let dupTimer = 0;
let marker = null;
let toastTimer = 0;

// --- HTTP --------------------------------------------------------------------------------
/** One API call, the previous one of the same kind aborted. Resolves to {ok, status, data},
 * or null when aborted (a newer request replaced it). */
async function call(kind, path, body) {
  if (requests[kind]) requests[kind].abort();
  const ctl = new AbortController();
  requests[kind] = ctl;
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    const res = await fetch(path, { method: body === undefined ? "GET" : "POST", headers, signal: ctl.signal,
      body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch { /* no JSON body */ }
    return ctl.signal.aborted ? null : { ok: res.ok, status: res.status, data };
  } catch {
    if (ctl.signal.aborted) return null;
    return { ok: false, status: 0, data: { message: t("ctErr").offline } };
  } finally {
    if (requests[kind] === ctl) delete requests[kind];
  }
}

function cancelAll() {
  for (const ctl of Object.values(requests)) ctl.abort();
  clearTimeout(searchTimer);
  clearTimeout(dupTimer);
}

// --- open, close, place --------------------------------------------------------------------
function openForm() {
  if (!ct.open) {
    Object.assign(ct, { open: true, values: blank(), point: null, nearby: [], hits: null, active: -1,
      searchError: null, duplicates: [], errors: {}, busy: false });
    render();
  }
  arm(true);
  document.querySelector("[data-testid=incident-title]").focus();
}

function closeForm() {
  if (!ct.open) return;
  cancelAll();
  // The phone (personal data) goes with the rest of the form.
  Object.assign(ct, { open: false, armed: false, values: blank(), point: null, nearby: [], hits: null,
    duplicates: [], errors: {} });
  if (marker) { marker.remove(); marker = null; }
  map.getCanvas().style.cursor = "";
  drawOverlay();
  const box = document.getElementById("incident-form-box");
  box.hidden = true;
  box.replaceChildren();
}

function arm(on_) {
  ct.armed = on_;
  map.getCanvas().style.cursor = on_ ? "crosshair" : "";
  const box = document.getElementById("incident-form-box");
  box.classList.toggle("armed", on_);
}

/** Put the incident at [lon, lat] (WGS-84): marker, reverse lookup, duplicates. */
function place(lonLat, address) {
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
function searchSoon() {
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

function onPlaceKey(ev) {
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

// --- duplicates ------------------------------------------------------------------------------
function refreshDuplicates(delayMs = 0) {
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
  const got = await call("attach", `/api/incidents/${feature.id}/calls`, body);
  setBusy(false);
  if (!got) return;
  if (!got.ok) { showServerErrors(got); return; }
  closeForm();
  toast(t("ctAttached")(feature.properties.title));
  send("select-incident", { id: feature.id });
}

// --- submit ----------------------------------------------------------------------------------
function clientErrors() {
  const v = ct.values;
  const e = t("ctErr");
  const errors = {};
  if (!v.title.trim()) errors.title = [e.titleRequired];
  if (!v.type) errors.type = [e.typeRequired];
  if (!ct.point) errors.place = [e.placeRequired];
  if (v.people.trim()) {
    const n = Number(v.people.trim());
    if (!Number.isInteger(n) || n < 0) errors.people = [e.peopleInvalid];
  }
  return errors;
}

async function submit(ev) {
  ev.preventDefault();
  if (ct.busy) return;
  ct.errors = clientErrors();
  if (Object.keys(ct.errors).length) { renderErrors(); focusFirstError(); return; }
  const v = ct.values;
  const properties = { title: v.title.trim(), type: v.type, severity: v.severity };
  if (v.description.trim()) properties.description = v.description.trim();
  if (v.address.trim()) properties.address = v.address.trim();
  if (v.people.trim()) properties.people_affected = Number(v.people.trim());
  if (v.phone.trim()) properties.caller_phone = v.phone.trim();
  const feature = { type: "Feature", geometry: { type: "Point", coordinates: ct.point }, properties };
  setBusy(true);
  const got = await call("create", "/api/incidents", feature);
  setBusy(false);
  if (!got) return;
  if (!got.ok) { showServerErrors(got); return; }
  const created = got.data;
  closeForm();
  toast(t("ctCreated")(created.properties.title));
  send("incident-created", { feature: created });
  send("select-incident", { id: created.id });
}

/** A refusal's messages next to their fields: pydantic's `details` carry `loc`. */
function showServerErrors(got) {
  const data = got.data || {};
  const errors = {};
  const add = (key, msg) => { (errors[key] = errors[key] || []).push(msg); };
  if (Array.isArray(data.details) && data.details.length) {
    for (const d of data.details) {
      const loc = (d.loc || []).map(String);
      const name = loc.includes("properties") ? loc[loc.indexOf("properties") + 1]
        : loc.includes("geometry") ? "geometry" : loc[loc.length - 1];
      add(FIELD_OF[name] || "form", serverText(FIELD_OF[name], d));
    }
  } else add("form", data.message || `HTTP ${got.status}`);
  ct.errors = errors;
  renderErrors();
  focusFirstError();
}

/** A validation message in the screen's language (the server writes English). */
function serverText(field, d) {
  const e = t("ctErr");
  const msg = (d.msg || "").replace(/^Value error, /, "");
  const n = (/(-?\d+)\s*$/.exec(msg) || [])[1];
  if (field === "phone" && (lang !== "en" || d.type === "string_pattern_mismatch")) return e.phoneInvalid;
  const known = { missing: e.required, string_too_long: e.tooLong, int_parsing: e.notInteger,
    int_from_float: e.notInteger, less_than_equal: e.tooBig && n && e.tooBig(n),
    greater_than_equal: e.tooSmall && n && e.tooSmall(n) };
  return known[d.type] || msg || d.type;
}

function setBusy(busy) {
  ct.busy = busy;
  const btn = document.querySelector("[data-testid=incident-submit]");
  if (btn) { btn.disabled = busy; btn.textContent = t(busy ? "ctSubmitting" : "ctSubmit"); }
  for (const b of document.querySelectorAll("[data-testid=attach-call]")) b.disabled = busy;
}

function focusFirstError() {
  const first = document.querySelector("#incident-form-box .ct-field.bad input, #incident-form-box .ct-field.bad select");
  if (first) first.focus();
}

// --- rendering ---------------------------------------------------------------------------------
function field(key, labelText, control, extra) {
  const wrap = el("div", `ct-field ct-${key}`);
  wrap.dataset.field = key;
  const lab = el("label");
  lab.append(el("span", null, labelText), control);
  if (extra) lab.append(extra);
  wrap.append(lab, el("div", "ct-errors"));
  return wrap;
}

function input(key, testid, attrs = {}) {
  const node = el(attrs.tag || "input");
  delete attrs.tag;
  node.dataset.testid = testid;
  node.value = ct.values[key];
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.addEventListener("input", () => { ct.values[key] = node.value; });
  return node;
}

function select(key, testid, options, placeholder) {
  const node = el("select");
  node.dataset.testid = testid;
  if (placeholder) {
    const o = el("option", null, placeholder);
    o.value = "";
    o.disabled = true;
    node.append(o);
  }
  for (const [value, text] of options) { const o = el("option", null, text); o.value = value; node.append(o); }
  node.value = ct.values[key];
  node.addEventListener("change", () => { ct.values[key] = node.value; });
  return node;
}

function headSection() {
  const head = el("div", "ct-head");
  const close = el("button", "ct-close", "×");
  close.type = "button";
  close.title = t("ctClose");
  close.setAttribute("aria-label", t("ctClose"));
  close.addEventListener("click", closeForm);
  head.append(el("h2", null, t("ctTitle")), close);
  return head;
}

/** Where: search (or pasted coordinates, with their datum), hits, the placed point, address. */
function whereSection() {
  const search = input("place", "incident-place", { type: "search", autocomplete: "off", placeholder: t("ctPlaceHint"),
    role: "combobox", "aria-autocomplete": "list", "aria-controls": "ct-hits" });
  search.addEventListener("input", searchSoon);
  search.addEventListener("keydown", onPlaceKey);
  const crs = select("crs", "incident-crs", CRS.map((c) => [c, label("crs", c)]));
  crs.title = t("ctCrs");
  crs.addEventListener("change", searchSoon);
  const row = el("div", "ct-search");
  row.append(search, crs);
  const where = field("place", t("ctPlace"), row);
  const hits = el("ol", "ct-hits");
  hits.id = "ct-hits";
  hits.setAttribute("role", "listbox");
  where.append(hits, el("p", "ct-armed", t("ctArmed")), el("div", "ct-spot"));
  const address = field("address", t("ctAddress"), input("address", "incident-address", { maxlength: "300" }),
    el("div", "ct-nearby"));
  return [where, address];
}

/** What: type and severity (the type also decides the duplicates). */
function whatSection() {
  const types = ct.types.map((c) => [c, label("incidentType", c).replaceAll("_", " ")]);
  const type = select("type", "incident-type", types, t("ctChooseType"));
  type.addEventListener("change", () => refreshDuplicates());
  const severity = select("severity", "incident-severity", SEVERITIES.map((s) => [s, label("severity", s)]));
  const paintSeverity = () => severity.style.setProperty("--sev", SEVERITY_COLORS[severity.value] || "#ffae42");
  severity.addEventListener("change", paintSeverity);
  paintSeverity();
  const pair = el("div", "ct-pair");
  pair.append(field("type", t("ctType"), type), field("severity", t("ctSeverity"), severity));
  return pair;
}

function detailSection() {
  const title = field("title", t("ctIncidentTitle"), input("title", "incident-title", { maxlength: "200" }));
  const description = field("description", t("ctDescription"),
    input("description", "incident-description", { tag: "textarea", rows: "2", maxlength: "10000" }));
  const pair = el("div", "ct-pair");
  pair.append(
    field("people", t("ctPeople"), input("people", "incident-people", { type: "number", min: "0", step: "1", inputmode: "numeric" })),
    field("phone", t("ctPhone"), input("phone", "incident-phone", { type: "tel", autocomplete: "off" }),
      el("small", "ct-note", t("ctPhoneNote"))),
  );
  return [title, description, pair];
}

function footSection() {
  const foot = el("div", "ct-foot");
  foot.dataset.field = "form";  // errors with no field of their own
  const submitBtn = el("button", "ct-submit", t("ctSubmit"));
  submitBtn.type = "submit";
  submitBtn.dataset.testid = "incident-submit";
  const cancel = el("button", "ct-cancel", t("ctCancel"));
  cancel.type = "button";
  cancel.addEventListener("click", closeForm);
  foot.append(el("div", "ct-errors ct-form-errors"), cancel, submitBtn);
  return foot;
}

function render() {
  const box = document.getElementById("incident-form-box");
  if (!ct.open) { box.hidden = true; box.replaceChildren(); return; }
  const form = el("form", "ct-form");
  form.dataset.testid = "incident-form";
  form.noValidate = true;
  form.addEventListener("submit", submit);
  // Duplicates right under what decides them (place and type), before the details.
  form.append(headSection(), ...whereSection(), whatSection(), el("section", "ct-dups"), ...detailSection(),
    footSection());
  box.replaceChildren(form);
  box.hidden = false;
  box.classList.toggle("armed", ct.armed);
  renderHits();
  renderPlace();
  renderDuplicates();
  renderErrors();
  setBusy(ct.busy);
}

function renderHits() {
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

function renderPlace() {
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

function renderDuplicates() {
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

function renderErrors() {
  for (const wrap of document.querySelectorAll("#incident-form-box [data-field]:not(.ct-error)")) {
    const key = wrap.dataset.field;
    const list = wrap.querySelector(".ct-errors");
    const msgs = ct.errors[key] || [];
    wrap.classList.toggle("bad", msgs.length > 0);
    list.replaceChildren(...msgs.map((m) => {
      const p = el("p", "ct-error", m);
      p.dataset.testid = "form-error";
      p.dataset.field = key;
      p.setAttribute("role", "alert");
      return p;
    }));
  }
}

function toast(text) {
  let node = document.getElementById("ct-toast");
  if (!node) {
    node = el("div", "ct-toast");
    node.id = "ct-toast";
    node.dataset.testid = "incident-toast";
    node.setAttribute("role", "status");
    document.getElementById("map-wrap").append(node);
  }
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 4000);
}

const fmtDistance = (m) => (m >= 1000 ? `${(m / 1000).toLocaleString(locale(), { maximumFractionDigits: 1 })} km`
  : `${Math.round(m)} m`);

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

function drawOverlay() {
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

// --- hooks --------------------------------------------------------------------------------------
on("mapLoaded", (m) => {
  m.addSource("calltaking", { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  const kind = (k) => ["==", ["get", "kind"], k];
  m.addLayer({ id: "calltaking-radius", type: "line", source: "calltaking", filter: kind("radius"),
    paint: { "line-color": "#7fdbff", "line-width": 1.5, "line-dasharray": [3, 2], "line-opacity": 0.7 } });
  m.addLayer({ id: "calltaking-duplicates", type: "circle", source: "calltaking", filter: kind("duplicate"),
    paint: { "circle-radius": 16, "circle-opacity": 0, "circle-stroke-color": "#ffd23f", "circle-stroke-width": 3 } });
  m.addLayer({ id: "calltaking-hits", type: "circle", source: "calltaking", filter: kind("hit"),
    paint: { "circle-radius": ["case", ["get", "active"], 8, 5], "circle-color": "#7fdbff",
      "circle-stroke-color": "#0b1322", "circle-stroke-width": 2 } });
  m.on("click", (e) => { if (ct.open && ct.armed) place([e.lngLat.lng, e.lngLat.lat]); });
  drawOverlay();
});

on("start", async () => {
  const got = await call("plans", "/api/response-plans");
  if (!got || !got.ok) return;
  const extra = [...new Set(got.data.map((p) => p.incident_type))].filter((c) => !FIXED_TYPES.includes(c)).sort();
  // "other" stays last.
  ct.types = [...FIXED_TYPES.slice(0, -1), ...extra, "other"];
  if (ct.open) render();
});

on("lang", () => { if (ct.open) render(); });

// Another incident nearby may have come in (or closed) while the call is being taken.
on("event", (name) => { if (ct.open && name.startsWith("incident.")) refreshDuplicates(300); });

document.getElementById("new-incident").addEventListener("click", openForm);
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && ct.open) closeForm(); });

// Tests and the other modules may read where the form is at (never the phone).
window.__calltaking = { get open() { return ct.open; }, get point() { return ct.point; },
  get armed() { return ct.armed; } };
