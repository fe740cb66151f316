"""bench.gis_import still runs: its --quick smoke run (1,000 shelters imported, again,
changed, and the one-POST-per-row peer) in a subprocess. Only that it runs and counts: the
figures on a shared test machine are not judged."""

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
def test_the_import_benchmark_runs(tmp_path: Path) -> None:
    try:  # the benchmark makes its own database: is there a PostGIS to make it on?
        drop_database(create_database("emergency_bench_probe"))
    except Exception as exc:
        unavailable(str(exc).splitlines()[0])
    out = ROOT / "bench" / "results" / "gis_import_quick.json"
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "bench.gis_import", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    assert result["quick"] is True
    assert result["rows"] == 1000
    # 1,000 created, then 1,000 updated, then 1,000 back: one audit row each.
    assert result["audit_rows"] >= 3000
    assert result["peer_rows_per_s"] > 0
    assert "ratio: import is" in proc.stdout
