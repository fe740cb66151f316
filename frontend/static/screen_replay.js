// Replay of a finished simulation run, the model: one policy's timeline (GET
// /api/drills/{id}/replay?policy=NAME, format in the drills contract) turned into the state
// at any simulated time t: where each unit is and what it does, which incidents have come
// in and whether they were answered within target. No DOM, no map (screen_drill.js draws).
//
// Playing applies the events up to t in order; seeking back starts again from the first
// event (a binary search finds the last event at or before t). Applying an event is a few
// assignments, so 10,000 events rebuild in about a millisecond.
//
// A unit's position: at its station until `assign`; on a straight line from where it was to
// the incident until `arrive`; at the scene until `clear`; then heading for the hospital if
// the timeline says where it is, else home, until `home` (or the next event). `move` sends
// an idle unit to another station (move-up); its next event (`home`) is its arrival.

const DRIVE_MPS = 11;  // a leg whose arrival the timeline does not give: straight line at ~40 km/h
// The events after which a unit stands still at a known place.
const ARRIVALS = new Set(["arrive", "home"]);

/** The index of the first element of the sorted array `a` greater than `x`. */
export function upperBound(a, x) {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function metres(a, b) {
  const rad = Math.PI / 180;
  const x = (b[0] - a[0]) * rad * Math.cos(((a[1] + b[1]) / 2) * rad);
  const y = (b[1] - a[1]) * rad;
  return Math.hypot(x, y) * 6_371_000;
}

const at = (p) => (p && Number.isFinite(p.lon) && Number.isFinite(p.lat) ? [p.lon, p.lat] : null);

export class Timeline {
  /** @param {object} tl the replay timeline as the API gives it */
  constructor(tl) {
    this.policy = tl.policy;
    this.start = tl.start || null;
    this.stations = (tl.stations || []).map((s, i) => ({ index: i, name: s.name, at: at(s) }));
    this.closures = tl.closures || [];
    this.incidents = [...(tl.incidents || [])].sort((a, b) => a.t - b.t || a.id - b.id);
    this.incidentT = Float64Array.from(this.incidents, (x) => x.t);
    this.incidentById = new Map(this.incidents.map((x) => [x.id, x]));
    this.events = [...(tl.events || [])].sort((a, b) => a.t - b.t);  // stable: same-t order kept
    this.eventT = Float64Array.from(this.events, (e) => e.t);
    const last = this.events.length ? this.eventT[this.events.length - 1] : 0;
    this.duration = Number.isFinite(tl.duration_s) && tl.duration_s > 0 ? tl.duration_s : last;
    this.unitDefs = (tl.units || []).map((u) => ({ id: u.id, callsign: u.callsign || `#${u.id}`, type: u.type, station: u.station }));
    // Each unit event's next event of the same unit (-1: none): where a leg ends.
    this.nextOf = new Int32Array(this.events.length).fill(-1);
    const seen = new Map();
    for (let i = this.events.length - 1; i >= 0; i -= 1) {
      const u = this.events[i].unit;
      if (u === undefined || u === null) continue;
      if (seen.has(u)) this.nextOf[i] = seen.get(u);
      seen.set(u, i);
    }
    this.reset();
  }

  stationAt(index) {
    const s = this.stations[index];
    return s && s.at ? s.at : null;
  }

  incidentAt(id) {
    return at(this.incidentById.get(id));
  }

  /** Back to t = 0: every unit idle at its station, no incident in. */
  reset() {
    this.t = 0;
    this.cursor = 0;
    this.version = 0;  // bumped when an incident's or a closure's look changes
    this.units = new Map();
    for (const d of this.unitDefs) {
      const home = this.stationAt(d.station) || [0, 0];
      this.units.set(d.id, { ...d, home: d.station, status: "available", incident: null,
        from: home, to: home, t0: 0, t1: 0, changed: true });
    }
    this.answered = new Map();  // incident id -> {at, units: Set of units there or on the way}
    this.onScene = new Map();   // incident id -> units assigned and not yet cleared
    this.met = 0;
    this.late = 0;
    this.responseSum = 0;
    this.closureActive = new Set();
  }

  /** The state at `t`: forward from where it is, or from the start when going back. */
  seek(t) {
    const target = Math.max(0, Math.min(t, this.duration));
    if (target < this.t) this.reset();
    const end = upperBound(this.eventT, target);
    while (this.cursor < end) this.apply(this.cursor++);
    this.t = target;
    return this;
  }

  /** Where unit `u` is at time `t` (on its current leg). */
  position(u, t = this.t) {
    if (t >= u.t1 || u.t1 <= u.t0) return u.to;
    if (t <= u.t0) return u.from;
    const f = (t - u.t0) / (u.t1 - u.t0);
    return [u.from[0] + (u.to[0] - u.from[0]) * f, u.from[1] + (u.to[1] - u.from[1]) * f];
  }

  moving(u, t = this.t) {
    return t < u.t1 && t >= u.t0 && (u.from[0] !== u.to[0] || u.from[1] !== u.to[1]);
  }

  /** Start a leg at event `i` from where the unit is to `to`; it ends at the unit's next
   * event if that is an arrival, else after a straight-line drive. */
  leg(u, i, to) {
    const e = this.events[i];
    const from = this.position(u, e.t);
    const dest = to || from;
    const next = this.nextOf[i];
    const arrives = next >= 0 && ARRIVALS.has(this.events[next].kind);
    u.from = from;
    u.to = dest;
    u.t0 = e.t;
    u.t1 = arrives ? Math.max(e.t, this.events[next].t) : e.t + metres(from, dest) / DRIVE_MPS;
  }

  /** Where a unit goes after `clear` or `hospital`: the next event's place if it has one
   * (a hospital's lon/lat or station, the station of `home`), else its home station. */
  homeward(u, i) {
    const next = this.nextOf[i];
    const ne = next >= 0 ? this.events[next] : null;
    if (ne && ne.kind === "hospital") return at(ne) || this.stationAt(ne.station) || null;
    if (ne && (ne.kind === "home" || ne.kind === "move") && Number.isInteger(ne.station)) return this.stationAt(ne.station);
    return this.stationAt(u.home);
  }

  apply(i) {
    const e = this.events[i];
    if (e.kind === "closure") {
      if (e.active) this.closureActive.add(e.closure); else this.closureActive.delete(e.closure);
      this.version += 1;
      return;
    }
    const u = this.units.get(e.unit);
    if (!u) return;
    u.changed = true;
    switch (e.kind) {
      case "assign": {
        u.status = "en_route";
        u.incident = e.incident;
        this.leg(u, i, this.incidentAt(e.incident));
        if (!this.onScene.has(e.incident)) this.onScene.set(e.incident, new Set());
        this.onScene.get(e.incident).add(u.id);
        this.version += 1;
        break;
      }
      case "arrive": {
        u.status = "on_scene";
        const place = this.incidentAt(e.incident) || this.position(u, e.t);
        u.from = u.to = place;
        u.t0 = u.t1 = e.t;
        if (!this.answered.has(e.incident)) this.answer(e.incident, e.t);
        break;
      }
      case "clear":
        u.status = "returning";
        this.release(u, e.incident);
        this.leg(u, i, this.homeward(u, i));
        break;
      case "hospital": {
        u.status = "returning";
        const there = at(e) || this.stationAt(e.station);
        if (there) { u.from = u.to = there; u.t1 = e.t; }
        this.leg(u, i, this.homeward(u, i));
        break;
      }
      case "home": {
        if (Number.isInteger(e.station)) u.home = e.station;
        const home = this.stationAt(u.home) || this.position(u, e.t);
        u.status = "available";
        u.incident = null;
        u.from = u.to = home;
        u.t0 = u.t1 = e.t;
        break;
      }
      case "move":
        if (Number.isInteger(e.station)) u.home = e.station;
        u.status = "returning";
        this.leg(u, i, this.stationAt(u.home));
        break;
      default:
        u.changed = false;  // a kind this screen does not know: nothing moves
    }
  }

  answer(id, t) {
    const inc = this.incidentById.get(id);
    this.answered.set(id, t);
    this.version += 1;
    if (!inc) return;
    const response = Number.isFinite(inc.response_s) ? inc.response_s : t - inc.t;
    this.responseSum += response;
    if (inc.within === true) this.met += 1;
    else if (inc.within === false) this.late += 1;
  }

  release(u, incident) {
    const id = incident ?? u.incident;
    const there = this.onScene.get(id);
    if (there) {
      there.delete(u.id);
      if (!there.size) this.version += 1;
    }
    u.incident = null;
  }

  /** The incidents in by t, each with its look: waiting, met, late or answered (no verdict),
   * and `done` once every unit sent has cleared. */
  shownIncidents() {
    const n = upperBound(this.incidentT, this.t);
    const out = new Array(n);
    for (let k = 0; k < n; k += 1) {
      const inc = this.incidents[k];
      const answered = this.answered.has(inc.id);
      const state = !answered ? "waiting" : inc.within === true ? "met" : inc.within === false ? "late" : "answered";
      const busy = this.onScene.get(inc.id);
      out[k] = { inc, state, done: answered && !(busy && busy.size) };
    }
    return out;
  }

  /** The running figures at t. */
  stats() {
    const called = upperBound(this.incidentT, this.t);
    const answered = this.answered.size;
    const judged = this.met + this.late;
    const busy = [...this.units.values()].filter((u) => u.status !== "available").length;
    return { t: this.t, called, answered, waiting: Math.max(0, called - answered), met: this.met,
      late: this.late, withinShare: judged ? this.met / judged : null,
      meanResponse: answered ? this.responseSum / answered : null,
      busy, units: this.units.size, total: this.incidents.length };
  }
}
