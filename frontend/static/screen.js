// Big-screen live situation map: the entry. Logs in, follows the `situation` topic over
// the live connection (snapshot, then events in seq order; in a drill scope, /screen?drill=ID,
// the topic `drill:ID` instead: see screen_drill.js), draws at most once a frame,
// and keeps the right column: counts, an ECharts chart of units by status, the event feed.
// The map, the alerts column and the pre-positioning proposal have modules of their own
// (screen_map.js, screen_alerts.js, screen_proposal.js) over shared state (screen_state.js)
// and strings (screen_i18n.js). zh-CN by default, English switchable. Tests read
// window.__live, window.__map and window.__chart.
import { LiveClient, apiGet, login, loginErrorText } from "/static/live.js";
import { STRINGS, label, lang, reasonText, setLang, t } from "/static/screen_i18n.js";
import {
  ENDED_INCIDENT, UNIT_COLORS, UNIT_STATUSES, alertRecord, applyEvent, applySnapshot, counts, dirty, live,
  emit, onDraw, pruneZones, redraw, scope, setToken, state, token,
} from "/static/screen_state.js";
import { addOverlays, drawSituation, legend, map, zonesStale } from "/static/screen_map.js";
import { alertTitle, loadAlerts, renderAlerts, renderReview, reviewMark } from "/static/screen_alerts.js";
import { closeProposalIfZoneEnded, drawProposal, openProposal, renderProposal } from "/static/screen_proposal.js";
// The console's modules subscribe to screen_state.js's hooks when imported.
import "/static/screen_calltaking.js";
import "/static/screen_queue.js";
import "/static/screen_drawer.js";
import "/static/screen_plan.js";
import "/static/screen_kpis.js";
import { loadDrill } from "/static/screen_drill.js";

const FEED_MAX = 60;

// --- drawing -------------------------------------------------------------------------
onDraw(() => {
  const began = performance.now();
  drawSituation();
  showCounts();
  if (dirty.side) { dirty.side = false; renderSide(); }
  if (dirty.feed) { dirty.feed = false; renderFeed(); }
  if (dirty.conn) { dirty.conn = false; showConn(); }
  emit("draw");
  if (live.measure) measured(began);
});

// Measurement (bench/screen.py sets window.__live.measure): for each event, the time from
// its receipt on the socket to the end of the frame's draw that showed it (the queue
// rendered, the map's sources set; MapLibre's own paint comes later and is left out).
const received = [];
function measured(began) {
  const now = performance.now();
  live.drawMs.push(now - began);
  for (const at of received) live.latencyMs.push(now - at);
  received.length = 0;
}

map.on("load", () => {
  addOverlays(openProposal);
  live.mapLoaded = true;
  emit("mapLoaded", map);
  drawProposal();
  redraw();
});

// --- side panel ----------------------------------------------------------------------
const chart = echarts.init(document.getElementById("chart"), null, { renderer: "canvas" });
window.__chart = chart;

let countsShown = "";

function showCounts(force = false) {
  const c = scope.counts ? scope.counts(counts()) : counts();
  live.counts = c;
  // Most frames only move units: the counts and the chart stay as they are.
  const key = JSON.stringify(c);
  if (key === countsShown && !force) return;
  countsShown = key;
  const fmt = (n) => n.toLocaleString(lang);
  document.getElementById("k-incidents").textContent = fmt(c.incidents_open);
  document.getElementById("k-units").textContent = fmt(c.units_total);
  document.getElementById("k-tasks").textContent = fmt(c.tasks_active);
  document.getElementById("k-unacked").textContent = fmt(c.tasks_unacked);
  document.body.dataset.unacked = c.tasks_unacked;
  chart.setOption({
    animation: false,
    textStyle: { fontFamily: "Noto Sans CJK SC, sans-serif" },
    grid: { left: 8, right: 40, top: 6, bottom: 6, containLabel: true },
    xAxis: { type: "value", minInterval: 1, splitLine: { lineStyle: { color: "#24324f" } },
      axisLabel: { color: "#9fb0c8", fontSize: 13 } },
    yAxis: { type: "category", inverse: true, data: UNIT_STATUSES.map((s) => label("status", s)),
      axisLabel: { color: "#e6edf7", fontSize: 15, interval: 0 }, axisLine: { lineStyle: { color: "#3a4d70" } } },
    series: [{ type: "bar", barWidth: "62%",
      data: UNIT_STATUSES.map((s) => ({ value: c.units[s] || 0, itemStyle: { color: UNIT_COLORS[s] } })),
      label: { show: true, position: "right", color: "#e6edf7", fontSize: 15 } }],
  });
}

function describe(msg) {
  const [entity, action] = msg.event.split(".", 2);
  const d = msg.data || {};
  const p = d.properties || {};
  const what = label("entity", entity);
  const status = STRINGS[lang].status[action];
  let verb = status ? (lang === "en" ? status.toLowerCase() : status) : label("ev", action);
  let subject = "";
  // Still open and waiting for a person (a cancelled one is not waiting any more).
  const review = entity === "incident" && p.needs_review && !ENDED_INCIDENT.has(p.status)
    ? p.review_reason || "" : null;
  if (entity === "alert") {
    verb = label("alertVerb", d.msg_type);
    subject = alertTitle(alertRecord(d));
  } else if (entity === "incident") subject = `${p.title || `#${d.id}`}${p.severity ? ` · ${label("severity", p.severity)}` : ""}`;
  else if (entity === "unit") subject = d.callsign || p.callsign || `#${d.unit_id || d.id}`;
  else if (entity === "task") {
    const unit = state.units.get(d.unit_id);
    subject = `#${d.id} ${unit ? unit.properties.callsign : ""} → ${(d.incident && d.incident.properties.title) || `#${d.incident_id}`}`;
  } else subject = p.name || d.name || d.item || `#${d.id}`;
  return { what, verb, subject, entity, review };
}

// The feed's items as drawn: only new ones are built, put on top, and the oldest dropped
// (a full rebuild of sixty lines on every frame was a tenth of the screen's time under load).
let feedLis = new WeakMap();

function renderFeed(full = false) {
  const ol = document.getElementById("feed");
  if (full) { feedLis = new WeakMap(); ol.replaceChildren(); }
  const fresh = [];
  for (const item of live.feed) {
    if (feedLis.has(item)) break;
    const li = feedLine(item);
    feedLis.set(item, li);
    fresh.push(li);
  }
  if (fresh.length) ol.prepend(...fresh);
  while (ol.children.length > live.feed.length) ol.lastElementChild.remove();
}

function feedLine(item) {
  const li = document.createElement("li");
  li.dataset.seq = item.seq;
  li.dataset.event = item.event;
  li.className = `ev-${item.event.split(".")[0]}`;
  const time = document.createElement("time");
  time.textContent = new Date(item.at).toLocaleTimeString(lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
  const text = document.createElement("span");
  if (item.resync) {
    text.textContent = t("resync");
  } else {
    const d = describe(item);
    const strong = document.createElement("b");
    strong.textContent = `${d.what}${lang === "en" ? " " : ""}${d.verb}`;
    text.append(strong, " ");
    if (d.review !== null) { text.append(reviewMark(d.review), " "); li.dataset.review = "1"; }
    text.append(d.subject);
    if (d.review) text.title = reasonText(d.review);
  }
  const seq = document.createElement("small");
  seq.textContent = `#${item.seq}`;
  li.append(time, text, seq);
  return li;
}

function pushFeed(item) {
  live.feed.unshift(item);
  if (live.feed.length > FEED_MAX) live.feed.length = FEED_MAX;
  dirty.feed = true;  // drawn with the frame, however many events arrive in it
}

// What the batched positions brought, for tests and bench/screen.py (window.__live.positions).
live.positions = { batches: 0, fixes: 0, lastSeq: null, lastAt: null };
function countPositions(msg) {
  const n = ((msg.data && msg.data.positions) || []).length;
  live.positions.batches += 1;
  live.positions.fixes += n;
  live.positions.lastSeq = msg.seq;
  live.positions.lastAt = msg.at;
}

function renderSide() {
  renderAlerts();
  renderReview();
  closeProposalIfZoneEnded();
}

function showConn() {
  const el = document.getElementById("conn");
  el.dataset.state = live.state;
  document.getElementById("conn-text").textContent = label("conn", live.state);
  const seq = live.topics[scope.topic];
  document.getElementById("conn-seq").textContent = Number.isInteger(seq) ? `seq ${seq}` : "";
}

function applyLang() {
  document.documentElement.lang = lang;
  document.title = `${t("screen")} · ${t("title")}`;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.getElementById("lang").textContent = t("other");
  legend();
  showConn();
  renderFeed(true);
  showCounts(true);
  renderSide();
  renderProposal();
  drawProposal();
  emit("lang");
}

// --- connection ----------------------------------------------------------------------
let client = null;

async function start() {
  document.getElementById("login-overlay").hidden = true;
  // A drill scope: what the drill is (a run to replay, or a tabletop) decides what its
  // topic's snapshot is for, so it is known before the first snapshot comes.
  if (scope.drill) await loadDrill();
  client = new LiveClient({
    token: () => token,
    topics: [scope.topic],
    onResync: (topic, seq, snapshot) => {
      if (!scope.replay) applySnapshot(snapshot);  // a replay draws its own timeline
      if (!scope.drill) loadAlerts();  // alerts are not in the snapshot (live ones only)
      live.topics[topic] = seq;
      pushFeed({ seq, at: new Date().toISOString(), event: "resync", resync: true });
      emit("resync", snapshot);
      redraw();
      showConn();
    },
    onEvent: (msg) => {
      if (live.measure) received.push(client.receivedAt);
      if (!scope.replay) applyEvent(msg.event, msg.data);
      if (Number.isInteger(msg.seq)) live.topics[msg.topic] = msg.seq;
      live.events += 1;
      // Batched vehicle positions (`unit.positions`, every ~250 ms) move the map only: a
      // feed line each would push everything else out of the feed within seconds.
      if (msg.event === "unit.positions") countPositions(msg);
      else pushFeed({ seq: msg.seq, at: msg.at, event: msg.event, data: msg.data });
      emit("event", msg.event, msg.data, msg);
      dirty.conn = true;  // the seq shown: with the frame
      redraw();
    },
    onState: (s) => { live.state = s; showConn(); },
    onAuthFailed: () => {
      setToken(null);
      sessionStorage.removeItem("token");
      document.getElementById("login-overlay").hidden = false;
    },
  });
  client.connect();
  emit("start");
}

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const error = document.getElementById("login-error");
  const got = await login(form.get("username"), form.get("password"));
  setToken(got.token || null);
  if (!token) {
    error.dataset.i18n = got.error;
    error.textContent = loginErrorText(t, got.error, got.retryAfterS);
    return;
  }
  delete error.dataset.i18n;
  error.textContent = "";
  sessionStorage.setItem("token", token);
  start();
});

document.getElementById("lang").addEventListener("click", () => {
  setLang(lang === "zh-CN" ? "en" : "zh-CN");
  localStorage.setItem("lang", lang);
  applyLang();
});

function tick() {
  document.getElementById("clock").textContent = new Date().toLocaleString(lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
  // A zone whose time is up (or has come) leaves (or joins) the map without waiting for the server.
  const ended = pruneZones();
  if (ended || (live.mapLoaded && zonesStale())) {
    dirty.side = true;
    redraw();
  }
}
setInterval(tick, 1000);
tick();
window.addEventListener("resize", () => chart.resize());
applyLang();

if (token) {
  apiGet("/api/me", token).then(start, () => {
    setToken(null);
    sessionStorage.removeItem("token");
    document.getElementById("login-overlay").hidden = false;
  });
} else {
  document.getElementById("login-overlay").hidden = false;
}
