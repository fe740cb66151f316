// Big screen, console: Call-taking (接警): the new-incident form: open and close, the fields,
// validation, submit, the server's errors next to their fields, and the toast. The place
// search, map-click placement and reverse lookup are in screen_places.js; the possible
// duplicates with attach-the-call and the map overlay in screen_duplicates.js.
// One state object (`ct`), kept here; those two read it, change it and call back into the
// form (they import this module and it imports them; none of the three touches another's
// bindings while loading). The caller's phone is personal data: it lives only in the
// form's state and input, is never logged, and is dropped when the form closes. A report cut
// off by a dying server is sent again with the same key (retry.js), so it is stored once.
import { apiCall } from "/static/live.js";
import { sendWrite } from "/static/retry.js";
import { addStrings, label, lang, locale, t } from "/static/screen_i18n.js";
import { SEVERITY_COLORS, el, on, send, token } from "/static/screen_state.js";
import { map } from "/static/screen_map.js";
import { addOverlay, clearDuplicatesTimer, drawOverlay, refreshDuplicates, renderDuplicates } from "/static/screen_duplicates.js";
import {
  arm, clearSearchTimer, onPlaceKey, place, removeMarker, renderHits, renderPlace, searchSoon,
} from "/static/screen_places.js";

const FIXED_TYPES = ["fire", "medical", "traffic_accident", "flood", "hazmat", "rescue", "public_security", "other"];
const SEVERITIES = ["minor", "moderate", "severe", "extreme"];
const CRS = ["wgs84", "gcj02", "bd09"];
// API field -> the form's field key (errors are shown next to the field).
const FIELD_OF = { title: "title", type: "type", severity: "severity", description: "description",
  address: "address", people_affected: "people", caller_phone: "phone", geometry: "place" };

addStrings({
  "zh-CN": {
    ctTitle: "接警 · 新建事件", ctClose: "关闭", ctArmed: "请在地图上点击事件位置，或搜索地址 / 粘贴坐标",
    ctPlace: "位置", ctPlaceHint: "地址、街道、地名或坐标", ctCrs: "坐标系", ctAddress: "地址（可向来电人复述）",
    ctType: "类型", ctChooseType: "请选择类型", ctSeverity: "等级", ctIncidentTitle: "标题",
    ctDescription: "情况描述", ctPeople: "受影响人数", ctPhone: "来电号码",
    ctPhoneNote: "个人信息，仅在此表单显示", ctSubmit: "创建事件", ctSubmitting: "正在创建…",
    ctCancel: "取消", ctCreated: (title) => `已创建事件：${title}`,
    ctErr: { titleRequired: "请填写标题", placeRequired: "请在地图上点选或搜索事件位置",
      typeRequired: "请选择事件类型", peopleInvalid: "人数须为不小于 0 的整数",
      phoneInvalid: "号码格式不正确：数字，可有开头的 +、空格、括号和 -",
      tooLong: "内容过长", tooBig: (n) => `不能大于 ${n}`, tooSmall: (n) => `不能小于 ${n}`,
      required: "必填", notInteger: "请输入整数", offline: "无法连接服务器，请重试" },
    crs: { wgs84: "WGS-84 / GPS", gcj02: "GCJ-02 高德", bd09: "BD-09 百度" },
    incidentType: { fire: "火灾", medical: "医疗急救", traffic_accident: "交通事故", flood: "洪涝",
      hazmat: "危化品", rescue: "抢险救援", public_security: "治安事件", other: "其他" },
  },
  en: {
    ctTitle: "Take a call · new incident", ctClose: "Close",
    ctArmed: "Click the map where it is, or search an address / paste coordinates",
    ctPlace: "Place", ctPlaceHint: "address, street, place or coordinates", ctCrs: "Datum",
    ctAddress: "Address (read it back to the caller)",
    ctType: "Type", ctChooseType: "Choose a type", ctSeverity: "Severity", ctIncidentTitle: "Title",
    ctDescription: "Description", ctPeople: "People affected", ctPhone: "Caller phone",
    ctPhoneNote: "personal data, shown only here", ctSubmit: "Create incident", ctSubmitting: "Creating…",
    ctCancel: "Cancel", ctCreated: (title) => `Incident created: ${title}`,
    ctErr: { titleRequired: "A title is required", placeRequired: "Click the map or search for the place",
      typeRequired: "Choose the incident type", peopleInvalid: "A whole number, 0 or more",
      phoneInvalid: "Not a phone number: digits, an optional leading +, spaces, ( ) and -",
      tooLong: null, tooBig: null, tooSmall: null, required: "Required", notInteger: "A whole number",
      offline: "The server cannot be reached; try again" },
    crs: { wgs84: "WGS-84 / GPS", gcj02: "GCJ-02 (Amap)", bd09: "BD-09 (Baidu)" },
    incidentType: { fire: "Fire", medical: "Medical", traffic_accident: "Traffic accident", flood: "Flood",
      hazmat: "Hazmat", rescue: "Rescue", public_security: "Public security", other: "Other" },
  },
});

const blank = () => ({ title: "", type: "", severity: "moderate", description: "", people: "", phone: "",
  address: "", place: "", crs: "wgs84" });
export const ct = {
  open: false, armed: false, busy: false,
  retrying: null,       // the attempt being made after a cut-off (retry.js), or null
  values: blank(),
  point: null,          // [lon, lat] WGS-84
  nearby: [],           // reverse lookup: nearest places of `point`
  hits: null, active: -1, searchError: null,
  duplicates: [],
  errors: {},           // field key (or "form") -> [messages]
  types: [...FIXED_TYPES],
};
export const requests = {};    // kind -> AbortController of the request in flight
let toastTimer = 0;

// --- HTTP --------------------------------------------------------------------------------
/** One API call, the previous one of the same kind aborted. Resolves to {ok, status, data},
 * or null when aborted (a newer request replaced it). With `retry` (retry.js's onRetry), a
 * write to an endpoint that takes an Idempotency-Key, sent again if cut off. */
export async function call(kind, path, body, retry) {
  if (requests[kind]) requests[kind].abort();
  const ctl = new AbortController();
  requests[kind] = ctl;
  try {
    const method = body === undefined ? "GET" : "POST";
    const got = retry ? await sendWrite(method, path, { token, body, signal: ctl.signal, onRetry: retry })
      : await apiCall(method, path, { token, body, signal: ctl.signal });
    if (ctl.signal.aborted) return null;
    return { ok: got.ok, status: got.status, data: got.status ? got.body : { message: t("ctErr").offline } };
  } catch {
    return null;  // aborted
  } finally {
    if (requests[kind] === ctl) delete requests[kind];
  }
}

function cancelAll() {
  for (const ctl of Object.values(requests)) ctl.abort();
  clearSearchTimer();
  clearDuplicatesTimer();
}

// --- open, close ----------------------------------------------------------------------------
function openForm() {
  if (!ct.open) {
    Object.assign(ct, { open: true, values: blank(), point: null, nearby: [], hits: null, active: -1,
      searchError: null, duplicates: [], errors: {}, busy: false, retrying: null });
    render();
  }
  arm(true);
  document.querySelector("[data-testid=incident-title]").focus();
}

export function closeForm() {
  if (!ct.open) return;
  cancelAll();
  // The phone (personal data) goes with the rest of the form.
  Object.assign(ct, { open: false, armed: false, values: blank(), point: null, nearby: [], hits: null,
    duplicates: [], errors: {} });
  removeMarker();
  map.getCanvas().style.cursor = "";
  drawOverlay();
  const box = document.getElementById("incident-form-box");
  box.hidden = true;
  box.replaceChildren();
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
  const got = await call("create", "/api/incidents", feature, (r) => { ct.retrying = r && r.attempt; renderRetrying(); });
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
export function showServerErrors(got) {
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

export function setBusy(busy) {
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
  const retrying = el("p", "retry-note");
  retrying.dataset.testid = "write-retrying";
  retrying.setAttribute("role", "status");
  foot.append(el("div", "ct-errors ct-form-errors"), retrying, cancel, submitBtn);
  return foot;
}

export function renderRetrying() {
  const note = document.querySelector("#incident-form-box [data-testid=write-retrying]");
  if (!note) return;
  note.hidden = !ct.retrying;
  note.textContent = ct.retrying ? t("retrying")(ct.retrying) : "";
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
  renderRetrying();
  setBusy(ct.busy);
}

export function renderErrors() {
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

export function toast(text) {
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

export const fmtDistance = (m) => (m >= 1000 ? `${(m / 1000).toLocaleString(locale(), { maximumFractionDigits: 1 })} km`
  : `${Math.round(m)} m`);

// --- hooks --------------------------------------------------------------------------------------
on("mapLoaded", (m) => {
  addOverlay(m);
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
