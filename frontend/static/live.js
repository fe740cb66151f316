// Shared WebSocket client for /ws (see realtime/protocol.py): hello with the token in the
// first message, resume from the last applied seq per topic, events applied in seq order,
// pong to pings, reconnect with backoff, 4009 (too slow) -> resume, 4001 -> log in again.

const CLOSE_UNAUTHENTICATED = 4001;
const CLOSE_FORBIDDEN = 4003;

export class LiveClient {
  /**
   * @param {object} opts
   * @param {() => string|null} opts.token        current bearer token
   * @param {string[]} opts.topics                topics to subscribe to
   * @param {Record<string, number>} [opts.seqs]  last applied seq per topic (to resume from)
   * @param {(topic: string, seq: number, snapshot: object) => void} opts.onResync
   * @param {(msg: object) => void} opts.onEvent  one event, already in order
   * @param {(msg: object) => void} [opts.onStale]  an event already applied (re-sent)
   * @param {(msg: object) => void} [opts.onMessage]  anything else (result, error, acked)
   * @param {(state: string) => void} [opts.onState]  connecting | live | reconnecting | offline
   * @param {() => void} [opts.onWelcome]         after each welcome (flush outboxes here)
   * @param {() => void} [opts.onAuthFailed]      token refused: go back to the login form
   */
  constructor(opts) {
    this.opts = opts;
    this.topics = opts.topics;
    this.seqs = { ...(opts.seqs || {}) };
    this.state = "idle";
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.watchdog = null;
    this.heartbeatS = 15;
    this.lastHeard = 0;
    this.stopped = false;
    window.addEventListener("offline", () => this._goOffline());
    window.addEventListener("online", () => { if (!this.stopped) this.connect(); });
  }

  get isLive() { return this.state === "live"; }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    if (this.opts.onState) this.opts.onState(state);
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    if (!navigator.onLine) { this._setState("offline"); return; }
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    const token = this.opts.token();
    if (!token) { this.stop(); if (this.opts.onAuthFailed) this.opts.onAuthFailed(); return; }
    this._setState(this.attempt === 0 ? "connecting" : "reconnecting");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      const resume = {};
      for (const t of this.topics) if (Number.isInteger(this.seqs[t])) resume[t] = this.seqs[t];
      ws.send(JSON.stringify({ type: "hello", token, subscribe: this.topics, resume, batch: true }));
    };
    ws.onmessage = (ev) => { if (ws === this.ws) this._onMessage(ev.data); };
    ws.onclose = (ev) => { if (ws === this.ws) this._onClose(ev.code); };
    ws.onerror = () => {};  // onclose follows
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
    this._setState("idle");
  }

  /** Send a message if the socket is open; false otherwise (keep it in an outbox). */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== "live") return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  _goOffline() {
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(1000); }
    this._setState("offline");
  }

  _onClose(code) {
    clearInterval(this.watchdog);
    this.ws = null;
    if (this.stopped) return;
    if (code === CLOSE_UNAUTHENTICATED || code === CLOSE_FORBIDDEN) {
      this.stop();
      if (this.opts.onAuthFailed) this.opts.onAuthFailed();
      return;
    }
    if (!navigator.onLine) { this._setState("offline"); return; }
    this._setState("reconnecting");
    // Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... at most 10 s.
    const delay = Math.min(10_000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  _onMessage(text) {
    this.receivedAt = performance.now();  // before parsing: what a measurement starts from
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    this.lastHeard = Date.now();
    this._handle(msg);
  }

  _handle(msg) {
    switch (msg.type) {
      case "batch":  // several events that were waiting together, in order
        for (const m of msg.messages || []) this._handle(m);
        break;
      case "welcome":
        this.attempt = 0;
        this.heartbeatS = msg.heartbeat_s || 15;
        this._startWatchdog();
        this._setState("live");
        if (this.opts.onWelcome) this.opts.onWelcome(msg);
        break;
      case "ping":
        this.ws.send(JSON.stringify({ type: "pong", t: msg.t }));
        break;
      case "resync":
        this.seqs[msg.topic] = msg.seq;
        this.opts.onResync(msg.topic, msg.seq, msg.snapshot);
        break;
      case "event": {
        // An event without a seq (ephemeral, e.g. batched vehicle positions) is applied
        // but is no point to resume from.
        if (!Number.isInteger(msg.seq)) { this.opts.onEvent(msg); break; }
        const last = this.seqs[msg.topic];
        if (Number.isInteger(last) && msg.seq <= last) {  // already applied
          if (this.opts.onStale) this.opts.onStale(msg);  // e.g. ack it again
          break;
        }
        this.opts.onEvent(msg);
        this.seqs[msg.topic] = msg.seq;
        break;
      }
      case "error":
        if (msg.code === "too_slow" && msg.resume) {
          // The server closes with 4009 next; resume from what we applied (never later).
          for (const [t, s] of Object.entries(msg.resume)) {
            if (!Number.isInteger(this.seqs[t])) this.seqs[t] = s;
          }
        }
        if (this.opts.onMessage) this.opts.onMessage(msg);
        break;
      default:
        if (this.opts.onMessage) this.opts.onMessage(msg);
    }
  }

  _startWatchdog() {
    clearInterval(this.watchdog);
    // Nothing heard for 2.5 heartbeats: the connection is dead even if no close came.
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastHeard > this.heartbeatS * 2500 && this.ws) {
        const ws = this.ws;
        this.ws = null;
        ws.close(1000);
        this._onClose(1006);
      }
    }, 1000);
  }
}

/** A random idempotency key (8-100 chars of [A-Za-z0-9._:-]). */
export function newKey(prefix) {
  const id = crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${prefix}:${id}`;
}

/** Great-circle distance in metres between two [lon, lat] points. */
export function distanceM(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * rad;
  const dLon = (b[0] - a[0]) * rad;
  const h = Math.sin(dLat / 2) ** 2
    + Math.cos(a[1] * rad) * Math.cos(b[1] * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6_371_008.8 * Math.asin(Math.sqrt(h));
}

export async function login(username, password) {
  const res = await fetch("/api/auth/token", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (res.ok) return { token: (await res.json()).access_token };
  return { error: loginError(res.status), retryAfterS: Number(res.headers.get("Retry-After")) || 0 };
}

// Why a login failed, as an i18n key: too many failures (429) is not a wrong password.
export function loginError(status) {
  return status === 429 ? "lockedOut" : status === 503 ? "loginBusy" : "badLogin";
}

// The login error's text, with the wait the server asked for.
export function loginErrorText(t, key, retryAfterS) {
  const wait = retryAfterS > 0 ? ` (${Math.ceil(retryAfterS / 60)} min)` : "";
  return key === "badLogin" ? t(key) : `${t(key)}${wait}`;
}

/** One JSON API call as `{ok, status, body}`: `body` is the parsed JSON answer or null;
 * a network failure is status 0. An aborted call (`signal`) throws, for the caller to
 * tell apart from a failure. `headers` are sent as well (e.g. an Idempotency-Key). */
export async function apiCall(method, path, { token, body, signal, headers: extra } = {}) {
  const headers = { ...extra, Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (signal && signal.aborted) throw err;
    return { ok: false, status: 0, body: null };
  }
  let parsed = null;
  try { parsed = await res.json(); } catch { /* no JSON body */ }
  return { ok: res.ok, status: res.status, body: parsed };
}

export async function apiGet(path, token) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  if (res.status === 401) { const e = new Error("unauthenticated"); e.status = 401; throw e; }
  if (!res.ok) throw new Error(`${res.status}`);
  return res.json();
}
