"""drills.distributed: the runner on Dask in local mode (two worker processes) gives the same
report as in-process, and a clear error when the optional extra is missing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from drills import report as rp
from drills import scenario as sc
from drills.distributed import MISSING, DistributedUnavailable
from drills.runner import run
from drills.world import NetworkSource, fleet_from_scenario

# Helsinki's centre (the tests' demo city): 833 junctions
SQUARE = [[24.937, 60.165], [24.952, 60.165], [24.952, 60.178], [24.937, 60.178], [24.937, 60.165]]
SCENARIO: dict[str, Any] = {
    "name": "dask",
    "start": "2026-07-01T08:00:00+03:00",
    "duration_s": 4 * 3600,
    "seed": 7,
    "replications": 2,
    "policies": ["nearest", "move_up"],
    "stations": [
        {"name": "S1", "lon": 24.940, "lat": 60.168},
        {"name": "S2", "lon": 24.950, "lat": 60.175},
        {"name": "S3", "lon": 24.945, "lat": 60.171},
    ],
    "units": [
        {"callsign": f"A{k}", "capabilities": ["medical_bls"], "station": f"S{k % 3 + 1}"}
        for k in range(5)
    ],
    "response_plans": {"medical": {"moderate": [{"capability": "medical_bls", "count": 1}]}},
    "generators": [
        {
            "type": "medical",
            "rate_per_h": 4,
            "polygon": {"type": "Polygon", "coordinates": [SQUARE]},
        }
    ],
    "service": {
        "turnout_s": {"dist": "fixed", "value": 60},
        "on_scene_s": {"dist": "exponential", "mean": 1200},
    },
}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> NetworkSource:
    from command.seed import city_extract

    return NetworkSource(city_extract("helsinki"), cache_dir=tmp_path_factory.mktemp("graphs"))


def without_timing(report: dict[str, Any]) -> str:
    return rp.dumps({k: v for k, v in report.items() if k != "timing"})


def test_a_dask_run_reports_what_an_in_process_run_does(network: NetworkSource) -> None:
    scenario = sc.parse(SCENARIO)
    fleet = fleet_from_scenario(scenario)
    here = run(scenario, fleet, network)
    seen: list[float] = []
    there = run(scenario, fleet, network, backend="dask", progress=seen.append)
    assert without_timing(there.report) == without_timing(here.report)
    assert there.replays == here.replays
    assert seen == [0.25, 0.5, 0.75, 1.0]
    assert here.report["policies"]["nearest"]["kpis"]["incidents"] > 0  # the scenario has calls


def test_without_the_extra_the_error_says_how_to_install_it(
    network: NetworkSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    scenario = sc.parse(SCENARIO)
    with pytest.raises(DistributedUnavailable, match="uv sync --extra distributed") as err:
        run(scenario, fleet_from_scenario(scenario), network, backend="dask")
    assert str(err.value) == MISSING


def test_a_dask_run_needs_a_network_source_not_an_engine(road_engine: Any) -> None:
    scenario = sc.parse(SCENARIO)
    with pytest.raises(ValueError, match="NetworkSource"):
        run(scenario, fleet_from_scenario(scenario), road_engine, backend="dask")


def test_the_extra_is_declared_and_installed_by_setup() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(
        d.startswith("dask[distributed]") for d in project["optional-dependencies"]["distributed"]
    )
    assert "distributed" not in " ".join(project["dependencies"])  # the default install stays small
    assert "--extra distributed" in (root / "scripts" / "setup.sh").read_text(encoding="utf-8")
