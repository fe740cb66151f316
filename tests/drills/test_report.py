"""The files a run writes: report.json (deterministic, no paths), events.csv, and the
same report from worker processes as from one process."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from drills import scenario as sc
from drills.report import dumps, write
from drills.runner import run
from drills.world import NetworkSource, fleet_from_scenario
from gis.engine import Engine
from tests.support.drills import scenario_dict


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_files_hold_the_run_and_no_paths(road_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "history.csv").write_text(
        "time,lon,lat,type,severity\n60,24.945,60.169,fire,severe\n"
    )
    data = scenario_dict(policies=["nearest", "move_up"])
    data["generators"].append({"type": "fire", "csv": str(folder / "history.csv")})
    s = sc.parse(data)
    result = run(s, fleet_from_scenario(s), road_engine)
    paths = write(result, tmp_path / "out")
    report = json.loads(paths["json"].read_text())
    assert set(report) >= {"scenario", "seed", "replications", "policies", "timing"}
    assert (
        report["scenario"] == "helsinki test"
        and report["seed"] == 7
        and report["replications"] == 2
    )
    for policy in ("nearest", "move_up"):
        entry = report["policies"][policy]
        assert set(entry["kpis"]) >= {"incidents", "response_s", "within_target", "queued_fraction",
                                      "mean_queue_wait_s", "utilisation", "coverage", "unmet_lines"}  # fmt: skip
        assert set(entry["kpis"]["response_s"]) == {"p50", "p90", "p95", "mean"}
        low, high = entry["ci95"]["response_s"]["p90"]
        assert low <= entry["kpis"]["response_s"]["p90"] <= high
        assert 0 <= entry["kpis"]["utilisation"] <= 1
    assert not [s for s in _strings(report) if str(tmp_path) in s or s.startswith("/")]
    assert report["spec"]["generators"][-1]["csv"] == "history.csv"
    with paths["csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(len(r["events"]) for r in result.replays.values())
    calls = [r for r in rows if r["kind"] == "call" and r["policy"] == "nearest"]
    assert len(calls) == len(result.replays["nearest"]["incidents"])
    assert paths["html"].read_text().startswith("<!doctype html>")


@pytest.mark.slow
def test_worker_processes_give_the_same_report_as_one_process(
    road_engine: Engine, tmp_path: Path
) -> None:
    from command.seed import city_extract

    s = sc.parse(scenario_dict(policies=["nearest", "plan"], replications=3))
    source = NetworkSource(city_extract("helsinki"), cache_dir=tmp_path / "cache")
    here = run(s, fleet_from_scenario(s), road_engine).report
    pooled = run(s, fleet_from_scenario(s), source, workers=2).report
    assert pooled["timing"]["workers"] == 2
    here.pop("timing"), pooled.pop("timing")
    assert dumps(here) == dumps(pooled)
