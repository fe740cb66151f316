"""bench.drills still runs: its --quick smoke run (an hour of Porto, two days of Columbus,
the SimPy peer) in a subprocess, since tests do not import bench/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.osm import extract_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_drill_benchmark_runs_and_writes_its_figures(tmp_path: Path) -> None:
    extract_path("r5_porto_portugal.osm.pbf")  # fails clearly when the shared data is missing
    out = tmp_path / "drills.json"
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "bench.drills", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["quick"] is True
    porto, jemss = result["porto"], result["jemss"]
    assert porto["units"] == 300 and porto["stations"] == 40
    assert porto["nearest"]["incidents"] > 0 and porto["nearest"]["median_s"] > 0
    for policy in ("nearest", "move_up", "plan"):
        shares = jemss[policy]["shares"]
        assert abs(sum(shares.values()) - 1) < 0.01, (policy, shares)
    peer = jemss["peer"]
    assert peer["ours"]["incidents"] == peer["simpy"]["incidents"] > 0  # the same calls
    assert peer["ratio_ours_to_simpy"] > 0
    assert "ours / SimPy" in proc.stdout and "mean response: ours" in proc.stdout
