"""bench.avl still runs: its --quick smoke run (every ingest path, the floor, the old path
and the live map watcher, a few seconds each) in a subprocess, since tests do not import
bench/. Only that it runs and counts: the figures on a shared test machine are not judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.db import create_database, drop_database, unavailable

ROOT = Path(__file__).resolve().parents[2]
PATHS = ("floor", "batch", "batch_paced", "single", "osmand", "legacy")


@pytest.mark.db
@pytest.mark.slow
def test_the_avl_benchmark_runs_and_counts_every_fix(tmp_path: Path) -> None:
    try:  # the benchmark makes its own database: is there a PostGIS to make it on?
        drop_database(create_database("emergency_bench_probe"))
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
    out = tmp_path / "avl.json"
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "bench.avl", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["quick"] is True
    assert result["ok"] is True
    for name in PATHS:
        row = result["rows"][name]
        assert row["positions_per_s"] > 0, (name, row)
        assert row["errors"] == {}, (name, row["error_samples"])
        lost = row["zero_lost"]
        assert lost["lost"] == 0 and lost["extra"] == 0, (name, lost)
        assert lost["in_track"] == lost["stored_per_server"] > 0, (name, lost)
    # The live map watcher saw the gateways' units move.
    assert result["live_map"]["paced"]["lag"]["n"] > 0
    assert result["ratios"]["single_vs_old_path"] > 0
    assert "live map lag" in proc.stdout and "ratios: batch / floor" in proc.stdout
