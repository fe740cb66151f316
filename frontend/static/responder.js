// Responder phone app (PWA): log in, follow the unit's own topic `unit:<id>`, acknowledge
// each task event after storing it, move the task step by step and report GPS positions.
// Actions wait in a local outbox (localStorage) with their idempotency key until the server
// answers, and are re-sent with the same key after a reconnect. The task card's map and
// route are in responder_map.js; the hand-off links to map apps in handoff.js.
import { handoffLinks } from "/static/handoff.js";
import { LiveClient, apiGet, distanceM, login, loginErrorText, newKey } from "/static/live.js";
import { drawRouteSummary, initTaskMap, resizeTaskMap, showTask } from "/static/responder_map.js";

const STRINGS = {
  "zh-CN": {
    app: "救援终端", title: "智慧应急指挥调度", other: "English", login: "登录",
    username: "用户名", password: "密码", signin: "登录", badLogin: "用户名或密码错误",
    lockedOut: "登录失败次数过多，请稍后再试", loginBusy: "服务器繁忙，请稍后再试",
    notResponder: "该账号未绑定救援力量", gps: "定位上报", type: "类型", address: "地址",
    coords: "坐标", distance: "直线距离", assignedAt: "派遣时间", accept: "接受", depart: "出发",
    arrive: "到达", finish: "完成", noTask: "暂无任务，待命中", logout: "退出登录",
    attribution: "地图数据", pending: "待发送", unknown: "未知", noFix: "等待定位…",
    fix: "已定位", accuracy: "精度", gpsDenied: "无法获取定位", refused: "操作被拒绝",
    taskDone: "任务已完成", taskCancelled: "任务已被调度员取消", newTask: "新任务",
    scene: "现场", caller: "报警人", navGeo: "地图导航", navAmap: "高德导航", navBaidu: "百度导航",
    myPosition: "我的位置", routing: "正在规划路线…", noRoute: "无可行路线", noFrom: "无本车位置，未规划路线",
    routeOld: "路线未更新", drive: "车程",
    net: { idle: "未连接", connecting: "连接中", live: "在线", reconnecting: "重连中", offline: "离线" },
    status: { assigned: "待接受", accepted: "已接受", en_route: "途中", on_scene: "已到场",
      done: "已完成", cancelled: "已取消", available: "待命", returning: "返回中",
      out_of_service: "停用" },
    severity: { minor: "轻微", moderate: "中等", severe: "严重", extreme: "特别严重" },
    itype: { fire: "火灾", medical: "医疗急救", traffic_accident: "交通事故", flood: "洪涝",
      hazmat: "危化品", public_security: "治安", rescue: "抢险救援", earthquake: "地震",
      landslide: "滑坡", other: "其他" },
  },
  en: {
    app: "Responder", title: "Emergency Command & Dispatch", other: "中文", login: "Sign in",
    username: "Username", password: "Password", signin: "Sign in",
    badLogin: "Wrong username or password",
    lockedOut: "Too many failed logins; try again later", loginBusy: "Server busy; try again shortly",
    notResponder: "This account has no unit",
    gps: "Share location", type: "Type", address: "Address", coords: "Coordinates",
    distance: "Straight line", assignedAt: "Assigned", accept: "Accept", depart: "Depart",
    arrive: "Arrive", finish: "Done", noTask: "No task — standing by", logout: "Sign out",
    attribution: "Map data", pending: "waiting to send", unknown: "unknown",
    noFix: "Waiting for a fix…", fix: "Position", accuracy: "accuracy",
    gpsDenied: "Location unavailable", refused: "Refused", taskDone: "Task done",
    taskCancelled: "Task cancelled by the dispatcher", newTask: "New task",
    scene: "Scene", caller: "Caller", navGeo: "Maps", navAmap: "Amap", navBaidu: "Baidu",
    myPosition: "My position", routing: "Finding the route…", noRoute: "No route found",
    noFrom: "No unit position: no route", routeOld: "route not updated", drive: "Drive",
    net: { idle: "Not connected", connecting: "Connecting", live: "Online",
      reconnecting: "Reconnecting", offline: "Offline" },
    status: { assigned: "To accept", accepted: "Accepted", en_route: "En route",
      on_scene: "On scene", done: "Done", cancelled: "Cancelled", available: "Available",
      returning: "Returning", out_of_service: "Out of service" },
    severity: { minor: "Minor", moderate: "Moderate", severe: "Severe", extreme: "Extreme" },
    itype: { fire: "Fire", medical: "Medical", traffic_accident: "Traffic accident",
      flood: "Flood", hazmat: "Hazmat", public_security: "Public security", rescue: "Rescue",
      earthquake: "Earthquake", landslide: "Landslide", other: "Other" },
  },
};
const STEPS = ["assigned", "accepted", "en_route", "on_scene", "done"];
const ACTIVE = new Set(["assigned", "accepted", "en_route", "on_scene"]);
const RETRYABLE = new Set(["unavailable", "busy", "rate_limited"]);
const MAX_POSITIONS = 20;        // queued positions kept offline (the newest)
const POSITION_EVERY_MS = 3000;  // send at most this often unless moved far
const TOKEN_KEY = "responder.token";

let lang = localStorage.getItem("lang") || "zh-CN";
const t = (key) => STRINGS[lang][key];
const label = (group, key) => (STRINGS[lang][group] || {})[key] || key;
const $ = (id) => document.getElementById(id);

let token = localStorage.getItem(TOKEN_KEY);
let me = null;        // /api/me
let unit = null;      // the unit's Feature
let topic = null;     // "unit:<id>"
let client = null;
let store = null;     // {seq, tasks: {id: task (with incident)}} persisted per unit
let outbox = [];      // [{key, msg}] persisted per unit
const inflight = new Set();  // keys sent on the current connection, not yet answered
let fix = null;      // the last GPS fix {lon, lat, accuracy}
let watchId = null;
let lastSentFix = 0;
let toastTimer = null;

const live = { topics: {}, state: "idle", outbox: 0, task: null, acked: null, gps: false };
window.__live = live;

// --- persistence ---------------------------------------------------------------------
const stateKey = () => `responder.state.${me.unit_id}`;
const outboxKey = () => `responder.outbox.${me.unit_id}`;
function saveState() { localStorage.setItem(stateKey(), JSON.stringify(store)); }
function saveOutbox() {
  localStorage.setItem(outboxKey(), JSON.stringify(outbox));
  live.outbox = outbox.length;
  renderOutbox();
}
function loadJSON(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; }
}

// --- tasks ---------------------------------------------------------------------------
function currentTask() {
  const tasks = Object.values(store.tasks).filter((x) => ACTIVE.has(x.status));
  tasks.sort((a, b) => a.id - b.id);
  return tasks[0] || null;
}

/** The status the task will have once the outbox is delivered (what the buttons follow). */
function effectiveStatus(task) {
  let status = task.status;
  for (const item of outbox) {
    if (item.msg.type === "status" && item.msg.task_id === task.id
      && STEPS.indexOf(item.msg.status) > STEPS.indexOf(status)) status = item.msg.status;
  }
  return status;
}

function mergeTask(task) {
  const old = store.tasks[task.id];
  const merged = { ...(old || {}), ...task };
  if (old && task.status !== "cancelled" && STEPS.indexOf(task.status) < STEPS.indexOf(old.status)) {
    merged.status = old.status;  // an older event arriving after a newer result
  }
  if (!task.incident && old && old.incident) merged.incident = old.incident;
  if (ACTIVE.has(merged.status)) store.tasks[task.id] = merged;
  else {
    delete store.tasks[task.id];
    if (old) toast(merged.status === "cancelled" ? "taskCancelled" : "taskDone", "info");
  }
  if (!old && ACTIVE.has(merged.status)) {
    refreshUnit();  // where the unit is now: the route starts there
    refreshCaller(task.id);
    toast("newTask", "info");
    if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
  }
}

function applyUnitEvent(msg) {
  if (msg.event.startsWith("task.") && msg.data && msg.data.id) mergeTask(msg.data);
  store.seq = msg.seq;
  saveState();          // stored first ...
  ack(msg.seq);         // ... then acknowledged
  render();
}

function ack(seq) {
  live.acked = seq;
  client.send({ type: "ack", topic, seq });
}

// --- outbox --------------------------------------------------------------------------
function enqueue(msg) {
  outbox.push({ key: msg.key, msg });
  if (msg.type === "position") {
    const positions = outbox.filter((i) => i.msg.type === "position");
    const drop = new Set(positions.slice(0, Math.max(0, positions.length - MAX_POSITIONS)).map((i) => i.key));
    outbox = outbox.filter((i) => !drop.has(i.key));
  }
  saveOutbox();
  flush();
  render();
}

/** Send what is waiting: the oldest status change (steps must arrive in order) and every
 * position. Each keeps its key, so a re-send after a reconnect has no second effect. */
function flush() {
  if (!client || !client.isLive) return;
  const status = outbox.find((i) => i.msg.type === "status");
  for (const item of outbox) {
    if (inflight.has(item.key)) continue;
    if (item.msg.type === "status" && item !== status) continue;
    if (client.send(item.msg)) inflight.add(item.key);
  }
}

function settle(key) {
  inflight.delete(key);
  const before = outbox.length;
  outbox = outbox.filter((i) => i.key !== key);
  if (outbox.length !== before) saveOutbox();
}

function onMessage(msg) {
  if (msg.type === "result" && msg.key) {
    const item = outbox.find((i) => i.key === msg.key);
    settle(msg.key);
    if (item && item.msg.type === "status" && msg.data && msg.data.id) {
      mergeTask(msg.data);
      saveState();
    }
    flush();
    render();
  } else if (msg.type === "error" && msg.key) {
    if (RETRYABLE.has(msg.code)) {
      inflight.delete(msg.key);
      setTimeout(flush, 2000);
      return;
    }
    settle(msg.key);  // refused for good (e.g. the dispatcher cancelled the task)
    toast("refused", "error", msg.message);
    refreshTasks().catch(() => {});
    flush();
  }
}

function step(status) {
  const task = currentTask();
  if (!task) return;
  enqueue({ type: "status", task_id: task.id, status, key: newKey(`task${task.id}.${status}`) });
}

// --- GPS -----------------------------------------------------------------------------
function onFix(pos) {
  const c = pos.coords;
  const next = { lon: c.longitude, lat: c.latitude, accuracy: c.accuracy };
  const moved = fix ? distanceM([fix.lon, fix.lat], [next.lon, next.lat]) : Infinity;
  fix = next;
  live.fix = fix;
  const now = Date.now();
  if (now - lastSentFix >= POSITION_EVERY_MS || moved > 50) {
    lastSentFix = now;
    const msg = { type: "position", lon: c.longitude, lat: c.latitude,
      recorded_at: new Date(pos.timestamp || now).toISOString(), key: newKey("pos") };
    if (Number.isFinite(c.accuracy)) msg.accuracy_m = Math.min(100000, Math.max(0, c.accuracy));
    if (Number.isFinite(c.speed) && c.speed >= 0 && c.speed <= 200) msg.speed_mps = c.speed;
    if (Number.isFinite(c.heading) && c.heading >= 0 && c.heading < 360) msg.heading_deg = c.heading;
    enqueue(msg);
  }
  render();
}

function setGps(on) {
  live.gps = on;
  localStorage.setItem("responder.gps", on ? "1" : "0");
  if (on && watchId === null && navigator.geolocation) {
    watchId = navigator.geolocation.watchPosition(onFix, () => { $("gps-info").textContent = t("gpsDenied"); },
      { enableHighAccuracy: true, maximumAge: 5000, timeout: 30000 });
  } else if (!on && watchId !== null) {
    navigator.geolocation.clearWatch(watchId);
    watchId = null;
  }
  render();
}

// --- rendering -----------------------------------------------------------------------
let toastNow = null;  // {key, detail, kind}: re-drawn in the other language on a switch
function toast(key, kind = "error", detail = "") {
  toastNow = { key, detail, kind };
  drawToast();
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toastNow = null; drawToast(); }, 6000);
}

function drawToast() {
  const el = $("toast");
  el.className = toastNow && toastNow.kind === "info" ? "info" : "error";
  el.textContent = toastNow ? `${t(toastNow.key)}${toastNow.detail ? `: ${toastNow.detail}` : ""}` : "";
}

function renderOutbox() {
  const el = $("outbox");
  el.hidden = outbox.length === 0;
  el.dataset.count = outbox.length;
  el.textContent = lang === "en" ? `${outbox.length} ${t("pending")}` : `${t("pending")}：${outbox.length}`;
}

function point(incident) {
  const g = incident && incident.geometry;
  if (!g) return null;
  if (g.type === "Point") return g.coordinates;
  const ring = g.type === "Polygon" ? g.coordinates[0] : g.coordinates[0][0];
  const n = ring.length - 1 || 1;
  return [ring.slice(0, n).reduce((a, c) => a + c[0], 0) / n, ring.slice(0, n).reduce((a, c) => a + c[1], 0) / n];
}

/** Where the unit is: the phone's own last fix, else the unit's position from the API. */
function unitPosition() {
  if (fix) return [fix.lon, fix.lat];
  return unit && unit.geometry ? unit.geometry.coordinates : null;
}

/** The caller's phone as a tel: link, only when the payload carries one. */
function drawCaller(phone) {
  const dd = $("caller-dd");
  $("caller-dt").hidden = !phone;
  dd.hidden = !phone;
  if (!phone) { dd.replaceChildren(); return; }
  let a = dd.querySelector("a");
  if (!a) {
    a = document.createElement("a");
    a.dataset.testid = "caller-phone";
    a.className = "tel";
    dd.append(a);
  }
  a.href = `tel:${String(phone).replace(/[^0-9+]/g, "")}`;
  a.textContent = phone;
}

function render() {
  if (!store) return;
  const task = currentTask();
  live.task = task ? { id: task.id, status: task.status, effective: effectiveStatus(task) } : null;
  const shown = !$("task").hidden;
  $("task").hidden = !task;
  if (task && !shown) resizeTaskMap();
  $("no-task").hidden = Boolean(task);
  $("gps").checked = live.gps;
  $("gps-info").textContent = !live.gps ? "" : fix
    ? `${t("fix")} ${fix.lat.toFixed(5)}, ${fix.lon.toFixed(5)} · ${t("accuracy")} ${Math.round(fix.accuracy)} m`
    : t("noFix");
  renderOutbox();
  if (!task) { showTask(null, token); return; }
  const inc = task.incident || { properties: {} };
  const p = inc.properties;
  const status = effectiveStatus(task);
  $("task").dataset.taskId = task.id;
  $("task").dataset.status = status;
  $("task-title").textContent = p.title || `#${task.incident_id}`;
  $("task-sev").textContent = label("severity", p.severity);
  $("task-sev").dataset.severity = p.severity || "";
  $("task-status").textContent = label("status", status) + (status !== task.status ? ` · ${t("pending")}` : "");
  $("task-type").textContent = label("itype", p.type);
  $("task-address").textContent = p.address || t("unknown");
  const at = point(inc);
  $("task-coords").textContent = at ? `${at[1].toFixed(5)}, ${at[0].toFixed(5)}` : t("unknown");
  const from = unitPosition();
  showTask(at ? { taskId: task.id, from, to: at,
    labels: { unit: unit ? unit.properties.callsign : "", scene: t("scene") } } : null, token);
  drawRouteSummary(t, lang, Boolean(from));
  for (const id of ["nav-geo", "nav-amap", "nav-baidu"]) $(id).hidden = !at;
  if (at) {
    const links = handoffLinks(at, p.title || p.address || t("scene"), from, t("myPosition"));
    $("nav-geo").href = links.geo;
    $("nav-amap").href = links.amap;
    $("nav-baidu").href = links.baidu;
  }
  drawCaller(task.caller_phone || p.caller_phone || null);
  if (at && from) {
    const d = distanceM(from, at);
    $("task-distance").textContent = d < 1000 ? `${Math.round(d)} m` : `${(d / 1000).toFixed(1)} km`;
  } else $("task-distance").textContent = t("unknown");
  $("task-assigned").textContent = task.assigned_at
    ? new Date(task.assigned_at).toLocaleTimeString(lang === "en" ? "en-GB" : "zh-CN", { hour12: false }) : "";
  $("task-desc").textContent = p.description || "";
  const next = STEPS[STEPS.indexOf(status) + 1];
  for (const b of document.querySelectorAll(".steps button")) {
    b.disabled = b.dataset.step !== next;
    b.classList.toggle("next", b.dataset.step === next);
    b.classList.toggle("passed", STEPS.indexOf(b.dataset.step) <= STEPS.indexOf(status));
  }
}

function showNet(state) {
  live.state = state;
  $("net").dataset.state = state;
  $("net-text").textContent = label("net", state);
}

function applyLang() {
  document.documentElement.lang = lang;
  document.title = `${t("app")} · ${t("title")}`;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  $("lang").textContent = t("other");
  showNet(live.state);
  drawToast();
  if (unit) $("unit-name").textContent = `${unit.properties.callsign} · ${unit.properties.name}`;
  render();
}

// --- start ---------------------------------------------------------------------------
/** The caller's phone: events leave personal data out, the task over REST has it (ours). */
async function refreshCaller(taskId) {
  try {
    const fresh = await apiGet(`/api/tasks/${taskId}`, token);
    const task = store.tasks[taskId];
    if (!task || !fresh.caller_phone || task.caller_phone === fresh.caller_phone) return;
    task.caller_phone = fresh.caller_phone;
    saveState();
    render();
  } catch { /* offline: the card shows it once the tasks are refreshed */ }
}

async function refreshUnit() {
  if (!me || !token) return;
  try {
    unit = await apiGet(`/api/units/${me.unit_id}`, token);
    localStorage.setItem("responder.unit", JSON.stringify(unit));
  } catch {
    const saved = loadJSON("responder.unit", null);  // offline: as last time
    unit = unit || (saved && saved.id === me.unit_id ? saved : null);
  }
  render();
}

async function refreshTasks() {
  const page = await apiGet(`/api/tasks?unit_id=${me.unit_id}&status=assigned,accepted,en_route,on_scene&limit=20`, token);
  const fresh = {};
  for (const task of page.items) {
    const old = store.tasks[task.id];
    const incident = old && old.incident ? old.incident : await apiGet(`/api/incidents/${task.incident_id}`, token);
    fresh[task.id] = { ...task, incident };
  }
  store.tasks = fresh;
  saveState();
  render();
}

function showLogin() {
  if (client) client.stop();
  client = null;
  token = null;
  localStorage.removeItem(TOKEN_KEY);
  $("app").hidden = true;
  $("login-panel").hidden = false;
  showNet("idle");
}

async function start() {
  try {
    me = await apiGet("/api/me", token);
    localStorage.setItem("responder.me", JSON.stringify(me));
  } catch (err) {
    me = err.status === 401 ? null : loadJSON("responder.me", null);  // offline: as last time
    if (!me) throw err;
  }
  if (me.role !== "responder" || !me.unit_id) {
    showLogin();
    $("login-error").textContent = t("notResponder");
    return;
  }
  topic = `unit:${me.unit_id}`;
  store = loadJSON(stateKey(), { seq: null, tasks: {} });
  outbox = loadJSON(outboxKey(), []);
  live.outbox = outbox.length;
  $("login-panel").hidden = true;
  $("app").hidden = false;
  render();
  initTaskMap($("task-map"), render).catch(() => {});  // no map offline without its script
  await refreshUnit();
  applyLang();
  await refreshTasks().catch(() => {});  // offline: what was stored last time
  client = new LiveClient({
    token: () => token,
    topics: [topic],
    seqs: Number.isInteger(store.seq) ? { [topic]: store.seq } : {},
    onResync: (tp, seq, snapshot) => {
      store.tasks = {};
      for (const task of snapshot.tasks || []) store.tasks[task.id] = task;
      store.seq = seq;
      live.topics[tp] = seq;
      saveState();
      ack(seq);
      render();
    },
    onEvent: (msg) => { live.topics[msg.topic] = msg.seq; applyUnitEvent(msg); },
    onStale: (msg) => ack(Math.max(msg.seq, store.seq || 0)),  // stored already: ack again
    onMessage,
    onState: showNet,
    onWelcome: () => { inflight.clear(); flush(); },
    onAuthFailed: showLogin,
  });
  client.connect();
  if (localStorage.getItem("responder.gps") === "1") setGps(true);
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const error = $("login-error");
  const got = await login(form.get("username"), form.get("password"))
    .catch(() => ({ error: "badLogin", retryAfterS: 0 }));
  if (!got.token) { error.textContent = loginErrorText(t, got.error, got.retryAfterS); return; }
  error.textContent = "";
  token = got.token;
  localStorage.setItem(TOKEN_KEY, token);
  start().catch(showLogin);
});

for (const b of document.querySelectorAll(".steps button")) b.addEventListener("click", () => step(b.dataset.step));
$("gps").addEventListener("change", (ev) => setGps(ev.target.checked));
$("logout").addEventListener("click", () => { setGps(false); showLogin(); });
$("lang").addEventListener("click", () => {
  lang = lang === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("lang", lang);
  applyLang();
});

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/responder" }).catch(() => {});
}
applyLang();
if (token) {
  start().catch((err) => {
    if (err.status === 401 || !me || !store) showLogin();
    else showNet("offline");
  });
} else showLogin();
