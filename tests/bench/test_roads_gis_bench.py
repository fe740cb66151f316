"""bench.roads_gis still runs: its --quick smoke run (the Helsinki extract's pieces as a
layer, one round of load-roads against load-osm) in a subprocess, since tests do not import
bench/. Only that it runs and reports: the figures on a shared test machine are not judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.db import create_database, drop_database, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.db
@pytest.mark.slow
def test_the_gis_roads_benchmark_runs_and_reports_both_sides(tmp_path: Path) -> None:
    try:  # the benchmark makes its own database: is there a PostGIS to make it on?
        drop_database(create_database("emergency_bench_probe"))
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
    out = tmp_path / "roads_gis.json"
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "bench.roads_gis", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["quick"] is True and result["lines"] == 914
    for side in ("load_roads", "load_osm"):
        assert result[side]["total_s"] > 0 and result[side]["postgis_s"] > 0
        assert result["graphs"][side]["edges"] > 1000
    assert result["load_roads"]["read_s"] > 0 and result["load_roads"]["graph_s"] > 0
    assert result["ratio_roads_vs_osm"] > 0 and result["ok"] is True
    assert "ratio: load-roads / load-osm" in proc.stdout
