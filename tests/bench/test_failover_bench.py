"""bench.failover still runs: its --quick smoke run (60 dispatches, one process of two
SIGKILLed halfway, and the same run without a kill) in a subprocess, since tests do not
import bench/. Only that it runs and counts: the timings on a shared test machine are not
judged."""

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
def test_the_failover_benchmark_runs_and_loses_nothing(tmp_path: Path) -> None:
    try:  # the benchmark makes its own databases: is there a PostGIS to make them on?
        drop_database(create_database("emergency_bench_probe"))
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
    out = tmp_path / "failover.json"
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "bench.failover", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["quick"] is True
    killed, peer = result["failover"], result["no_kill"]
    for figures in (killed, peer):
        assert figures["tasks_lost"] == figures["duplicate_effects"] == 0, figures
        assert figures["sequence_gaps"] == 0, figures
    assert peer["reconnects"] == 0
    (run,) = result["runs"]["failover"]
    assert run["dispatches"] == 60 and run["clients_of_killed"] == run["reconnects"] == 7
    assert 0 < killed["resume_median_s"] <= killed["resume_max_s"]
    assert result["ratios"]["rate_after_kill_vs_no_kill"] > 0
    assert "kill -> all clients of A resumed" in proc.stdout
