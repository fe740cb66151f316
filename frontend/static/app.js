// Overview page: log in, then show counts by status. zh-CN by default, English switchable.
import { loginError, loginErrorText } from "/static/live.js";

const STRINGS = {
  "zh-CN": {
    title: "智慧应急指挥调度", login: "登录", username: "用户名", password: "密码", signin: "登录",
    incidents: "事件", units: "救援力量", shelters: "避难场所", warehouses: "物资仓库",
    api: "接口文档 (OpenAPI)", screenLink: "实时态势大屏", responderLink: "救援终端", attribution: "地图数据", other: "English",
    total: "合计", capacity: "容量", occupancy: "已安置", badLogin: "用户名或密码错误",
    lockedOut: "登录失败次数过多，请稍后再试", loginBusy: "服务器繁忙，请稍后再试",
    healthy: "系统正常", degraded: "数据库不可用", signedIn: "当前用户", items: "种物资",
    role: { commander: "指挥员", dispatcher: "调度员", responder: "救援队员", planner: "预案演练",
      auditor: "审计员", admin: "管理员" },
    status: { reported: "已报告", verified: "已核实", dispatched: "已派遣", on_scene: "到场处置",
      resolved: "已处置", closed: "已关闭", cancelled: "已取消", available: "待命",
      assigned: "已分配", en_route: "途中", returning: "返回中", out_of_service: "停用" },
  },
  en: {
    title: "Emergency Command & Dispatch", login: "Sign in", username: "Username",
    password: "Password", signin: "Sign in", incidents: "Incidents", units: "Units",
    shelters: "Shelters", warehouses: "Warehouses", api: "API docs (OpenAPI)",
    screenLink: "Live situation screen", responderLink: "Responder app",
    attribution: "Map data", other: "中文", total: "Total", capacity: "Capacity",
    occupancy: "Occupancy", badLogin: "Wrong username or password",
    lockedOut: "Too many failed logins; try again later", loginBusy: "Server busy; try again shortly", healthy: "System OK",
    degraded: "Database unavailable", signedIn: "Signed in as", items: "items",
    role: { commander: "commander", dispatcher: "dispatcher", responder: "responder",
      planner: "planner", auditor: "auditor", admin: "admin" },
    status: { reported: "Reported", verified: "Verified", dispatched: "Dispatched",
      on_scene: "On scene", resolved: "Resolved", closed: "Closed", cancelled: "Cancelled",
      available: "Available", assigned: "Assigned", en_route: "En route",
      returning: "Returning", out_of_service: "Out of service" },
  },
};
let lang = localStorage.getItem("lang") || "zh-CN";
let token = sessionStorage.getItem("token");
const t = (key) => STRINGS[lang][key];

function applyLang() {
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.getElementById("lang").textContent = t("other");
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`${res.status}`);
  return res.json();
}

function fill(id, rows) {
  const ul = document.getElementById(id);
  ul.replaceChildren(...rows.map(([label, value]) => {
    const li = document.createElement("li");
    const span = document.createElement("span");
    span.textContent = label;
    const b = document.createElement("b");
    b.textContent = typeof value === "number" ? value.toLocaleString(lang) : value;
    li.append(span, b);
    return li;
  }));
}

function byStatus(features) {
  const counts = {};
  for (const f of features) counts[f.properties.status] = (counts[f.properties.status] || 0) + 1;
  return Object.entries(counts).map(([s, n]) => [t("status")[s] || s, n]);
}

async function showOverview() {
  const [me, incidents, units, shelters, warehouses, stock] = await Promise.all([
    api("/api/me"), api("/api/incidents?limit=1000"), api("/api/units?limit=1000"),
    api("/api/shelters?limit=1000"), api("/api/warehouses?limit=1000"),
    api("/api/stock?limit=1000"),
  ]);
  document.getElementById("login-panel").hidden = true;
  document.getElementById("overview").hidden = false;
  document.getElementById("whoami").textContent = `${t("signedIn")}: ${me.name} (${t("role")[me.role] || me.role})`;
  fill("incidents", [...byStatus(incidents.features), [t("total"), incidents.numberMatched]]);
  fill("units", [...byStatus(units.features), [t("total"), units.numberMatched]]);
  const cap = shelters.features.reduce((a, f) => a + f.properties.capacity, 0);
  const occ = shelters.features.reduce((a, f) => a + f.properties.occupancy, 0);
  fill("shelters", [[t("total"), shelters.numberMatched], [t("capacity"), cap], [t("occupancy"), occ]]);
  const lines = {};
  for (const s of stock.items) lines[s.warehouse_id] = (lines[s.warehouse_id] || 0) + 1;
  fill("warehouses", warehouses.features.map((f) => [f.properties.name, `${lines[f.id] || 0} ${t("items")}`]));
}

document.getElementById("lang").addEventListener("click", () => {
  lang = lang === "zh-CN" ? "en" : "zh-CN";
  localStorage.setItem("lang", lang);
  applyLang();
  if (token) showOverview().catch(() => {});
});

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const res = await fetch("/api/auth/token", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
  });
  const error = document.getElementById("login-error");
  if (!res.ok) {
    const key = loginError(res.status);
    error.dataset.i18n = key;
    error.textContent = loginErrorText(t, key, Number(res.headers.get("Retry-After")) || 0);
    return;
  }
  token = (await res.json()).access_token;
  sessionStorage.setItem("token", token);
  delete error.dataset.i18n;
  error.textContent = "";
  await showOverview();
});

function showHealth(ok) {
  const el = document.getElementById("health");
  el.dataset.i18n = ok ? "healthy" : "degraded";
  el.className = ok ? "ok" : "bad";
  el.textContent = t(el.dataset.i18n);
}
fetch("/healthz").then((r) => showHealth(r.ok), () => showHealth(false));
applyLang();
if (token) showOverview().catch(() => { token = null; sessionStorage.removeItem("token"); });
