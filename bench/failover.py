"""Failover benchmark: one of two server processes SIGKILLed in the middle of 500 dispatches.

Run with ``uv run python -m bench.failover`` (or ``make bench``); a smoke run:
``uv run python -m bench.failover --quick``. Each repetition makes a committed database of
its own (``tests.support.live.make_live_db``), starts two ``emergency serve`` processes A
and B on it, two failover proxies ([A, B] and [B, A]) with half the phones and screens on
each, and runs the scenario of ``tests/support/failover.py`` (the one
tests/realtime/test_failover.py asserts on): a dispatcher over HTTP, every phone acking
and working its tasks to done, A killed after half the dispatches. Every run is checked
(0 tasks lost, 0 duplicate effects, 0 sequence gaps, every task acked) before its figures
count. The peer is the same scenario without the kill.

Printed (medians over ``--repeat`` runs): kill -> every client of A resumed (median and
max over those clients; resumed = a welcome from B and every topic caught up to its head
at the kill), kill -> socket closed, kill -> welcome, dispatches/s before and after the
kill against the peer's, the dispatcher's and the phones' retries. Written to
bench/results/failover.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from tests.support.db import create_database, drop_database
from tests.support.failover import Scenario, run_failover
from tests.support.live import make_live_db

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "failover.json"
KEYS = (
    "resume_median_s",
    "resume_max_s",
    "closed_median_s",
    "welcome_median_s",
    "dispatches_per_s",
    "dispatches_per_s_before",
    "dispatches_per_s_after",
    "dispatcher_retries",
    "phone_step_retries",
    "duplicate_deliveries_dropped",
    "reconnects",
    "wall_s",
)


def one_run(scenario: Scenario) -> dict[str, Any]:
    db = make_live_db("emergency_bench_failover")
    try:
        return run_failover(db, scenario)
    finally:
        db.engine.dispose()
        drop_database(db.url)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in KEYS:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = round(statistics.median(values), 3)
    for key in ("tasks_lost", "duplicate_effects", "sequence_gaps"):
        out[key] = sum(r[key] for r in runs)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n")[0])
    p.add_argument("--dispatches", type=int, default=500)
    p.add_argument("--units", type=int, default=40)
    p.add_argument("--screens", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3, help="runs of each, medians reported")
    p.add_argument("--quick", action="store_true", help="a smoke run: 60 dispatches, once")
    p.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.dispatches, args.units, args.screens, args.repeat = 60, 12, 2, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        drop_database(create_database("emergency_bench_probe"))
    except Exception as exc:
        print(f"no PostGIS to benchmark against: {exc}", file=sys.stderr)
        return 2
    base = {"dispatches": args.dispatches, "units": args.units, "screens": args.screens}
    scenarios = {
        "failover": Scenario(**base, kill_at=args.dispatches // 2),
        "no_kill": Scenario(**base, kill_at=None),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    for i in range(args.repeat):
        for name, scenario in scenarios.items():
            figures = one_run(scenario)
            runs[name].append(figures)
            print(f"run {i + 1}/{args.repeat} {name}: {json.dumps(figures)}", flush=True)
    result: dict[str, Any] = {
        "scenario": base | {"kill_at": args.dispatches // 2, "repeat": args.repeat},
        "quick": args.quick,
        "failover": medians(runs["failover"]),
        "no_kill": medians(runs["no_kill"]),
        "runs": runs,
    }
    f, peer = result["failover"], result["no_kill"]
    result["ratios"] = {
        "rate_after_kill_vs_no_kill": round(
            f["dispatches_per_s_after"] / peer["dispatches_per_s"], 2
        ),
        "wall_vs_no_kill": round(f["wall_s"] / peer["wall_s"], 2),
    }
    print(
        f"\nfailover, {args.dispatches} dispatches, {args.units} phones + {args.screens} screens "
        f"(medians of {args.repeat}):\n"
        f"  kill -> all clients of A resumed: median {f['resume_median_s']:.2f} s, "
        f"max {f['resume_max_s']:.2f} s (socket closed {f['closed_median_s']:.3f} s, "
        f"welcome from B {f['welcome_median_s']:.2f} s)\n"
        f"  lost {f['tasks_lost']}, duplicate effects {f['duplicate_effects']}, "
        f"gaps {f['sequence_gaps']}; retries: dispatcher {f['dispatcher_retries']:.0f}, "
        f"phone steps {f['phone_step_retries']:.0f}\n"
        f"  dispatches/s: before the kill {f['dispatches_per_s_before']:.1f}, after "
        f"{f['dispatches_per_s_after']:.1f}; no kill (peer) {peer['dispatches_per_s']:.1f}\n"
        f"  ratios: after kill / no kill {result['ratios']['rate_after_kill_vs_no_kill']:.2f}, "
        f"wall / no kill {result['ratios']['wall_vs_no_kill']:.2f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
